"""``soundforge``: separate tracks, manage models, run the service."""

from __future__ import annotations

import logging
import os

import typer

from soundforge import __version__
from soundforge.cli import export, models, separate, serve, users, worker

app = typer.Typer(
    name="soundforge",
    help="Split music into stems (vocals, drums, bass …) with local Demucs or LALAL.AI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
separate.register(app)
models.register(app)
worker.register(app)
export.register(app)
serve.register(app)
users.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soundforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    logging.basicConfig(
        level=os.environ.get("SOUNDFORGE_LOG_LEVEL", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    app()
