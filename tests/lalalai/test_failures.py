"""Every way LALAL.AI (or the network) can fail, and what the user is told.

Common promise: a failed separation leaves no stem and no staging folder
behind, and deletes its source file from the provider.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from soundforge.config import Settings
from soundforge.engines.base import SeparationOptions
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.engine import LalalaiEngine
from soundforge.engines.lalalai.errors import ProviderTaskError, ProviderUnavailableError
from soundforge.errors import AuthError, InvalidOptionError, ProviderError, QuotaError
from tests.lalalai.conftest import FAST_RETRY, gain, listing
from tests.support.fake_lalalai import FakeLalalai


def separate(engine: LalalaiEngine, song: Path, out: Path, **options: object) -> dict:
    return engine.separate(song, SeparationOptions(**options), None, None, out).stems


def assert_nothing_left(tmp_path: Path, out: Path) -> None:
    assert listing(out) == set()
    assert not [name for name in listing(tmp_path) if name.startswith(".staging-")]


def test_not_enough_minutes_is_refused_before_any_upload(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.set_minutes(0.12)  # 3 s × 3 stems = 0.15 minutes
    out = tmp_path / "out"
    with pytest.raises(QuotaError) as caught:
        separate(engine, song, out, stems=("vocals", "drums", "synth"))
    message = str(caught.value)
    assert "0.15 minutes" in message and "0.12 are left" in message
    assert "3 s × 3 stems" in message and "preview" in message
    assert fake.calls["upload"] == 0 and not fake.tasks
    assert fake.minutes_left() == pytest.approx(0.12)
    assert_nothing_left(tmp_path, out)


def test_exactly_enough_minutes_is_enough(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.set_minutes(0.1)  # 3 s × 2 stems
    separate(engine, song, tmp_path / "out", stems=("vocals", "drums"))
    assert fake.minutes_left() == pytest.approx(0.0)


def test_provider_refusing_minutes_at_task_start_is_a_quota_error(
    fake: FakeLalalai, song: Path
) -> None:
    # Another client spent the minutes between our check and the task start.
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        source = client.upload(song)
        fake.set_minutes(0.01)
        with pytest.raises(QuotaError, match=r"Not enough LALAL\.AI minutes"):
            client.split_stem_separator(source.id, {"stem": "vocals"})
    assert not fake.tasks


@pytest.mark.parametrize(
    ("knob", "words"),
    [("max_duration", "longer than your LALAL.AI license allows"),
     ("max_size", "larger than your LALAL.AI license allows")],
)
def test_license_limits_are_reported_in_words(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path, knob: str, words: str
) -> None:
    setattr(fake, knob, 1)
    out = tmp_path / "out"
    with pytest.raises(ProviderError, match=words):
        separate(engine, song, out, stems=("bass",))
    assert_nothing_left(tmp_path, out)
    assert all(source.deleted for source in fake.sources.values())


def test_wrong_key(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    engine = make_engine(api_key="not-a-real-key-123")
    with pytest.raises(AuthError) as caught:
        separate(engine, song, tmp_path / "out", stems=("bass",))
    assert "refused the license key" in str(caught.value)
    assert "LALALAI_API_KEY" in str(caught.value)
    assert "not-a-real-key-123" not in str(caught.value)
    assert fake.calls["upload"] == 0  # refused at the minutes check


# Every documented way the provider refuses a key: the live API answers a
# wrong key with 400 "License key is invalid." before any task exists; a
# missing or unknown key with 401/403. All of them are the user's key to fix.
REFUSED_KEY_ANSWERS = [
    (400, {"detail": "License key is invalid."}),
    (400, {"detail": "Refused.", "code": "license_expired"}),
    (401, {"detail": "Unauthorized"}),
    (403, {"detail": "Invalid license key"}),
]


@pytest.mark.parametrize(("status", "body"), REFUSED_KEY_ANSWERS)
def test_every_key_refusal_is_an_auth_error(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path, status: int, body: dict
) -> None:
    fake.unknown_key_answer = (status, body)
    engine = make_engine(api_key="not-a-real-key-123")
    with pytest.raises(AuthError) as separating:
        separate(engine, song, tmp_path / "out", stems=("bass",))
    with pytest.raises(AuthError) as quota:
        engine.quota()
    for caught in (separating, quota):
        message = str(caught.value)
        assert f"refused the license key (HTTP {status}" in message
        assert "Settings → Cloud Separation" in message
        assert "not-a-real-key-123" not in message
    assert fake.calls["upload"] == 0


def test_a_license_code_with_its_own_meaning_stays_what_it_is(fake: FakeLalalai) -> None:
    # exceeded_duration is a license code too, but it means "no minutes left".
    fake.unknown_key_answer = (400, {"detail": "Not enough minutes left on the license.",
                                     "code": "exceeded_duration"})
    with pytest.raises(QuotaError):
        LalalaiClient(fake.url, _secret("some-other-key"), retry=FAST_RETRY).minutes_left()


def test_a_provider_that_echoes_the_key_does_not_leak_it(fake: FakeLalalai) -> None:
    fake.echo_key_in_errors = True
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        with pytest.raises(ProviderError) as caught:  # a 400 whose detail we show
            client.split_stem_separator(str(uuid.uuid4()), {"stem": "vocals"})
        with pytest.raises(AuthError) as wrong:
            LalalaiClient(fake.url, _secret("secret-key-echoed-back")).minutes_left()
    assert "has already been deleted" in str(caught.value)
    assert fake.key not in str(caught.value) and "**********" in str(caught.value)
    assert "secret-key-echoed-back" not in str(wrong.value)


def test_missing_key_says_how_to_set_one(
    fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", lalalai_url=fake.url)
    engine = LalalaiEngine(settings)
    with pytest.raises(AuthError) as caught:
        separate(engine, song, tmp_path / "out")
    message = str(caught.value)
    assert "LALALAI_API_KEY" in message and "SYSTEM_LALALAI_ACTIVATION_KEY" in message
    assert sum(fake.calls.values()) == 0


def test_request_without_key_header_gets_403_and_an_auth_error(fake: FakeLalalai) -> None:
    # The engine never sends a request without a key; the provider's answer to
    # a missing header is still understood (a blank key sends no header).
    with (
        LalalaiClient(fake.url, _secret(""), retry=FAST_RETRY) as client,
        pytest.raises(AuthError, match="received no license key"),
    ):
        client.minutes_left()


def test_task_error_answered_with_200_is_a_failure_with_the_providers_detail(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.fail_tasks("drum", detail="Unable to detect drums in the uploaded file")
    out = tmp_path / "out"
    with pytest.raises(ProviderTaskError) as caught:
        separate(engine, song, out, stems=("drums",))
    assert str(caught.value) == (
        "LALAL.AI could not extract drums: Unable to detect drums in the uploaded file"
    )
    (task,) = fake.tasks.values()
    assert task.status == "error"
    assert_nothing_left(tmp_path, out)
    assert all(source.deleted for source in fake.sources.values())


def test_one_failed_task_cancels_the_others(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The synth task fails at its first finishing poll; the others need more polls.
    fake.fail_tasks("synthesizer", detail="no synths here")
    fake.polls_to_finish = 1
    original_advance = fake._advance

    def slower(task):  # the multistem task takes longer than the failing one
        if task.kind == "multistem" and task.polls < 5:
            task.polls += 1
            task.progress = 10 * task.polls
            task.started = True
            return
        original_advance(task)

    # monkeypatch: the server outlives this test, its behaviour must not.
    monkeypatch.setattr(fake, "_advance", slower)
    out = tmp_path / "out"
    with pytest.raises(ProviderTaskError, match="no synths here"):
        separate(engine, song, out, stems=("vocals", "drums", "synth"))
    kinds = {task.kind: task.status for task in fake.tasks.values()}
    assert kinds == {"multistem": "cancelled", "stem_separator": "error"}
    assert fake.calls["cancel"] == 1
    assert_nothing_left(tmp_path, out)


def test_429_on_check_backs_off_and_carries_on(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.throttle_next_checks(4)
    stems = separate(engine, song, tmp_path / "out", stems=("bass",))
    assert set(stems) == {"bass", "no_bass"}
    # 4 throttled + the 3 polls the task needs.
    assert fake.calls["check"] == 4 + 3
    assert len(fake.check_batches) == 3


def test_poll_loop_stays_under_the_check_limit(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.check_limit, fake.check_window = 3, 1.0
    fake.polls_to_finish = 5
    engine = make_engine(check_limit=3, check_window=1.0)
    stems = separate(engine, song, tmp_path / "out", stems=("bass", "drums"))
    assert set(stems) == {"bass", "drums", "rest"}
    assert len(fake.check_batches) == 5
    assert fake.throttled == 0  # the client never went over


def test_without_the_limiter_the_server_throttles_and_back_off_recovers(
    make_engine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    # The counter-test of the one above: proves the fake enforces the limit.
    fake.check_limit, fake.check_window = 3, 1.0
    fake.polls_to_finish = 5
    engine = make_engine(check_limit=1000, check_window=1.0)
    stems = separate(engine, song, tmp_path / "out", stems=("bass", "drums"))
    assert set(stems) == {"bass", "drums", "rest"}
    assert fake.throttled > 0


def test_5xx_and_dropped_answers_are_retried_everywhere(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    for endpoint in ("minutes_left", "upload", "stem_separator", "check", "download", "delete"):
        fake.fail_next(endpoint, times=2, status=503)
    fake.fail_next("multistem", times=1, status=502)
    fake.drop_next("check", times=1)
    stems = separate(engine, song, tmp_path / "out", stems=("bass", "drums", "synth"))
    assert set(stems) == {"bass", "drums", "rest", "synth", "no_synth"}
    assert fake.calls["upload"] == 3
    assert fake.calls["minutes_left"] == 3
    assert fake.calls["delete"] == 3
    assert len(fake.sources) == 1  # retried uploads of one file; only one got through
    assert all(source.deleted for source in fake.sources.values())


def test_5xx_that_does_not_stop_is_reported_after_the_retries(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.fail_next("upload", times=50, status=500)
    out = tmp_path / "out"
    with pytest.raises(ProviderUnavailableError) as caught:
        separate(engine, song, out, stems=("bass",))
    assert "not working right now (HTTP 500 on upload, 4 tries)" in str(caught.value)
    assert fake.calls["upload"] == FAST_RETRY.attempts
    assert_nothing_left(tmp_path, out)


def test_unreachable_provider(song: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "d", lalalai_url=f"http://127.0.0.1:{port}/api/v1/",
                        lalalai_api_key="k")
    engine = LalalaiEngine(settings, retry=FAST_RETRY)
    with pytest.raises(ProviderUnavailableError, match=r"Cannot reach LALAL\.AI at"):
        separate(engine, song, tmp_path / "out", stems=("bass",))
    engine.close()


def test_internal_error_on_start_is_retried_with_the_same_idempotency_key(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.internal_error_next_starts(2)
    stems = separate(engine, song, tmp_path / "out", stems=("piano",))
    assert set(stems) == {"piano", "no_piano"}
    assert fake.calls["stem_separator"] == 3
    (task,) = fake.tasks.values()
    assert task.idempotency_key is not None
    assert fake.minutes_left() == pytest.approx(1000 - 3 / 60)


def test_a_lost_answer_to_a_task_start_does_not_start_a_second_task(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    # The provider creates the task, the answer never arrives, the client asks
    # again with the same idempotency key and gets the same task back.
    fake.drop_next("multistem", times=1)
    stems = separate(engine, song, tmp_path / "out", stems=("bass", "drums"))
    assert set(stems) == {"bass", "drums", "rest"}
    assert fake.calls["multistem"] == 2
    assert len(fake.tasks) == 1
    assert fake.minutes_left() == pytest.approx(1000 - 3 * 2 / 60)  # charged once


def test_internal_error_that_persists_is_final(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.internal_error_next_starts(10)
    with pytest.raises(ProviderUnavailableError, match="kept failing to start the task"):
        separate(engine, song, tmp_path / "out", stems=("piano",))
    assert fake.calls["stem_separator"] == FAST_RETRY.attempts
    assert all(source.deleted for source in fake.sources.values())


def test_download_that_drops_once_is_retried_and_complete(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.drop_next("download", times=1)
    stems = separate(engine, song, tmp_path / "out", stems=("wind",))
    (task,) = fake.tasks.values()
    assert len(fake.downloads) == 3  # one track twice
    assert gain(stems["wind"], song) == pytest.approx(task.track("wind").gain, abs=2e-3)
    assert gain(stems["no_wind"], song) == pytest.approx(task.track("no_wind").gain, abs=2e-3)


def test_download_that_keeps_dropping_leaves_no_partial_stem(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    # The first track arrives whole (and is written to staging); the second
    # breaks off half-way on every try.
    fetch = engine.downloader.fetch
    fetched: list[str] = []

    def fetch_and_break_the_second(url, dest, **kwargs):
        fetched.append(kwargs["label"])
        if len(fetched) == 2:
            fake.drop_next("download", times=100)
        return fetch(url, dest, **kwargs)

    engine.downloader.fetch = fetch_and_break_the_second  # type: ignore[method-assign]
    out = tmp_path / "out"
    with pytest.raises(ProviderUnavailableError) as caught:
        separate(engine, song, out, stems=("strings",))
    assert "'no_strings'" in str(caught.value) and "no partial stem" in str(caught.value)
    assert fetched == ["strings", "no_strings"]
    assert len(fake.downloads) == 1 + FAST_RETRY.attempts
    assert_nothing_left(tmp_path, out)
    assert all(source.deleted for source in fake.sources.values())


def test_expired_download_link_is_final(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path
) -> None:
    fake.fail_next("download", times=1, status=404)
    with pytest.raises(ProviderError, match="link may have expired"):
        separate(engine, song, tmp_path / "out", stems=("wind",))
    assert len(fake.downloads) == 0  # the 404 came from the fault, unprocessed


def test_unknown_task_is_a_server_error_status(fake: FakeLalalai) -> None:
    unknown = str(uuid.uuid4())
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        statuses = client.check([unknown])
    assert statuses[unknown].state == "server_error"
    assert statuses[unknown].final
    assert "Failed to extract information" in (statuses[unknown].error or "")


def test_malformed_request_is_reported_as_a_bug_with_the_field(
    fake: FakeLalalai, song: Path
) -> None:
    with LalalaiClient(fake.url, _secret(fake.key), retry=FAST_RETRY) as client:
        source = client.upload(song)
        with pytest.raises(ProviderError) as caught:
            client.split_stem_separator(source.id, {"stem": "kazoo"})
    assert "malformed" in str(caught.value)
    assert "presets.stem" in str(caught.value)
    assert fake.calls["stem_separator"] == 1  # a 422 is never retried


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"stems": ("vocals", "tuba")}, "LALAL.AI has no stem 'tuba'"),
        ({"splitter": "hal9000"}, "Unknown LALAL.AI splitter"),
        ({"stems": ("synth",), "splitter": "perseus"}, "only with the phoenix splitter"),
        ({"extraction_level": "medium"}, "Unknown extraction level"),
        ({"noise_cancelling": True}, "noise cancelling"),
        ({"two_stems": "backing_vocals"}, "--two-stems backing_vocals is not possible"),
        ({"two_stems": "vocals", "stems": ("drums",)}, "either --stems or --two-stems"),
        ({"format": "ogg"}, "Unknown output format"),
    ],
)
def test_bad_options_are_refused_before_any_request(
    engine: LalalaiEngine, fake: FakeLalalai, song: Path, tmp_path: Path,
    options: dict, words: str,
) -> None:
    with pytest.raises(InvalidOptionError, match=words):
        separate(engine, song, tmp_path / "out", **options)
    assert sum(fake.calls.values()) == 0


def test_validate_normalises_names(engine: LalalaiEngine) -> None:
    options = engine.validate(SeparationOptions(
        stems=("Drum", "synthesizer", "backing-vocals", "drums"), splitter="Phoenix",
        extraction_level="clear-cut",
    ))
    assert options.stems == ("drums", "synth", "backing_vocals")
    assert options.splitter == "phoenix"
    assert options.extraction_level == "clear_cut"


def test_unreadable_input_is_refused_before_any_request(
    engine: LalalaiEngine, fake: FakeLalalai, tmp_path: Path
) -> None:
    from soundforge.errors import InputAudioError

    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio at all")
    with pytest.raises(InputAudioError):
        separate(engine, bad, tmp_path / "out")
    assert sum(fake.calls.values()) == 0


def _secret(key: str):
    from pydantic import SecretStr

    return SecretStr(key)
