"""SoundForge's local engine against the official ``demucs.apply.apply_model``.

Run with ``make bench``. Builds full-size random-weight models with the
published architectures (speed does not depend on the weights' values) in a
LocalRepo, then, in one run and on the same input, model, shifts, overlap,
segment and seed, times:

* the engine's separation core (``separate_file``: decode twice, separate,
  write float WAV stems) against the official API's arithmetic (decode,
  normalise, ``apply_model``, de-normalise; no writing) — seconds per second of
  audio, speed ratio, peak resident memory, and the signal-to-difference ratio
  between the two outputs;
* peak memory at 5 and 60 minutes of audio with a tiny model (it is about
  buffers, not weights);
* a warm runner: model load time of a first and a second job;
* whole processes as a user runs them: ``soundforge separate song.mp3 --format
  mp3`` against ``python -m demucs.separate --repo REPO -n htdemucs --mp3``.

Each measured run is its own process, so peak memory is per case. Timings on
a shared machine are noisy: the ratios measured in the same run are what
count. ``--quick`` runs every case on short inputs, to check the script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
FOUR = ["drums", "bass", "other", "vocals"]
SIX = ["drums", "bass", "other", "vocals", "guitar", "piano"]
RATE = 44100
SEED = 1234


# --------------------------------------------------------------------------- setup


def _save(repo: Path, klass: type, kwargs: dict[str, Any], seed: int) -> str:
    """One network in the on-disk format demucs' LocalRepo reads."""
    import hashlib
    import io

    import torch

    torch.manual_seed(seed)
    model = klass(**kwargs)
    package = {"klass": klass, "args": [], "kwargs": kwargs, "state": model.state_dict()}
    buf = io.BytesIO()
    torch.save(package, buf)
    sig = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    (repo / f"{sig}.th").write_bytes(buf.getvalue())
    return sig


def _bag(repo: Path, name: str, sigs: list[str], weights: list[list[float]] | None = None) -> None:
    import yaml

    data: dict[str, Any] = {"models": sigs}
    if weights is not None:
        data["weights"] = weights
    (repo / f"{name}.yaml").write_text(yaml.safe_dump(data))


def build_full_repo(repo: Path, quick: bool) -> None:
    """htdemucs (41.5 M parameters), htdemucs_ft (4 of them, identity weights as
    published), htdemucs_6s (6 sources)."""
    from demucs.htdemucs import HTDemucs

    repo.mkdir(parents=True, exist_ok=True)

    def kwargs(sources: list[str]) -> dict[str, Any]:
        if quick:  # same code paths, a fraction of the work
            return {
                "sources": sources,
                "channels": 8,
                "t_layers": 1,
                "bottom_channels": 64,
                "segment": Fraction(39, 5),
            }
        return {"sources": sources, "bottom_channels": 512, "segment": Fraction(39, 5)}

    _bag(repo, "htdemucs", [_save(repo, HTDemucs, kwargs(FOUR), 1)])
    ft = [_save(repo, HTDemucs, kwargs(FOUR), 10 + i) for i in range(4)]
    _bag(repo, "htdemucs_ft", ft, [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)])
    _bag(repo, "htdemucs_6s", [_save(repo, HTDemucs, kwargs(SIX), 2)])


def build_tiny_repo(repo: Path) -> None:
    """A tiny htdemucs with the published segment, for the memory cases: the
    buffers are the same as the full model's, the work per segment far smaller
    (no transformer, no residual branches), so an hour of audio fits the run."""
    from demucs.htdemucs import HTDemucs

    repo.mkdir(parents=True, exist_ok=True)
    kwargs = {
        "sources": FOUR,
        "channels": 2,
        "t_layers": 0,
        "dconv_mode": 0,
        "rewrite": False,
        "bottom_channels": 0,
        "segment": Fraction(39, 5),
    }
    _bag(repo, "htdemucs", [_save(repo, HTDemucs, kwargs, 3)])


