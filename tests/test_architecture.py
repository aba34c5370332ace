"""The import rules of docs/architecture.md, checked on every test run.

The contracts live in pyproject.toml (``[tool.importlinter]``): layers run one
way, no import cycles between sibling packages or modules, the engines'
internal modules are imported only inside ``engines/``, and the two engines do
not import each other. A new import that breaks one fails here, with
import-linter's account of the offending chain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
