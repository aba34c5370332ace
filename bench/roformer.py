"""RoFormer models: SoundForge's streaming path against the package's own inference.

Run with ``make bench`` (``make bench-quick`` checks the script in a minute).
For each benched model, full-size networks with random weights are built from
the published configs that ship inside the inference packages (speed does not
depend on the weights' values):

* ``bs_roformer_6s``: BS-RoFormer-SW (``bs_roformer/configs/BS-Rofo-SW-Fixed.yaml``);
* ``mel_roformer_vocals``: Kim's Mel-Band RoFormer
  (``mel_band_roformer/configs/config_vocals_mel_band_roformer.yaml``); the
  karaoke model's checkpoint has the same size and architecture.

``bs_roformer_vocals`` is not benched: its config is not shipped with the
package and the bench never downloads.

Speed: the same input, network and chunking through SoundForge's
``separate_file`` (decode twice, stream, write float WAV stems) and through
the package's ``demix_track`` (decode, demix, no writing) — seconds per second
of audio on the CPU, peak resident memory, and the signal-to-difference ratio
between the two outputs. Memory at 5 and 60 minutes (``--memory-minutes``) with
the published chunking but a narrow network (``dim`` 8, one layer): the
buffers are the full model's, the arithmetic far smaller, so an hour fits the
run. Each measurement is its own process. A full-size RoFormer is several
seconds per second of audio on a 2-core CPU, so ``--seconds`` (speed input) is
a flag: 30 by default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from separation import machine, peak_rss_mb, write_song

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MODELS = ("bs_roformer_6s", "mel_roformer_vocals")


def build(name: str, narrow: bool) -> Any:
    """The catalogue model with random weights, full size unless ``narrow``."""
    import torch

    from soundforge.engines.local.catalog import get_spec
    from soundforge.engines.local.roformer.files import packaged_path
    from soundforge.engines.local.roformer.loader import (
        RoformerModel,
        _build,
        read_config,
        stem_names,
    )

    spec = get_spec(name)
    assert spec.config is not None and spec.config.packaged is not None
    config = read_config(name, packaged_path(spec.config.packaged))
    if narrow:
        config.model.dim = 8
        config.model.depth = 1
        config.model.heads = 1
        config.model.dim_head = 8
        config.model.mask_estimator_depth = 1
    torch.manual_seed(1)
    net = _build(spec, config).eval()
    target = config.training.get("target_instrument")
    instruments = list(config.training.instruments)
    return RoformerModel(
        name=name, family=spec.family, net=net, config=config,
        sources=stem_names(spec, instruments),
        target=instruments.index(target) if target is not None else None,
        samplerate=44100, audio_channels=2,
        chunk_size=int(config.inference.chunk_size),
        num_overlap=int(config.inference.num_overlap),
    )


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    from soundforge.engines.local.device import configure_threads
    from soundforge.engines.local.inference import separate_file
    from soundforge.engines.local.request import RunRequest

    configure_threads(args.threads)
    model = build(args.model, args.narrow)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    request = RunRequest(id="bench", input=args.input, output_dir=args.out, model=args.model,
                         format="wav", wav_depth="float", device="cpu", threads=args.threads)
    started = time.perf_counter()
    stems = separate_file(model, request, lambda *_: None, lambda: False)
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb(), "stems": stems}


def worker_reference(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from soundforge.audio.reader import AudioReader

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args.model, args.narrow)
    if model.family == "bs_roformer":
        from bs_roformer import demix_track
    else:
        from mel_band_roformer import demix_track
    started = time.perf_counter()
    mix = torch.from_numpy(np.concatenate(list(AudioReader(args.input, 44100, 2)), axis=1))
    result, _ = demix_track(model.config, model.net, mix, torch.device("cpu"))
    seconds = time.perf_counter() - started
    stems: dict[str, str] = {}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        estimates = list(result.values())
        if model.target is not None:
            rest = mix.numpy() - estimates[0]
            estimates = [estimates[0], rest] if model.target == 0 else [rest, estimates[0]]
        for name, array in zip(model.sources, estimates, strict=True):
            path = Path(args.out) / f"{name}.npy"
            np.save(path, np.asarray(array, dtype=np.float32))
            stems[name] = str(path)
    return {"seconds": seconds, "peak_mb": peak_rss_mb(), "stems": stems}


def run_worker(kind: str, **options: Any) -> dict[str, Any]:
    command = [PYTHON, str(Path(__file__).resolve()), "--worker", kind]
    for key, value in options.items():
        if value is True:
            command.append(f"--{key}")
        elif value not in (None, False):
            command += [f"--{key}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sdiff_db(ours: dict[str, str], ref: dict[str, str]) -> float:
    signal = noise = 0.0
    for name, path in ours.items():
        mine, _ = sf.read(path, dtype="float64", always_2d=True)
        theirs = np.load(ref[name]).astype(np.float64).T
        signal += float((theirs**2).sum())
        noise += float(((mine - theirs) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def bench(args: argparse.Namespace) -> None:
    print(f"# RoFormer bench — {machine()}")
    with tempfile.TemporaryDirectory(prefix="sf-roformer-bench-") as tmp:
        work = Path(tmp)
        song = write_song(work / "song.wav", args.seconds)
        print(f"\n## Speed: {args.seconds:g} s of stereo 44.1 kHz audio, "
              f"{'narrow' if args.quick else 'full-size'} random-weight networks\n")
        print("| model | SoundForge s/s | package s/s | speed-up | SoundForge peak MiB "
              "| package peak MiB | SDiff dB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in args.models:
            common = {"model": name, "input": song, "threads": args.threads,
                      "narrow": args.quick}
            ours = run_worker("ours", out=work / f"ours-{name}", **common)
            ref = run_worker("reference", out=work / f"ref-{name}", **common)
            print(f"| {name} | {ours['seconds'] / args.seconds:.3f} | "
                  f"{ref['seconds'] / args.seconds:.3f} | {ref['seconds'] / ours['seconds']:.2f}× "
                  f"| {ours['peak_mb']:.0f} | {ref['peak_mb']:.0f} | "
                  f"{sdiff_db(ours['stems'], ref['stems']):.1f} |", flush=True)
        print("\n## Peak memory by track length (published chunking, narrow network)\n")
        print("| model | minutes | SoundForge peak MiB | package peak MiB |")
        print("| --- | ---: | ---: | ---: |")
        for minutes in args.memory_minutes:
            long_song = write_song(work / f"long-{minutes}.wav", minutes * 60)
            for name in args.models:
                common = {"model": name, "input": long_song, "threads": args.threads,
                          "narrow": True}
                ours = run_worker("ours", out=work / f"m-ours-{name}", **common)
                ref = run_worker("reference", **common)
                print(f"| {name} | {minutes:g} | {ours['peak_mb']:.0f} | {ref['peak_mb']:.0f} |",
                      flush=True)
            long_song.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds of audio, narrow networks: checks the script")
    parser.add_argument("--seconds", type=float, help="length of the speed input (default 30)")
    parser.add_argument("--memory-minutes", type=lambda text: [float(x) for x in text.split(",")],
                        help="track lengths for the memory rows (default 5,60)")
    parser.add_argument("--models", type=lambda text: text.split(","), default=list(MODELS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--narrow", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = {"ours": worker_ours, "reference": worker_reference}[args.worker]
        print(json.dumps(run(args)))
        return
    if args.seconds is None:
        args.seconds = 4.0 if args.quick else 30.0
    if args.memory_minutes is None:
        args.memory_minutes = [0.25, 0.5] if args.quick else [5.0, 60.0]
    bench(args)


if __name__ == "__main__":
    main()
