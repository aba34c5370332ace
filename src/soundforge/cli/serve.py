"""``soundforge serve``: the whole product in one command.

Upgrades the database, then runs the web app (Uvicorn) and an embedded worker
in the same process, sharing one pipeline (database, queue, event bus). On a
larger install, run ``soundforge serve --no-worker`` on web nodes and
``soundforge worker`` on GPU nodes against a shared PostgreSQL and Redis.
"""

from __future__ import annotations

import os

import typer

from soundforge.cli.output import log_as_a_service
from soundforge.config import Settings, get_settings
from soundforge.errors import SoundForgeError


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option(
            None, "--host", help="Address to listen on (default: SOUNDFORGE_HOST, 127.0.0.1)."
        ),
        port: int = typer.Option(
            None, "--port", "-p", min=1, max=65535,
            help="Port (default: SOUNDFORGE_PORT, 8000).",
        ),
        concurrency: int = typer.Option(
            None, "--concurrency", "-c", min=1,
            help="Jobs the embedded worker runs at once (default: 2).",
        ),
        no_worker: bool = typer.Option(
            False, "--no-worker", help="Serve the web app only; separate workers run the jobs."
        ),
        secure_cookies: bool = typer.Option(
            False, "--secure-cookies",
            help="Mark the session cookie Secure (when served over HTTPS by a proxy).",
        ),
    ) -> None:
        """Run the web app and a worker: open http://127.0.0.1:8000 and sign up."""
        import uvicorn

        from soundforge.db.migrate import upgrade_database
        from soundforge.jobs.pipeline import Pipeline
        from soundforge.web import create_app

        log_as_a_service()

        settings = get_settings()
        changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        if changes:
            settings = settings.model_copy(update=changes)
        try:
            upgrade_database(settings)
        except SoundForgeError as exc:  # a secret that cannot read this database …
            typer.echo(f"soundforge serve: {exc.message}", err=True)
            raise typer.Exit(1) from None
        _warn_if_default_model_unavailable(settings)
        pipeline = Pipeline(settings)
        worker = None
        try:
            web = create_app(settings, pipeline=pipeline, https_only=secure_cookies)
            if not no_worker:
                from soundforge.jobs.worker import start_embedded_worker

                worker = start_embedded_worker(pipeline=pipeline, concurrency=concurrency)
            shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
            typer.echo(
                f"SoundForge: http://{shown}:{settings.port}  "
                f"(data in {settings.data_dir.absolute()}"
                f"{', with a worker' if worker else ', no worker'}; Ctrl-C stops)",
                err=True,
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    web,
                    host=settings.host,
                    port=settings.port,
                    log_level="info" if "SOUNDFORGE_LOG_LEVEL" not in os.environ else None,
                    # Open SSE streams must not hold a shutdown up for long.
                    timeout_graceful_shutdown=5,
                    # Forwarded headers only from the proxies the operator named:
                    # anyone else could claim any address.
                    proxy_headers=bool(settings.trusted_proxies.strip()),
                    forwarded_allow_ips=settings.trusted_proxies.strip() or None,
                )
            )
            server.run()
        finally:
            if worker is not None:
                # Running jobs are handed back to the queue, not lost.
                worker.stop()
            pipeline.close()


def _warn_if_default_model_unavailable(settings: Settings) -> None:
    """Say at start, not at the first job, that local separations will fail:
    the default model is neither here nor downloadable (offline machine)."""
    from soundforge.engines.local.catalog import DEFAULT_MODEL
    from soundforge.engines.local.loader import unavailable_reason

    reason = unavailable_reason(DEFAULT_MODEL, settings.model_repo)
    if reason:
        typer.echo(f"Warning: local separations with the default model will fail. {reason}",
                   err=True)
