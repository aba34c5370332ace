"""``python -m soundforge.db upgrade|current``: migrate or inspect the configured database.

Web and workers upgrade by themselves at start; this is for operators who
prefer to migrate as a separate deployment step.
"""

from __future__ import annotations

import sys

from soundforge.config import get_settings
from soundforge.db.migrate import current_revision, head_revision, upgrade_database
from soundforge.db.session import Database, database_url


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "upgrade"
    settings = get_settings()
    if command == "upgrade":
        upgrade_database(settings)
        print(f"database at revision {head_revision()}")
        return 0
    if command == "current":
        database = Database(settings)
        try:
            print(f"{database_url(settings).split('@')[-1]}: revision "
                  f"{current_revision(database.engine)} (newest {head_revision()})")
        finally:
            database.dispose()
        return 0
    print("usage: python -m soundforge.db [upgrade|current]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
