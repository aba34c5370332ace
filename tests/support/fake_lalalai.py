"""A fake LALAL.AI v1 server, written from the provider's published spec
(``reference/lalalai-api-v1.openapi.yml`` and ``…errors.yml``).

It is a real HTTP server (FastAPI under uvicorn, in a thread, on 127.0.0.1 and
a free port), so the client under test runs its real network code. It behaves
like the provider where the spec says how:

* every endpoint wants ``X-License-Key``: none → 403 ``Provide license key in
  'X-License-Key' header``; an unknown key → 403
  (``unknown_key_answer`` changes how);
* bodies are validated by pydantic models of the spec's schemas (unknown fields
  refused), so a malformed body gets 422 with the ``detail`` list of
  ``{type, loc, msg}``;
* ``/check/`` takes many task ids, simulates progress over a few polls
  (``polls_to_finish``), answers unknown tasks with ``server_error``, a failed
  task with HTTP 200 and ``status: "error"``, and enforces 30 requests a minute
  per key (429);
* minutes are charged at task start as duration × stems (``exceeded_duration``
  when they don't fit), idempotency keys are honoured until the task starts;
* result tracks are real audio files made from the upload (each a scaled copy,
  so length and rate are right and the gain tells which track is which),
  served from download links that need no key; ``/delete/`` removes them;
* ``/cancel/``, ``/cancel/all/``, ``/limits/minutes_left/`` work.

Knobs make it fail in each documented way (``fail_next``, ``drop_next``,
``throttle_next_checks``, ``internal_error_next_starts``, ``fail_tasks``,
``hold``, ``max_duration``, ``max_size`` …) and counters tell what the client
did (``calls``, ``check_batches``, ``throttled``, ``downloads``, ``tasks``,
``sources``).

Use it as a context manager, or through the ``fake_lalalai`` pytest fixture
(a session-wide server, reset for each test): import both fixtures into a
``conftest.py``::

    from tests.support.fake_lalalai import fake_lalalai, fake_lalalai_server

Point the code under test at ``fake.url`` with ``fake.key``, or use
``fake.env()`` for a subprocess.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import UUID4, BaseModel, ConfigDict, Field

API = "/api/v1"
MISSING_KEY_DETAIL = "Provide license key in 'X-License-Key' header"
SOURCE_GONE_DETAIL = (
    "The file has not been uploaded properly or has already been deleted. "
    "Please upload it again."
)

SplitterType = Literal["auto", "andromeda", "perseus", "orion", "phoenix", "lyra", "lynx"]
ExtractionLevel = Literal["deep_extraction", "clear_cut"]
EncoderFormat = Literal["mp3", "wav", "flac", "aac", "ogg"]
SeparatorStem = Literal[
    "vocals", "drum", "piano", "bass", "electric_guitar", "acoustic_guitar",
    "synthesizer", "strings", "wind",
]
MultistemStem = Literal["vocals", "drum", "piano", "bass", "electric_guitar", "acoustic_guitar"]
PHOENIX_ONLY = {"synthesizer", "strings", "wind"}

# Gain of each track relative to the upload: distinct per stem, so a test can
# tell from the audio which provider track ended up in which stem file.
STEM_GAINS: dict[str, float] = {
    "vocals": 0.30,
    "drum": 0.20,
    "bass": 0.15,
    "electric_guitar": 0.10,
    "acoustic_guitar": 0.08,
    "piano": 0.06,
    "synthesizer": 0.12,
    "strings": 0.09,
    "wind": 0.07,
}
LEAD_GAIN = 0.22
BACKING_GAIN = 0.08

# Formats libsndfile writes, for ``encoder_format`` and "same as the source".
WRITE_FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", "PCM_24"),
    "flac": ("FLAC", "PCM_24"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ogg": ("OGG", "VORBIS"),
}
SOURCE_FORMATS = {"WAV": "wav", "FLAC": "flac", "MP3": "mp3", "OGG": "ogg"}


# --- request bodies, from the spec's schemas ---------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StemSeparatorPresets(_Strict):
    stem: SeparatorStem
    splitter: SplitterType = "auto"
    dereverb_enabled: bool = False
    encoder_format: EncoderFormat | None = None
    multivocal: Literal["lead_back"] | None = None
    extraction_level: ExtractionLevel = "deep_extraction"
    # Not in the StemSeparatorSplitterPresetsV1 schema, but in the presets the
    # spec's own /check/ example echoes for a stem_separator task.
    enhanced_processing_enabled: bool = False


class MultistemPresets(_Strict):
    stem_list: list[MultistemStem] = Field(min_length=1, max_length=6)
    splitter: SplitterType = "auto"
    dereverb_enabled: bool = False
    encoder_format: EncoderFormat | None = None
    extraction_level: ExtractionLevel = "deep_extraction"


class StemSeparatorParams(_Strict):
    source_id: UUID4
    presets: StemSeparatorPresets
    idempotency_key: UUID4 | None = None


class MultistemParams(_Strict):
    source_id: UUID4
    presets: MultistemPresets
    idempotency_key: UUID4 | None = None


class CheckParams(_Strict):
    task_ids: list[UUID4] = Field(max_length=200)


class CancelParams(_Strict):
    task_ids: list[UUID4]


class DeleteParams(_Strict):
    source_id: UUID4


# --- state ----------------------------------------------------------------------


@dataclass
class FakeSource:
    id: str
    key: str
    name: str
    size: int
    duration: int
    sample_rate: int
    audio: np.ndarray  # (frames, channels) float32
    format: str
    deleted: bool = False


@dataclass
class FakeTrack:
    type: str
    label: str
    gain: float
    path: Path
    url: str


@dataclass
class FakeTask:
    id: str
    key: str
    source_id: str
    kind: str  # "stem_separator" | "multistem"
    presets: dict[str, Any]
    stems: list[str]
    idempotency_key: str | None
    minutes: float
    status: str = "progress"
    progress: int = 0
    polls: int = 0
    started: bool = False
    error: dict[str, Any] | None = None
    tracks: list[FakeTrack] = field(default_factory=list)
    # What stopped it: "cancel", "cancel_all" or "delete" (of its source), so a
    # test can tell an explicit cancel from the provider's side effect of a delete.
    cancelled_by: str | None = None

    def track(self, label: str) -> FakeTrack:
        for track in self.tracks:
            if track.label == label:
                return track
        raise KeyError(label)


class _ApiError(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def parse_content_disposition(value: str) -> str | None:
    """The file name from ``Content-Disposition`` (RFC 6266): ``filename*``
    (RFC 8187, ``charset'lang'pct-encoded``) wins over ``filename``."""
    params: dict[str, str] = {}
    for match in re.finditer(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', value):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name] = raw
    extended = params.get("filename*")
    if extended and extended.count("'") >= 2:
        charset, _lang, encoded = extended.split("'", 2)
        try:
            return unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    return params.get("filename") or None


def endpoint_name(path: str) -> str:
    if path.startswith("/media/"):
        return "download"
    name = path.removeprefix(API).strip("/")
    return {
        "split/stem_separator": "stem_separator",
        "split/multistem": "multistem",
        "cancel/all": "cancel_all",
        "limits/minutes_left": "minutes_left",
    }.get(name, name)


class FakeLalalai:
    """The fake server and its knobs. All attributes may be changed by a test
    while the server runs; changes are read under the state lock."""

    def __init__(self, workdir: Path | None = None, minutes: float = 1000.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fake-lalalai-"))
        self._cond = threading.Condition(threading.RLock())
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0
        self.reset(minutes)

    def reset(self, minutes: float = 1000.0) -> None:
        """Forget everything: a new key with ``minutes``, default behaviour, no
        faults, empty counters. The server keeps running (the fixture resets a
        session-wide server between tests instead of restarting it)."""
        with self._cond:
            # A test may have replaced a behaviour method on the shared server
            # without restoring it: take such overrides away.
            for name in [name for name in vars(self) if callable(getattr(type(self), name, None))]:
                delattr(self, name)
            self.key = f"test-key-{uuid.uuid4().hex}"
            self.keys: dict[str, float] = {self.key: minutes}

            # Behaviour.
            self.polls_to_finish = 3
            self.check_limit = 30
            self.check_window = 60.0
            self.max_duration: int | None = None  # seconds a license allows per file
            self.max_size: int | None = None  # bytes a license allows per file
            self.no_backing_vocals = False  # omit vocals@1, as the API may
            self.echo_key_in_errors = False  # a provider that repeats the key back
            self.holding = False  # tasks stay in progress until release()
            # How an unknown key is refused: (HTTP status, body). The live API
            # was seen answering 400 {"detail": "License key is invalid."}.
            self.unknown_key_answer: tuple[int, dict[str, Any]] = (
                403, {"detail": "Invalid license key"})

            # Faults, consumed one per request.
            self._fail: dict[str, deque[int]] = defaultdict(deque)
            self._drop: Counter[str] = Counter()
            self._throttle_checks = 0
            self._internal_errors = 0
            self._task_errors: dict[str, tuple[str, str]] = {}

            # What happened.
            self.calls: Counter[str] = Counter()
            self.check_batches: list[list[str]] = []
            self.throttled = 0
            self.downloads: list[dict[str, Any]] = []
            self.sources: dict[str, FakeSource] = {}
            self.tasks: dict[str, FakeTask] = {}
            self._idempotency: dict[tuple[str, str], str] = {}
            self._check_log: dict[str, deque[float]] = defaultdict(deque)
            shutil.rmtree(self.workdir / "tracks", ignore_errors=True)
            self._cond.notify_all()

    # --- lifecycle --------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API root, as ``SOUNDFORGE_LALALAI_URL`` wants it."""
        return f"{self.base}{API}/"

    def env(self, key: str | None = None) -> dict[str, str]:
        """Environment for a subprocess that should use this server."""
        return {"SOUNDFORGE_LALALAI_URL": self.url, "LALALAI_API_KEY": key or self.key}

    def start(self) -> FakeLalalai:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this; without it every answer waits for
        # the client's delayed ACK (~40 ms) and the tests crawl.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            _FaultMiddleware(build_app(self), self),
            log_config=None,
            log_level="warning",
            access_log=False,
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-lalalai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake LALAL.AI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeLalalai:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- knobs ----------------------------------------------------------------

    def add_key(self, key: str | None = None, minutes: float = 1000.0) -> str:
        key = key or f"test-key-{uuid.uuid4().hex}"
        with self._cond:
            self.keys[key] = minutes
        return key

    def set_minutes(self, minutes: float, key: str | None = None) -> None:
        with self._cond:
            self.keys[key or self.key] = minutes

    def minutes_left(self, key: str | None = None) -> float:
        with self._cond:
            return self.keys[key or self.key]

    def fail_next(self, endpoint: str, times: int = 1, status: int = 503) -> None:
        """The next ``times`` requests to ``endpoint`` (``upload``, ``check``,
        ``stem_separator``, ``multistem``, ``cancel``, ``cancel_all``,
        ``delete``, ``minutes_left``, ``download``) answer ``status`` unprocessed."""
        with self._cond:
            self._fail[endpoint].extend([status] * times)

    def clear_failures(self) -> None:
        """The outage is over: forget every failure still queued by ``fail_next``."""
        with self._cond:
            for queued in self._fail.values():
                queued.clear()

    def drop_next(self, endpoint: str, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` are processed, but the
        connection drops half-way through the answer (for ``download``: half
        of the file arrives)."""
        with self._cond:
            self._drop[endpoint] += times

    def throttle_next_checks(self, times: int) -> None:
        with self._cond:
            self._throttle_checks += times

    def internal_error_next_starts(self, times: int) -> None:
        with self._cond:
            self._internal_errors += times

    def fail_tasks(
        self,
        stem: str = "*",
        detail: str = "Unable to detect the stem in the uploaded file",
        code: str = "inference_error",
    ) -> None:
        """Tasks extracting ``stem`` (API name; ``*`` = all) end with status error."""
        with self._cond:
            self._task_errors[stem] = (detail, code)

    def hold(self) -> None:
        with self._cond:
            self.holding = True

    def release(self) -> None:
        with self._cond:
            self.holding = False
            self._cond.notify_all()

    # --- inspection -----------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Block until ``predicate()`` (evaluated under the state lock) holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the fake LALAL.AI server never got there")
                self._cond.wait(min(left, 0.05))

    def tasks_in(self, status: str) -> list[FakeTask]:
        with self._cond:
            return [task for task in self.tasks.values() if task.status == status]

    # --- behaviour (called by the app, under the lock) --------------------------

    def _changed(self) -> None:
        self._cond.notify_all()

    def _authenticate(self, key: str | None) -> str:
        with self._cond:
            if not key:
                raise HTTPException(status_code=403, detail=MISSING_KEY_DETAIL)
            if key not in self.keys:
                # (echo_key_in_errors: the error handler repeats the key back)
                status, body = self.unknown_key_answer
                raise _ApiError(status, dict(body))
            return key

    def _throttle(self, key: str) -> None:
        with self._cond:
            if self._throttle_checks > 0:
                self._throttle_checks -= 1
                raise HTTPException(status_code=429, detail="Request was throttled.")
            now = time.monotonic()
            log = self._check_log[key]
            while log and log[0] <= now - self.check_window:
                log.popleft()
            if len(log) >= self.check_limit:
                self.throttled += 1
                wait = math.ceil(log[0] + self.check_window - now)
                raise HTTPException(
                    status_code=429,
                    detail=f"Request was throttled. Expected available in {wait} seconds.",
                )
            log.append(now)

    def _upload(self, key: str, disposition: str, data: bytes) -> dict[str, Any]:
        name = parse_content_disposition(disposition)
        if not name:
            raise _ApiError(400, {"detail": "Content-Disposition header has no filename"})
        if not data:
            raise _ApiError(400, {"detail": "The uploaded file is empty"})
        try:
            info = sf.info(io.BytesIO(data))
            audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            raise _ApiError(400, {"detail": "Unsupported or damaged media file"}) from None
        if audio.shape[0] == 0:
            raise _ApiError(400, {"detail": "The media file has no audio"})
        source = FakeSource(
            id=str(uuid.uuid4()),
            key=key,
            name=name,
            size=len(data),
            duration=math.ceil(audio.shape[0] / rate),
            sample_rate=int(rate),
            audio=audio,
            format=SOURCE_FORMATS.get(info.format, "wav"),
        )
        with self._cond:
            self.sources[source.id] = source
            self._changed()
        return {
            "id": source.id,
            "name": source.name,
            "size": source.size,
            "duration": source.duration,
            "expires": int(time.time()) + 24 * 3600,
        }

    def _start(
        self,
        key: str,
        kind: str,
        source_id: str,
        presets: dict[str, Any],
        stems: list[str],
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        with self._cond:
            if self._internal_errors > 0:
                self._internal_errors -= 1
                raise _ApiError(
                    400,
                    {"detail": "Internal error while starting the task.", "code": "internal_error"},
                )
            source = self.sources.get(source_id)
            if source is None or source.key != key or source.deleted:
                raise _ApiError(400, {"detail": SOURCE_GONE_DETAIL})
            phoenix_only = PHOENIX_ONLY.intersection(stems)
            if phoenix_only and presets["splitter"] not in ("auto", "phoenix"):
                raise _ApiError(
                    400,
                    {"detail": f"{sorted(phoenix_only)} are available only with phoenix splitter"},
                )
            if presets.get("multivocal") and stems != ["vocals"]:
                raise _ApiError(400, {"detail": "multivocal is available only for 'vocals' stem"})
            fmt = presets.get("encoder_format") or source.format
            if fmt not in WRITE_FORMATS:
                raise _ApiError(400, {"detail": f"encoder_format {fmt!r} is not supported here"})
            if idempotency_key is not None:
                existing = self._idempotency.get((key, idempotency_key))
                if existing is not None:
                    if self.tasks[existing].started:
                        raise _ApiError(
                            400,
                            {"detail": "Idempotency key has already been used.",
                             "code": "idempotency_key_used"},
                        )
                    return {"task_id": existing}
            if self.max_duration is not None and source.duration > self.max_duration:
                raise _ApiError(
                    400, {"detail": "The file is longer than your license allows.",
                          "code": "max_duration"}
                )
            if self.max_size is not None and source.size > self.max_size:
                raise _ApiError(
                    400, {"detail": "The file is larger than your license allows.",
                          "code": "exceeded_size"}
                )
            cost = source.duration * len(stems) / 60
            if cost > self.keys[key] + 1e-9:
                raise _ApiError(
                    400, {"detail": "Not enough minutes left on the license.",
                          "code": "exceeded_duration"}
                )
            self.keys[key] -= cost
            task = FakeTask(
                id=str(uuid.uuid4()),
                key=key,
                source_id=source_id,
                kind=kind,
                presets={"task_type": "split", "label": kind, **presets},
                stems=stems,
                idempotency_key=idempotency_key,
                minutes=cost,
            )
            self.tasks[task.id] = task
            if idempotency_key is not None:
                self._idempotency[(key, idempotency_key)] = task.id
            self._changed()
            return {"task_id": task.id}

    def _check(self, key: str, task_ids: list[str]) -> dict[str, Any]:
        with self._cond:
            self.check_batches.append(list(task_ids))
            result: dict[str, Any] = {}
            for task_id in task_ids:
                task = self.tasks.get(task_id)
                if task is None:
                    result[task_id] = {
                        "status": "server_error",
                        "error": "Failed to extract information about task",
                    }
                elif task.key != key:
                    result[task_id] = {"status": "server_error", "error": "Permission denied"}
                else:
                    self._advance(task)
                    result[task_id] = self._render(task)
            self._changed()
            return {"result": result}

    def _advance(self, task: FakeTask) -> None:
        if task.status != "progress":
            return
        task.started = True
        if self.holding:
            task.progress = max(task.progress, 5)
            return
        task.polls += 1
        if task.polls < self.polls_to_finish:
            task.progress = max(task.progress, task.polls * 100 // self.polls_to_finish)
            return
        failure = None
        for stem in task.stems:
            failure = failure or self._task_errors.get(stem)
        failure = failure or self._task_errors.get("*")
        if failure is not None:
            task.status = "error"
            task.error = {"detail": failure[0], "code": failure[1], "id": uuid.uuid4().hex}
            return
        self._make_tracks(task)
        task.status = "success"
        task.progress = 100

    def _labels(self, task: FakeTask) -> list[tuple[str, str, float]]:
        if task.kind == "multistem":
            gains = [("stem", stem, STEM_GAINS[stem]) for stem in task.stems]
            rest = 1.0 - sum(gain for _, _, gain in gains)
            return [*gains, ("back", "no_multistem", rest)]
        stem = task.stems[0]
        if task.presets.get("multivocal") == "lead_back":
            labels = [("stem", "vocals@0", LEAD_GAIN)]
            if not self.no_backing_vocals:
                labels.append(("stem", "vocals@1", BACKING_GAIN))
            labels.append(("back", "no_vocals", 1.0 - LEAD_GAIN - BACKING_GAIN))
            labels.append(("back", "mix_no_lead", 1.0 - LEAD_GAIN))
            return labels
        gain = STEM_GAINS[stem]
        return [("stem", stem, gain), ("back", f"no_{stem}", 1.0 - gain)]

    def _make_tracks(self, task: FakeTask) -> None:
        source = self.sources[task.source_id]
        fmt = task.presets.get("encoder_format") or source.format
        container, subtype = WRITE_FORMATS[fmt]
        folder = self.workdir / "tracks" / task.id
        folder.mkdir(parents=True, exist_ok=True)
        for index, (kind, label, gain) in enumerate(self._labels(task)):
            path = folder / f"{index}.{fmt}"
            sf.write(path, source.audio * gain, source.sample_rate, format=container,
                     subtype=subtype)
            url = f"{self.base}/media/{task.id}/{index}/{quote(label)}.{fmt}"
            task.tracks.append(FakeTrack(kind, label, gain, path, url))

    def _render(self, task: FakeTask) -> dict[str, Any]:
        base = {"status": task.status, "source_id": task.source_id, "presets": task.presets}
        if task.status == "progress":
            return {**base, "progress": task.progress}
        if task.status == "error":
            return {**base, "error": task.error}
        if task.status == "success":
            tracks = [
                {"type": track.type, "label": track.label, "url": track.url,
                 "name": track.path.name, "size": track.path.stat().st_size
                 if track.path.exists() else None}
                for track in task.tracks
            ]
            return {**base, "result": {"duration": self.sources[task.source_id].duration,
                                       "tracks": tracks}}
        return base

    def _cancel(self, key: str, task_ids: list[str] | None) -> dict[str, Any]:
        with self._cond:
            result: dict[str, Any] = {}
            explicit = task_ids is not None
            if task_ids is None:  # cancel/all
                task_ids = [
                    task.id for task in self.tasks.values()
                    if task.key == key and task.status == "progress"
                ]
            for task_id in task_ids:
                task = self.tasks.get(task_id)
                if task is None:
                    result[task_id] = {"status": "server_error",
                                       "error": "Failed to extract information about task"}
                elif task.key != key:
                    result[task_id] = {"status": "server_error", "error": "Permission denied"}
                elif task.status != "progress":
                    result[task_id] = {"status": "server_error",
                                       "error": "Task is not in progress state"}
                else:
                    task.status = "cancelled"
                    task.cancelled_by = "cancel" if explicit else "cancel_all"
                    result[task_id] = {"status": "success"}
            self._changed()
            return {"result": result}

    def _delete(self, key: str, source_id: str) -> dict[str, Any]:
        with self._cond:
            source = self.sources.get(source_id)
            if source is None or source.key != key:
                raise _ApiError(400, {"detail": "Source file not found."})
            source.deleted = True
            for task in self.tasks.values():
                if task.source_id != source_id:
                    continue
                # "All running tasks related to the source file will be cancelled."
                if task.status == "progress":
                    task.status = "cancelled"
                    task.cancelled_by = "delete"
                for track in task.tracks:
                    track.path.unlink(missing_ok=True)
            self._changed()
            return {}

    def _download(self, task_id: str, index: int, headers: dict[str, str]) -> Path | None:
        with self._cond:
            self.downloads.append({"task_id": task_id, "index": index, "headers": headers})
            self._changed()
            task = self.tasks.get(task_id)
            if task is None or index >= len(task.tracks):
                return None
            path = task.tracks[index].path
            return path if path.exists() else None


def build_app(fake: FakeLalalai) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(_ApiError)
    async def api_error(request: Request, exc: _ApiError) -> JSONResponse:
        payload = dict(exc.payload)
        key = request.headers.get("x-license-key")
        if fake.echo_key_in_errors and key and isinstance(payload.get("detail"), str):
            payload["detail"] += f" (license key {key})"
        return JSONResponse(status_code=exc.status, content=payload)

    def licensed(x_license_key: str | None = Header(default=None)) -> str:
        return fake._authenticate(x_license_key)

    def check_budget(key: str = Depends(licensed)) -> str:
        fake._throttle(key)
        return key

    @app.post(f"{API}/upload/")
    async def upload(
        request: Request,
        content_disposition: str = Header(),
        key: str = Depends(licensed),
    ) -> dict[str, Any]:
        data = await request.body()
        return fake._upload(key, content_disposition, data)

    @app.post(f"{API}/split/stem_separator/")
    def stem_separator(body: StemSeparatorParams, key: str = Depends(licensed)) -> dict[str, Any]:
        presets = body.presets.model_dump()
        return fake._start(
            key, "stem_separator", str(body.source_id), presets, [body.presets.stem],
            str(body.idempotency_key) if body.idempotency_key else None,
        )

    @app.post(f"{API}/split/multistem/")
    def multistem(body: MultistemParams, key: str = Depends(licensed)) -> dict[str, Any]:
        presets = body.presets.model_dump()
        return fake._start(
            key, "multistem", str(body.source_id), presets, list(body.presets.stem_list),
            str(body.idempotency_key) if body.idempotency_key else None,
        )

    @app.post(f"{API}/check/")
    def check(body: CheckParams, key: str = Depends(check_budget)) -> dict[str, Any]:
        return fake._check(key, [str(task_id) for task_id in body.task_ids])

    @app.post(f"{API}/cancel/")
    def cancel(body: CancelParams, key: str = Depends(licensed)) -> dict[str, Any]:
        return fake._cancel(key, [str(task_id) for task_id in body.task_ids])

    @app.post(f"{API}/cancel/all/")
    def cancel_all(key: str = Depends(licensed)) -> dict[str, Any]:
        return fake._cancel(key, None)

    @app.post(f"{API}/delete/")
    def delete(body: DeleteParams, key: str = Depends(licensed)) -> dict[str, Any]:
        return fake._delete(key, str(body.source_id))

    @app.post(f"{API}/limits/minutes_left/")
    def minutes_left(key: str = Depends(licensed)) -> dict[str, Any]:
        return {"minutes_left": round(fake.minutes_left(key), 4)}

    @app.get("/media/{task_id}/{index}/{name}")
    def media(task_id: str, index: int, name: str, request: Request) -> Any:
        path = fake._download(task_id, index, dict(request.headers))
        if path is None:
            return JSONResponse(status_code=404, content={"detail": "Not Found"})
        return FileResponse(path, media_type="application/octet-stream")

    return app


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _FaultMiddleware:
    """Counts every request and injects the transport-level faults: an answer
    with an error status before the app sees the request, or an answer cut
    off half-way after the app handled it (the client sees the connection
    drop)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], fake: FakeLalalai):
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = endpoint_name(scope["path"])
        fake = self.fake
        with fake._cond:
            fake.calls[name] += 1
            fake._changed()
            status = fake._fail[name].popleft() if fake._fail[name] else None
            drop = fake._drop[name] > 0
            if drop:
                fake._drop[name] -= 1
        if status is not None:
            await _drain(receive)
            body = json.dumps({"detail": "Service temporarily unavailable"}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if not drop:
            await self.app(scope, receive, send)
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = captured[0]
        body = b"".join(message.get("body", b"") for message in captured[1:])
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2],
                    "more_body": True})
        # Returning with the body unfinished makes uvicorn close the connection.


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


@pytest.fixture(scope="session")
def fake_lalalai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLalalai]:
    """One fake server per test session (per xdist worker)."""
    with FakeLalalai(tmp_path_factory.mktemp("fake-lalalai")) as fake:
        yield fake


@pytest.fixture
def fake_lalalai(fake_lalalai_server: FakeLalalai) -> FakeLalalai:
    """The fake server, reset: a fresh key (``.key``) with 1000 minutes, no
    faults, empty counters. Import both fixtures into a conftest.py."""
    fake_lalalai_server.reset()
    return fake_lalalai_server
