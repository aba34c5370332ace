"""What the engine had to do to finish a job reaches the job: an out-of-memory
retry with shorter segments is an entry ``notice`` in the job's history."""

from __future__ import annotations

import os
from pathlib import Path

from soundforge.jobs import create_separation_job
from tests.pipeline.conftest import wait_final

OOM_SITE = Path(__file__).resolve().parents[1] / "support" / "oom_site"


def test_an_out_of_memory_retry_is_written_to_the_jobs_history(
    pipeline, user, make_track, start_worker
) -> None:
    # The tiny htdemucs runs 2 s windows; a "card" that fits 1.5 s makes the
    # runner start again with 1 s segments, and say so.
    path = os.pathsep.join([str(OOM_SITE), os.environ.get("PYTHONPATH", "")])
    start_worker(PYTHONPATH=path, SOUNDFORGE_TEST_OOM_SECONDS="1.5")
    job = create_separation_job(pipeline, user, make_track(seconds=4.0), {"stems": "vocals"})
    done = wait_final(pipeline, job.id)
    assert done.status == "completed", done.error_message
    notices = [entry for entry in done.history if entry["event"] == "notice"]
    assert [entry["message"] for entry in notices] == [
        "Out of cpu memory with 2 s segments one at a time: starting again with 1 s segments."
    ]
    assert notices[0]["attempt"] == 1
