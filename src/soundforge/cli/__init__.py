"""The ``soundforge`` command line."""
