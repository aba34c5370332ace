"""``soundforge separate INPUT... [-o OUTDIR] [--model NAME] …``.

Defaults match the official Demucs CLI where they overlap (model htdemucs,
shifts 1, overlap 0.25), so results and timings compare. Several inputs share
one engine, so the local model is loaded once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from soundforge.cli.output import emit_json, error, stderr, stdout
from soundforge.cli.placement import NI_FORMAT, Placement
from soundforge.config import get_settings
from soundforge.engines.base import Engine, SeparationOptions
from soundforge.engines.registry import ENGINE_NAMES, create_engine
from soundforge.errors import InvalidOptionError, SoundForgeError
from soundforge.export.nistems import STEM_CODECS
from soundforge.stems import parse_stem_list

if TYPE_CHECKING:
    from soundforge.engines.lalalai.leftovers import RunningWork

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a killed command


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C.

    Python's default for SIGTERM ends the process on the spot: LALAL.AI tasks
    already started would go on running (and be charged) and the runner child
    would be left to notice on its own. Raised as an interrupt instead, the
    engines' cleanup runs: provider tasks are cancelled, the uploaded source is
    deleted, staged stems are discarded.
    """


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def separate_command(
    inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="Audio files to separate."),
    output: Path = typer.Option(
        Path("separated"), "-o", "--output", help="Folder for OUTDIR/{track}/{stem}.{ext}."
    ),
    engine: str = typer.Option("local", "--engine", help=f"{' or '.join(ENGINE_NAMES)}."),
    model: str = typer.Option(
        "htdemucs", "--model", "-n",
        help="Model, preset or ensemble (local engine): htdemucs, ensemble_six_stems, "
        "htdemucs_ft+mdx_extra, htdemucs_ft:2+mdx_extra, max-spec/htdemucs_ft+mdx_extra; "
        "see `soundforge models list`.",
    ),
    stems: str | None = typer.Option(
        None, "--stems", help="Only these stems, comma-separated (e.g. vocals,drums)."
    ),
    two_stems: str | None = typer.Option(
        None, "--two-stems", help="Write STEM and no_STEM only (e.g. vocals for karaoke)."
    ),
    fmt: str = typer.Option(
        "wav", "--format", help="wav, flac, mp3, or stem.mp4 (one NI Stems file per track)."
    ),
    filename: str | None = typer.Option(
        None, "--filename",
        help='Name files by a template, e.g. "{track}-{stem}.{ext}"; '
        "variables {track} {stem} {ext} {model} {engine} {date}; / makes folders.",
    ),
    stem_codec: str | None = typer.Option(
        None, "--stem-codec", help="stem.mp4: aac (256 kbit/s, the default) or alac (lossless)."
    ),
    stem_map: str | None = typer.Option(
        None, "--stem-map", help='stem.mp4: fill the four slots, e.g. "other=other+guitar".'
    ),
    wav_depth: str = typer.Option("16", "--wav-depth", help="WAV/FLAC depth: 16, 24 or float."),
    mp3_bitrate: int = typer.Option(320, "--mp3-bitrate", help="MP3 bitrate in kbit/s."),
    sample_rate: int | None = typer.Option(
        None, "--sample-rate", help="Output sample rate (default: the input's)."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="auto, cpu, cuda, cuda:N or mps (default: SOUNDFORGE_DEVICE, else auto).",
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="fp32 (exact, default), bf16 or fp16: faster where the device runs them natively.",
    ),
    batch: int | None = typer.Option(
        None, "--batch", help="Segments per model call (default: from free GPU memory; 1 on CPUs)."
    ),
    shifts: int = typer.Option(1, "--shifts", help="Random-shift passes averaged (Demucs)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Overlap between segments."),
    segment: float | None = typer.Option(None, "--segment", help="Segment length in seconds."),
    seed: int | None = typer.Option(None, "--seed", help="Fix the random shifts."),
    preview: bool = typer.Option(
        False, "--preview", help="LALAL.AI: separate only the first 60 seconds."
    ),
    splitter: str | None = typer.Option(None, "--splitter", help="LALAL.AI splitter network."),
    extraction_level: str | None = typer.Option(
        None, "--extraction-level", help="LALAL.AI extraction level."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print progress and results as JSON lines, for scripts."
    ),
) -> None:
    """Split audio files into stems."""
    settings = get_settings()
    fmt = fmt.lower()
    ni_stems = fmt == NI_FORMAT
    try:
        if not ni_stems and (stem_codec is not None or stem_map is not None):
            raise InvalidOptionError(
                "--stem-codec and --stem-map are for NI Stems files: add --format stem.mp4."
            )
        codec = (stem_codec or "aac").lower()
        if codec not in STEM_CODECS:
            raise InvalidOptionError(
                f"Unknown stem codec {stem_codec!r}: use aac (256 kbit/s) or alac (lossless)."
            )
        placement = Placement(output, filename, fmt, engine, model, codec, stem_map)
        options = SeparationOptions(
            model=model,
            stems=parse_stem_list(stems),
            two_stems=two_stems.strip().lower() if two_stems else None,
            # NI Stems are encoded from float stems written on the way.
            format="wav" if ni_stems else fmt,  # type: ignore[arg-type]
            wav_depth="float" if ni_stems else wav_depth.lower(),  # type: ignore[arg-type]
            mp3_bitrate=mp3_bitrate,
            sample_rate=sample_rate,
            device=device,
            precision=precision.strip().lower() if precision else None,
            batch=batch,
            shifts=shifts,
            overlap=overlap,
            segment=segment,
            seed=seed,
            preview=preview,
            splitter=splitter,
            extraction_level=extraction_level,
        )
        tracker: RunningWork | None = None
        if engine == "lalalai":
            # Imported here: the provider's modules (HTTP client, ledger tables)
            # cost a local separation a quarter of a second of start-up.
            from soundforge.engines.lalalai.keys import require_key
            from soundforge.engines.lalalai.leftovers import running_work

            # A missing key is a setup mistake like a bad option: refuse it
            # with the usage code before any input is touched. The CLI has no
            # key option, so this is the engine's own precedence.
            key = require_key(None, settings)
            tracker = running_work(settings, key)
            runner = create_engine(engine, settings, on_tasks=tracker.record)
        else:
            runner = create_engine(engine, settings)
        options = runner.validate(options)
    except SoundForgeError as exc:
        report_error(None, exc, as_json)
        raise typer.Exit(EXIT_USAGE) from None

    if tracker is not None:
        from soundforge.engines.lalalai.leftovers import release_leftovers

        for outcome in release_leftovers(settings, key):
            stderr.print(f"An earlier run was killed before it could clean up. {outcome.summary()}",
                         markup=False, soft_wrap=True)
    failures = 0
    try:
        with terminate_as_interrupt():
            for input_path in inputs:
                try:
                    if not separate_one(runner, input_path, placement, options, as_json):
                        failures += 1
                finally:
                    # The engine has cleaned up at the provider by now.
                    if tracker is not None:
                        tracker.clear()
    except KeyboardInterrupt as exc:
        runner.close()
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        error(f"{how}; stems of the unfinished file were not written.")
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise typer.Exit(code) from None
    finally:
        runner.close()
        placement.close()
    if failures:
        raise typer.Exit(EXIT_FAILED)


