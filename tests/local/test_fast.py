"""The CPU fast path: where it is used, and that it agrees with the reference.

``test_equivalence.py`` runs the shipped path (the fast path on this CPU)
against ``apply_model``; here the two backends are compared with each other
and the choice between them is checked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from soundforge.engines.local import backends
from soundforge.engines.local.backends import (
    FastCpuBackend,
    ReferenceBackend,
    choose_backend,
    fused_attention,
)
from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import make_plan
from tests.local.equivalence_support import MIN_SDIFF_DB, read_stem, sdiff_db
from tests.support.audio import write_audio


def request_for(name: str, source: Path, out: Path, **options: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)
    return RunRequest(
        id="t", input=str(source), output_dir=str(out), model=name, wav_depth="float", **options
    )


def separate_with(model: Any, request: RunRequest, backend: Any) -> dict[str, str]:
    return separate_file(model, request, lambda *_: None, lambda: False, backend=backend)


@pytest.mark.parametrize(
    "name, batch",
    # batch 2: both segments of the input stacked in one call (--batch), which the
    # attention blocks, GroupNorm and pointwise convolutions see as a batch axis.
    [("htdemucs", 1), ("mdx_extra", 1), ("htdemucs", 2)],
)
def test_fast_and_reference_backends_agree(
    tiny_repo: Path, tmp_path: Path, name: str, batch: int
) -> None:
    model = load_model(name, tiny_repo)
    source = write_audio(tmp_path / "in.wav", seconds=2.6)
    segment = 0.8 if name == "mdx_extra" else None
    ref = separate_with(
        model,
        request_for(name, source, tmp_path / "ref", shifts=0, segment=segment),
        ReferenceBackend(torch.device("cpu")),
    )
    seen: list[int] = []
    hooks = [
        network.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].shape[0]))
        for network in getattr(model, "models", [model])
    ]
    try:
        ours = separate_with(
            model,
            request_for(name, source, tmp_path / "fast", shifts=0, segment=segment),
            FastCpuBackend(batch=batch),
        )
    finally:
        for hook in hooks:
            hook.remove()
    assert max(seen) == batch  # the batch really went through one call
    db = sdiff_db(
        {k: read_stem(v) for k, v in ours.items()}, {k: read_stem(v) for k, v in ref.items()}
    )
    assert db >= MIN_SDIFF_DB


def test_fused_attention_restores_the_global_switch() -> None:
    assert torch.backends.mha.get_fastpath_enabled()
    with fused_attention():
        assert not torch.backends.mha.get_fastpath_enabled()
    assert torch.backends.mha.get_fastpath_enabled()


def plan_for(model: Any) -> Any:
    return make_plan(
        model,
        44100,
        list(model.sources),
        shifts=0,
        overlap=0.25,
        segment=None,
        device=torch.device("cpu"),
    )


def test_the_cpu_uses_the_fast_path_for_the_offered_networks(tiny_repo: Path) -> None:
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"):
        model = load_model(name, tiny_repo)
        request = RunRequest(id="t", input="x", output_dir="y", model=name)
        backend = choose_backend(model, plan_for(model), torch.device("cpu"), request)
        assert isinstance(backend, FastCpuBackend)


def test_an_unknown_network_class_falls_back_with_a_warning(
    tiny_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from demucs.htdemucs import HTDemucs

    class Patched(HTDemucs):
        pass

    model = load_model("htdemucs", tiny_repo)
    net = model.models[0]
    original = net.__class__
    net.__class__ = Patched
    try:
        request = RunRequest(id="t", input="x", output_dir="y", model="htdemucs")
        with caplog.at_level(logging.WARNING, logger=backends.__name__):
            backend = choose_backend(model, plan_for(model), torch.device("cpu"), request)
    finally:
        net.__class__ = original
    assert isinstance(backend, ReferenceBackend)
    assert "Patched" in caplog.text
