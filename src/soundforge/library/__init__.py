"""The track library (import, list, delete) and the layout of files under ``uploads/``.

Import from the sub-modules: ``soundforge.library.tracks`` and ``soundforge.library.files``.
"""
