"""NI Stems files, checked with readers other than our writer: ffprobe and
ffmpeg, stempeg's reader and mutagen's MP4 atom parser."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mutagen.flac
import numpy as np
import pytest
import soundfile as sf
import stempeg
from mutagen.mp4 import Atoms
from PIL import Image

from tests.export.conftest import (
    RATE,
    best_lag,
    ffmpeg_decode,
    ffprobe,
    make_stems,
    needs_ffmpeg,
    snr_db,
    soundforge,
)

pytestmark = needs_ffmpeg

FOUR = ("drums", "bass", "other", "vocals")


def stem_box(path: Path) -> dict:
    """The JSON of moov/udta/stem, found by mutagen's parser (not ours)."""
    with open(path, "rb") as handle:
        atom = Atoms(handle).path(b"moov", b"udta", b"stem")[-1]
        ok, data = atom.read(handle)
    assert ok
    return json.loads(data)


def track_enabled_flags(path: Path) -> list[bool]:
    """Bit 0 of each track's tkhd flags: 1 = enabled (ordinary players play it)."""
    flags = []
    with open(path, "rb") as handle:
        atoms = Atoms(handle)
        for trak in atoms.path(b"moov")[-1].findall(b"trak"):
            tkhd = next(trak.findall(b"tkhd"))
            handle.seek(tkhd.offset + 8)
            flags.append(bool(int.from_bytes(handle.read(4)[1:], "big") & 1))
    return flags


def tagged_original(path: Path, signals: dict[str, np.ndarray]) -> Path:
    """The original mix as a FLAC with title, artist, album and a cover."""
    mix = sum(signals.values())
    sf.write(str(path), mix, RATE, subtype="PCM_24")
    tags = mutagen.flac.FLAC(str(path))
    tags["title"] = "Night Drive"
    tags["artist"] = "The Testers"
    tags["album"] = "Fixtures"
    picture = mutagen.flac.Picture()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 90)).save(buffer, "PNG")
    picture.data = buffer.getvalue()
    picture.mime = "image/png"
    picture.type = 3
    tags.add_picture(picture)
    tags.save()
    return path


def test_an_nistems_file_has_a_master_four_disabled_stems_and_the_stem_box(
    tmp_path: Path,
) -> None:
    signals = make_stems(tmp_path / "song", FOUR, seconds=3.0)
    original = tagged_original(tmp_path / "song.flac", signals)
    result = soundforge("export-stems", tmp_path / "song", "--master", original)
    assert result.returncode == 0, result.stderr
    produced = tmp_path / "song.stem.mp4"
    assert str(produced) in result.stdout

    info = ffprobe(produced)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(audio) == 5
    for stream in audio:
        assert stream["codec_name"] == "aac"
        assert stream["channels"] == 2
        assert int(stream["sample_rate"]) == RATE
        assert abs(float(stream["duration"]) - 3.0) < 0.005
        assert int(stream["bit_rate"]) > 100_000
    assert [s["disposition"]["default"] for s in audio] == [1, 0, 0, 0, 0]
    assert track_enabled_flags(produced)[:5] == [True, False, False, False, False]

    box = stem_box(produced)
    assert box["version"] == 1
    assert box["mastering_dsp"]["compressor"]["enabled"] is False
    assert box["mastering_dsp"]["limiter"]["enabled"] is False
    assert box["stems"] == [
        {"name": "Drums", "color": "#009E73"},
        {"name": "Bass", "color": "#D55E00"},
        {"name": "Other", "color": "#CC79A7"},
        {"name": "Vocals", "color": "#56B4E9"},
    ]

    # Tags and cover art came from the original.
    tags = info["format"]["tags"]
    assert tags["title"] == "Night Drive"
    assert tags["artist"] == "The Testers"
    assert tags["album"] == "Fixtures"
    covers = [s for s in info["streams"] if s.get("disposition", {}).get("attached_pic")]
    assert len(covers) == 1 and covers[0]["codec_name"] == "png"

    # stempeg's reader opens it as five stereo streams of the right length.
    stems, rate = stempeg.read_stems(str(produced), dtype=np.float32)
    assert rate == RATE
    assert stems.shape[0] == 5 and stems.shape[2] == 2
    assert abs(stems.shape[1] - 3 * RATE) <= 2048
    assert stempeg.Info(str(produced)).nb_audio_streams == 5


def test_the_five_tracks_are_sample_aligned_with_the_stems_and_the_master(
    tmp_path: Path,
) -> None:
    signals = make_stems(tmp_path / "song", FOUR, seconds=3.0)
    original = tagged_original(tmp_path / "song.flac", signals)
    produced = tmp_path / "aligned.stem.mp4"
    result = soundforge("export-stems", tmp_path / "song", "--master", original, "-o", produced)
    assert result.returncode == 0, result.stderr

    references = [sum(signals.values()), *(signals[name] for name in FOUR)]
    frames = 3 * RATE
    for index, reference in enumerate(references):
        decoded = ffmpeg_decode(produced, index)
        # AAC's priming is undone by the edit list: no track is shifted.
        assert best_lag(reference, decoded) == 0, f"track {index}"
        # The padding at the end is at most one AAC frame.
        assert frames <= decoded.shape[0] <= frames + 1024
        assert snr_db(reference, decoded[:frames]) > 25, f"track {index}"

    # An ordinary player (ffmpeg with no stream chosen) plays the master.
    played = ffmpeg_decode(produced)
    assert snr_db(references[0], played[:frames]) > 25


