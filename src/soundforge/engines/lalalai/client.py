"""HTTP client for the LALAL.AI v1 API: one method per endpoint SoundForge uses.

What it takes care of so that callers don't:

* auth: ``X-License-Key`` is added per request by ``_LicenseKeyAuth``; the key
  never sits in default headers, reprs, log lines or exception messages;
* retries with exponential back-off and jitter on network errors and 5xx
  (``retrying.py``, one tenacity loop per request);
  ``internal_error`` on a task start is retried with the *same* idempotency key
  (the provider's documented remedy, which also makes a retry after a lost
  answer safe: the provider returns the task it already created);
* every other error is final and becomes a ``SoundForgeError`` whose message
  says what happened in words a user can act on (``http_errors.py``);
* answers become typed values (``responses.py``);
* the upload body streams from disk and checks for cancellation per chunk.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from soundforge.engines.base import CancelToken
from soundforge.engines.lalalai.errors import ProviderUnavailableError
from soundforge.engines.lalalai.http_errors import error_for, network_reason, payload_of
from soundforge.engines.lalalai.keys import scrub
from soundforge.engines.lalalai.responses import (
    CancelOutcome,
    TaskStatus,
    UploadedSource,
    parse_cancel,
    parse_status,
)
from soundforge.engines.lalalai.retrying import RETRYABLE_EXCEPTIONS, RetryPolicy, retrying
from soundforge.errors import CancelledError, InputAudioError, ProviderError, SoundForgeError
from soundforge.filenames import content_disposition

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=30.0)
UPLOAD_CHUNK = 1 << 20
# httpx writes a POST's headers and body separately; without TCP_NODELAY,
# Nagle's algorithm and the server's delayed ACK add ~40 ms to every small
# JSON request, which for a poll loop is pure waste.
SOCKET_OPTIONS: list[tuple[int, int, int]] = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: building one loads the
    CA bundle (~0.3 s), and the poller creates a client each time it wakes up."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def make_transport() -> httpx.HTTPTransport:
    return httpx.HTTPTransport(verify=shared_ssl_context(), socket_options=SOCKET_OPTIONS)


# /check/ accepts at most this many task ids per request.
CHECK_MAX_IDS = 200

class _LicenseKeyAuth(httpx.Auth):
    """Adds the key to each request at send time, so it is in no default header
    that a debugger, a repr or a hook could print."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self._key.get_secret_value()
        if key:
            request.headers["X-License-Key"] = key
        yield request

    def __repr__(self) -> str:
        return "<LALAL.AI license key auth>"


