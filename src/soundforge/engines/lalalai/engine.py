"""The ``lalalai`` engine: the same interface as the local engine, backed by
the LALAL.AI v1 API.

One separation, start to end:

1. options are checked and the key is resolved (``AuthError`` without one);
2. the input is probed; for a preview, its first 60 s are cut to a FLAC file;
3. the cost (seconds × stems) is compared with ``minutes_left`` — nothing is
   uploaded when the key cannot pay for it;
4. the file is uploaded (streaming), then one multistem task and/or one
   stem_separator task per remaining stem are started (``stems.plan_tasks``);
5. the shared poller reports the tasks' progress; each finished task's tracks
   are downloaded and written as stems into the staging folder;
6. on success the stems are moved into place; whatever happens, unfinished
   tasks are cancelled and the source file is deleted from the provider.

``separate(..., on_tasks=…)`` reports the provider's source id and task ids as
soon as each exists, so a caller can record them; if this process is killed,
``release_provider_work`` lets another one cancel and delete them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from soundforge.audio.probe import AudioInfo, probe
from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import stem_filename
from soundforge.config import Settings, get_settings
from soundforge.engines.base import (
    CancelToken,
    MonotonicProgress,
    ProgressCallback,
    SeparationOptions,
)
from soundforge.engines.lalalai.client import (
    CancelOutcome,
    LalalaiClient,
    RetryPolicy,
    TaskStatus,
)
from soundforge.engines.lalalai.download import (
    TrackDownloader,
    output_channels,
    write_silence,
    write_stem,
)
from soundforge.engines.lalalai.errors import (
    ProviderTaskError,
    ProviderUnavailableError,
    RateLimitedError,
)
from soundforge.engines.lalalai.keys import key_id, require_key, resolve_key, scrub
from soundforge.engines.lalalai.ledger import DatabaseUsageLedger, UsageEntry, UsageLedger
from soundforge.engines.lalalai.poller import (
    CHECK_LIMIT,
    CHECK_WINDOW,
    CheckPoller,
    TaskWatch,
    limiter_for,
    poller_for,
)
from soundforge.engines.lalalai.preview import PREVIEW_SECONDS, cut_preview
from soundforge.engines.lalalai.quota import (
    billable_seconds,
    ensure_minutes,
    get_quota,
    minutes_for,
)
from soundforge.engines.lalalai.stems import (
    BACKING_VOCALS,
    PHOENIX_ONLY_STEMS,
    PlannedTask,
    check_stems,
    plan_tasks,
    required_outputs,
    total_stems,
)
from soundforge.engines.local.engine import validate_common
from soundforge.errors import (
    CancelledError,
    InvalidOptionError,
    ProviderError,
    SoundForgeError,
)
from soundforge.storage.staging import STAGING_PREFIX, StagingDir, staging_for

log = logging.getLogger(__name__)

SPLITTERS: tuple[str, ...] = ("auto", "andromeda", "perseus", "orion", "phoenix", "lyra", "lynx")
EXTRACTION_LEVELS: dict[str, str] = {
    "deep_extraction": "deep_extraction",
    "deep": "deep_extraction",
    "clear_cut": "clear_cut",
    "clear": "clear_cut",
}
# Lossless, compact result tracks: we re-encode to the requested format anyway.
RESULT_FORMAT = "flac"

# Progress budget: preparing + uploading up to UPLOADED, then each task's share
# is 80 % processing (from /check/) and 20 % downloading its tracks.
UPLOADED = 10.0
PROCESSING_SHARE = 0.8


@dataclass(frozen=True)
class ProviderWork:
    """What one separation holds at LALAL.AI: its uploaded file and the tasks
    started on it so far. Ids only (never the key), so it is safe to store."""

    source_id: str
    task_ids: tuple[str, ...] = ()


# Called from the separating thread each time the provider work grows: once
# after the upload (no tasks yet), then after every task start.
TasksCallback = Callable[[ProviderWork], None]


@dataclass
class _Run:
    """Book-keeping of one separation, for progress and for cleaning up."""

    tasks: dict[str, PlannedTask] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    task_progress: dict[str, float] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)  # stem → file name in staging
    notes: list[str] = field(default_factory=list)
    source_seconds: int = 0  # the provider's length of the upload

    def overall(self) -> float:
        if not self.task_progress:
            return UPLOADED
        share = sum(self.task_progress.values()) / len(self.task_progress)
        return UPLOADED + (99.0 - UPLOADED) * share


class LalalaiEngine:
    """Stem separation on LALAL.AI. Thread-safe: one engine may run several
    separations at once (each call keeps its own state)."""

    name = "lalalai"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        api_key: str | SecretStr | None = None,
        retry: RetryPolicy | None = None,
        poll_interval: float | None = None,
        check_limit: int = CHECK_LIMIT,
        check_window: float = CHECK_WINDOW,
        timeout: httpx.Timeout | None = None,
        ledger: UsageLedger | None = None,
        preview_seconds: float = PREVIEW_SECONDS,
        on_tasks: TasksCallback | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._key = resolve_key(api_key, self.settings)
        self.retry = retry or RetryPolicy.for_settings(self.settings.lalalai_retry_base_delay)
        self.poll_interval = poll_interval or self.settings.lalalai_poll_interval
        self.check_limit = check_limit
        self.check_window = check_window
        self.timeout = timeout
        # Opened on first use: checking a request needs no ledger.
        self._ledger: UsageLedger | None = ledger
        self._owned_ledger: DatabaseUsageLedger | None = None
        self.preview_seconds = preview_seconds
        # For every separation that is not given its own (the command line
        # records its provider work this way; see leftovers.py).
        self.on_tasks = on_tasks
        self.last_result: dict[str, Any] = {}
        self._client: LalalaiClient | None = None
        self._downloader: TrackDownloader | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "key set" if self._key is not None else "no key"
        return f"LalalaiEngine(url={self.settings.lalalai_url!r}, {state})"

    # --- pieces, created on first use --------------------------------------

    @property
    def client(self) -> LalalaiClient:
        """The API client; raises ``AuthError`` (saying how to set one) without a key."""
        key = require_key(self._key, self.settings)
        with self._lock:
            if self._client is None:
                self._client = LalalaiClient(
                    self.settings.lalalai_url, key, retry=self.retry, timeout=self.timeout
                )
            return self._client

    @property
    def downloader(self) -> TrackDownloader:
        with self._lock:
            if self._downloader is None:
                self._downloader = TrackDownloader(self.retry, self.timeout)
            return self._downloader

    def _poller(self) -> CheckPoller:
        key = require_key(self._key, self.settings)
        fingerprint = key_id(key)
        url, retry, timeout = self.settings.lalalai_url, self.retry, self.timeout

        def make_client() -> LalalaiClient:
            # Not a closure over self: the process-wide poller outlives engines.
            return LalalaiClient(url, key, retry=retry, timeout=timeout)

        limiter = limiter_for(fingerprint, self.check_limit, self.check_window)
        return poller_for(url, fingerprint, make_client, limiter, self.poll_interval, retry)

    # --- the engine interface ----------------------------------------------

    def validate(self, options: SeparationOptions) -> SeparationOptions:
        validate_common(options)
        changes: dict[str, Any] = {}
        if options.stems is not None:
            changes["stems"] = check_stems(options.stems)
        if options.two_stems is not None:
            (changes["two_stems"],) = check_stems([options.two_stems])
        tasks = plan_tasks(
            changes.get("stems", options.stems), changes.get("two_stems", options.two_stems)
        )
        if options.splitter is not None:
            splitter = options.splitter.strip().lower()
            if splitter not in SPLITTERS:
                raise InvalidOptionError(
                    f"Unknown LALAL.AI splitter {options.splitter!r}: use {', '.join(SPLITTERS)}."
                )
            needs_phoenix = sorted(
                {stem for task in tasks for stem in task.wanted} & PHOENIX_ONLY_STEMS
            )
            if needs_phoenix and splitter not in ("auto", "phoenix"):
                raise InvalidOptionError(
                    f"LALAL.AI extracts {', '.join(needs_phoenix)} only with the phoenix "
                    f"splitter, not {splitter}: use --splitter phoenix or auto."
                )
            changes["splitter"] = splitter
        if options.extraction_level is not None:
            level = options.extraction_level.strip().lower().replace("-", "_")
            if level not in EXTRACTION_LEVELS:
                raise InvalidOptionError(
                    f"Unknown extraction level {options.extraction_level!r}: use "
                    "deep_extraction or clear_cut."
                )
            changes["extraction_level"] = EXTRACTION_LEVELS[level]
        if options.noise_cancelling:
            raise InvalidOptionError(
                "LALAL.AI's API offers noise cancelling only in its voice-cleaning mode, "
                "not for stem separation; leave noise cancelling off for this engine."
            )
        if not 1 <= self.preview_seconds <= 600:
            raise InvalidOptionError("The preview length must be between 1 and 600 seconds.")
        return options.with_changes(**changes) if changes else options

    def separate(
        self,
        input_path: Path,
        options: SeparationOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        destination: Path | None = None,
        *,
        on_tasks: TasksCallback | None = None,
        on_unreleased: TasksCallback | None = None,
        upload_name: str | None = None,
    ) -> dict[str, Path]:
        """``Engine.separate``; ``on_tasks`` (optional, beyond the interface) is
        told the source id and task ids as soon as they exist. If it raises,
        the separation stops and cleans up as for any other error.
        ``on_unreleased`` is told what the clean-up could not release at the
        provider (it was unreachable): unfinished tasks not cancelled, the
        uploaded file not deleted (``source_id`` empty when it was).

        ``upload_name``: the file's name at LALAL.AI, shown in the user's
        dashboard there (default: the input's own name; the web app stores
        every track as ``original.<ext>`` and passes the track's title)."""
        if destination is None:
            raise InvalidOptionError("No destination folder given for the stems.")
        options = self.validate(options)
        on_tasks = on_tasks or self.on_tasks
        client = self.client  # no key: AuthError before any work
        cancel = cancel or CancelToken()
        progress = MonotonicProgress(on_progress)
        progress(0)
        input_path = Path(input_path)
        info = probe(input_path)
        tasks = plan_tasks(options.stems, options.two_stems)
        stems = total_stems(tasks)
        cancel.raise_if_cancelled()
        destination = Path(destination)

        with staging_for(destination) as staging, _scratch_dir(destination) as scratch:
            name = upload_name or input_path.name
            upload_path, seconds = input_path, info.duration
            if options.preview:
                upload_path, seconds = cut_preview(
                    input_path, info, scratch, self.preview_seconds
                )
                name = f"{Path(name).stem} (preview){upload_path.suffix}"
            elif seconds <= 0:
                seconds = _decoded_duration(input_path, info)
            needed = minutes_for(seconds, stems)
            ensure_minutes(needed, client.minutes_left(), duration=seconds, stems=stems)
            progress(2)
            cancel.raise_if_cancelled()

            run = _Run()
            source_id: str | None = None
            not_cancelled: list[str] = []
            watch: TaskWatch | None = None
            poller: CheckPoller | None = None
            try:
                log.info(
                    "LALAL.AI: uploading %s (%d s, %d stem(s), %s minutes)",
                    name, billable_seconds(seconds), stems, f"{needed:.2f}",
                )
                source = client.upload(
                    upload_path,
                    name,
                    on_sent=lambda sent, total: progress(2 + (UPLOADED - 3) * sent / total),
                    cancel=cancel,
                )
                source_id = source.id
                run.source_seconds = source.duration or billable_seconds(seconds)
                # Reported before any task exists: a process killed between
                # two task starts leaves a file the recorder can still delete.
                if on_tasks is not None:
                    on_tasks(ProviderWork(source.id))
                for task in tasks:
                    cancel.raise_if_cancelled()
                    task_id = self._start(client, source.id, task, options)
                    run.tasks[task_id] = task
                    run.task_progress[task_id] = 0.0
                    # Charged as it starts: counted now, whatever happens next.
                    self._record_usage(run, task_id, task, None, name, options.preview)
                    log.info("LALAL.AI: %s task %s started for %s",
                             task.kind, task_id, task.description)
                    # After every start, not once at the end: each task is
                    # charged as it starts, so each must be findable at once.
                    if on_tasks is not None:
                        on_tasks(ProviderWork(source.id, tuple(run.tasks)))
                progress(UPLOADED)
                poller = self._poller()
                watch = poller.watch(run.tasks, interval=self.poll_interval)
                cancel.on_cancel(watch.wake)
                self._wait_and_fetch(
                    run, watch, staging, scratch, options, info, name,
                    options.preview, cancel, progress,
                )
                # A cancel that came in during the last download still wins.
                cancel.raise_if_cancelled()
                moved = staging.commit()
            except BaseException as exc:
                not_cancelled = self._cancel_unfinished(client, run)
                for task_id, task in run.tasks.items():
                    if task_id not in run.finished:  # charged, never delivered
                        self._record_usage(run, task_id, task, None, name,
                                           options.preview, cancelled=True)
                if isinstance(exc, CancelledError):
                    log.info("LALAL.AI: separation of %s cancelled", name)
                raise
            finally:
                if poller is not None and watch is not None:
                    poller.unwatch(watch)
                deleted = source_id is None or self._delete_source(client, source_id)
                if (not_cancelled or not deleted) and on_unreleased is not None:
                    try:
                        on_unreleased(ProviderWork("" if deleted else str(source_id),
                                                   tuple(not_cancelled)))
                    except Exception as hook_error:  # the job's own outcome comes first
                        log.error("LALAL.AI: could not record unreleased work: %s", hook_error)
        self.last_result = {
            "source_id": source_id,
            "tasks": {
                task_id: {"kind": task.kind, "stems": list(task.wanted)}
                for task_id, task in run.tasks.items()
            },
            "minutes": round(needed, 2),
            "notes": run.notes,
        }
        progress(100)
        return {name: moved[file_name] for name, file_name in run.written.items()}

    @property
    def ledger(self) -> UsageLedger:
        """Where charged minutes are recorded: the installation's database."""
        with self._lock:
            if self._ledger is None:
                self._owned_ledger = DatabaseUsageLedger.for_settings(self.settings)
                self._ledger = self._owned_ledger
            return self._ledger

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            downloader, self._downloader = self._downloader, None
            ledger, self._owned_ledger = self._owned_ledger, None
            if ledger is not None:
                self._ledger = None
        if client is not None:
            client.close()
        if downloader is not None:
            downloader.close()
        if ledger is not None:
            ledger.close()

    def __enter__(self) -> LalalaiEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- beyond the interface: quota and cancel-all -------------------------

    def minutes_left(self) -> float:
        return self.client.minutes_left()

    def cost(self, options: SeparationOptions, duration: float) -> float:
        """Minutes a separation of a ``duration``-second track would cost."""
        options = self.validate(options)
        if options.preview:
            duration = min(duration, self.preview_seconds)
        return minutes_for(duration, total_stems(plan_tasks(options.stems, options.two_stems)))

    def check_quota(self, options: SeparationOptions, duration: float) -> float:
        """Raise ``QuotaError`` when the key cannot pay for this separation (the
        job pipeline calls this before it queues a job); returns the cost."""
        options = self.validate(options)
        seconds = min(duration, self.preview_seconds) if options.preview else duration
        stems = total_stems(plan_tasks(options.stems, options.two_stems))
        needed = minutes_for(seconds, stems)
        ensure_minutes(needed, self.client.minutes_left(), duration=seconds, stems=stems)
        return needed

    def quota(self) -> dict[str, float]:
        """The seed's ``{"quota_minutes", "used_minutes", "remaining_minutes"}``."""
        return get_quota(self.settings, self._key, self.ledger, self.client)

    def cancel_all(self) -> dict[str, CancelOutcome]:
        """Cancel every task of this key that is in progress, in any process
        (``/cancel/all/``). Separations waiting on them end with
        ``CancelledError`` and clean up after themselves."""
        outcomes = self.client.cancel_all()
        log.info("LALAL.AI: cancel-all stopped %d task(s)",
                 sum(1 for outcome in outcomes.values() if outcome.ok))
        return outcomes

    # --- steps ---------------------------------------------------------------

    def _start(
        self, client: LalalaiClient, source_id: str, task: PlannedTask, options: SeparationOptions
    ) -> str:
        presets = build_presets(task, options)
        # One idempotency key per task, reused by every retry of its start.
        idempotency_key = str(uuid.uuid4())
        if task.kind == "multistem":
            return client.split_multistem(source_id, presets, idempotency_key)
        return client.split_stem_separator(source_id, presets, idempotency_key)

    def _wait_and_fetch(
        self,
        run: _Run,
        watch: TaskWatch,
        staging: StagingDir,
        scratch: Path,
        options: SeparationOptions,
        info: AudioInfo,
        upload_name: str,
        preview: bool,
        cancel: CancelToken,
        progress: MonotonicProgress,
    ) -> None:
        pending = dict(run.tasks)
        while pending:
            cancel.raise_if_cancelled()
            statuses, error = watch.snapshot()
            if error is not None:
                raise error
            for task_id, task in list(pending.items()):
                status = statuses.get(task_id)
                if status is None:
                    continue
                if status.state == "progress":
                    run.task_progress[task_id] = PROCESSING_SHARE * status.progress / 100
                    continue
                run.finished.add(task_id)
                del pending[task_id]
                self._finish_task(
                    run, task_id, task, status, staging, scratch, options, info,
                    upload_name, preview, cancel, progress,
                )
            progress(run.overall())
            if pending:
                # Woken by every poll result and by cancel(); the timeout is a safety net.
                watch.wait(timeout=max(1.0, self.poll_interval))

    def _finish_task(
        self,
        run: _Run,
        task_id: str,
        task: PlannedTask,
        status: TaskStatus,
        staging: StagingDir,
        scratch: Path,
        options: SeparationOptions,
        info: AudioInfo,
        upload_name: str,
        preview: bool,
        cancel: CancelToken,
        progress: MonotonicProgress,
    ) -> None:
        key = self._key
        if status.state == "error":
            reason = scrub(status.error or "no reason given", key)
            raise ProviderTaskError(f"LALAL.AI could not extract {task.description}: {reason}")
        if status.state == "cancelled":
            raise CancelledError(
                "The LALAL.AI task was cancelled on the provider's side (for example by "
                "“cancel all”); no stems were kept."
            )
        if status.state != "success":
            reason = scrub(status.error or "unknown task", key)
            raise ProviderError(f"LALAL.AI lost track of the {task.description} task: {reason}")

        self._record_usage(run, task_id, task, status, upload_name, preview)
        tracks = {track.label: track for track in status.tracks}
        got = {name for label, name in task.outputs.items() if label in tracks}
        missing = sorted(required_outputs(task) - got)
        if missing:
            raise ProviderError(
                f"LALAL.AI finished the {task.description} task but sent no "
                f"{', '.join(missing)} track. Try again."
            )
        out_rate = options.sample_rate or info.sample_rate
        out_channels = output_channels(info.channels)
        outputs = [(label, name) for label, name in task.outputs.items() if label in tracks]
        if not outputs:
            raise ProviderError(
                f"LALAL.AI finished the {task.description} task but sent none of its tracks. "
                "Try again."
            )
        frames: int | None = None
        for index, (label, name) in enumerate(outputs):
            cancel.raise_if_cancelled()
            temp = scratch / f"{task_id}-{index}.{RESULT_FORMAT}"
            self.downloader.fetch(tracks[label].url, temp, label=name, cancel=cancel)
            path, frames = write_stem(
                temp, staging.file(stem_filename(name, options.format)), options,
                sample_rate=out_rate, channels=out_channels, label=name, cancel=cancel,
            )
            temp.unlink(missing_ok=True)
            run.written[name] = path.name
            run.task_progress[task_id] = PROCESSING_SHARE + (1 - PROCESSING_SHARE) * (
                (index + 1) / len(outputs)
            )
            progress(run.overall())
        if BACKING_VOCALS in task.outputs.values() and BACKING_VOCALS not in run.written:
            # The API leaves vocals@1 out when it finds no backing vocals: the
            # honest stem for that is silence, as long as the others.
            path = write_silence(
                staging.file(stem_filename(BACKING_VOCALS, options.format)), options,
                frames=frames or round(info.duration * out_rate), sample_rate=out_rate,
                channels=out_channels,
            )
            run.written[BACKING_VOCALS] = path.name
            run.notes.append("LALAL.AI found no backing vocals: backing_vocals is silent.")
        run.task_progress[task_id] = 1.0

    def _record_usage(
        self,
        run: _Run,
        task_id: str,
        task: PlannedTask,
        status: TaskStatus | None,
        name: str,
        preview: bool,
        *,
        cancelled: bool = False,
    ) -> None:
        if self._key is None:
            return
        # What the provider charged: its length of the file × the task's stems
        # (the task's own length once it finished, the upload's before).
        seconds = (status.duration if status is not None else None) or run.source_seconds
        try:
            self.ledger.record(
                UsageEntry(
                    key_id=key_id(self._key), task_id=task_id, seconds=seconds,
                    stems=task.stem_count, minutes=round(seconds * task.stem_count / 60, 4),
                    source_name=name, preview=preview, cancelled=cancelled,
                )
            )
        except Exception as exc:
            # The record is a report; an unreachable database must not throw the
            # separation away (the provider's minutes left stay the truth).
            log.warning("Could not record LALAL.AI usage of task %s: %s", task_id, exc)

    def _cancel_unfinished(self, client: LalalaiClient, run: _Run) -> list[str]:
        """Cancel the run's unfinished tasks; returns those the request could not
        reach the provider for (an answer, even "already ended", settles a task)."""
        unfinished = [task_id for task_id in run.tasks if task_id not in run.finished]
        if not unfinished:
            return []
        try:
            outcomes = client.cancel(unfinished)
        except SoundForgeError as exc:
            log.warning("LALAL.AI: could not cancel tasks %s: %s", unfinished, exc)
            return unfinished
        for outcome in outcomes.values():
            if not outcome.ok:
                log.info("LALAL.AI: task %s not cancelled: %s", outcome.task_id, outcome.error)
        return []

    def _delete_source(self, client: LalalaiClient, source_id: str) -> bool:
        # A failing delete must not turn a finished separation into a failure;
        # the caller records it to be released later.
        try:
            client.delete(source_id)
            return True
        except SoundForgeError as exc:
            log.warning("LALAL.AI: could not delete source %s: %s", source_id, exc)
            return False


def build_presets(task: PlannedTask, options: SeparationOptions) -> dict[str, Any]:
    """The ``presets`` body of a split request. Options left at None are not
    sent, so the provider applies its own defaults (splitter ``auto``,
    extraction level ``deep_extraction``)."""
    presets: dict[str, Any] = {"encoder_format": RESULT_FORMAT}
    if options.splitter is not None:
        presets["splitter"] = options.splitter
    if options.extraction_level is not None:
        presets["extraction_level"] = options.extraction_level
    if task.kind == "multistem":
        presets["stem_list"] = list(task.api_stems)
        return presets
    presets["stem"] = task.api_stems[0]
    if task.multivocal is not None:
        presets["multivocal"] = task.multivocal
    if options.enhanced_processing is not None:
        # Only stem_separator tasks carry this flag (see the /check/ example
        # presets in the provider's spec); multistem has no such field.
        presets["enhanced_processing_enabled"] = options.enhanced_processing
    return presets


@contextmanager
def _scratch_dir(destination: Path) -> Iterator[Path]:
    """A private folder beside the destination for the preview cut and the
    downloads. Named like a staging folder so that ``sweep_stale`` removes it
    if the process is killed."""
    path = Path(
        tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{destination.name}-lalalai-",
                         dir=destination.parent)
    )
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _decoded_duration(path: Path, info: AudioInfo) -> float:
    """Seconds of audio, by decoding, for files whose header gives no length."""
    reader = AudioReader(path, channels=min(info.channels, 2), info=info)
    for _ in reader:
        pass
    return reader.frames / info.sample_rate


