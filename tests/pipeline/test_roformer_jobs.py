"""A worker runs RoFormer jobs end to end: a real ``soundforge worker`` process,
the tiny published-format RoFormers from the model repository. A RoFormer job
whose model files are missing is checked with the other engine failures, by the
worker of test_worker.py's test_engine_failures_end_failed_with_the_engine_message."""

from __future__ import annotations

from sqlalchemy import select

from soundforge.db.models import Stem
from soundforge.jobs import cancel_job, create_separation_job
from soundforge.library.files import resolve_upload
from tests.pipeline.conftest import staging_dirs, wait_final, wait_status


def test_roformer_jobs_complete_with_their_stems(pipeline, user, make_track, shared_worker):
    track = make_track(seconds=2.0)
    karaoke = create_separation_job(
        pipeline, user, track, {"model": "mel_roformer_karaoke", "two_stems": "vocals"}
    )
    six = create_separation_job(
        pipeline, user, track, {"model": "bs_roformer_6s", "stems": ["guitar", "piano"],
                                "format": "flac"}
    )
    expected = {karaoke.id: ["no_vocals", "vocals"], six.id: ["guitar", "piano"]}
    for job_id, stems in expected.items():
        done = wait_final(pipeline, job_id)
        assert done.status == "completed", done.error_message
        with pipeline.db.session() as session:
            rows = list(session.scalars(select(Stem).where(Stem.job_id == job_id)).all())
        assert sorted(row.stem_type for row in rows) == stems
        for row in rows:
            assert resolve_upload(pipeline.settings, row.file_path).stat().st_size > 0
            assert abs(row.duration - 2.0) < 0.05
    assert staging_dirs(pipeline) == []


def test_cancelling_a_running_roformer_job_keeps_nothing(
    pipeline, user, make_track, shared_worker
):
    worker = shared_worker
    job = create_separation_job(pipeline, user, make_track(seconds=30.0),
                                {"model": "bs_roformer_6s"})
    wait_status(pipeline, job.id, "running", min_progress=10)
    answer = cancel_job(pipeline, user, job.id)
    assert answer.cancel_requested
    done = wait_final(pipeline, job.id)
    assert done.status == "cancelled", done.error_message
    assert done.progress < 100
    assert not (pipeline.stems_dir / job.id).exists()
    assert staging_dirs(pipeline) == []
    assert worker.alive()
