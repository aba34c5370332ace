"""The local engine: Demucs models run in a supervised runner process."""