def test_alac_is_lossless(tmp_path: Path) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=2.0, subtype="PCM_16")
    result = soundforge(
        "export-stems", tmp_path / "song", "--stem-codec", "alac", "-o", tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    produced = tmp_path / "out" / "song.stem.mp4"
    audio = [s for s in ffprobe(produced)["streams"] if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in audio] == ["alac"] * 5
    stored = {name: sf.read(str(tmp_path / "song" / f"{name}.wav"), dtype="float32")[0]
              for name in FOUR}
    for index, name in enumerate(FOUR, start=1):
        decoded = ffmpeg_decode(produced, index)
        assert decoded.shape == stored[name].shape
        # The same 16-bit samples, bit for bit.
        np.testing.assert_array_equal(decoded, stored[name])
    # Without an original the master is the sum of the stems (rounded to 16 bits).
    master = ffmpeg_decode(produced, 0)
    np.testing.assert_allclose(master, sum(stored.values()), atol=1.01 / 32768)


def test_six_stems_go_into_four_slots_by_default_and_as_the_user_says(tmp_path: Path) -> None:
    six = ("drums", "bass", "other", "vocals", "guitar", "piano")
    signals = make_stems(tmp_path / "six", six, seconds=2.0, subtype="PCM_16")
    produced = tmp_path / "default.stem.mp4"
    result = soundforge("export-stems", tmp_path / "six", "--stem-codec", "alac", "-o", produced)
    assert result.returncode == 0, result.stderr
    assert "other: other+guitar+piano" in result.stdout
    other = ffmpeg_decode(produced, 3)
    expected = signals["other"] + signals["guitar"] + signals["piano"]
    np.testing.assert_allclose(other, expected, atol=4 / 32768)
    assert [s["name"] for s in stem_box(produced)["stems"]] == [
        "Drums", "Bass", "Other", "Vocals"]

    custom = tmp_path / "custom.stem.mp4"
    result = soundforge("export-stems", tmp_path / "six", "--stem-codec", "alac", "-o", custom,
                        "--stem-map", "vocals=vocals+piano, bass=guitar")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(ffmpeg_decode(custom, 4), signals["vocals"] + signals["piano"],
                               atol=3 / 32768)
    np.testing.assert_allclose(ffmpeg_decode(custom, 2), signals["guitar"], atol=2 / 32768)
    # bass was pushed out of its slot by the override and is left out on purpose.
    np.testing.assert_allclose(ffmpeg_decode(custom, 3), signals["other"], atol=2 / 32768)
    assert [s["name"] for s in stem_box(custom)["stems"]] == [
        "Drums", "Guitar", "Other", "Vocals"]


def test_a_two_stem_separation_fills_vocals_and_other(tmp_path: Path) -> None:
    signals = make_stems(tmp_path / "karaoke", ("vocals", "no_vocals"), seconds=2.0,
                         subtype="PCM_16")
    produced = tmp_path / "k.stem.mp4"
    result = soundforge("export-stems", tmp_path / "karaoke", "--stem-codec", "alac",
                        "-o", produced)
    assert result.returncode == 0, result.stderr
    assert "drums: silent" in result.stdout
    assert not np.any(ffmpeg_decode(produced, 1))  # drums slot: silence
    np.testing.assert_allclose(ffmpeg_decode(produced, 3), signals["no_vocals"], atol=2 / 32768)
    assert [s["name"] for s in stem_box(produced)["stems"]] == [
        "Drums", "Bass", "No vocals", "Vocals"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stem-codec", "opus"], "Unknown stem codec 'opus'"),
        (["--stem-map", "lead=vocals"], "slots drums, bass, other, vocals"),
        (["--stem-map", "vocals=flute"], "does not have: its stems are"),
        (["--stem-map", "vocals=vocals,other=vocals"], "into two slots"),
        (["-o", "wrong.mp4"], "must end in .stem.mp4"),
    ],
)
def test_bad_export_options_are_refused_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    make_stems(tmp_path / "song", FOUR, seconds=1.0)
    result = soundforge("export-stems", tmp_path / "song", *args, env={"COLUMNS": "300"})
    assert result.returncode in (1, 2)
    assert message in " ".join(result.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]
    assert sorted(p.name for p in (tmp_path / "song").iterdir()) == [
        f"{n}.wav" for n in sorted(FOUR)]


