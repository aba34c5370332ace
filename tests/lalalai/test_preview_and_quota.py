"""The 60-second preview, what jobs cost, and the quota report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundforge.config import Settings
from soundforge.db.models import LalalaiUsage
from soundforge.db.session import Database
from soundforge.engines.base import SeparationOptions
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.keys import key_id
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger, UsageEntry
from soundforge.engines.lalalai.quota import billable_seconds, get_quota, minutes_for
from soundforge.errors import AuthError, QuotaError
from tests.support.audio import write_audio
from tests.support.fake_lalalai import FakeLalalai


def test_preview_uploads_only_the_first_60_seconds(
    engine: LalalaiEngine, fake: FakeLalalai, long_song: Path, tmp_path: Path
) -> None:
    result = engine.separate(long_song, SeparationOptions(stems=("vocals", "drums"), preview=True),
                             None, None, tmp_path / "out")
    stems = result.stems
    (source,) = fake.sources.values()
    assert source.name == "long song (preview).flac"
    assert source.duration == 60
    assert source.audio.shape == (60 * 8000, 1)
    # Charged 1 minute per stem, not 75 s × 2.
    assert fake.minutes_left() == pytest.approx(1000 - 2)
    assert set(stems) == {"vocals", "drums", "rest"}
    original, _ = sf.read(long_song, dtype="float64", always_2d=True, frames=60 * 8000)
    (task,) = fake.tasks.values()
    for stem, label in (("vocals", "vocals"), ("drums", "drum")):
        data, rate = sf.read(stems[stem], dtype="float64", always_2d=True)
        assert (rate, data.shape) == (8000, (60 * 8000, 1))
        measured = float(np.sum(data * original) / np.sum(original * original))
        assert measured == pytest.approx(task.track(label).gain, abs=2e-3)
    assert result.minutes == 2.0


def test_preview_of_a_short_track_is_the_whole_track(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    engine.separate(song, SeparationOptions(stems=("bass",), preview=True), None, None,
                    tmp_path / "out")
    (source,) = fake.sources.values()
    assert source.duration == 3
    assert fake.minutes_left() == pytest.approx(1000 - 3 / 60)


def test_preview_makes_an_unaffordable_track_affordable(
    engine: LalalaiEngine, fake: FakeLalalai, long_song: Path, tmp_path: Path
) -> None:
    fake.set_minutes(1.1)  # 75 s would cost 1.25 minutes, its preview 1
    with pytest.raises(QuotaError):
        engine.separate(long_song, SeparationOptions(stems=("bass",)), None, None, tmp_path / "a")
    engine.separate(long_song, SeparationOptions(stems=("bass",), preview=True), None, None,
                    tmp_path / "b")
    assert fake.minutes_left() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("seconds", "stems", "minutes"),
    [(60.0, 1, 1.0), (60.0000001, 1, 1.0), (180.4, 2, 181 * 2 / 60), (0.2, 3, 3 / 60),
     (30.0, 10, 5.0)],
)
def test_cost_is_whole_seconds_rounded_up_times_stems(
    seconds: float, stems: int, minutes: float
) -> None:
    assert minutes_for(seconds, stems) == pytest.approx(minutes)
    assert billable_seconds(seconds) * stems / 60 == pytest.approx(minutes)


def test_check_quota_for_the_job_pipeline(engine: LalalaiEngine, fake: FakeLalalai) -> None:
    fake.set_minutes(5)
    # 10 minutes × 1 stem does not fit; its preview (1 minute) does.
    with pytest.raises(QuotaError, match="needs 10 minutes"):
        engine.check_quota(SeparationOptions(stems=("bass",)), duration=600)
    assert engine.check_quota(SeparationOptions(stems=("bass",), preview=True), 600) == 1.0
    # All ten stems of a 20 s track: 200 s of processing.
    assert engine.cost(SeparationOptions(), 20) == pytest.approx(200 / 60)
    assert fake.calls["upload"] == 0


def test_quota_report_in_the_seeds_shape(
    engine: LalalaiEngine, fake: FakeLalalai, settings: Settings, song: Path, tmp_path: Path
) -> None:
    engine.separate(song, SeparationOptions(stems=("vocals", "drums")), None, None,
                    tmp_path / "a")
    engine.separate(song, SeparationOptions(stems=("synth",)), None, None, tmp_path / "b")
    report = get_quota(settings)
    assert report == {
        "quota_minutes": 1000.0,
        "used_minutes": pytest.approx(0.15),
        "remaining_minutes": pytest.approx(999.85),
    }
    assert engine.quota() == report

    # The usage ledger is the installation's database, one row per provider
    # task, with the key's fingerprint and never the key.
    db = Database(settings)
    try:
        with db.session() as session:
            rows = session.query(LalalaiUsage).order_by(LalalaiUsage.id).all()
            assert [row.task_id for row in rows] == list(fake.tasks)
            assert {row.key_id for row in rows} == {key_id(_secret(fake.key))}
            assert not any(row.cancelled for row in rows)
    finally:
        db.dispose()
    assert not (settings.data_dir / "lalalai" / "usage.jsonl").exists()


def test_used_minutes_are_per_key(
    fake: FakeLalalai, settings: Settings, make_engine, song: Path, tmp_path: Path
) -> None:
    other = fake.add_key(minutes=50)
    make_engine(api_key=other).separate(song, SeparationOptions(stems=("wind",)), None, None,
                                        tmp_path / "o")
    assert get_quota(settings)["used_minutes"] == 0
    assert get_quota(settings, api_key=other) == {
        "quota_minutes": 50.0, "used_minutes": 0.05, "remaining_minutes": 49.95,
    }


def test_quota_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="LALALAI_API_KEY"):
        get_quota(Settings(data_dir=tmp_path))


def test_ledger_counts_a_task_once_and_imports_an_old_file_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    old = tmp_path / "lalalai" / "usage.jsonl"  # what an older version wrote
    old.parent.mkdir(parents=True)
    old.write_text(
        json.dumps({"key_id": "k1", "task_id": "t0", "seconds": 30, "stems": 2, "minutes": 1.0,
                    "source_name": "a.wav", "preview": False, "at": 1.0}) + "\n"
        + '{"key_id": "k1", "task_id": "t9", "sec'  # a crash mid-write: skipped
    )
    ledger = DatabaseUsageLedger.for_settings(settings)
    try:
        assert not old.exists() and old.with_name("usage.jsonl.imported").exists()
        ledger.record(UsageEntry(key_id="k1", task_id="t1", seconds=60, stems=2, minutes=2.0))
        ledger.record(UsageEntry(key_id="k1", task_id="t1", seconds=60, stems=2, minutes=2.0))
        ledger.record(UsageEntry(key_id="k2", task_id="t2", seconds=30, stems=1, minutes=0.5))
        assert ledger.used_minutes("k1") == 3.0
        assert ledger.used_minutes("k2") == 0.5
        assert ledger.used_minutes("k3") == 0
    finally:
        ledger.close()
    again = DatabaseUsageLedger.for_settings(settings)  # a second start imports nothing
    try:
        assert again.used_minutes("k1") == 3.0
    finally:
        again.close()


def test_key_precedence_user_then_env_then_system(
    fake: FakeLalalai, make_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, env, system = (fake.add_key(minutes=m) for m in (10, 20, 30))
    monkeypatch.setenv("SOUNDFORGE_LALALAI_URL", fake.url)
    monkeypatch.setenv("LALALAI_API_KEY", env)
    monkeypatch.setenv("SYSTEM_LALALAI_ACTIVATION_KEY", system)
    assert make_engine(Settings(), api_key=user).minutes_left() == 10
    assert make_engine(Settings()).minutes_left() == 20
    monkeypatch.delenv("LALALAI_API_KEY")
    assert make_engine(Settings()).minutes_left() == 30
    monkeypatch.setenv("LALALAI_API_KEY", "  ")  # blank means unset
    assert make_engine(Settings()).minutes_left() == 30


def test_mp3_input(engine: LalalaiEngine, fake: FakeLalalai, tmp_path: Path) -> None:
    song = write_audio(tmp_path / "song.mp3", seconds=2.0)
    stems = engine.separate(song, SeparationOptions(stems=("bass",), format="flac"), None, None,
                            tmp_path / "out").stems
    (source,) = fake.sources.values()
    assert source.name == "song.mp3" and source.format == "mp3"
    info = sf.info(stems["bass"])
    assert info.samplerate == 44100 and info.format == "FLAC"


def _secret(key: str):
    from pydantic import SecretStr

    return SecretStr(key)
