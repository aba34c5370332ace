"""Result tracks: downloaded streaming, then written as stems.

A track is streamed to a scratch file (never into the staging folder, whose
every file becomes a stem on commit), checked to be complete, then decoded and
written through ``StemWriter`` in the format, depth and rate asked for. A
download that breaks off is retried from the start; one that keeps failing
fails the separation, and the scratch file goes with the scratch folder, so no
partial stem is ever left behind.

Download links are signed CDN URLs, possibly on another host than the API, so
this client has no license key at all: the key must not travel there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from soundforge.audio.probe import probe
from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import StemWriter
from soundforge.engines.base import CancelToken, SeparationOptions
from soundforge.engines.lalalai.client import DEFAULT_TIMEOUT, make_transport, shared_ssl_context
from soundforge.engines.lalalai.errors import ProviderUnavailableError
from soundforge.engines.lalalai.retrying import RETRYABLE_EXCEPTIONS, RetryPolicy, retrying
from soundforge.errors import (
    CancelledError,
    InputAudioError,
    OutputError,
    ProviderError,
)
from soundforge.storage.staging import describe_os_error

log = logging.getLogger(__name__)

CHUNK = 1 << 16


class _Incomplete(Exception):
    """The body ended before Content-Length bytes arrived."""


class _ServerError(Exception):
    """The CDN answered 5xx: worth another try."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# What makes a download worth another try from the start.
_RETRY_ON: tuple[type[Exception], ...] = (*RETRYABLE_EXCEPTIONS, _Incomplete, _ServerError)


class TrackDownloader:
    def __init__(
        self, retry: RetryPolicy | None = None, timeout: httpx.Timeout | None = None
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            timeout=timeout or DEFAULT_TIMEOUT,
            follow_redirects=True,
            verify=shared_ssl_context(),
            transport=make_transport(),
        )

    def fetch(
        self,
        url: str,
        dest: Path,
        *,
        label: str,
        cancel: CancelToken | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """Download ``url`` into ``dest`` completely, or raise."""
        tries = 0

        def one_try() -> None:
            nonlocal tries
            tries += 1
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                self._fetch_once(url, dest, cancel, on_bytes)
            except _RETRY_ON as exc:
                log.warning(
                    "Download of LALAL.AI track %s failed (%s), try %d of %d",
                    label, _reason(exc), tries, self.retry.attempts,
                )
                raise

        try:
            retrying(self.retry, cancel, _RETRY_ON)(one_try)
        except _RETRY_ON as exc:
            raise ProviderUnavailableError(
                f"Downloading the {label!r} track from LALAL.AI failed {tries} times "
                f"({_reason(exc)}). Check the network connection and try again; no partial "
                "stem was kept."
            ) from None
        return dest

    def _fetch_once(
        self,
        url: str,
        dest: Path,
        cancel: CancelToken | None,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        with self._http.stream("GET", url) as response:
            status = response.status_code
            if status >= 500:
                raise _ServerError(status)
            if status != 200:
                raise ProviderError(
                    f"A result track could not be downloaded from LALAL.AI (HTTP {status}); "
                    "the link may have expired or the file was deleted. Run the "
                    "separation again."
                )
            expected: int | None = None
            if "content-encoding" not in response.headers:
                try:
                    expected = int(response.headers.get("content-length", ""))
                except ValueError:
                    expected = None
            # Raw bytes when we can count them against Content-Length.
            chunks = response.iter_raw(CHUNK) if expected is not None else response.iter_bytes(
                CHUNK
            )
            received = 0
            try:
                with open(dest, "wb") as handle:
                    for chunk in chunks:
                        if cancel is not None and cancel.cancelled:
                            raise CancelledError()
                        handle.write(chunk)
                        received += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
            except OSError as exc:
                raise OutputError(describe_os_error(exc, dest)) from None
            if expected is not None and received != expected:
                raise _Incomplete()

    def close(self) -> None:
        self._http.close()


def _reason(exc: BaseException) -> str:
    """Why one download try failed, in words for the log and the final error."""
    if isinstance(exc, _ServerError):
        return f"HTTP {exc.status}"
    return "it timed out" if isinstance(exc, httpx.TimeoutException) else "it broke off"


def output_channels(input_channels: int) -> int:
    """Mono in, mono out; everything else as stereo (as the local engine does)."""
    return 1 if input_channels == 1 else 2


def write_stem(
    track_file: Path,
    out_path: Path,
    options: SeparationOptions,
    *,
    sample_rate: int,
    channels: int,
    label: str,
    cancel: CancelToken | None = None,
) -> tuple[Path, int]:
    """Decode a downloaded track and write it as a stem (format, depth, rate);
    returns the file and its length in frames at the written rate."""
    try:
        info = probe(track_file)
    except InputAudioError:
        raise ProviderError(
            f"LALAL.AI sent a {label!r} track that is not readable audio. Try again; if "
            "it keeps happening, the provider is having trouble."
        ) from None
    reader = AudioReader(track_file, channels=min(info.channels, 2), info=info)
    writer = StemWriter(
        out_path, options.format, sample_rate=sample_rate, channels=channels,
        source_rate=info.sample_rate, source_channels=reader.channels,
        wav_depth=options.wav_depth, mp3_bitrate=options.mp3_bitrate,
    )
    try:
        for block in reader:
            if cancel is not None and cancel.cancelled:
                raise CancelledError()
            writer.write(block)
        path = writer.finish(round(reader.frames * writer.sample_rate / info.sample_rate))
        return path, writer.frames_written
    except InputAudioError:
        writer.abort()
        raise ProviderError(
            f"LALAL.AI sent a {label!r} track that is damaged. Try again."
        ) from None
    except BaseException:
        writer.abort()
        raise


def write_silence(
    out_path: Path,
    options: SeparationOptions,
    *,
    frames: int,
    sample_rate: int,
    channels: int,
) -> Path:
    """A silent stem of ``frames`` frames at ``sample_rate`` (the written rate)."""
    writer = StemWriter(
        out_path, options.format, sample_rate=sample_rate, channels=channels,
        source_rate=sample_rate, source_channels=channels,
        wav_depth=options.wav_depth, mp3_bitrate=options.mp3_bitrate,
    )
    try:
        writer.write(np.zeros((channels, 0), dtype=np.float32))
        return writer.finish(frames)
    except BaseException:
        writer.abort()
        raise