class LalalaiClient:
    """Synchronous client; safe to share between threads (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        key: SecretStr,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry = retry or RetryPolicy()
        self._key = key
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=_LicenseKeyAuth(key),
            timeout=timeout or DEFAULT_TIMEOUT,
            headers={"Accept": "application/json"},
            verify=shared_ssl_context(),
            transport=make_transport(),
        )

    def __repr__(self) -> str:
        return f"LalalaiClient(base_url={self.base_url!r})"

    # --- endpoints --------------------------------------------------------

    def upload(
        self,
        path: Path,
        filename: str | None = None,
        *,
        on_sent: Callable[[int, int], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> UploadedSource:
        """POST /upload/: the file's bytes as the body, its name in
        ``Content-Disposition``. ``on_sent(sent, total)`` follows the upload."""
        path = Path(path)
        try:
            total = path.stat().st_size
        except OSError as exc:
            raise InputAudioError(f"{path}: cannot be read ({exc.strerror}).") from None
        headers = {
            "Content-Disposition": content_disposition(filename or path.name),
            "Content-Type": "application/octet-stream",
            "Content-Length": str(total),
        }

        def body() -> Iterator[bytes]:
            sent = 0
            with open(path, "rb") as handle:
                while chunk := handle.read(UPLOAD_CHUNK):
                    if cancel is not None and cancel.cancelled:
                        raise CancelledError()
                    yield chunk
                    sent += len(chunk)
                    if on_sent is not None:
                        on_sent(sent, total)

        data = self._call("upload", "upload/", body=body, headers=headers, cancel=cancel)
        try:
            return UploadedSource(
                id=str(data["id"]),
                name=str(data.get("name", "")),
                size=int(data.get("size", total)),
                duration=int(data.get("duration", 0)),
                expires=int(data.get("expires", 0)),
            )
        except (KeyError, TypeError, ValueError):
            raise self._unexpected("upload", data) from None

    def split_stem_separator(
        self, source_id: str, presets: dict[str, Any], idempotency_key: str | None = None
    ) -> str:
        """POST /split/stem_separator/ → task id."""
        return self._start_task("split/stem_separator/", source_id, presets, idempotency_key)

    def split_multistem(
        self, source_id: str, presets: dict[str, Any], idempotency_key: str | None = None
    ) -> str:
        """POST /split/multistem/ → task id."""
        return self._start_task("split/multistem/", source_id, presets, idempotency_key)

    def check(self, task_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """POST /check/ for many tasks at once (split into requests of 200).

        Raises ``RateLimitedError`` on 429 without retrying: the caller (the
        poller) owns the pace of /check/ and backs off itself."""
        statuses: dict[str, TaskStatus] = {}
        ids = list(dict.fromkeys(task_ids))
        for start in range(0, len(ids), CHECK_MAX_IDS):
            batch = ids[start : start + CHECK_MAX_IDS]
            data = self._call("check", "check/", json={"task_ids": batch})
            result = data.get("result") if isinstance(data, dict) else None
            if not isinstance(result, dict):
                raise self._unexpected("check", data)
            for task_id, entry in result.items():
                if isinstance(entry, dict):
                    statuses[str(task_id)] = parse_status(str(task_id), entry)
        return statuses

    def cancel(self, task_ids: Sequence[str]) -> dict[str, CancelOutcome]:
        """POST /cancel/: stop tasks in progress."""
        data = self._call("cancel", "cancel/", json={"task_ids": list(task_ids)})
        return parse_cancel(data)

    def cancel_all(self) -> dict[str, CancelOutcome]:
        """POST /cancel/all/: stop every task of this key that is in progress."""
        data = self._call("cancel/all", "cancel/all/")
        return parse_cancel(data)

    def delete(self, source_id: str) -> None:
        """POST /delete/: remove the source file and its result tracks."""
        self._call("delete", "delete/", json={"source_id": source_id})

    def minutes_left(self) -> float:
        """POST /limits/minutes_left/."""
        data = self._call("minutes_left", "limits/minutes_left/")
        try:
            return float(data["minutes_left"])
        except (KeyError, TypeError, ValueError):
            raise self._unexpected("limits/minutes_left", data) from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LalalaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- machinery --------------------------------------------------------

    def _start_task(
        self, endpoint: str, source_id: str, presets: dict[str, Any], idempotency_key: str | None
    ) -> str:
        # One key for every retry of this start: a retry after a lost answer or
        # an internal_error must not create (and charge) a second task.
        body = {
            "source_id": source_id,
            "presets": presets,
            "idempotency_key": idempotency_key or str(uuid.uuid4()),
        }
        data = self._call(endpoint.rstrip("/"), endpoint, json=body, task_start=True)
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not task_id:
            raise self._unexpected(endpoint.rstrip("/"), data)
        return str(task_id)

    def _call(
        self,
        name: str,
        path: str,
        *,
        json: Any = None,
        body: Callable[[], Iterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        cancel: CancelToken | None = None,
        task_start: bool = False,
    ) -> Any:
        tries = 0

        def one_try() -> Any:
            nonlocal tries
            tries += 1
            return self._try(name, path, json, body, headers, cancel, task_start, tries)

        try:
            return retrying(self.retry, cancel, (*RETRYABLE_EXCEPTIONS, _RetryableAnswer))(one_try)
        except RETRYABLE_EXCEPTIONS as exc:
            raise ProviderUnavailableError(
                f"Cannot reach LALAL.AI at {self.base_url} ({network_reason(exc)}) after "
                f"{tries} tries. Check the network connection and "
                "SOUNDFORGE_LALALAI_URL, then try again."
            ) from None
        except _RetryableAnswer as answer:
            raise self._error(name, answer.status, answer.payload, tries) from None

    def _try(
        self,
        name: str,
        path: str,
        json: Any,
        body: Callable[[], Iterator[bytes]] | None,
        headers: dict[str, str] | None,
        cancel: CancelToken | None,
        task_start: bool,
        tries: int,
    ) -> Any:
        """One try: the answer's JSON, or raise (``_RetryableAnswer`` and the
        network's errors are worth another try)."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            if body is not None:
                response = self._http.post(path, content=body(), headers=headers)
            else:
                response = self._http.post(path, json=json, headers=headers)
        except RETRYABLE_EXCEPTIONS as exc:
            log.warning(
                "LALAL.AI %s: %s (try %d of %d)", name, network_reason(exc), tries,
                self.retry.attempts,
            )
            raise
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"Cannot talk to LALAL.AI at {self.base_url}: {network_reason(exc)}. "
                "Check SOUNDFORGE_LALALAI_URL."
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return self._json(name, response)
        payload = payload_of(response)
        code = payload.get("code") if isinstance(payload, dict) else None
        if status >= 500 or (task_start and status == 400 and code == "internal_error"):
            log.warning(
                "LALAL.AI %s answered HTTP %d%s (try %d of %d)", name, status,
                f" {code}" if code else "", tries, self.retry.attempts,
            )
            raise _RetryableAnswer(status, payload)
        raise self._error(name, status, payload, tries)

    def _json(self, name: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                f"LALAL.AI sent an answer SoundForge cannot read for {name} "
                f"(not JSON, HTTP {response.status_code}). Check SOUNDFORGE_LALALAI_URL."
            ) from None

    def _unexpected(self, name: str, data: Any) -> ProviderError:
        shown = scrub(repr(data), self._key)[:200]
        return ProviderError(f"LALAL.AI sent an unexpected answer for {name}: {shown}")

    def _error(self, name: str, status: int, payload: Any, tries: int) -> SoundForgeError:
        return error_for(name, status, payload, tries=tries, base_url=self.base_url, key=self._key)


class _RetryableAnswer(Exception):
    """An answer worth another try (5xx; ``internal_error`` on a task start)."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
