"""``soundforge export-stems`` and ``soundforge mix``: exports of stems that exist.

SOURCE is a folder that ``soundforge separate`` wrote (``OUTDIR/TRACK``) or the
id of a completed job of the web app (looked up in ``SOUNDFORGE_DATA_DIR``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from soundforge.cli.output import error, stdout
from soundforge.errors import InvalidOptionError, SoundForgeError
from soundforge.filenames import safe_filename

if TYPE_CHECKING:
    from soundforge.export.sources import StemSet

# The export modules (numpy, PyAV, the database layer) are imported by the
# commands that use them: every `soundforge` command loads this module to
# register its options, and `soundforge separate` should not pay for them.

EXIT_FAILED = 1
EXIT_USAGE = 2
JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def load_source(text: str, original: Path | None = None) -> StemSet:
    """A folder of stems, or a job of the web app by its id."""
    from sqlalchemy.exc import SQLAlchemyError

    from soundforge.config import get_settings
    from soundforge.db import Database, ProcessingJob
    from soundforge.export.sources import stems_in_folder, stems_of_job

    path = Path(text)
    if path.exists() or not JOB_ID.match(text):
        if not path.exists():
            raise InvalidOptionError(
                f"{text}: no such folder. Give a folder of stems (OUTDIR/TRACK from "
                "`soundforge separate`) or the id of a completed job of the web app."
            )
        return stems_in_folder(path, original)
    settings = get_settings()
    database = Database(settings)
    try:
        with database.session() as session:
            job = session.get(ProcessingJob, text)
            if job is None:
                raise InvalidOptionError(
                    f"No job {text} in the database of {settings.data_dir}: check the id "
                    "(the web app shows it in the job's URL), or set SOUNDFORGE_DATA_DIR."
                )
            return stems_of_job(job, settings)
    except SQLAlchemyError:
        raise InvalidOptionError(
            f"There is no readable SoundForge database in {settings.data_dir} to look job "
            f"{text} up in: set SOUNDFORGE_DATA_DIR to the web app's data folder."
        ) from None
    finally:
        database.dispose()


def output_path(
    output: Path | None, source: StemSet, name_suffix: str, file_suffix: str, source_text: str
) -> Path:
    """``-o FILE`` (a name ending in ``file_suffix``) as given; any other ``-o`` is a
    folder that gets ``{track}{name_suffix}``; without ``-o``, beside the stems'
    folder (or in the current folder for a job)."""
    name = safe_filename(source.track) + name_suffix
    if output is None:
        folder = Path(source_text)
        return folder.parent / name if folder.is_dir() else Path(name)
    if output.name.lower().endswith(file_suffix) and not output.is_dir():
        return output
    if output.suffix.lower() in (".wav", ".flac", ".mp3", ".mp4", ".m4a"):
        raise InvalidOptionError(
            f"{output}: the file name must end in {file_suffix} for this export "
            "(or give a folder)."
        )
    return output / name


def export_stems_command(
    source: str = typer.Argument(..., metavar="JOB_OR_DIR", help="Stems folder or job id."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="The .stem.mp4 file, or a folder for {track}.stem.mp4."
    ),
    stem_codec: str = typer.Option(
        "aac", "--stem-codec", help="aac (256 kbit/s) or alac (lossless)."
    ),
    stem_map: str | None = typer.Option(
        None, "--stem-map",
        help='Which stems fill the four slots, e.g. "other=other+guitar,vocals=vocals+piano".',
    ),
    master: Path | None = typer.Option(
        None, "--master", help="The original mix (track 0 and the tags); default: the stems' sum."
    ),
) -> None:
    """Write an NI Stems file (.stem.mp4) for Traktor, Mixxx and djay from existing stems."""
    from soundforge.export.nistems import STEM_SUFFIX, parse_mapping, write_ni_stems

    try:
        stem_set = load_source(source, master)
        mapping = parse_mapping(stem_map, stem_set.names)
        target = output_path(output, stem_set, STEM_SUFFIX, STEM_SUFFIX, source)
    except SoundForgeError as exc:
        error(exc.message)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        result = write_ni_stems(stem_set, target, stem_codec.lower(), mapping)
    except SoundForgeError as exc:
        error(exc.message)
        raise typer.Exit(EXIT_FAILED) from None
    slots = "; ".join(f"{slot}: {'+'.join(m) or 'silent'}" for slot, m in result.mapping.items())
    stdout.print(f"{result.path} (master: {result.master}; {slots})", markup=False,
                 soft_wrap=True)


def mix_command(
    source: str = typer.Argument(..., metavar="JOB_OR_DIR", help="Stems folder or job id."),
    mix: str | None = typer.Option(
        None, "--mix", help='Stem volumes from 0 to 1, e.g. "vocals=0,drums=0.5" (others: 1).'
    ),
    mute: str | None = typer.Option(None, "--mute", help="Stems to mute, comma-separated."),
    solo: str | None = typer.Option(
        None, "--solo", help="Stems to solo, comma-separated (solo beats mute)."
    ),
    master_volume: float = typer.Option(1.0, "--master-volume", help="0 to 1."),
    preset: str | None = typer.Option(
        None, "--preset", help="instrumental, acappella, drumless or bassless."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="The mix file, or a folder for {track} (mix).{ext}."
    ),
    fmt: str = typer.Option("wav", "--format", help="wav, flac or mp3."),
    wav_depth: str = typer.Option("16", "--wav-depth", help="WAV/FLAC depth: 16, 24 or float."),
    mp3_bitrate: int = typer.Option(320, "--mp3-bitrate", help="MP3 bitrate in kbit/s."),
) -> None:
    """Render a mix of existing stems to one file, as the web player would play it."""
    from soundforge.export.mixing import render_mix, requested_state

    try:
        stem_set = load_source(source)
        state = requested_state(
            stem_set.names, preset=preset, mix=mix, mute=mute, solo=solo,
            master=master_volume, fmt=fmt,
        )
        label = preset.lower() if preset else "mix"
        target = output_path(
            output, stem_set, f" ({label}).{fmt.lower()}", f".{fmt.lower()}", source
        )
    except SoundForgeError as exc:
        error(exc.message)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        render_mix(stem_set, state, target, fmt.lower(), wav_depth.lower(), mp3_bitrate)
    except SoundForgeError as exc:
        error(exc.message)
        raise typer.Exit(EXIT_FAILED) from None
    stdout.print(str(target), markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export-stems", help="Write an NI Stems file from existing stems.")(
        export_stems_command
    )
    app.command("mix", help="Render a mix of existing stems to one file.")(mix_command)
