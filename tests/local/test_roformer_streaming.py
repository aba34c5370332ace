"""RoFormer models on the streaming core: bounded memory, progress per chunk,
cancel between chunks, reduced precision, and the GPU path (through the
virtual device of tests/support/virtual_device.py)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from soundforge.engines.local import device as device_module
from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.roformer import stream as stream_module
from soundforge.engines.local.roformer.loader import RoformerModel
from soundforge.engines.local.streaming import MixFeed
from soundforge.errors import CancelledError, OutOfMemoryError
from tests.local.equivalence_support import MIN_SDIFF_DB, read_stem, sdiff_db
from tests.support.audio import write_audio
from tests.support.tiny_roformer import TINY_CHUNK
from tests.support.virtual_device import VirtualCuda, on_virtual

NAME = "bs_roformer_6s"
BLOCK = 1 << 16  # the decoder's block
CPU_HAS_BF16 = bool(device_module.cpu_flags() & {"amx_bf16", "avx512_bf16"})
MIN_REDUCED_SDIFF_DB = 40.0



@pytest.fixture(scope="module")
def model(tiny_repo: Path) -> RoformerModel:
    return load_model(NAME, tiny_repo)


def request(source: Path, out: Path, **options: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)
    return RunRequest(id="t", input=str(source), output_dir=str(out), model=NAME,
                      wav_depth="float", **options)


def chunks_for(frames: int) -> int:
    step = TINY_CHUNK // 2
    padded = frames + 2 * (TINY_CHUNK - step)
    return -(-padded // step)


def test_memory_does_not_grow_with_the_track(
    model: RoformerModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_span: dict[float, int] = {}
    kept: dict[float, int] = {}
    ensure = MixFeed.ensure
    accumulate = stream_module.RoformerStream._accumulate
    for seconds in (3.0, 9.0):
        widest = held = 0

        def ensure_and_measure(self: MixFeed, end: int) -> None:
            nonlocal widest
            ensure(self, end)
            widest = max(widest, self.end - self.start)

        def accumulate_and_measure(self: Any, *args: Any) -> None:
            nonlocal held
            accumulate(self, *args)
            held = max(held, self._result.shape[-1])

        monkeypatch.setattr(MixFeed, "ensure", ensure_and_measure)
        monkeypatch.setattr(stream_module.RoformerStream, "_accumulate", accumulate_and_measure)
        source = write_audio(tmp_path / f"in{seconds}.wav", seconds=seconds)
        separate_file(model, request(source, tmp_path / f"o{seconds}"), lambda *_: None,
                      lambda: False)
        feed_span[seconds], kept[seconds] = widest, held
    # One chunk and its overlap, plus a decoded block — whatever the length.
    assert feed_span[9.0] <= feed_span[3.0] + BLOCK
    assert feed_span[9.0] <= 2 * TINY_CHUNK + 2 * BLOCK
    assert kept[9.0] == kept[3.0] and kept[9.0] <= 2 * TINY_CHUNK


def test_progress_comes_for_every_chunk(model: RoformerModel, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=3.0)
    seen: list[tuple[float, str]] = []
    separate_file(model, request(source, tmp_path / "o"), lambda f, s: seen.append((f, s)),
                  lambda: False)
    separating = [f for f, stage in seen if stage == "separating" and f > 0.03]
    assert len(separating) == chunks_for(3 * 44100)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_stop_request_cancels_between_chunks(
    model: RoformerModel, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=3.0)
    done = 0

    def on_progress(fraction: float, stage: str) -> None:
        nonlocal done
        if stage == "separating" and fraction > 0.03:
            done += 1

    out = tmp_path / "out"
    with pytest.raises(CancelledError):
        separate_file(model, request(source, out), on_progress, lambda: done >= 3)
    assert done == 3  # stopped before the fourth chunk (the engine discards its staging)


@pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no native bfloat16")
def test_bf16_on_the_cpu_keeps_the_quality_bar(model: RoformerModel, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.0)
    exact = separate_file(model, request(source, tmp_path / "fp32"), lambda *_: None,
                          lambda: False)
    reduced = separate_file(model, request(source, tmp_path / "bf16", precision="bf16"),
                            lambda *_: None, lambda: False)
    ours = {name: read_stem(path) for name, path in reduced.items()}
    reference = {name: read_stem(path) for name, path in exact.items()}
    assert ours.keys() == reference.keys()
    assert sdiff_db(ours, reference) >= MIN_REDUCED_SDIFF_DB
    assert sdiff_db(ours, reference) < 200  # it did run in bf16


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualCuda]:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with VirtualCuda() as device:
            yield device


@pytest.fixture
def two_copies(tiny_repo: Path) -> tuple[RoformerModel, RoformerModel]:
    """A copy loaded as on a CPU machine and one as on a GPU machine: the
    package's attention picks its CUDA kernels from the card's properties
    when the network is built."""
    cpu = load_model(NAME, tiny_repo)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "get_device_properties",
                      lambda device=None: SimpleNamespace(major=9, minor=0))
        gpu = load_model(NAME, tiny_repo)
    return cpu, gpu


def test_on_a_gpu_the_network_and_chunks_move_and_batches_match_the_cpu(
    two_copies: tuple[RoformerModel, RoformerModel], tmp_path: Path, one_gpu: VirtualCuda
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    cpu, gpu = two_copies
    sizes: list[int] = []
    gpu.net.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    reference = separate_file(cpu, request(source, tmp_path / "cpu", device="cpu"),
                              lambda *_: None, lambda: False)
    ours = separate_file(gpu, request(source, tmp_path / "gpu", device="cuda", batch=3),
                         lambda *_: None, lambda: False)
    assert all(on_virtual(p) for p in gpu.net.parameters()), "network left on the CPU"
    assert sizes[0] == 3 and sum(sizes) == chunks_for(int(2.5 * 44100))
    assert sdiff_db({k: read_stem(v) for k, v in ours.items()},
                    {k: read_stem(v) for k, v in reference.items()}) >= MIN_SDIFF_DB


def test_on_a_gpu_without_batch_the_first_call_sizes_the_batch_from_free_memory(
    two_copies: tuple[RoformerModel, RoformerModel], tmp_path: Path, one_gpu: VirtualCuda,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 8 GiB free, one chunk "takes" 1 GiB: 8 × 0.7 → 6 chunks per call after the first.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 16 * 2**30))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 2**30)
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    cpu, gpu = two_copies
    sizes: list[int] = []
    gpu.net.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    reference = separate_file(cpu, request(source, tmp_path / "cpu", device="cpu"),
                              lambda *_: None, lambda: False)
    ours = separate_file(gpu, request(source, tmp_path / "gpu", device="cuda"),
                         lambda *_: None, lambda: False)
    assert sizes == [1, 6, 6] and sum(sizes) == chunks_for(int(2.5 * 44100))
    assert sdiff_db({k: read_stem(v) for k, v in ours.items()},
                    {k: read_stem(v) for k, v in reference.items()}) >= MIN_SDIFF_DB


def test_on_the_cpu_without_batch_one_chunk_per_call(model: RoformerModel,
                                                    tmp_path: Path) -> None:
    sizes: list[int] = []
    hook = model.net.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    try:
        source = write_audio(tmp_path / "in.wav", seconds=1.5)
        separate_file(model, request(source, tmp_path / "o"), lambda *_: None, lambda: False)
    finally:
        hook.remove()
    assert set(sizes) == {1} and len(sizes) == chunks_for(int(1.5 * 44100))


def _out_of_memory_above(model: RoformerModel, most: int) -> list[int]:
    """The network "runs out of device memory" on batches larger than ``most``."""
    sizes: list[int] = []
    forward = model.net.forward

    def small_card(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        if batch.shape[0] > most:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
        return forward(batch)

    model.net.forward = small_card  # type: ignore[method-assign]
    return sizes


def test_out_of_memory_halves_the_batch_and_keeps_the_output(
    tiny_repo: Path, model: RoformerModel, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=2.5)
    reference = separate_file(model, request(source, tmp_path / "one"), lambda *_: None,
                              lambda: False)
    small = load_model(NAME, tiny_repo)
    sizes = _out_of_memory_above(small, 2)
    notices: list[str] = []
    ours = separate_file(small, request(source, tmp_path / "four", batch=4), lambda *_: None,
                         lambda: False, on_notice=notices.append)
    assert sizes[:3] == [4, 2, 2] and max(sizes[3:]) <= 2
    assert notices == ["Out of cpu memory with 4 chunks per call: retrying with 2."]
    assert sdiff_db({k: read_stem(v) for k, v in ours.items()},
                    {k: read_stem(v) for k, v in reference.items()}) >= MIN_SDIFF_DB


def test_out_of_memory_on_one_chunk_says_what_to_try(tiny_repo: Path, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    small = load_model(NAME, tiny_repo)
    _out_of_memory_above(small, 0)
    with pytest.raises(OutOfMemoryError, match="one 22016-sample chunk") as caught:
        separate_file(small, request(source, tmp_path / "o"), lambda *_: None, lambda: False)
    assert "--precision bf16" in caught.value.message and "--device cpu" in caught.value.message
