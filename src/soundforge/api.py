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
        result = self.engine.separate(Path(input_path), options, on_progress, cancel, destination)
        return result.stems

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


def export_stems(
    stems_dir: str | Path,
    target: str | Path | None = None,
    *,
    master: str | Path | None = None,
    codec: str = "aac",
    stem_map: str | None = None,
) -> Path:
    """An NI Stems file (``.stem.mp4``) from a folder ``separate`` wrote; returns its path.

    ``target`` defaults to ``{folder}.stem.mp4`` beside the folder; ``master`` is
    the original mix (track 0 and the tags), else the stems' sum; ``codec`` is
    ``aac`` or ``alac``; ``stem_map`` as ``"other=other+guitar,vocals=vocals+piano"``.
    """
    from soundforge.export.nistems import STEM_SUFFIX, parse_mapping, write_ni_stems
    from soundforge.export.sources import stems_in_folder

    folder = Path(stems_dir)
    source = stems_in_folder(folder, Path(master) if master is not None else None)
    path = Path(target) if target is not None else folder.parent / (folder.name + STEM_SUFFIX)
    return write_ni_stems(source, path, codec, parse_mapping(stem_map, source.names)).path


def render_mix(
    stems_dir: str | Path,
    target: str | Path,
    *,
    gains: dict[str, float] | None = None,
    mute: tuple[str, ...] = (),
    solo: tuple[str, ...] = (),
    master_volume: float = 1.0,
    preset: str | None = None,
    format: str = "wav",
) -> Path:
    """The stems of a folder mixed as the web player would play them (solo beats
    mute), or by a ``preset`` (instrumental, acappella, drumless, bassless)."""
    from soundforge.errors import InvalidOptionError
    from soundforge.export.mixing import MixState, preset_state
    from soundforge.export.mixing import render_mix as render
    from soundforge.export.sources import stems_in_folder

    source = stems_in_folder(Path(stems_dir))
    if preset and (gains or mute or solo):
        raise InvalidOptionError("A preset sets the whole mix: give it alone.")
    state = (
        preset_state(preset, source.names)
        if preset
        else MixState(dict(gains or {}), frozenset(mute), frozenset(solo))
    )
    state = MixState(state.gains, state.muted, state.soloed, master_volume)
    return render(source, state, Path(target), format)
