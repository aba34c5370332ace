"""``soundforge users add``: accounts made by the administrator (for
``SOUNDFORGE_SIGNUP=closed``, where the site makes only the first one)."""

from __future__ import annotations

import sys

import typer

from soundforge.config import get_settings
from soundforge.errors import SoundForgeError

users = typer.Typer(help="Manage accounts.", no_args_is_help=True)


@users.command("add")
def add(
    email: str = typer.Argument(..., help="The new account's email address."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (scripts)."
    ),
) -> None:
    """Create an account; asks for its password (or reads it from stdin)."""
    from sqlalchemy.exc import IntegrityError

    from soundforge.db import Database, upgrade_database
    from soundforge.db.accounts import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = get_settings()
    try:
        upgrade_database(settings)
        db = Database(settings)
        try:
            with db.transaction() as session:
                user = create_user(session, email, password)
                session.flush()
                created = user.email
        finally:
            db.dispose()
    except IntegrityError:
        typer.echo(f"soundforge users add: an account with {email} already exists.", err=True)
        raise typer.Exit(1) from None
    except SoundForgeError as exc:
        typer.echo(f"soundforge users add: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Added {created}.")


def register(app: typer.Typer) -> None:
    app.add_typer(users, name="users")
