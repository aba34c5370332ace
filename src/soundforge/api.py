"""The Python API: the same separation as ``soundforge separate``, from code.

    >>> import soundforge
    >>> stems = soundforge.separate("song.mp3", "out", two_stems="vocals")
    >>> stems["no_vocals"]
    PosixPath('out/song/no_vocals.wav')

For many files, ``Separator`` keeps one engine (and so one warm model) open::

    with soundforge.Separator(model="htdemucs_ft") as sep:
        for path in paths:
            sep.separate(path, "out")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soundforge.config import Settings, get_settings
from soundforge.engines.base import CancelToken, ProgressCallback, SeparationOptions
from soundforge.engines.registry import create_engine


def track_folder(output_dir: Path, input_path: Path) -> Path:
    """``OUTDIR/{track_stem}``: where one input's stems go."""
    return Path(output_dir) / Path(input_path).stem


class Separator:
    """One engine, reused for every file (the local engine keeps its model loaded)."""

    def __init__(
        self,
        engine: str = "local",
        settings: Settings | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.settings = settings or get_settings()
        self.engine = create_engine(engine, self.settings, **(engine_kwargs or {}))
        self.options = self.engine.validate(SeparationOptions(**options))

    def separate(
        self,
        input_path: str | Path,
        output_dir: str | Path = "separated",
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        **overrides: Any,
    ) -> dict[str, Path]:
        options = self.options.with_changes(**overrides) if overrides else self.options
        destination = track_folder(Path(output_dir), Path(input_path))
        return self.engine.separate(Path(input_path), options, on_progress, cancel, destination)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Separator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def separate(
    input_path: str | Path,
    output_dir: str | Path = "separated",
    *,
    engine: str = "local",
    on_progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> dict[str, Path]:
    """Separate one file into ``output_dir/{track}/{stem}.{ext}``; returns stem → path.

    ``options`` are the fields of ``SeparationOptions`` (model, stems, two_stems,
    format, wav_depth, mp3_bitrate, sample_rate, device, precision, batch, shifts, overlap,
    segment, seed, preview, …). Raises ``SoundForgeError`` subclasses with a
    message meant for people.
    """
    if isinstance(options.get("stems"), str):
        from soundforge.stems import parse_stem_list

        options["stems"] = parse_stem_list(options["stems"])
    elif options.get("stems") is not None:
        options["stems"] = tuple(options["stems"])
    with Separator(engine, settings, **options) as separator:
        return separator.separate(input_path, output_dir, on_progress, cancel)
