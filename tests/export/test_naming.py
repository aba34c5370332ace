"""``--filename`` templates: names, subfolders, and the templates refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from soundforge.errors import InvalidOptionError
from soundforge.export.naming import FilenameTemplate
from tests.export.conftest import soundforge
from tests.support.audio import write_audio


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_separate_names_files_by_the_template_with_subfolders(
    model_env: Path, tmp_path: Path
) -> None:
    # Every variable in one run (a separation each cost a runner: ~2 s of CPU).
    # A template without subfolders, the default format and --stems: the
    # two-inputs test below.
    song = write_audio(tmp_path / "My Song.wav", seconds=1.5)
    out = tmp_path / "out"
    result = soundforge("separate", song, "--two-stems", "vocals", "-o", out, "--filename",
                        "{engine}/{model}/{date}_{track}-{stem}.{ext}", "--format", "flac")
    assert result.returncode == 0, result.stderr
    today = f"{date.today():%Y-%m-%d}"
    assert files(out) == [
        f"local/htdemucs/{today}_My Song-no_vocals.flac",
        f"local/htdemucs/{today}_My Song-vocals.flac",
    ]
    # No work folder is left behind.
    assert sorted(p.name for p in out.iterdir()) == ["local"]


@pytest.mark.slow
def test_two_inputs_that_the_template_would_put_in_one_file_are_refused(
    model_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_audio(tmp_path / "a" / "song.wav", seconds=1.0)
    second = write_audio(tmp_path / "b" / "song.wav", seconds=1.0, seed=3)
    out = tmp_path / "out"
    result = soundforge("separate", first, second, "--stems", "vocals", "-o", out,
                        "--filename", "{stem}.{ext}")
    assert result.returncode == 1
    assert "which" in result.stderr and "was just written to" in result.stderr
    # The first input's stem is there, untouched by the second.
    assert files(out) == ["vocals.wav"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{track}/{stem}.{bitrate}", "unknown variable {bitrate}"),
        ("{stem!r}.{ext}", "unknown variable {stem!r}"),
        ("../{stem}.{ext}", "contains '..'"),
        ("{track}/../../{stem}.{ext}", "contains '..'"),
        ("/tmp/{stem}.{ext}", "is an absolute path"),
        ("{track}.{ext}", "has no {stem}"),
        ("{track}/{stem}", "has no {ext}"),
        ("{track}//{stem}.{ext}", "empty folder name"),
        ("{track/{stem}.{ext}", "malformed"),
        ("", "is empty"),
    ],
)
def test_bad_templates_are_refused_before_anything_is_separated(
    tmp_path: Path, template: str, message: str
) -> None:
    song = write_audio(tmp_path / "song.wav", seconds=0.5)
    result = soundforge("separate", song, "-o", tmp_path / "out", "--filename", template)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_values_are_made_safe_and_cannot_make_folders_or_climb() -> None:
    template = FilenameTemplate.parse("{track}/{stem}.{ext}")
    rendered = template.render_stems(
        ["vocals"], "wav", {"track": "AC/DC: Back\\in Black", "model": "m", "engine": "e"}
    )
    assert rendered == {"vocals": "AC_DC_ Back_in Black/vocals.wav"}
    assert template.render({"track": "..", "stem": "vocals", "ext": "wav"}) == "track/vocals.wav"
    # One sanitiser for every file name (soundforge.filenames.safe_filename): the
    # dots and separators at the ends go, as they do in download names.
    assert template.render({"track": "../../etc", "stem": "x", "ext": "wav"}) == "etc/x.wav"
    assert template.render({"track": "Intro. ", "stem": "x", "ext": "wav"}) == "Intro/x.wav"


def test_stems_that_would_share_a_file_are_refused() -> None:
    template = FilenameTemplate.parse("{track}-{stem}.{ext}")
    with pytest.raises(InvalidOptionError, match="names both the Vocals and the vocals stem"):
        template.render_stems(["Vocals", "vocals"], "wav", {"track": "t"})