def cancel_all(
    settings: Settings | None = None, api_key: str | SecretStr | None = None
) -> dict[str, CancelOutcome]:
    """Cancel all tasks in progress for a key (the user's, else the system one)."""
    with LalalaiEngine(settings, api_key=api_key) as engine:
        return engine.cancel_all()


def estimate(
    settings: Settings | None, options: SeparationOptions, duration: float
) -> dict[str, Any]:
    """``{"minutes", "seconds", "stems"}`` a separation of a ``duration``-second
    track would cost; no key needed, nothing sent (the web form's estimate)."""
    engine = LalalaiEngine(settings)
    options = engine.validate(options)
    seconds = min(duration, engine.preview_seconds) if options.preview else duration
    stems = total_stems(plan_tasks(options.stems, options.two_stems))
    return {"minutes": round(minutes_for(seconds, stems), 2),
            "seconds": billable_seconds(seconds), "stems": stems}


def cancel_tasks(
    settings: Settings | None, api_key: str | SecretStr | None, task_ids: Sequence[str]
) -> dict[str, CancelOutcome]:
    """Cancel these tasks at LALAL.AI now (one job's, from the web app); the
    outcome per task says whether the provider stopped it."""
    if not task_ids:
        return {}
    with LalalaiEngine(settings, api_key=api_key) as engine:
        return engine.client.cancel(list(task_ids))


