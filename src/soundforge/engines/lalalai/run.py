"""One LALAL.AI separation, start to end, as an object.

``LalalaiEngine.separate`` checks the options and the key, probes the input,
then hands over to a ``SeparationRun``. The run holds everything that belongs
to this one separation (the staging and scratch folders, the tasks started,
their progress, the stems written), so its steps take no long parameter lists
and several runs of one engine never share state:

1. for a preview, the first seconds are cut to a FLAC file; the cost (seconds ×
   stems) is compared with ``minutes_left``: nothing is uploaded when the key
   cannot pay for it;
2. the file is uploaded (streaming), then one task per planned task is started
   (``stems.plan_tasks``), each reported to ``on_provider_work`` at once;
3. the shared poller reports the tasks' progress; each finished task's tracks
   are downloaded and written as stems into the staging folder;
4. on success the stems are moved into place; whatever happens, unfinished
   tasks are cancelled and the source file is deleted from the provider, and
   what could not be released is told to ``on_unreleased``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from soundforge.audio.probe import AudioInfo
from soundforge.audio.reader import AudioReader
from soundforge.audio.writer import stem_filename
from soundforge.engines.base import (
    CancelToken,
    MonotonicProgress,
    ProviderWork,
    ProviderWorkCallback,
    SeparationOptions,
    SeparationResult,
)
from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.download import (
    TrackDownloader,
    output_channels,
    write_silence,
    write_stem,
)
from soundforge.engines.lalalai.errors import ProviderTaskError
from soundforge.engines.lalalai.keys import key_id, scrub
from soundforge.engines.lalalai.ledger import UsageEntry, UsageLedger
from soundforge.engines.lalalai.poller import CheckPoller, TaskWatch
from soundforge.engines.lalalai.preview import cut_preview
from soundforge.engines.lalalai.quota import billable_seconds, ensure_minutes, minutes_for
from soundforge.engines.lalalai.responses import TaskStatus
from soundforge.engines.lalalai.stems import (
    BACKING_VOCALS,
    RESULT_FORMAT,
    PlannedTask,
    build_presets,
    plan_tasks,
    required_outputs,
    total_stems,
)
from soundforge.errors import CancelledError, ProviderError, SoundForgeError
from soundforge.storage.staging import STAGING_PREFIX, StagingDir, staging_for

log = logging.getLogger(__name__)

# Progress budget: preparing + uploading up to UPLOADED, then each task's share
# is 80 % processing (from /check/) and 20 % downloading its tracks.
UPLOADED = 10.0
PROCESSING_SHARE = 0.8


@dataclass(frozen=True)
class RunServices:
    """What a run borrows from its engine: shared, thread-safe pieces."""

    client: LalalaiClient
    downloader: TrackDownloader
    # A property of the engine (opened on first use), so passed as a getter.
    ledger: Callable[[], UsageLedger]
    poller: Callable[[], CheckPoller]
    key: SecretStr | None
    poll_interval: float
    preview_seconds: float


@dataclass
class SeparationRun:
    """One separation of ``input_path`` with checked ``options``."""

    services: RunServices
    input_path: Path
    info: AudioInfo
    options: SeparationOptions
    cancel: CancelToken
    progress: MonotonicProgress
    # The name the file has at LALAL.AI (its dashboard shows it).
    upload_name: str
    on_provider_work: ProviderWorkCallback | None = None
    on_unreleased: ProviderWorkCallback | None = None

    # --- filled in as the run goes ------------------------------------------
    tasks: dict[str, PlannedTask] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    task_progress: dict[str, float] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)  # stem → file name in staging
    notes: list[str] = field(default_factory=list)
    source_id: str | None = None
    source_seconds: int = 0  # the provider's length of the upload

    def overall(self) -> float:
        if not self.task_progress:
            return UPLOADED
        share = sum(self.task_progress.values()) / len(self.task_progress)
        return UPLOADED + (99.0 - UPLOADED) * share

    def execute(self, destination: Path) -> SeparationResult:
        """Run to the end; stems appear in ``destination`` only on success."""
        client = self.services.client
        planned = plan_tasks(self.options.stems, self.options.two_stems)
        stems = total_stems(planned)
        with staging_for(destination) as staging, _scratch_dir(destination) as scratch:
            upload_path, seconds = self.input_path, self.info.duration
            if self.options.preview:
                upload_path, seconds = cut_preview(
                    self.input_path, self.info, scratch, self.services.preview_seconds
                )
                self.upload_name = f"{Path(self.upload_name).stem} (preview){upload_path.suffix}"
            elif seconds <= 0:
                seconds = _decoded_duration(self.input_path, self.info)
            needed = minutes_for(seconds, stems)
            ensure_minutes(needed, client.minutes_left(), duration=seconds, stems=stems)
            self.progress(2)
            self.cancel.raise_if_cancelled()

            not_cancelled: list[str] = []
            watch: TaskWatch | None = None
            poller: CheckPoller | None = None
            try:
                log.info(
                    "LALAL.AI: uploading %s (%d s, %d stem(s), %s minutes)",
                    self.upload_name, billable_seconds(seconds), stems, f"{needed:.2f}",
                )
                self._upload(upload_path, seconds)
                self._start_tasks(planned)
                self.progress(UPLOADED)
                poller = self.services.poller()
                watch = poller.watch(self.tasks, interval=self.services.poll_interval)
                self.cancel.on_cancel(watch.wake)
                self._wait_and_fetch(watch, staging, scratch)
                # A cancel that came in during the last download still wins.
                self.cancel.raise_if_cancelled()
                moved = staging.commit()
            except BaseException as exc:
                not_cancelled = self._cancel_unfinished()
                for task_id, task in self.tasks.items():
                    if task_id not in self.finished:  # charged, never delivered
                        self._record_usage(task_id, task, None, cancelled=True)
                if isinstance(exc, CancelledError):
                    log.info("LALAL.AI: separation of %s cancelled", self.upload_name)
                raise
            finally:
                if poller is not None and watch is not None:
                    poller.unwatch(watch)
                self._release(not_cancelled)
        self.progress(100)
        return SeparationResult(
            stems={name: moved[file_name] for name, file_name in self.written.items()},
            provider_work=ProviderWork(self.source_id or "", tuple(self.tasks)),
            minutes=round(needed, 2),
            notes=tuple(self.notes),
        )

    # --- steps ---------------------------------------------------------------

    def _upload(self, upload_path: Path, seconds: float) -> None:
        source = self.services.client.upload(
            upload_path,
            self.upload_name,
            on_sent=lambda sent, total: self.progress(2 + (UPLOADED - 3) * sent / total),
            cancel=self.cancel,
        )
        self.source_id = source.id
        self.source_seconds = source.duration or billable_seconds(seconds)
        # Reported before any task exists: a process killed between two task
        # starts leaves a file the recorder can still delete.
        if self.on_provider_work is not None:
            self.on_provider_work(ProviderWork(source.id))

    def _start_tasks(self, planned: list[PlannedTask]) -> None:
        assert self.source_id is not None
        for task in planned:
            self.cancel.raise_if_cancelled()
            task_id = self._start(task)
            self.tasks[task_id] = task
            self.task_progress[task_id] = 0.0
            # Charged as it starts: counted now, whatever happens next.
            self._record_usage(task_id, task, None)
            log.info("LALAL.AI: %s task %s started for %s", task.kind, task_id, task.description)
            # After every start, not once at the end: each task is charged as it
            # starts, so each must be findable at once.
            if self.on_provider_work is not None:
                self.on_provider_work(ProviderWork(self.source_id, tuple(self.tasks)))

    def _start(self, task: PlannedTask) -> str:
        assert self.source_id is not None
        presets = build_presets(task, self.options)
        # One idempotency key per task, reused by every retry of its start.
        idempotency_key = str(uuid.uuid4())
        client = self.services.client
        if task.kind == "multistem":
            return client.split_multistem(self.source_id, presets, idempotency_key)
        return client.split_stem_separator(self.source_id, presets, idempotency_key)

    def _wait_and_fetch(self, watch: TaskWatch, staging: StagingDir, scratch: Path) -> None:
        pending = dict(self.tasks)
        while pending:
            self.cancel.raise_if_cancelled()
            statuses, error = watch.snapshot()
            if error is not None:
                raise error
            for task_id, task in list(pending.items()):
                status = statuses.get(task_id)
                if status is None:
                    continue
                if status.state == "progress":
                    self.task_progress[task_id] = PROCESSING_SHARE * status.progress / 100
                    continue
                self.finished.add(task_id)
                del pending[task_id]
                self._finish_task(task_id, task, status, staging, scratch)
            self.progress(self.overall())
            if pending:
                # Woken by every poll result and by cancel(); the timeout is a safety net.
                watch.wait(timeout=max(1.0, self.services.poll_interval))

    def _finish_task(
        self,
        task_id: str,
        task: PlannedTask,
        status: TaskStatus,
        staging: StagingDir,
        scratch: Path,
    ) -> None:
        key = self.services.key
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

        self._record_usage(task_id, task, status)
        tracks = {track.label: track for track in status.tracks}
        got = {name for label, name in task.outputs.items() if label in tracks}
        missing = sorted(required_outputs(task) - got)
        if missing:
            raise ProviderError(
                f"LALAL.AI finished the {task.description} task but sent no "
                f"{', '.join(missing)} track. Try again."
            )
        options, info = self.options, self.info
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
            self.cancel.raise_if_cancelled()
            temp = scratch / f"{task_id}-{index}.{RESULT_FORMAT}"
            self.services.downloader.fetch(tracks[label].url, temp, label=name, cancel=self.cancel)
            path, frames = write_stem(
                temp, staging.file(stem_filename(name, options.format)), options,
                sample_rate=out_rate, channels=out_channels, label=name, cancel=self.cancel,
            )
            temp.unlink(missing_ok=True)
            self.written[name] = path.name
            self.task_progress[task_id] = PROCESSING_SHARE + (1 - PROCESSING_SHARE) * (
                (index + 1) / len(outputs)
            )
            self.progress(self.overall())
        if BACKING_VOCALS in task.outputs.values() and BACKING_VOCALS not in self.written:
            # The API leaves vocals@1 out when it finds no backing vocals: the
            # honest stem for that is silence, as long as the others.
            path = write_silence(
                staging.file(stem_filename(BACKING_VOCALS, options.format)), options,
                frames=frames or round(info.duration * out_rate), sample_rate=out_rate,
                channels=out_channels,
            )
            self.written[BACKING_VOCALS] = path.name
            self.notes.append("LALAL.AI found no backing vocals: backing_vocals is silent.")
        self.task_progress[task_id] = 1.0

    def _record_usage(
        self,
        task_id: str,
        task: PlannedTask,
        status: TaskStatus | None,
        *,
        cancelled: bool = False,
    ) -> None:
        key = self.services.key
        if key is None:
            return
        # What the provider charged: its length of the file × the task's stems
        # (the task's own length once it finished, the upload's before).
        seconds = (status.duration if status is not None else None) or self.source_seconds
        try:
            self.services.ledger().record(
                UsageEntry(
                    key_id=key_id(key), task_id=task_id, seconds=seconds,
                    stems=task.stem_count, minutes=round(seconds * task.stem_count / 60, 4),
                    source_name=self.upload_name, preview=self.options.preview,
                    cancelled=cancelled,
                )
            )
        except Exception as exc:
            # The record is a report; an unreachable database must not throw the
            # separation away (the provider's minutes left stay the truth).
            log.warning("Could not record LALAL.AI usage of task %s: %s", task_id, exc)

    # --- clean-up ------------------------------------------------------------

    def _cancel_unfinished(self) -> list[str]:
        """Cancel the run's unfinished tasks; returns those the request could not
        reach the provider for (an answer, even "already ended", settles a task)."""
        unfinished = [task_id for task_id in self.tasks if task_id not in self.finished]
        if not unfinished:
            return []
        try:
            outcomes = self.services.client.cancel(unfinished)
        except SoundForgeError as exc:
            log.warning("LALAL.AI: could not cancel tasks %s: %s", unfinished, exc)
            return unfinished
        for outcome in outcomes.values():
            if not outcome.ok:
                log.info("LALAL.AI: task %s not cancelled: %s", outcome.task_id, outcome.error)
        return []

    def _release(self, not_cancelled: list[str]) -> None:
        """Delete the upload, and tell ``on_unreleased`` what is still held."""
        deleted = self.source_id is None or self._delete_source(self.source_id)
        if (not_cancelled or not deleted) and self.on_unreleased is not None:
            try:
                self.on_unreleased(ProviderWork("" if deleted else str(self.source_id),
                                                tuple(not_cancelled)))
            except Exception as hook_error:  # the job's own outcome comes first
                log.error("LALAL.AI: could not record unreleased work: %s", hook_error)

    def _delete_source(self, source_id: str) -> bool:
        # A failing delete must not turn a finished separation into a failure;
        # the caller records it to be released later.
        try:
            self.services.client.delete(source_id)
            return True
        except SoundForgeError as exc:
            log.warning("LALAL.AI: could not delete source %s: %s", source_id, exc)
            return False


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
