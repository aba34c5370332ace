"""The settings tables of the docs are written from the settings classes (cog)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cogapp import Cog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from soundforge.config import Settings
from soundforge.config_docs import settings_table
from soundforge.jobs.config import PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
COGGED = ["README.md", "docs/pipeline.md"]


def test_the_docs_tables_match_the_settings_classes(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert Cog().main(["cog", "--check", *COGGED]) == 0, "run `make docs`"


def test_every_setting_is_in_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    pipeline = (ROOT / "docs" / "pipeline.md").read_text()
    for name in Settings.model_fields:
        if name.startswith(("lalalai_api_key", "system_lalalai")):
            continue
        assert f"`SOUNDFORGE_{name.upper()}`" in readme, name
    assert "`LALALAI_API_KEY`" in readme and "`SYSTEM_LALALAI_ACTIVATION_KEY`" in readme
    for name in PipelineSettings.model_fields:
        assert f"`SOUNDFORGE_{name.upper()}`" in pipeline, name


def test_a_table_row_has_the_variable_its_default_and_its_description() -> None:
    class Knobs(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_")
        wait: float = Field(default=2.0, description="Seconds | to wait.")
        url: str | None = Field(default=None, description="Where.",
                                json_schema_extra={"shown_default": "computed"})

    assert settings_table(Knobs).splitlines()[2:] == [
        "| `DEMO_WAIT` | `2` | Seconds \\| to wait. |",
        "| `DEMO_URL` | computed | Where. |",
    ]


def test_a_setting_without_a_description_is_refused() -> None:
    class Undocumented(BaseSettings):
        secret_knob: int = 3

    with pytest.raises(ValueError, match=r"Undocumented\.secret_knob has no description"):
        settings_table(Undocumented)
