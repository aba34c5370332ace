"""HTTP client for the LALAL.AI v1 API: one method per endpoint SoundForge uses.

What it takes care of so that callers don't:

* auth: ``X-License-Key`` is added per request by ``_LicenseKeyAuth``; the key
  never sits in default headers, reprs, log lines or exception messages;
* retries with exponential back-off and jitter on network errors and 5xx;
  ``internal_error`` on a task start is retried with the *same* idempotency key
  (the provider's documented remedy, which also makes a retry after a lost
  answer safe: the provider returns the task it already created);
* every other error is final and becomes a ``SoundForgeError`` whose message
  says what happened in words a user can act on (``code``, never ``detail``
  prose, decides what kind of failure it is);
* the upload body streams from disk and checks for cancellation per chunk.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from soundforge.engines.base import CancelToken
from soundforge.engines.lalalai.errors import (
    ProviderUnavailableError,
    RateLimitedError,
)
from soundforge.engines.lalalai.keys import scrub
from soundforge.errors import (
    AuthError,
    CancelledError,
    InputAudioError,
    ProviderError,
    QuotaError,
    SoundForgeError,
)
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

TaskState = Literal["progress", "success", "error", "cancelled", "server_error"]
FINAL_STATES: frozenset[str] = frozenset({"success", "error", "cancelled", "server_error"})

# Network failures worth another try. Not UnsupportedProtocol / InvalidURL /
# LocalProtocolError: those are configuration or programming errors.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``attempts`` counts the first try; the n-th retry waits
    a random time in [cap/2, cap] with cap = min(max_delay, base_delay·2ⁿ⁻¹)
    (jitter keeps many workers from retrying in lock-step)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, retry: int) -> float:
        cap = min(self.max_delay, self.base_delay * (2 ** max(retry - 1, 0)))
        return random.uniform(cap / 2, cap)

    @classmethod
    def for_settings(cls, base_delay: float) -> RetryPolicy:
        """The default policy with the installation's first delay
        (``SOUNDFORGE_LALALAI_RETRY_BASE_DELAY``)."""
        return cls(base_delay=base_delay, max_delay=max(cls.max_delay, base_delay))


@dataclass(frozen=True)
class UploadedSource:
    id: str
    name: str
    size: int
    duration: int
    expires: int


@dataclass(frozen=True)
class Track:
    type: str  # "stem" or "back"
    label: str
    url: str


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: str
    progress: int = 0
    tracks: tuple[Track, ...] = ()
    duration: int | None = None
    error: str | None = None
    error_code: str | None = None
    source_id: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class CancelOutcome:
    task_id: str
    ok: bool
    error: str | None = None


@dataclass
class _Attempts:
    policy: RetryPolicy
    cancel: CancelToken | None
    count: int = 0
    last_reason: str = field(default="")

    def next_or_give_up(self) -> bool:
        """Sleep before the next try; False when no try is left."""
        if self.count >= self.policy.attempts:
            return False
        delay = self.policy.delay(self.count)
        if self.cancel is not None:
            if self.cancel.wait(delay):
                raise CancelledError()
        else:
            time.sleep(delay)
        return True


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
                    statuses[str(task_id)] = _parse_status(str(task_id), entry)
        return statuses

    def cancel(self, task_ids: Sequence[str]) -> dict[str, CancelOutcome]:
        """POST /cancel/: stop tasks in progress."""
        data = self._call("cancel", "cancel/", json={"task_ids": list(task_ids)})
        return _parse_cancel(data)

    def cancel_all(self) -> dict[str, CancelOutcome]:
        """POST /cancel/all/: stop every task of this key that is in progress."""
        data = self._call("cancel/all", "cancel/all/")
        return _parse_cancel(data)

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
        attempts = _Attempts(self.retry, cancel)
        while True:
            attempts.count += 1
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                if body is not None:
                    response = self._http.post(path, content=body(), headers=headers)
                else:
                    response = self._http.post(path, json=json, headers=headers)
            except RETRYABLE_EXCEPTIONS as exc:
                reason = _network_reason(exc)
                log.warning(
                    "LALAL.AI %s: %s (try %d of %d)", name, reason, attempts.count,
                    self.retry.attempts,
                )
                if attempts.next_or_give_up():
                    continue
                raise ProviderUnavailableError(
                    f"Cannot reach LALAL.AI at {self.base_url} ({reason}) after "
                    f"{attempts.count} tries. Check the network connection and "
                    "SOUNDFORGE_LALALAI_URL, then try again."
                ) from None
            except httpx.HTTPError as exc:
                raise ProviderError(
                    f"Cannot talk to LALAL.AI at {self.base_url}: {_network_reason(exc)}. "
                    "Check SOUNDFORGE_LALALAI_URL."
                ) from None

            status = response.status_code
            if 200 <= status < 300:
                return self._json(name, response)
            payload = _payload(response)
            code = payload.get("code") if isinstance(payload, dict) else None
            retryable = status >= 500 or (task_start and status == 400 and code == "internal_error")
            if retryable:
                log.warning(
                    "LALAL.AI %s answered HTTP %d%s (try %d of %d)", name, status,
                    f" {code}" if code else "", attempts.count, self.retry.attempts,
                )
                if attempts.next_or_give_up():
                    continue
            raise self._error(name, status, payload, attempts.count)

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
        detail = scrub(_detail_text(payload), self._key)
        code = payload.get("code") if isinstance(payload, dict) else None
        if status in (401, 403) or _license_refusal(status, code, detail):
            if "provide license key" in detail.lower():
                return AuthError(
                    "LALAL.AI received no license key. Set LALALAI_API_KEY (your own "
                    "key) or SYSTEM_LALALAI_ACTIVATION_KEY (this installation's key)."
                )
            # The provider refuses a bad license state with 400 before any task
            # exists, a missing or unknown key with 401/403: all of them are a
            # key for the user to fix, not a provider failure.
            said = f": {detail.rstrip('.')}" if detail else ""
            return AuthError(
                f"LALAL.AI refused the license key (HTTP {status}{said}). It is wrong, "
                "expired or revoked: copy it again from your lalal.ai account into "
                "Settings → Cloud Separation (or LALALAI_API_KEY / "
                "SYSTEM_LALALAI_ACTIVATION_KEY for the installation's key)."
            )
        if status == 429:
            return RateLimitedError(
                "LALAL.AI is rate-limiting status checks for this key (30 a minute)."
            )
        if status >= 500:
            return ProviderUnavailableError(
                f"LALAL.AI is not working right now (HTTP {status} on {name}, "
                f"{tries} tries). Try again in a few minutes."
            )
        if status == 404:
            return ProviderError(
                f"LALAL.AI has no {name} endpoint at {self.base_url} (HTTP 404). "
                "SOUNDFORGE_LALALAI_URL must point at the API root, e.g. "
                "https://www.lalal.ai/api/v1/."
            )
        if status == 422:
            return ProviderError(
                f"LALAL.AI rejected the {name} request as malformed ({detail}). "
                "This is a bug in SoundForge; please report it."
            )
        if code in CODE_MESSAGES:
            error_class, message = CODE_MESSAGES[code]
            return error_class(message)
        return ProviderError(
            f"LALAL.AI refused the {name} request (HTTP {status}): {detail or 'no reason given'}."
        )


# Codes from the provider's error catalogue → (error class, words for the user).
CODE_MESSAGES: dict[str, tuple[type[ProviderError], str]] = {
    "exceeded_duration": (
        QuotaError,
        "Not enough LALAL.AI minutes left on this key for this separation. Top up "
        "your lalal.ai account, choose fewer stems, or try the 60-second preview.",
    ),
    "max_duration": (
        ProviderError,
        "The track is longer than your LALAL.AI license allows. Split it into shorter "
        "parts or upgrade the license.",
    ),
    "exceeded_size": (
        ProviderError,
        "The file is larger than your LALAL.AI license allows. Use a smaller file "
        "(for example a compressed format) or upgrade the license.",
    ),
    "batch_not_avaliable": (  # sic: the provider's spelling
        ProviderError,
        "Batch processing is not available on this LALAL.AI license.",
    ),
    "idempotency_key_used": (
        ProviderError,
        "LALAL.AI had already started this task when SoundForge asked again, and did "
        "not say which task it was. Check your lalal.ai account before retrying, so "
        "that the minutes are not spent twice.",
    ),
    "internal_error": (
        ProviderUnavailableError,
        "LALAL.AI kept failing to start the task (internal error). Try again later.",
    ),
}


def _payload(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:200]}


def _license_refusal(status: int, code: object, detail: str) -> bool:
    """A 400 about the license itself (invalid, expired, blocked key), as opposed
    to the license codes with their own meaning (minutes, size, duration),
    which ``CODE_MESSAGES`` handles."""
    if status != 400 or code in CODE_MESSAGES:
        return False
    return "licen" in str(code or "").lower() or "licen" in detail.lower()


def _detail_text(payload: Any) -> str:
    """``detail`` is a string, or for validation failures a list of
    ``{loc, msg, type}``: make either one line."""
    detail = payload.get("detail") if isinstance(payload, dict) else payload
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if detail is None:
        return ""
    return str(detail)


def _network_reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host not found"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection dropped"
    text = str(exc).strip()
    return text or type(exc).__name__


def _parse_status(task_id: str, entry: dict[str, Any]) -> TaskStatus:
    state = str(entry.get("status", ""))
    source_id = entry.get("source_id")
    source = str(source_id) if source_id is not None else None
    if state == "progress":
        try:
            progress = int(entry.get("progress", 0))
        except (TypeError, ValueError):
            progress = 0
        return TaskStatus(task_id, state, progress=max(0, min(100, progress)), source_id=source)
    if state == "success":
        result = entry.get("result") or {}
        tracks = tuple(
            Track(type=str(item.get("type", "")), label=str(item["label"]), url=str(item["url"]))
            for item in result.get("tracks", [])
            if isinstance(item, dict) and "label" in item and "url" in item
        )
        duration = result.get("duration")
        return TaskStatus(
            task_id, state, progress=100, tracks=tracks,
            duration=int(duration) if isinstance(duration, int | float) else None,
            source_id=source,
        )
    error = entry.get("error")
    if isinstance(error, dict):
        return TaskStatus(
            task_id, state or "error", error=str(error.get("detail", "")) or None,
            error_code=error.get("code"), source_id=source,
        )
    return TaskStatus(
        task_id, state or "server_error", error=str(error) if error else None, source_id=source
    )


def _parse_cancel(data: Any) -> dict[str, CancelOutcome]:
    result = data.get("result") if isinstance(data, dict) else None
    outcomes: dict[str, CancelOutcome] = {}
    if not isinstance(result, dict):
        return outcomes
    for task_id, entry in result.items():
        ok = isinstance(entry, dict) and entry.get("status") == "success"
        error = None if ok or not isinstance(entry, dict) else str(entry.get("error", ""))
        outcomes[str(task_id)] = CancelOutcome(str(task_id), ok, error)
    return outcomes
