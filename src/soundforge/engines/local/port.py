"""``DemucsPort``: supervises the runner process (the seed's Erlang Port, done right).

* starts the runner lazily, on the first request;
* restarts it after a crash (the next request gets a fresh one);
* a stall detector: when the runner reports nothing for
  ``SOUNDFORGE_DEMUCS_TIMEOUT`` seconds, it is killed; the runner reports every
  segment (a few seconds of audio), so a long song on a slow CPU is never cut
  off while it makes progress, unlike the seed's fixed five minutes;
* an optional hard ceiling (``SOUNDFORGE_DEMUCS_MAX_TIME``);
* cancel: asks the runner to stop (it keeps its loaded model), and kills it if
  it does not within a few seconds;
* every failure becomes a ``SoundForgeError`` a person can act on.

One request at a time per port; a worker that runs two jobs at once has two.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from soundforge.engines.base import CancelToken, MonotonicProgress, ProgressCallback
from soundforge.engines.local import protocol
from soundforge.engines.local.request import RunRequest
from soundforge.errors import (
    CancelledError,
    EngineError,
    EngineTimeoutError,
    InputAudioError,
    InvalidOptionError,
    ModelUnavailableError,
    OutOfMemoryError,
    OutputError,
    RunnerLostError,
    SoundForgeError,
)

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2
_EOF = object()

ERRORS_BY_CODE: dict[str, type[SoundForgeError]] = {
    cls.code: cls
    for cls in (
        InvalidOptionError, InputAudioError, OutputError, ModelUnavailableError,
        EngineError, OutOfMemoryError, CancelledError,
    )
}

MessageHook = Callable[[dict[str, Any]], None]


def signal_name(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class DemucsPort:
    def __init__(
        self,
        stall_timeout: float = 300.0,
        max_time: float = 0.0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.stall_timeout = stall_timeout
        self.max_time = max_time
        self._python = python
        self._env = env
        self._proc: subprocess.Popen[str] | None = None
        self._messages: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.starts = 0  # how many runner processes this port started

    # --- process management -------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._messages = queue.Queue()
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(
            [self._python, "-m", "soundforge.engines.local.runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the runner's logs go to our stderr
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        self.starts += 1
        assert self._proc.stdout is not None
        threading.Thread(
            target=self._pump, args=(self._proc.stdout, self._messages), daemon=True
        ).start()
        return self._proc

    @staticmethod
    def _pump(stream: IO[str], sink: queue.Queue[Any]) -> None:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                sink.put(json.loads(line))
            except json.JSONDecodeError:
                log.warning("runner wrote a non-JSON line: %.200s", line)
        sink.put(_EOF)

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(protocol.encode(message))
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the process is gone; its EOF tells the rest

    def kill(self) -> None:
        """Stop the runner now (it is restarted by the next request)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.error("runner %s did not die", proc.pid)
        self._close_pipes(proc)

    @staticmethod
    def _close_pipes(proc: subprocess.Popen[str]) -> None:
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        """Ask the runner to exit, kill it if it does not."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._send({"type": protocol.SHUTDOWN})
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._close_pipes(proc)
        self._proc = None

    # --- requests ------------------------------------------------------------
    def separate(
        self,
        request: RunRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_message: MessageHook | None = None,
    ) -> dict[str, Any]:
        """Run one request; returns the runner's ``result`` message."""
        with self._lock:
            return self._run(request, MonotonicProgress(on_progress), cancel, on_message)

    def next_id(self) -> str:
        return f"r{os.getpid()}-{next(self._ids)}"

    def _run(
        self,
        request: RunRequest,
        progress: MonotonicProgress,
        cancel: CancelToken | None,
        on_message: MessageHook | None,
    ) -> dict[str, Any]:
        if cancel is not None and cancel.cancelled:
            raise CancelledError()
        proc = self._ensure_started()
        messages = self._messages
        self._send(request.to_message())
        started = last_heard = time.monotonic()
        cancel_sent_at: float | None = None
        progress(0)
        while True:
            now = time.monotonic()
            if cancel is not None and cancel.cancelled and cancel_sent_at is None:
                self._send({"type": protocol.CANCEL, "id": request.id})
                cancel_sent_at = now
            if cancel_sent_at is not None and now - cancel_sent_at > CANCEL_GRACE_SECONDS:
                self.kill()
                raise CancelledError()
            if now - last_heard > self.stall_timeout:
                self.kill()
                raise EngineTimeoutError(
                    f"Demucs made no progress for {self.stall_timeout:g} s on "
                    f"{request.input} and was stopped. Raise SOUNDFORGE_DEMUCS_TIMEOUT if "
                    "this machine is that slow, or use a GPU or a lighter model."
                )
            if self.max_time and now - started > self.max_time:
                self.kill()
                raise EngineTimeoutError(
                    f"Separating {request.input} took longer than {self.max_time:g} s "
                    "(SOUNDFORGE_DEMUCS_MAX_TIME) and was stopped."
                )
            try:
                message = messages.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if message is _EOF:
                code = proc.wait()
                self._close_pipes(proc)
                if cancel_sent_at is not None:
                    raise CancelledError()
                # The path helps on the command line; the job pipeline and the
                # web app show it relative to the data folder.
                raise RunnerLostError(
                    f"The Demucs runner process stopped while separating {request.input} "
                    f"({signal_name(code)}). It is restarted for the next job; if this "
                    "repeats, the machine may be out of memory."
                )
            if message.get("id") not in (request.id, None):
                continue  # a late message of an earlier, abandoned request
            last_heard = time.monotonic()
            if on_message is not None:
                on_message(message)
            kind = message.get("type")
            if kind == protocol.PROGRESS:
                progress(int(message.get("percent", 0)))
            elif kind == protocol.RESULT:
                progress(100)
                return message
            elif kind == protocol.ERROR:
                raise error_from_message(message)
            elif kind == protocol.NOTICE:
                log.warning("%s", message.get("message"))

    def __enter__(self) -> DemucsPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_from_message(message: dict[str, Any]) -> SoundForgeError:
    text = str(message.get("message") or "Demucs failed without saying why.")
    cls = ERRORS_BY_CODE.get(str(message.get("code")), EngineError)
    return cls(text) if cls is not CancelledError else CancelledError()
