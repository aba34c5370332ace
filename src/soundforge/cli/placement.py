"""Where ``soundforge separate`` puts one input's results.

* By default the engine writes ``OUTDIR/{track}/{stem}.{ext}`` itself (staged
  and moved in when the whole file succeeded).
* With ``--filename TEMPLATE`` the engine writes into a hidden work folder in
  OUTDIR and the finished stems are moved to the names the template gives.
* With ``--format stem.mp4`` the engine writes float WAV stems into that work
  folder, and one NI Stems file is made of them with the input as its master.

Either way nothing appears under its final name before it is complete, and the
work folder is removed afterwards, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

from soundforge.api import track_folder
from soundforge.errors import InvalidOptionError, OutputError
from soundforge.export.naming import FilenameTemplate, date_value
from soundforge.export.nistems import STEM_SUFFIX, parse_mapping, write_ni_stems
from soundforge.export.sources import StemSet
from soundforge.library.tags import read_tags
from soundforge.storage.staging import describe_os_error, ensure_writable_dir

NI_FORMAT = "stem.mp4"
NI_DEFAULT_TEMPLATE = "{track}.{ext}"


class Placement:
    """The engine writes to ``work_dir(input)``; ``place`` returns the final files."""

    def __init__(
        self,
        output: Path,
        template: str | None,
        fmt: str,
        engine: str,
        model: str,
        stem_codec: str = "aac",
        stem_map: str | None = None,
    ) -> None:
        self.output = output
        self.fmt = fmt
        self.engine = engine
        self.model = model
        self.stem_codec = stem_codec
        self.stem_map = stem_map
        self.ni = fmt == NI_FORMAT
        self.template: FilenameTemplate | None = None
        if template is not None or self.ni:
            self.template = FilenameTemplate.parse(
                NI_DEFAULT_TEMPLATE if template is None else template
            )
            has_stem = "stem" in self.template.variables
            if self.ni and has_stem:
                raise InvalidOptionError(
                    f"The file-name template {self.template.text!r} uses {{stem}}, but one "
                    "NI Stems file holds every stem: leave {stem} out with --format stem.mp4."
                )
            if not self.ni and not has_stem:
                raise InvalidOptionError(
                    f"The file-name template {self.template.text!r} has no {{stem}}: every "
                    "stem would be written to the same file. Add {stem}."
                )
        self._work: Path | None = None
        self._written: dict[str, str] = {}  # final file → the input it came from

    def work_dir(self, input_path: Path) -> Path:
        if self.template is None:
            return track_folder(self.output, input_path)
        if self._work is None:
            ensure_writable_dir(self.output)
            try:
                self._work = Path(tempfile.mkdtemp(prefix=".soundforge-work-", dir=self.output))
            except OSError as exc:
                raise OutputError(describe_os_error(exc, self.output)) from None
        return self._work / Path(input_path).stem

    def place(self, input_path: Path, stems: dict[str, Path]) -> dict[str, Path]:
        """Move (or encode) what the engine wrote to its final names."""
        if self.template is None:
            return stems
        values = {
            "track": Path(input_path).stem, "model": self.model, "engine": self.engine,
            "date": date_value(date.today()),
        }
        try:
            if self.ni:
                relative = {"all": self.template.render({**values, "ext": NI_FORMAT})}
            else:
                relative = self.template.render_stems(stems, self.fmt, values)
            targets = {name: self.output / path for name, path in relative.items()}
            for target in targets.values():
                earlier = self._written.get(str(target).casefold())
                if earlier is not None and earlier != str(input_path):
                    raise InvalidOptionError(
                        f"The file-name template {self.template.text!r} names {target} for "
                        f"{input_path} too, which {earlier} was just written to: add a "
                        "variable that tells them apart (e.g. {track} in a folder)."
                    )
            placed = (
                {NI_FORMAT: self._write_ni(input_path, stems, targets["all"])}
                if self.ni
                else self._move(stems, targets)
            )
            # Compared without case: macOS and Windows would overwrite.
            self._written.update(
                {str(path).casefold(): str(input_path) for path in placed.values()}
            )
            return placed
        finally:
            shutil.rmtree(self.work_dir(input_path), ignore_errors=True)

    def _write_ni(self, input_path: Path, stems: dict[str, Path], target: Path) -> Path:
        mapping = parse_mapping(self.stem_map, tuple(stems))
        source = StemSet(
            stems=stems, track=Path(input_path).stem, original=Path(input_path),
            tags=read_tags(Path(input_path)), model=self.model, engine=self.engine,
        )
        if not target.name.endswith(STEM_SUFFIX):
            raise InvalidOptionError(f"{target}: an NI Stems file's name ends in {STEM_SUFFIX}.")
        write_ni_stems(source, target, self.stem_codec, mapping)
        return target

    def _move(self, stems: dict[str, Path], targets: dict[str, Path]) -> dict[str, Path]:
        placed: dict[str, Path] = {}
        for name, target in targets.items():
            ensure_writable_dir(target.parent)
            try:
                os.replace(stems[name], target)
            except OSError as exc:
                raise OutputError(describe_os_error(exc, target)) from None
            placed[name] = target
        return placed

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
