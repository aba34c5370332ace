"""Audio in and out: probing, streaming decode, resampling and stem writers."""

from soundforge.audio.probe import AudioInfo, probe
from soundforge.audio.reader import iter_audio, read_audio
from soundforge.audio.writer import StemWriter, stem_filename

__all__ = ["AudioInfo", "StemWriter", "iter_audio", "probe", "read_audio", "stem_filename"]
