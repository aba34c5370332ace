"""Streaming separation: bounded buffers, progress, cancellation, statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from soundforge.engines.local import streaming
from soundforge.engines.local.inference import separate_file
from soundforge.engines.local.loader import load_model
from soundforge.engines.local.request import RunRequest
from soundforge.engines.local.streaming import RunningStats, guard_std
from soundforge.errors import CancelledError, InvalidOptionError
from tests.local.equivalence_support import read_stem
from tests.support.audio import write_audio
from tests.support.tiny_models import TINY_SEGMENT

SEGMENT = int(TINY_SEGMENT * 44100)




@pytest.fixture(scope="module")
def htdemucs(tiny_repo: Path) -> Any:
    return load_model("htdemucs", tiny_repo)


def request(source: Path, out: Path, **options: Any) -> RunRequest:
    out.mkdir(parents=True, exist_ok=True)
    return RunRequest(id="t", input=str(source), output_dir=str(out), model="htdemucs", **options)


def test_input_kept_in_memory_does_not_grow_with_the_track(
    htdemucs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: dict[float, int] = {}
    original = streaming.MixFeed.ensure

    for seconds in (5.0, 12.0):
        widest = 0

        def ensure(self: streaming.MixFeed, end: int) -> None:
            nonlocal widest
            original(self, end)
            widest = max(widest, self.end - self.start)

        monkeypatch.setattr(streaming.MixFeed, "ensure", ensure)
        source = write_audio(tmp_path / f"in{seconds}.wav", seconds=seconds)
        separate_file(
            htdemucs,
            request(source, tmp_path / f"o{seconds}", shifts=1, seed=1),
            lambda *_: None,
            lambda: False,
        )
        spans[seconds] = widest
    # About one segment plus its context and a decoded block, whatever the length.
    assert spans[12.0] <= spans[5.0] + (1 << 16)
    assert spans[12.0] <= 2 * SEGMENT + (1 << 16)


def test_progress_is_reported_for_every_segment(htdemucs: Any, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=6.0)
    seen: list[tuple[float, str]] = []
    separate_file(
        htdemucs,
        request(source, tmp_path / "out", shifts=0),
        lambda fraction, stage: seen.append((fraction, stage)),
        lambda: False,
    )
    segments = len(range(0, 6 * 44100, int(0.75 * SEGMENT)))
    assert sum(1 for _, stage in seen if stage == "separating") >= segments
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_stop_request_cancels_between_segments(htdemucs: Any, tmp_path: Path) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=6.0)
    segments_done = 0

    def on_progress(fraction: float, stage: str) -> None:
        nonlocal segments_done
        if stage == "separating" and fraction > 0.03:
            segments_done += 1

    with pytest.raises(CancelledError):
        separate_file(
            htdemucs,
            request(source, tmp_path / "out", shifts=0),
            on_progress,
            lambda: segments_done >= 2,
        )
    assert segments_done == 2  # stopped before the third of four segments


def test_silence_is_separated_into_silence(htdemucs: Any, tmp_path: Path) -> None:
    source = tmp_path / "silence.wav"
    sf.write(str(source), np.zeros((44100 * 2, 2), np.float32), 44100)
    stems = separate_file(
        htdemucs,
        request(source, tmp_path / "out", shifts=0, wav_depth="float"),
        lambda *_: None,
        lambda: False,
    )
    for path in stems.values():
        data = read_stem(path)
        assert np.isfinite(data).all() and data.shape == (2, 44100 * 2)


def test_running_statistics_match_the_whole_signal() -> None:
    rng = np.random.default_rng(0)
    blocks = [
        rng.standard_normal((2, n)).astype(np.float32) * 0.3 + 0.01 for n in (1000, 65536, 7, 30000)
    ]
    stats = RunningStats()
    for block in blocks:
        stats.add(block)
    mean, std = stats.result()
    whole = np.concatenate(blocks, axis=1).mean(axis=0, dtype=np.float32).astype(np.float64)
    assert mean == pytest.approx(whole.mean(), abs=1e-12)
    assert std == pytest.approx(whole.std(ddof=1) + 1e-8, rel=1e-12)


def test_silence_is_not_scaled_up() -> None:
    assert guard_std(0.0) == 1.0
    assert guard_std(float("nan")) == 1.0
    assert guard_std(0.25) == 0.25 + 1e-8


def test_a_segment_longer_than_the_transformer_allows_is_refused(
    htdemucs: Any, tmp_path: Path
) -> None:
    source = write_audio(tmp_path / "in.wav", seconds=1.0)
    with pytest.raises(InvalidOptionError, match="longer than this model allows"):
        separate_file(
            htdemucs,
            request(source, tmp_path / "out", segment=float(TINY_SEGMENT) + 1),
            lambda *_: None,
            lambda: False,
        )
