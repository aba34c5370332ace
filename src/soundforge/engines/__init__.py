"""Separation engines: ``local`` (Demucs) and ``lalalai`` (cloud), one interface."""