def test_a_missing_or_empty_source_says_what_to_give(tmp_path: Path) -> None:
    result = soundforge("export-stems", tmp_path / "nowhere")
    assert result.returncode == 2
    assert "no such folder" in result.stderr
    (tmp_path / "empty").mkdir()
    result = soundforge("export-stems", tmp_path / "empty")
    assert result.returncode == 2
    assert "holds no stems" in result.stderr
    result = soundforge("export-stems", "0b7f3c1e-2d4a-4e8b-9c1d-5f6a7b8c9d0e",
                        env={"SOUNDFORGE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2
    assert "0b7f3c1e-2d4a-4e8b-9c1d-5f6a7b8c9d0e" in result.stderr


@pytest.mark.slow
def test_separate_writes_an_nistems_file_with_the_input_as_master(
    model_env: Path, tmp_path: Path
) -> None:
    signals = make_stems(tmp_path / "parts", FOUR, seconds=2.0)
    original = tagged_original(tmp_path / "Night Drive.flac", signals)
    out = tmp_path / "out"
    result = soundforge("separate", original, "--format", "stem.mp4", "-o", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["Night Drive.stem.mp4"]
    produced = out / "Night Drive.stem.mp4"
    info = ffprobe(produced)
    assert len([s for s in info["streams"] if s["codec_type"] == "audio"]) == 5
    assert info["format"]["tags"]["artist"] == "The Testers"
    master = ffmpeg_decode(produced, 0)
    reference, _ = sf.read(str(original), dtype="float32")
    assert best_lag(reference, master) == 0
    assert snr_db(reference, master[: len(reference)]) > 25
    assert stem_box(produced)["stems"][3]["name"] == "Vocals"


def test_separate_refuses_stem_in_an_nistems_template(model_env: Path, tmp_path: Path) -> None:
    make_stems(tmp_path / "parts", FOUR, seconds=1.0)
    song = tmp_path / "parts" / "vocals.wav"
    result = soundforge("separate", song, "--format", "stem.mp4", "--filename",
                        "{track}-{stem}.{ext}", "-o", tmp_path / "out", env={"COLUMNS": "300"})
    assert result.returncode == 2
    assert "one NI Stems file holds every stem" in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_default_mapping_of_other_stem_sets() -> None:
    from soundforge.export.nistems import default_mapping

    lalalai = ("vocals", "backing_vocals", "drums", "electric_guitar", "synth", "rest")
    assert default_mapping(lalalai) == {
        "drums": ("drums",), "bass": (),
        "other": ("electric_guitar", "synth", "rest"),
        "vocals": ("vocals", "backing_vocals"),
    }
    assert default_mapping(("drums", "no_drums")) == {
        "drums": ("drums",), "bass": (), "other": ("no_drums",), "vocals": ()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stem-codec", "alac"], "add --format stem.mp4"),
        (["--stem-map", "other=other"], "add --format stem.mp4"),
        (["--format", "stem.mp4", "--stem-codec", "flac"], "Unknown stem codec 'flac'"),
    ],
)
def test_separate_refuses_nistems_options_that_would_do_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    make_stems(tmp_path / "parts", FOUR, seconds=0.5)
    result = soundforge("separate", tmp_path / "parts" / "vocals.wav", "-o", tmp_path / "out",
                        *args, env={"COLUMNS": "300"})
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def _layout(path: Path) -> dict:
    """What DJ software looks at, read with mutagen: the boxes on the way to the
    stem box, each track's handler and enabled flag, the JSON's shape."""
    with open(path, "rb") as handle:
        atoms = Atoms(handle)
        moov = atoms.path(b"moov")[-1]
        tracks = []
        for trak in moov.findall(b"trak"):
            tkhd = next(trak.findall(b"tkhd"))
            handle.seek(tkhd.offset + 8)
            enabled = bool(int.from_bytes(handle.read(4)[1:], "big") & 1)
            hdlr = trak[b"mdia", b"hdlr"]
            handle.seek(hdlr.offset + 16)
            tracks.append((handle.read(4), enabled))
        udta = moov[(b"udta",)]
        ok, data = udta[(b"stem",)].read(handle)
    assert ok
    box = json.loads(data)
    return {
        "udta": [child.name for child in udta.children],
        "tracks": tracks,
        "keys": sorted(box),
        "compressor": sorted(box["mastering_dsp"]["compressor"]),
        "limiter": sorted(box["mastering_dsp"]["limiter"]),
        "stem_keys": [sorted(stem) for stem in box["stems"]],
        "colors": [stem["color"] for stem in box["stems"]],
    }


def test_the_layout_matches_a_reference_nistems_file(tmp_path: Path) -> None:
    """stempeg ships a stem file made by NI's tools; ours must match it box by box
    where DJ software looks (the stem box's place, five sound tracks with only
    the first enabled, the JSON's fields and colours)."""
    reference = Path(stempeg.example_stem_path())
    make_stems(tmp_path / "song", FOUR, seconds=1.0)
    result = soundforge("export-stems", tmp_path / "song")
    assert result.returncode == 0, result.stderr
    ours = _layout(tmp_path / "song.stem.mp4")
    theirs = _layout(reference)
    assert theirs["tracks"] == [(b"soun", True)] + [(b"soun", False)] * 4
    assert ours == theirs