def report_error(input_path: Path | None, exc: SoundForgeError, as_json: bool) -> None:
    if as_json:
        emit_json({
            "type": "error", "input": str(input_path) if input_path else None,
            "message": exc.message, "code": exc.code,
        })
    else:
        error(exc.message)


def separate_one(
    engine: Engine,
    input_path: Path,
    placement: Placement,
    options: SeparationOptions,
    as_json: bool,
) -> bool:
    destination = placement.work_dir(input_path)
    try:
        if as_json:
            def on_progress(percent: int) -> None:
                emit_json({"type": "progress", "input": str(input_path), "percent": percent})

            stems = engine.separate(input_path, options, on_progress, None, destination).stems
        else:
            stems = separate_with_bar(engine, input_path, options, destination)
        stems = placement.place(input_path, stems)
    except SoundForgeError as exc:
        report_error(input_path, exc, as_json)
        return False
    if as_json:
        emit_json({
            "type": "result", "input": str(input_path),
            "stems": {name: str(path) for name, path in stems.items()},
        })
    else:
        folders = sorted({str(path.parent) for path in stems.values()})
        what = "an NI Stems file" if NI_FORMAT in stems else f"{len(stems)} stems"
        stdout.print(f"{input_path}: {what} in {', '.join(folders)}", markup=False)
    return True


def separate_with_bar(
    engine: Engine, input_path: Path, options: SeparationOptions, destination: Path
) -> dict[str, Path]:
    if not stderr.is_terminal:
        return engine.separate(input_path, options, None, None, destination).stems
    columns: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(input_path.name, total=100)

        def on_progress(percent: int) -> None:
            bar.update(task, completed=percent)

        return engine.separate(input_path, options, on_progress, None, destination).stems


def register(app: typer.Typer) -> None:
    app.command("separate", help="Split audio files into stems.")(separate_command)


