"""``python -m soundforge`` is the ``soundforge`` command."""

from soundforge.cli.main import main

main()
