"""The ``soundforge`` command run in the test process.

Typer's test runner on the command's own app (``soundforge.cli.main.app``, all
that ``python -m soundforge`` and the installed script call): the same parsing,
checks, messages and exit codes, without a new Python process for every call
(~0.4 s of CPU each). Anything the command does not turn into an exit code is
raised and fails the test, so an unexpected traceback cannot pass for an
ordinary exit code 1. The command's own subprocesses (a separation's runner)
are real. What needs a process of its own (signals, SIGKILL, a process id)
runs the installed command instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, input: str | None = None
) -> CliRun:
    """``soundforge ARGS`` with ``env`` added to the environment and ``input`` on stdin."""
    from typer.testing import CliRunner

    from soundforge.cli.main import app

    result = CliRunner().invoke(
        app, [str(arg) for arg in args], env={"COLUMNS": "300", **(env or {})},
        input=input, catch_exceptions=False,
    )
    return CliRun(result.exit_code, result.stdout, result.stderr)