def write_song(path: Path, seconds: float, seed: int = 0) -> Path:
    """A music-like test signal (chords, a bass line, noise bursts), written in
    blocks so an hour of it never sits in memory."""
    rng = np.random.default_rng(seed)
    block = RATE * 10
    total = int(seconds * RATE)
    with sf.SoundFile(
        str(path), "w", samplerate=RATE, channels=2, format="WAV", subtype="PCM_16"
    ) as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / RATE
            beat = (np.floor(t * 2) % 4).astype(int)
            bass = 0.25 * np.sin(2 * np.pi * np.array([55, 65.4, 73.4, 49])[beat] * t)
            chord = sum(0.08 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
            hats = 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * 8 * t) > 0.7)
            left = bass + chord + hats
            right = bass + 0.8 * chord + hats
            out.write(np.stack([left, right], axis=1).astype(np.float32))
    return path


def to_mp3(wav: Path, mp3: Path) -> Path:
    data, rate = sf.read(str(wav), dtype="float32")
    sf.write(str(mp3), data, rate, format="MP3", subtype="MPEG_LAYER_III")
    return mp3


# --------------------------------------------------------------------------- workers


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    from soundforge.engines.local.allocator import keep_large_buffers
    from soundforge.engines.local.device import configure_threads
    from soundforge.engines.local.inference import separate_file
    from soundforge.engines.local.loader import load_model
    from soundforge.engines.local.request import RunRequest

    keep_large_buffers()  # as the runner process does (allocator.py)
    configure_threads(args.threads)
    model = load_model(args.model, Path(args.repo))
    request = RunRequest(
        id="bench",
        input=args.input,
        output_dir=args.out,
        model=args.model,
        stems=tuple(args.stems.split(",")) if args.stems else None,
        format="wav",
        wav_depth="float",
        shifts=args.shifts,
        overlap=args.overlap,
        segment=args.segment,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        precision=args.precision,
        batch=args.batch,
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    reset_gpu_peak(args.device)
    started = time.perf_counter()
    stems = separate_file(model, request, lambda *_: None, lambda: False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "gpu_peak_mb": gpu_peak_mb(args.device),
            "stems": stems}


def worker_reference(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from demucs.apply import apply_model

    from soundforge.audio.reader import AudioReader
    from soundforge.engines.local.loader import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.large_buffers:
        # Not what the official CLI does: only to show how much of the speed-up
        # is the allocator setting alone.
        from soundforge.engines.local.allocator import keep_large_buffers

        keep_large_buffers()
    model = load_model(args.model, Path(args.repo))
    reset_gpu_peak(args.device)
    started = time.perf_counter()
    # What the official API does: decode, normalise, apply_model, de-normalise.
    reader = AudioReader(args.input, model.samplerate, model.audio_channels)
    mix = torch.from_numpy(np.concatenate(list(reader), axis=1))
    ref = mix.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    random.seed(args.seed)
    with torch.no_grad():
        out = apply_model(
            model,
            ((mix - mean) / std)[None],
            shifts=args.shifts,
            overlap=args.overlap,
            segment=args.segment,
            device=args.device if args.device != "auto" else None,
        )[0]
    out = out.cpu() * std + mean
    seconds = time.perf_counter() - started
    stems = {}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for name, tensor in zip(model.sources, out, strict=True):
            path = Path(args.out) / f"{name}.npy"
            np.save(path, tensor.numpy())
            stems[name] = str(path)
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "gpu_peak_mb": gpu_peak_mb(args.device),
            "stems": stems}


def reset_gpu_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_mb(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def worker_warm(args: argparse.Namespace) -> dict[str, Any]:
    from soundforge.config import Settings
    from soundforge.engines.base import SeparationOptions
    from soundforge.engines.local.engine import LocalEngine

    loads = []
    with LocalEngine(Settings(model_repo=Path(args.repo), demucs_timeout=600)) as engine:
        for job in range(2):
            result = engine.separate(
                Path(args.input),
                SeparationOptions(model="htdemucs"),
                None,
                None,
                Path(args.out) / f"job{job}",
            )
            loads.append(
                {
                    "load_seconds": result.timings.get("load"),
                    "model_reused": result.reused,
                    # One engine, one runner: every run that did not reuse loaded.
                    "model_loads": sum(not entry["model_reused"] for entry in loads)
                    + (not result.reused),
                }
            )
    return {"jobs": loads}


def run_worker(kind: str, **options: Any) -> dict[str, Any]:
    command = [PYTHON, str(Path(__file__).resolve()), "--worker", kind]
    for key, value in options.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- measures


def sdiff_db(ours: dict[str, str], ref: dict[str, str]) -> float:
    """10·log10(Σ ref² / Σ (ours − ref)²) over the stems both wrote."""
    signal = noise = 0.0
    for name, path in ours.items():
        if name not in ref:
            continue
        mine, _ = sf.read(path, dtype="float64", always_2d=True)
        theirs = np.load(ref[name]).astype(np.float64).T
        signal += float((theirs**2).sum())
        noise += float(((mine - theirs) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (
        f"{cpu}, {os.cpu_count()} cores ({simd}), {memory:.0f} GiB, no GPU used; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


def timed_command(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short inputs, small models")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model")
    parser.add_argument("--repo")
    parser.add_argument("--input")
    parser.add_argument("--out")
    parser.add_argument("--stems")
    parser.add_argument("--shifts", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--segment", type=float)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--large-buffers", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        workers = {"ours": worker_ours, "ref": worker_reference, "warm": worker_warm}
        print(json.dumps(workers[args.worker](args)))
        return
    bench(args.quick)


def bench(quick: bool) -> None:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="soundforge-bench-"))
    try:
        _bench(work, quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s")


def _bench(work: Path, quick: bool) -> None:
    print(f"Machine: {machine()}", flush=True)
    repo, tiny = work / "repo", work / "tiny-repo"
    build_full_repo(repo, quick)
    build_tiny_repo(tiny)
    seconds = 30.0
    song = write_song(work / "song.wav", seconds)
    settings = {"shifts": 1, "overlap": 0.25, "seed": SEED}
    print(
        f"Input: {seconds:.0f} s stereo 44.1 kHz; shifts={settings['shifts']}, "
        f"overlap={settings['overlap']}, default segment (7.8 s), same seed both sides.\n",
        flush=True,
    )

    rows: list[list[str]] = []

    def speed_case(
        label: str,
        model: str,
        stems: str | None,
        reference: dict[str, Any] | None = None,
        ours: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if ours is None:
            ours = run_worker(
                "ours",
                model=model,
                repo=repo,
                input=song,
                out=work / f"o-{label}",
                stems=stems,
                **settings,
            )
        if reference is None:
            reference = run_worker(
                "ref", model=model, repo=repo, input=song, out=work / f"r-{model}", **settings
            )
        ratio = reference["seconds"] / ours["seconds"]
        rows.append(
            [
                label,
                f"{ours['seconds'] / seconds:.3f}",
                f"{reference['seconds'] / seconds:.3f}",
                f"{ratio:.2f}×",
                f"{ours['peak_mb']:.0f}",
                f"{reference['peak_mb']:.0f}",
                f"{sdiff_db(ours['stems'], reference['stems']):.1f}",
            ]
        )
        print("  " + " | ".join(rows[-1]), flush=True)
        return reference, ours

    print("Separation (s per s of audio; peak resident MiB; SDiff dB):", flush=True)
    _, ht_ours = speed_case("htdemucs, 4 stems", "htdemucs", None)
    # The same run of ours against apply_model given the runner's allocator
    # setting too: what the kernels alone are worth.
    heap_reference = run_worker(
        "ref", model="htdemucs", repo=repo, input=song, out=work / "r-heap", large_buffers=1,
        **settings,
    )
    speed_case("htdemucs, 4 stems, vs apply_model with large buffers on the heap too",
               "htdemucs", None, heap_reference, ht_ours)
    ft_reference, _ = speed_case("htdemucs_ft, all stems", "htdemucs_ft", None)
    # The reference has no way to run fewer networks: its time is the full bag's.
    speed_case("htdemucs_ft, vocals only", "htdemucs_ft", "vocals", ft_reference)
    speed_case("htdemucs_6s, 6 stems", "htdemucs_6s", None)

    print(
        "\nPeak memory with a tiny htdemucs (shifts=0, overlap=0, one thread each, "
        "both runs side by side):",
        flush=True,
    )
    memory_rows = []
    for minutes in (0.5, 2.0) if quick else (5.0, 60.0):
        long_song = write_song(work / f"long-{minutes:g}.wav", minutes * 60, seed=2)
        common = {
            "model": "htdemucs",
            "repo": tiny,
            "input": long_song,
            "shifts": 0,
            "overlap": 0.0,
            "threads": 1,
        }
        # Side by side: each is one process with one thread, so the two do not
        # share a core; memory is what is measured here.
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            ours_f = pool.submit(run_worker, "ours", out=work / f"mo-{minutes:g}", **common)
            ref_f = pool.submit(run_worker, "ref", out=None, **common)
            ours, ref = ours_f.result(), ref_f.result()
        memory_rows.append([f"{minutes:g} min", f"{ours['peak_mb']:.0f}", f"{ref['peak_mb']:.0f}"])
        print("  " + " | ".join(memory_rows[-1]), flush=True)
        long_song.unlink()
        shutil.rmtree(work / f"mo-{minutes:g}", ignore_errors=True)

    print("\nWarm runner (htdemucs, two jobs on one LocalEngine):", flush=True)
    short = write_song(work / "short.wav", 5.0, seed=3)
    warm = run_worker("warm", repo=repo, input=short, out=work / "warm")
    for index, job in enumerate(warm["jobs"], 1):
        print(
            f"  job {index}: model load {job['load_seconds']:.2f} s, "
            f"reused={job['model_reused']}, loads so far={job['model_loads']}",
            flush=True,
        )

    print("\nWhole process, htdemucs, 30 s MP3 → 4 MP3 stems (wall seconds):", flush=True)
    mp3 = to_mp3(song, work / "song.mp3")
    env = dict(
        os.environ,
        SOUNDFORGE_MODEL_REPO=str(repo),
        SOUNDFORGE_DATA_DIR=str(work / "data"),
        HF_HUB_OFFLINE="1",
    )
    soundforge = str(Path(PYTHON).parent / "soundforge")
    ours_runs, official_runs = [], []
    for run in range(2):
        ours_runs.append(
            timed_command(
                [soundforge, "separate", str(mp3), "--format", "mp3", "-o", str(work / f"sf{run}")],
                env,
            )
        )
        official_runs.append(
            timed_command(
                [
                    PYTHON,
                    "-m",
                    "demucs.separate",
                    "--repo",
                    str(repo),
                    "-n",
                    "htdemucs",
                    "--mp3",
                    "-o",
                    str(work / f"dm{run}"),
                    str(mp3),
                ],
                env,
            )
        )
        print(
            f"  run {run + 1}: soundforge {ours_runs[-1]:.1f} s, "
            f"demucs.separate {official_runs[-1]:.1f} s",
            flush=True,
        )
    ours_median, official_median = statistics.median(ours_runs), statistics.median(official_runs)

    print("\n## Results\n")
    print(
        "| case | SoundForge s/s | apply_model s/s | speed-up | SoundForge peak MiB "
        "| apply_model peak MiB | SDiff dB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n| audio length (tiny model) | SoundForge peak MiB | apply_model peak MiB |")
    print("| --- | ---: | ---: |")
    for row in memory_rows:
        print("| " + " | ".join(row) + " |")
    print("\n| whole process (median) | seconds |")
    print("| --- | ---: |")
    print(f"| `soundforge separate song.mp3 --format mp3` | {ours_median:.1f} |")
    print(f"| `python -m demucs.separate -n htdemucs --mp3 song.mp3` | {official_median:.1f} |")
    print(f"| speed-up | {official_median / ours_median:.2f}× |")
    first, second = warm["jobs"]
    print(
        f"\nWarm runner: first job loaded the model in {first['load_seconds']:.2f} s, "
        f"the second in {second['load_seconds']:.2f} s (reused: {second['model_reused']})."
    )


if __name__ == "__main__":
    main()
