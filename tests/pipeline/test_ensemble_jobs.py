"""Ensemble jobs: run by a real worker, refused up front, keyed by their definition."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from soundforge.db.models import Stem
from soundforge.engines.base import SeparationOptions
from soundforge.engines.local.ensemble import presets
from soundforge.errors import InvalidOptionError
from soundforge.jobs import create_separation_job
from soundforge.jobs.options import options_key
from soundforge.library.files import resolve_upload
from tests.pipeline.conftest import wait_final


def stems_of(pipeline, job_id: str) -> list[Stem]:
    with pipeline.db.session() as session:
        return list(session.scalars(select(Stem).where(Stem.job_id == job_id)).all())


def test_worker_runs_a_preset_and_a_typed_ensemble(pipeline, user, make_track, shared_worker):
    track = make_track(seconds=4.0)
    preset = wait_final(pipeline, create_separation_job(
        pipeline, user, track, {"model": "ensemble_six_stems", "format": "flac"}).id)
    assert preset.status == "completed", preset.error_message
    assert preset.model == "ensemble_six_stems"
    stems = stems_of(pipeline, preset.id)
    assert sorted(s.stem_type for s in stems) == [
        "bass", "drums", "guitar", "other", "piano", "vocals"]
    for stem in stems:
        assert resolve_upload(pipeline.settings, stem.file_path).stat().st_size > 0
        assert stem.duration == pytest.approx(4.0, abs=0.05)

    karaoke = wait_final(pipeline, create_separation_job(
        pipeline, user, track, {"model": "max-spec/htdemucs+htdemucs_ft",
                                "two_stems": "vocals"}).id)
    assert karaoke.status == "completed", karaoke.error_message
    assert sorted(s.stem_type for s in stems_of(pipeline, karaoke.id)) == ["no_vocals", "vocals"]


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("htdemucs+htdemucs", "appears twice"),
        ("htdemucs+nonesuch", "Unknown model 'nonesuch' in ensemble"),
        ("min-spec/htdemucs_ft", "needs two or more models"),
    ],
)
def test_bad_ensembles_are_refused_before_a_job_exists(
    pipeline, user, make_track, model, words
):
    with pytest.raises(InvalidOptionError, match=words):
        create_separation_job(pipeline, user, make_track(), {"model": model})
    assert pipeline.queue.pending_job_ids() == set()


def test_the_key_follows_the_ensemble_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    def key(model: str) -> str:
        return options_key("local", SeparationOptions(model=model))

    definition = presets.PRESETS["ensemble_average"].definition
    # A preset is the same work as its definition, however it is spelt …
    assert key("ensemble_average") == key(definition) == key("htdemucs_ft:1+mdx_extra")
    # … and different weights, combiners or members are different work.
    assert len({key(definition), key("htdemucs_ft:2+mdx_extra"),
                key("max-spec/htdemucs_ft+mdx_extra"), key("htdemucs_ft")}) == 4
    # A preset whose members change does not reuse the stems of its old definition.
    before = key("ensemble_average")
    monkeypatch.setitem(presets.PRESETS, "ensemble_average", presets.Preset(
        "ensemble_average", "htdemucs+mdx_extra", "changed"))
    assert key("ensemble_average") != before


def test_a_long_typed_ensemble_fits_the_job_row_and_keeps_its_definition(
    pipeline, user, make_track
):
    long = ("htdemucs_ft:2@drums,bass,vocals,other+htdemucs_6s:1.5@guitar,piano,other"
            "+mdx_extra@vocals")
    job = create_separation_job(pipeline, user, make_track(), {"model": long})
    assert len(long) > 64 and len(job.model) == 64 and job.model.endswith("…")
    assert long.startswith(job.model[:-1])
    assert job.options["model"] == long
