"""Creating jobs: settings and overrides, validation up front, one unit with the queue,
double submissions, reuse of finished work."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from soundforge.db.models import ProcessingJob, UserSettings
from soundforge.errors import AuthError, InvalidOptionError, SoundForgeError
from soundforge.jobs import (
    Pipeline,
    QueueUnavailableError,
    cancel_job,
    create_separation_job,
    get_job,
)
from soundforge.jobs.recovery import recover
from soundforge.library.files import resolve_upload
from tests.pipeline.conftest import wait_final


def _count_jobs(pipeline: Pipeline) -> int:
    with pipeline.db.session() as session:
        return session.scalar(select(func.count(ProcessingJob.id))) or 0


def test_job_takes_engine_model_and_format_from_user_settings(pipeline, user, make_track):
    with pipeline.db.transaction() as session:
        row = session.get(UserSettings, user.id)
        row.demucs_model, row.output_format = "htdemucs_6s", "flac"
    job = create_separation_job(pipeline, user, make_track())
    assert (job.engine, job.model, job.status, job.progress) == ("local", "htdemucs_6s",
                                                                 "queued", 0)
    assert job.options["format"] == "flac"
    assert pipeline.queue.pending_job_ids() == {job.id}
    assert job.dispatched_at is None or job.dispatched_at.tzinfo is not None
    with pipeline.db.session() as session:
        assert get_job(session, user, job.id).dispatched_at is not None


def test_overrides_win_and_form_values_are_coerced(pipeline, user, make_track):
    job = create_separation_job(
        pipeline, user, make_track().id,
        {"model": "htdemucs_ft", "stems": "Vocals, drums", "shifts": "2", "format": "mp3"},
    )
    assert job.model == "htdemucs_ft"
    assert job.options["stems"] == ["vocals", "drums"]
    assert job.options["shifts"] == 2
    assert job.options["format"] == "mp3"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "htdemucs_9s"}, "Unknown model 'htdemucs_9s'"),
        ({"stems": "guitar"}, "Use htdemucs_6s for guitar"),
        ({"stems": "vocals", "two_stems": "drums"}, "either --stems or --two-stems"),
        ({"format": "aiff"}, "Unknown output format"),
        ({"shifts": "many"}, "invalid value"),
        # Not cut to 2 behind the user's back.
        ({"shifts": 2.5}, "Option 'shifts' has an invalid value: 2.5."),
        ({"preview": "maybe"}, "Option 'preview' has an invalid value: 'maybe'."),
        ({"colour": "blue"}, "Unknown option(s): colour"),
        ({"engine": "magic"}, "Unknown engine"),
    ],
)
def test_invalid_requests_are_refused_before_anything_is_written(
    pipeline, user, make_track, options, message
):
    track = make_track()
    with pytest.raises(InvalidOptionError) as caught:
        create_separation_job(pipeline, user, track, options)
    assert message in caught.value.message
    assert _count_jobs(pipeline) == 0
    assert pipeline.queue.pending_count() == 0


def test_lalalai_without_any_key_is_refused(pipeline, user, make_track):
    with pytest.raises(AuthError, match="Settings"):
        create_separation_job(pipeline, user, make_track(), {"engine": "lalalai"})
    assert _count_jobs(pipeline) == 0


def test_another_users_track_is_not_found(pipeline, user, make_track):
    from soundforge.db.accounts import create_user
    from soundforge.errors import NotFoundError

    with pipeline.db.transaction() as session:
        other = create_user(session, "eve@example.com", "another secret")
    with pytest.raises(NotFoundError):
        create_separation_job(pipeline, other, make_track())


def test_missing_audio_file_is_refused(pipeline, user, make_track):
    track = make_track()
    resolve_upload(pipeline.settings, track.file_path).unlink()
    with pytest.raises(SoundForgeError, match="missing"):
        create_separation_job(pipeline, user, track)


def test_double_submission_returns_the_same_job(pipeline, user, make_track):
    track = make_track()
    first = create_separation_job(pipeline, user, track, {"stems": "vocals"})
    again = create_separation_job(pipeline, user, track, {"stems": ["vocals"]})
    forced = create_separation_job(pipeline, user, track, {"stems": "vocals"}, force=True)
    assert first.id == again.id == forced.id
    # A different request on the same track is a different job.
    other = create_separation_job(pipeline, user, track, {"stems": "drums"})
    assert other.id != first.id
    assert _count_jobs(pipeline) == 2
    assert pipeline.queue.pending_job_ids() == {first.id, other.id}


def test_simultaneous_double_click_makes_one_job(pipeline, user, make_track):
    """Eight requests at the same instant (as from several web processes): one row."""
    track = make_track()
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait()
            results.append(create_separation_job(pipeline, user, track.id).id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    assert _count_jobs(pipeline) == 1


def test_unreachable_queue_fails_the_job_and_raises(settings, user, make_track, pipeline):
    from soundforge.jobs.queue import JobQueue
    from tests.support.services import free_port

    broken = Pipeline(
        settings.model_copy(update={"queue_url": f"redis://127.0.0.1:{free_port()}/0"}),
        database=pipeline.db,
    )
    assert isinstance(broken.queue, JobQueue)
    with pytest.raises(QueueUnavailableError) as caught:
        create_separation_job(broken, user, make_track())
    assert "queue cannot be reached" in caught.value.message
    with pipeline.db.session() as session:
        job = session.scalar(select(ProcessingJob))
    # No queued row without a task: the row says why it is not running.
    assert job.status == "failed"
    assert job.error_code == "queue_unavailable"


def test_lost_task_is_sent_again_by_the_reconciler(pipeline, user, make_track):
    """The web process died between the commit and the enqueue."""
    job = create_separation_job(pipeline, user, make_track())
    pipeline.queue.flush()  # the task never made it
    assert pipeline.queue.pending_job_ids() == set()
    pipeline.config.redispatch_after = 0.0
    done = recover(pipeline)
    assert done["redispatched"] == [job.id]
    assert pipeline.queue.pending_job_ids() == {job.id}
    # A task that is in the queue is not duplicated.
    assert recover(pipeline)["redispatched"] == []
    assert pipeline.queue.pending_count() == 1


def test_cancel_queued_job_never_runs(pipeline, user, make_track, start_worker):
    cancelled = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})
    result = cancel_job(pipeline, user, cancelled.id)
    assert result.status == "cancelled"
    # A later job proves the worker consumed the queue past the cancelled task.
    later = create_separation_job(pipeline, user, make_track(), {"stems": "vocals"})
    start_worker()
    assert wait_final(pipeline, later.id).status == "completed"
    with pipeline.db.session() as session:
        job = get_job(session, user, cancelled.id)
    assert job.status == "cancelled"
    assert job.attempts == 0 and job.started_at is None and job.stems == []
    assert not (pipeline.stems_dir / cancelled.id).exists()
    assert pipeline.queue.pending_count() == 0


def test_same_audio_reuses_stems_unless_forced(pipeline, user, make_track, shared_worker):
    first_track = make_track(seed=7)
    same_audio = make_track(seed=7)  # a second upload of the same file
    assert first_track.content_hash == same_audio.content_hash
    original = wait_final(pipeline, create_separation_job(
        pipeline, user, first_track, {"stems": "vocals,drums"}).id)
    assert original.status == "completed"

    reused = create_separation_job(pipeline, user, same_audio, {"stems": "drums,vocals"})
    assert reused.status == "completed" and reused.progress == 100
    assert reused.reused_from_job_id == original.id
    assert sorted(s.stem_type for s in reused.stems) == ["drums", "vocals"]
    for stem in reused.stems:
        assert stem.file_path.startswith(f"stems/{reused.id}/")
        assert resolve_upload(pipeline.settings, stem.file_path).is_file()

    # Each job owns its files: removing the original's does not break the reuse.
    from soundforge.jobs.deletion import delete_track

    delete_track(pipeline, user, first_track.id)
    for stem in reused.stems:
        assert resolve_upload(pipeline.settings, stem.file_path).is_file()

    forced = create_separation_job(pipeline, user, same_audio, {"stems": "vocals,drums"},
                                   force=True)
    assert forced.status == "queued" and forced.reused_from_job_id is None
    assert wait_final(pipeline, forced.id).status == "completed"
    # Different options are different work.
    other = create_separation_job(pipeline, user, same_audio, {"stems": "vocals"})
    assert other.status == "queued"
