"""The 60-second preview. LALAL.AI has no preview flag, so we upload only the
first 60 seconds of the track, cut here and written as a temporary FLAC file
(lossless, and about half the bytes of WAV to upload)."""

from __future__ import annotations

from pathlib import Path

from soundforge.audio.probe import AudioInfo
from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import StemWriter

PREVIEW_SECONDS = 60.0


def cut_preview(
    input_path: Path, info: AudioInfo, dest_dir: Path, seconds: float = PREVIEW_SECONDS
) -> tuple[Path, float]:
    """Write the first ``seconds`` of ``input_path`` into ``dest_dir``; returns
    the file and its exact duration (shorter when the track is)."""
    channels = min(info.channels, 2)
    reader = AudioReader(input_path, channels=channels, info=info)
    limit = max(1, round(seconds * info.sample_rate))
    # The provider shows this name in its dashboard; keep the original one.
    path = dest_dir / f"{Path(input_path).stem} (preview).flac"
    writer = StemWriter(
        path, "flac", sample_rate=info.sample_rate, channels=channels,
        source_rate=info.sample_rate, source_channels=channels, wav_depth="24",
    )
    written = 0
    blocks = iter(reader)
    try:
        for block in blocks:
            take = min(block.shape[1], limit - written)
            writer.write(block[:, :take])
            written += take
            if written >= limit:
                break
        writer.finish(written)
    except BaseException:
        writer.abort()
        raise
    finally:
        # Stop decoding the rest of a long file (closes the container now).
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    return path, written / info.sample_rate
