"""How the CLI talks: errors on stderr in one line, machine output on stdout."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from rich.console import Console

stderr = Console(stderr=True, highlight=False)
# Wide enough for the model table when piped (rich would assume 80 columns).
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def log_as_a_service() -> None:
    """``serve`` and ``worker`` are services: they say what they do (INFO) unless
    ``SOUNDFORGE_LOG_LEVEL`` asks for another level."""
    if "SOUNDFORGE_LOG_LEVEL" not in os.environ:
        logging.getLogger("soundforge").setLevel(logging.INFO)
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")


def error(message: str) -> None:
    """One clear line, no traceback."""
    stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)


def emit_json(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()
