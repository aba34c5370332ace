"""An ensemble on a GPU (the virtual device of tests/support/virtual_device.py):
every member placed and run there at the requested precision, the result the
CPU's, and an out-of-memory retry shortening every member's segments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from soundforge.engines.local.ensemble.run import separate_ensemble
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from tests.local.equivalence_support import MIN_SDIFF_DB, read_stem, sdiff_db
from tests.local.test_devices import one_gpu as one_gpu  # the fixture, shared
from tests.local.test_devices import oom_when
from tests.support.audio import write_audio
from tests.support.virtual_device import VirtualCuda, on_virtual

ENSEMBLE = "htdemucs+mdx_extra"


def load(tiny_repo: Path) -> dict[str, Any]:
    return {name: load_model(name, tiny_repo) for name in ("htdemucs", "mdx_extra")}


def run(models: dict[str, Any], source: Path, out: Path, notices: list[str] | None = None,
        **options: Any) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    request = RunRequest(id="t", input=str(source), output_dir=str(out), model=ENSEMBLE,
                         wav_depth="float", shifts=0, **options)
    paths = separate_ensemble(models, request, lambda *_: None, lambda: False,
                              on_notice=notices.append if notices is not None else None)
    return {name: read_stem(path) for name, path in paths.items()}


def test_every_member_runs_on_the_gpu_and_matches_the_cpu(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=4.0)
    reference = run(load(tiny_repo), source, tmp_path / "cpu", device="cpu", segment=2.0)
    models = load(tiny_repo)
    ours = run(models, source, tmp_path / "gpu", device="cuda", segment=2.0)
    for name, model in models.items():
        assert all(on_virtual(p) for p in model.parameters()), f"{name} left on the CPU"
    assert sdiff_db(ours, reference) >= MIN_SDIFF_DB


def test_out_of_memory_shortens_every_members_segments(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    models = load(tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=2.0)
    oom_when(models["mdx_extra"], lambda window: window.shape[-1] > 44100 * 1.5)
    notices: list[str] = []
    out = run(models, source, tmp_path / "gpu", notices, device="cuda", segment=2.0)
    assert sorted(out) == ["bass", "drums", "other", "vocals"]
    assert all(stem.shape[-1] == 2 * 44100 for stem in out.values())
    assert notices == ["Out of cuda memory with 2 s segments one at a time: starting again "
                       "with 1 s segments for every model of the ensemble."]


def test_every_member_runs_at_the_requested_precision(
    tiny_repo: Path, tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    models = load(tiny_repo)
    seen: dict[str, list[tuple[bool, torch.dtype]]] = {name: [] for name in models}
    for name, model in models.items():
        for net in model.models:
            net.register_forward_pre_hook(lambda *_, name=name: seen[name].append(
                (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"))))
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    run(models, source, tmp_path / "gpu", device="cuda", precision="bf16", segment=2.0)
    for name, states in seen.items():
        assert states and all(state == (True, torch.bfloat16) for state in states), name
