"""File-name templates: ``"{track}-{stem}.{ext}"``, as the Demucs CLI's ``--filename``.

One template names the files ``soundforge separate`` writes and the entries of
the web app's ZIP downloads. Variables: ``{track} {stem} {ext} {model}
{engine} {date}``; ``/`` makes subfolders. A template is refused, with a
message that names the problem, when it uses an unknown variable, leaves the
output folder (``..``, an absolute path), has no ``{ext}`` (the extension
would not match the format) or would give two stems the same file.

Values are made safe before they are put in: a track titled ``AC/DC`` gives
``AC_DC``, never a folder, and a value is never ``..``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath

from soundforge.errors import InvalidOptionError
from soundforge.filenames import safe_filename

VARIABLES = ("track", "stem", "ext", "model", "engine", "date")
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
MAX_TEMPLATE_LENGTH = 300
@dataclass(frozen=True)
class FilenameTemplate:
    text: str

    @classmethod
    def parse(cls, text: str) -> FilenameTemplate:
        """Check a template on its own (variables, shape); raise ``InvalidOptionError``."""
        template = text.strip()
        if not template:
            raise InvalidOptionError(
                f'The file-name template is empty: give one such as "{DEFAULT_TEMPLATE}".'
            )
        if len(template) > MAX_TEMPLATE_LENGTH:
            raise InvalidOptionError(
                f"The file-name template is longer than {MAX_TEMPLATE_LENGTH} characters."
            )
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in string.Formatter().parse(template)
                if name is not None
            ]
        except ValueError as exc:
            raise InvalidOptionError(
                f"The file-name template {template!r} is malformed ({exc}): "
                "variables are written {stem}; write {{ or }} for a brace."
            ) from None
        for name, spec, conversion in fields:
            if name not in VARIABLES or spec or conversion:
                shown = "{" + name + (f"!{conversion}" if conversion else "") + (
                    f":{spec}" if spec else "") + "}"
                raise InvalidOptionError(
                    f"The file-name template {template!r} uses the unknown variable {shown}: "
                    f"use {', '.join('{' + v + '}' for v in VARIABLES)}."
                )
        if template.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", template):
            raise InvalidOptionError(
                f"The file-name template {template!r} is an absolute path: files must stay "
                "inside the output folder, so start it with a variable or a folder name."
            )
        parts = re.split(r"[/\\]", template)
        if any(part.strip() in ("..", ".") for part in parts):
            raise InvalidOptionError(
                f"The file-name template {template!r} contains '..' or '.' as a folder: "
                "files must stay inside the output folder."
            )
        if any(not part.strip() for part in parts):
            raise InvalidOptionError(
                f"The file-name template {template!r} has an empty folder name (// or a "
                "trailing /): end it with a file name such as {stem}.{ext}."
            )
        names = {name for name, _, _ in fields}
        if "ext" not in names:
            raise InvalidOptionError(
                f"The file-name template {template!r} has no {{ext}}: end it with .{{ext}} "
                "so each file's extension matches its format."
            )
        return cls(template)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(
            name for _, name, _, _ in string.Formatter().parse(self.text) if name is not None
        )

    def render(self, values: Mapping[str, str]) -> str:
        """The relative path (``/``-separated) for one file."""
        safe = {name: safe_filename(str(values.get(name, "")), name) for name in VARIABLES}
        path = self.text.format(**safe)
        parts = [part.strip() for part in re.split(r"[/\\]", path)]
        return str(PurePosixPath(*parts))

    def render_stems(
        self, stems: Iterable[str], fmt: str, common: Mapping[str, str]
    ) -> dict[str, str]:
        """``{stem: relative path}`` for the stems of one separation; refused when two
        stems would land in the same file."""
        names = list(stems)
        if len(names) > 1 and "stem" not in self.variables:
            raise InvalidOptionError(
                f"The file-name template {self.text!r} has no {{stem}}: all {len(names)} "
                "stems would be written to the same file. Add {stem}."
            )
        paths: dict[str, str] = {}
        seen: dict[str, str] = {}
        for stem in names:
            path = self.render({**common, "stem": stem, "ext": fmt})
            key = path.casefold()  # macOS and Windows do not tell case apart
            if key in seen:
                raise InvalidOptionError(
                    f"The file-name template {self.text!r} names both the {seen[key]} and the "
                    f"{stem} stem {path!r}: they would overwrite each other."
                )
            seen[key] = stem
            paths[stem] = path
        return paths

    def render_all(self, rows: Iterable[Mapping[str, str]]) -> list[str]:
        """Paths for files of several separations (a ZIP of a whole track); refused
        when two would share a name."""
        paths: list[str] = []
        seen: dict[str, Mapping[str, str]] = {}
        for values in rows:
            path = self.render(values)
            key = path.casefold()
            if key in seen:
                first = seen[key]
                raise InvalidOptionError(
                    f"The file-name template {self.text!r} names two files {path!r} (the "
                    f"{first.get('stem')} stem of {first.get('engine')} {first.get('model')} "
                    f"of {first.get('date')}, and the {values.get('stem')} stem of "
                    f"{values.get('engine')} {values.get('model')} of {values.get('date')}): "
                    "add {model}, {engine} or {date} so separations get their own names."
                )
            seen[key] = values
            paths.append(path)
        return paths


def date_value(moment: datetime | date | None = None) -> str:
    """``{date}``: the day of the separation, ISO style (2026-11-30)."""
    return (moment or date.today()).strftime("%Y-%m-%d")
