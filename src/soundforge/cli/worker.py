"""``soundforge worker``: run jobs from the queue (see soundforge.jobs.worker)."""

from __future__ import annotations

import typer

from soundforge.cli.output import log_as_a_service
from soundforge.config import get_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        concurrency: int = typer.Option(
            None,
            "--concurrency",
            "-c",
            min=1,
            help="Jobs to run at once (default: SOUNDFORGE_WORKER_CONCURRENCY, or 2).",
        ),
    ) -> None:
        """Run separation jobs from the queue until stopped (Ctrl-C or SIGTERM).

        Start as many workers as you like, on this machine or others sharing the
        database (SOUNDFORGE_DATABASE_URL) and the queue (SOUNDFORGE_QUEUE_URL=redis://…):
        each job runs exactly once.
        """
        from soundforge.db.security import SecretError
        from soundforge.jobs.worker import Worker

        log_as_a_service()
        settings = get_settings()
        try:
            instance = Worker(settings, concurrency)
            typer.echo(
                f"soundforge worker {instance.worker_id}: {instance.concurrency} at a time, "
                f"data in {settings.data_dir.absolute()}",
                err=True,
            )
            instance.run()
        except SecretError as exc:  # this node's secret cannot read the database
            typer.echo(f"soundforge worker: {exc.message}", err=True)
            raise typer.Exit(1) from None
