"""The long-lived Demucs runner process: ``python -m soundforge.engines.local.runner``.

Reads one JSON request per line on stdin, answers with newline-delimited JSON
on stdout (see ``protocol.py``), and keeps the last model (or an ensemble's
models) loaded so the next request on the same models starts computing at
once. Logs go to stderr; the real stdout is reserved for the protocol, and
anything a library prints is sent to stderr instead so it cannot corrupt a
message.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from soundforge.engines.local import allocator, protocol
from soundforge.engines.local.request import RunRequest
from soundforge.errors import EngineError, SoundForgeError

log = logging.getLogger("soundforge.runner")

HEARTBEAT_SECONDS = 5.0


class SupervisorGone(Exception):
    """The protocol pipe is closed: whoever asked for the work is gone (a
    SIGKILLed worker). Nothing is left to say and no one to say it to."""


class Runner:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self._requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._cancel_lock = threading.Lock()
        # Set when stdin closes or a shutdown arrives: the supervisor is gone or
        # wants us gone, so the running request is abandoned at the next segment
        # instead of computing on for nobody (e.g. after its worker was SIGKILLed).
        self._closing = threading.Event()
        # The models of the last request, by (name, repo): one, or an ensemble's
        # members, each loaded once and kept for the next request that uses it.
        self._models: dict[tuple[str, str | None], Any] = {}
        self.loads = 0  # how many times a model was loaded (tests read it via results)
        self._gone = False  # the protocol pipe broke: the supervisor is dead

    # --- output ------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        with self._write_lock:
            if self._gone:
                raise SupervisorGone()
            try:
                self._out.write(protocol.encode(message))
                self._out.flush()
            except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
                # ValueError: the stream was already closed after an earlier break.
                self._gone = True
                self._closing.set()
                raise SupervisorGone() from exc

    @property
    def gone(self) -> bool:
        return self._gone

    # --- input -------------------------------------------------------------
    def read_stdin(self, stream: TextIO) -> None:
        """Reader thread: separate requests are queued, cancels act at once."""
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self.send(protocol.error(None, "The runner received a line that is not JSON.",
                                         "protocol_error"))
                continue
            kind = message.get("type")
            if kind == protocol.CANCEL:
                with self._cancel_lock:
                    self._cancelled.add(str(message.get("id")))
            elif kind == protocol.SHUTDOWN:
                break
            else:
                self._requests.put(message)
        self._closing.set()
        self._requests.put(None)

    def is_cancelled(self, request_id: str) -> bool:
        if self._closing.is_set():
            return True
        with self._cancel_lock:
            return request_id in self._cancelled

    # --- work --------------------------------------------------------------
    def serve(self) -> None:
        while True:
            message = self._requests.get()
            if message is None or self._closing.is_set():
                return
            request_id = str(message.get("id"))
            try:
                self._answer(message, request_id)
            except SupervisorGone:
                log.info("the supervisor is gone; the runner exits")
                return
            finally:
                with self._cancel_lock:
                    self._cancelled.discard(request_id)
                # The job's buffers go back to the system; the models stay.
                allocator.release_free_memory()

    def _answer(self, message: dict[str, Any], request_id: str) -> None:
        try:
            if message.get("type") != protocol.SEPARATE:
                raise EngineError(f"Unknown request type {message.get('type')!r}.")
            self.handle(message)
        except SupervisorGone:
            raise
        except SoundForgeError as exc:
            self.send(protocol.error(request_id, exc.message, exc.code))
        except MemoryError:
            self.send(protocol.error(
                request_id,
                "Out of memory while separating: try a shorter file, another model or "
                "--device cpu.",
                "out_of_memory",
            ))
        except Exception as exc:  # every failure must become a message
            from soundforge.engines.local.backends import is_out_of_memory

            # e.g. moving the model onto a GPU that is already full
            code = "out_of_memory" if is_out_of_memory(exc) else "engine_error"
            if code == "engine_error":
                log.exception("separation failed")
            self.send(protocol.error(request_id, describe_failure(exc), code))

    def models_for(self, names: list[str], repo: str | None, request_id: str) -> dict[str, Any]:
        """The models ``names`` from ``repo``, loading those not held; models
        the request does not use are freed first, before anything is loaded."""
        wanted = {(name, repo) for name in names}
        for key in list(self._models):
            if key not in wanted:
                del self._models[key]
        for name in names:
            if (name, repo) not in self._models:
                self._models[(name, repo)] = self._load(name, repo, request_id)
        return {name: self._models[(name, repo)] for name in names}

    def holds(self, names: list[str], repo: str | None) -> bool:
        return all((name, repo) in self._models for name in names)

    def _load(self, name: str, repo: str | None, request_id: str) -> Any:
        from soundforge.engines.local.loader import load_model

        stop = threading.Event()

        def heartbeat() -> None:
            # Loading (or downloading) can take a while: keep the stall detector fed.
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    self.send(protocol.progress(request_id, 0, protocol.STAGE_LOADING))
                except SupervisorGone:
                    return  # the loading thread finds out at its own next message

        self.send(protocol.progress(request_id, 0, protocol.STAGE_LOADING))
        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            started = time.perf_counter()
            model = load_model(name, Path(repo) if repo else None)
            log.info("loaded %s in %.2f s", name, time.perf_counter() - started)
        finally:
            stop.set()
        self.loads += 1
        return model

    def handle(self, message: dict[str, Any]) -> None:
        from soundforge.engines.local.catalog import get_spec, resolve_outputs
        from soundforge.engines.local.device import (
            check_precision,
            configure_threads,
            resolve_device,
        )
        from soundforge.engines.local.ensemble.run import members_to_load, separate_ensemble
        from soundforge.engines.local.ensemble.spec import is_ensemble
        request = RunRequest.from_message(message)
        # Refuse a bad request before spending seconds on loading a model.
        if is_ensemble(request.model):
            names = list(members_to_load(request))
        else:
            resolve_outputs(get_spec(request.model), request.stems, request.two_stems)
            names = [request.model]
        device = resolve_device(request.device)
        check_precision(request.precision, device)
        if device.type == "cuda" and device.index is not None:
            import torch

            # CUDA calls without a device argument go to this GPU, so the runner
            # never opens a context on GPU 0 when it was given another one.
            torch.cuda.set_device(device)
        configure_threads(request.threads)
        heap = allocator.large_buffers_for(
            roformer=any(get_spec(name).is_roformer for name in names)
        )
        started = time.perf_counter()
        reused = self.holds(names, request.repo)
        models = self.models_for(names, request.repo, request.id)
        load_seconds = time.perf_counter() - started
        last = -1

        def on_progress(fraction: float, stage: str) -> None:
            nonlocal last
            percent = min(99, int(fraction * 100))
            # Every segment reports, even without a new percent: it is the
            # heartbeat the port's stall detector listens for.
            last = max(last, percent)
            self.send(protocol.progress(request.id, last, stage))

        separate = separate_ensemble if is_ensemble(request.model) else separate_model
        stems = separate(
            models,
            request,
            on_progress,
            lambda: self.is_cancelled(request.id),
            on_notice=lambda text: self.send(protocol.notice(request.id, text)),
        )
        self.send(protocol.result(
            request.id, stems, model_reused=reused, load_seconds=round(load_seconds, 3),
            model_loads=self.loads, large_buffers_on_heap=heap,
        ))


def separate_model(
    models: dict[str, Any],
    request: RunRequest,
    on_progress: Callable[[float, str], None],
    should_stop: Callable[[], bool],
    on_notice: Callable[[str], None],
) -> dict[str, str]:
    """One catalogue model: the only entry of ``models``."""
    from soundforge.engines.local.inference import separate_file

    (model,) = models.values()
    return separate_file(model, request, on_progress, should_stop, on_notice=on_notice)


def describe_failure(exc: BaseException) -> str:
    text = str(exc)
    if "out of memory" in text.lower():
        return ("The device ran out of memory while separating: free the GPU of other "
                "programs, or try --precision bf16, a smaller model or --device cpu.")
    return f"Demucs failed: {type(exc).__name__}: {text[:300]}"


def main() -> None:
    # Keep the real stdout for the protocol; everything else printed goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(
        level=os.environ.get("SOUNDFORGE_LOG_LEVEL", "WARNING"),
        stream=sys.stderr,
        format="runner %(levelname)s %(message)s",
    )
    runner = Runner(protocol_out)
    reader = threading.Thread(target=runner.read_stdin, args=(sys.stdin,), daemon=True)
    reader.start()
    runner.serve()
    if runner.gone:
        # Exiting normally would flush the broken pipe once more and print
        # "Exception ignored … BrokenPipeError"; there is nothing left to flush.
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