# A dead run's clean-up happens in a worker's reconciler, which must not hang
# on an unreachable provider for minutes: two quick tries, then give up (the
# provider expires the file on its own).
# Two tries, briefly: what fails is recorded and retried later with backoff.
RELEASE_ATTEMPTS = 2
RELEASE_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class ReleaseOutcome:
    """What ``release_provider_work`` achieved, for logs and job messages."""

    cancelled: tuple[str, ...] = ()
    # Tasks the provider would not cancel, with its reason (most often: it had
    # already finished, which is fine: finished tasks cost nothing more).
    not_cancelled: Mapping[str, str] = field(default_factory=dict)
    source_deleted: bool = False
    # Requests that failed altogether (network, key refused …), in words.
    errors: tuple[str, ...] = ()
    # What is still held at the provider because it could not be reached (an
    # outage, not a refusal): worth trying again later.
    retry_tasks: tuple[str, ...] = ()
    retry_source: str | None = None

    @property
    def complete(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One or two sentences a person can read on the job."""
        parts: list[str] = []
        if self.cancelled:
            parts.append(f"cancelled {len(self.cancelled)} unfinished task(s)")
        if self.not_cancelled:
            parts.append(f"found {len(self.not_cancelled)} task(s) already ended")
        if self.source_deleted:
            parts.append("deleted the uploaded file")
        text = f"At LALAL.AI, SoundForge {_join(parts)}." if parts else ""
        if self.errors:
            problem = (
                "Could not clean up at LALAL.AI (" + "; ".join(self.errors) + "): the tasks may "
                "run to their end, and the provider deletes the file itself when it expires."
            )
            text = f"{text} {problem}".strip()
        return text


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def release_provider_work(
    settings: Settings,
    api_key: str | SecretStr | None,
    task_ids: Sequence[str],
    source_id: str | None,
    *,
    retry: RetryPolicy | None = None,
    timeout: httpx.Timeout | None = None,
) -> ReleaseOutcome:
    """Cancel the unfinished ``task_ids`` and delete ``source_id`` at LALAL.AI,
    for a separation whose process died (its own clean-up never ran).

    Best effort: never raises for what the provider or the network does; the
    outcome says what happened. ``api_key`` goes through the same precedence as
    the engine's (given key, ``LALALAI_API_KEY``, system key); without any key
    nothing is sent.
    """
    key = resolve_key(api_key, settings)
    if key is None:
        return ReleaseOutcome(errors=("no LALAL.AI key is configured",))
    if not task_ids and not source_id:
        return ReleaseOutcome()
    cancelled: list[str] = []
    not_cancelled: dict[str, str] = {}
    errors: list[str] = []
    deleted = False
    retry_tasks: tuple[str, ...] = ()
    retry_source: str | None = None
    retry = retry or replace(
        RetryPolicy.for_settings(settings.lalalai_retry_base_delay), attempts=RELEASE_ATTEMPTS
    )
    with LalalaiClient(
        settings.lalalai_url, key, retry=retry, timeout=timeout or RELEASE_TIMEOUT
    ) as client:
        if task_ids:
            try:
                outcomes = client.cancel(list(task_ids))
            except SoundForgeError as exc:
                errors.append(f"cancel: {scrub(exc.message, key)}")
                if isinstance(exc, ProviderUnavailableError | RateLimitedError):
                    retry_tasks = tuple(task_ids)
            else:
                for task_id in task_ids:
                    answer = outcomes.get(task_id)
                    if answer is not None and answer.ok:
                        cancelled.append(task_id)
                    else:
                        reason = answer.error if answer is not None else None
                        not_cancelled[task_id] = scrub(reason or "no answer", key)
        # After the cancel, not instead of it: deleting the source also stops
        # its tasks at LALAL.AI, but only the cancel tells us which ones ran.
        if source_id:
            try:
                client.delete(source_id)
                deleted = True
            except SoundForgeError as exc:
                errors.append(f"delete: {scrub(exc.message, key)}")
                if isinstance(exc, ProviderUnavailableError | RateLimitedError):
                    retry_source = source_id
    outcome = ReleaseOutcome(tuple(cancelled), not_cancelled, deleted, tuple(errors),
                             retry_tasks, retry_source)
    log.info(
        "LALAL.AI: released a stopped run's work: %d cancelled, %d already ended, source %s%s",
        len(outcome.cancelled), len(outcome.not_cancelled),
        "deleted" if deleted else "kept", f"; errors: {'; '.join(errors)}" if errors else "",
    )
    return outcome
