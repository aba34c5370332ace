"""Live job updates: ``publish`` on every change, ``asubscribe`` to follow jobs.

Every change of a job's status or progress (10 % steps) is written to its
database row *and then* published as a ``JobEvent``. Two transports, chosen by
``jobs.pipeline.open_event_bus(settings, database)``:

* ``SOUNDFORGE_QUEUE_URL=redis://…`` → ``RedisEventBus`` (``redis_events.py``):
  Redis pub/sub, on the channels ``soundforge:job:{job_id}`` and
  ``soundforge:user:{user_id}``; subscribers hear an update as soon as it
  happens, across machines.
* otherwise → ``DatabaseEventBus``: ``publish`` is a no-op (the row already
  holds the update) and subscribers poll the rows every
  ``SOUNDFORGE_EVENTS_POLL_INTERVAL`` seconds (0.5 s): no server needed.

API (the web app's SSE endpoints use it; subscribing is asyncio only, since
the SSE streams are its one user)::

    bus = open_event_bus(settings, database)
    bus.publish(event)                                  # after the DB commit

    # one job, ending by itself once the job is final (or deleted):
    async with bus.asubscribe(job_ids=[job_id], user_id=user.id, until_final=True) as sub:
        async for event in sub:
            send(event.to_dict())

    # a dashboard: every job of the user, as long as the page is open:
    async with bus.asubscribe(user_id=user.id) as sub:
        while True:
            event = await sub.get(timeout=15)           # None = nothing new (send a ping)
            ...

A subscription first yields the *current* state of the jobs it watches (all of
``job_ids``; for ``user_id`` alone, the user's queued and running jobs), read
when ``async with`` enters it (both transports), then the changes. Each event
carries the row's ``version``; a subscription never yields an older or equal
version of a job twice, so the snapshot and live events join without gaps or
repeats. A watched job whose row is gone yields
one event with ``status="deleted"``. Passing ``user_id`` together with
``job_ids`` restricts the subscription to that user's jobs: someone else's
job id looks deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from sqlalchemy import ColumnElement, Row, or_, select

from soundforge.db.base import utcnow
from soundforge.db.models import ACTIVE_STATUSES, ProcessingJob
from soundforge.db.session import Database

log = logging.getLogger(__name__)

DELETED = "deleted"
FINAL = frozenset({"completed", "failed", "cancelled", DELETED})
CHANNEL_PREFIX = "soundforge:"
# Rows written by another process may carry a slightly older timestamp than
# this poll's start: look back a little further (duplicates are dropped by version).
_POLL_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    user_id: int
    track_id: str
    status: str
    progress: int
    version: int
    error_message: str | None = None
    error_code: str | None = None
    updated_at: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobEvent:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]

    @classmethod
    def from_job(cls, job: ProcessingJob | Row[Any]) -> JobEvent:
        """From a job object or a row of the jobs table (same column names)."""
        return cls(
            job_id=job.id,
            user_id=job.user_id,
            track_id=job.track_id,
            status=job.status,
            progress=job.progress,
            version=job.version,
            error_message=job.error_message,
            error_code=job.error_code,
            updated_at=job.updated_at.isoformat() if job.updated_at else None,
        )

    @classmethod
    def deleted(cls, job_id: str, user_id: int, track_id: str, version: int) -> JobEvent:
        return cls(job_id, user_id, track_id, DELETED, 0, version, updated_at=_now_iso())


def _now_iso() -> str:
    return utcnow().isoformat()


# --- what a subscription has seen ------------------------------------------------
class Watch:
    """Filtering and de-duplication shared by every subscription kind."""

    def __init__(
        self, job_ids: Iterable[str] | None, user_id: int | None, until_final: bool
    ) -> None:
        self.job_ids = frozenset(job_ids) if job_ids is not None else None
        if self.job_ids is None and user_id is None:
            raise ValueError("subscribe to job_ids, a user_id, or both")
        if until_final and self.job_ids is None:
            raise ValueError("until_final needs job_ids (a user's job list never ends)")
        self.user_id = user_id
        self.until_final = until_final
        self.versions: dict[str, int] = {}
        self.final: set[str] = set()
        self.known: dict[str, tuple[int, str]] = {}  # job id → (user id, track id)

    def accept(self, event: JobEvent) -> bool:
        if self.job_ids is not None and event.job_id not in self.job_ids:
            return False
        if self.user_id is not None and event.user_id != self.user_id:
            return False
        if event.version <= self.versions.get(event.job_id, -1):
            return False
        self.versions[event.job_id] = event.version
        self.known[event.job_id] = (event.user_id, event.track_id)
        if event.is_final:
            self.final.add(event.job_id)
        else:
            self.final.discard(event.job_id)
        return True

    @property
    def done(self) -> bool:
        return self.until_final and self.job_ids is not None and self.job_ids <= self.final

    def missing_event(self, job_id: str) -> JobEvent:
        user_id, track_id = self.known.get(job_id, (self.user_id or 0, ""))
        return JobEvent.deleted(job_id, user_id, track_id, self.versions.get(job_id, 0) + 1)

    def watched_active(self) -> set[str]:
        """Jobs seen and not final: checked by id so that their deletion is noticed."""
        return {job_id for job_id in self.versions if job_id not in self.final}


def load_events(
    database: Database, watch: Watch, since: datetime | None
) -> tuple[list[JobEvent], set[str]]:
    """Rows to report (snapshot when ``since`` is None) and the watched ids that are gone."""
    with database.session() as session:
        query = select(ProcessingJob)
        conditions: list[ColumnElement[bool]] = []
        by_id: set[str] = set()
        if watch.job_ids is not None:
            by_id = set(watch.job_ids)
        else:
            by_id = watch.watched_active()
            if since is None:
                conditions.append(ProcessingJob.status.in_([s.value for s in ACTIVE_STATUSES]))
            else:
                conditions.append(ProcessingJob.updated_at >= since)
        if by_id:
            conditions.append(ProcessingJob.id.in_(by_id))
        if not conditions:
            return [], set()
        query = query.where(or_(*conditions))
        if watch.user_id is not None:
            query = query.where(ProcessingJob.user_id == watch.user_id)
        jobs = session.scalars(query.order_by(ProcessingJob.updated_at)).all()
        events = [JobEvent.from_job(job) for job in jobs]
    found = {event.job_id for event in events}
    return events, by_id - found


class AsyncSubscription(Protocol):
    @property
    def done(self) -> bool: ...
    async def get(self, timeout: float | None = None) -> JobEvent | None: ...
    async def aclose(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[JobEvent]: ...
    async def __aenter__(self) -> AsyncSubscription: ...
    async def __aexit__(self, *exc: object) -> None: ...


class SubscriptionBase:
    """``get``/iteration on top of a backend's ``_fetch(timeout)``: events
    fetched from the backend but not handed out yet, filtered by the watch."""

    def __init__(self, watch: Watch) -> None:
        self._watch = watch
        self._pending: list[JobEvent] = []
        self._closed = False

    def _take(self) -> JobEvent | None:
        while self._pending:
            event = self._pending.pop(0)
            if self._watch.accept(event):
                return event
        return None

    @property
    def done(self) -> bool:
        return self._watch.done and not self._pending

    async def _fetch(self, timeout: float) -> list[JobEvent]:
        raise NotImplementedError

    async def get(self, timeout: float | None = None) -> JobEvent | None:
        """The next event; None when ``timeout`` passed first, or when the
        subscription is done (``until_final`` and every job final)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._closed:
            event = self._take()
            if event is not None:
                return event
            if self._watch.done:
                return None
            remaining = 1.0 if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return None
            self._pending.extend(await self._fetch(min(remaining, 1.0)))
        return None

    async def __aiter__(self) -> AsyncIterator[JobEvent]:
        while not self._closed:
            event = await self.get(timeout=None if not self._watch.until_final else 1.0)
            if event is not None:
                yield event
            elif self._watch.done:
                return

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --- database polling ----------------------------------------------------------------
class _DbPoller:
    def __init__(self, database: Database, watch: Watch, interval: float) -> None:
        self.database = database
        self.watch = watch
        self.interval = interval
        self.since: datetime | None = None
        self.next_poll = 0.0

    def wait_time(self) -> float:
        return max(0.0, self.next_poll - time.monotonic())

    def poll(self) -> list[JobEvent]:
        started = utcnow()
        events, gone = load_events(self.database, self.watch, self.since)
        self.since = started - _POLL_SLACK
        self.next_poll = time.monotonic() + self.interval
        events.extend(
            self.watch.missing_event(job_id)
            for job_id in sorted(gone)
            if job_id not in self.watch.final
        )
        return events


class _AsyncDbSubscription(SubscriptionBase):
    def __init__(self, poller: _DbPoller) -> None:
        super().__init__(poller.watch)
        self._poller = poller

    async def _fetch(self, timeout: float) -> list[JobEvent]:
        wait = self._poller.wait_time()
        if wait > timeout:
            await asyncio.sleep(timeout)
            return []
        await asyncio.sleep(wait)
        return await asyncio.to_thread(self._poller.poll)

    async def __aenter__(self) -> Self:
        # The snapshot now, as the Redis subscription takes it: what happens to
        # the jobs after ``async with`` is entered is then heard as a change.
        self._pending.extend(await asyncio.to_thread(self._poller.poll))
        return self


class DatabaseEventBus:
    """No server: the job rows are the events, subscribers poll them."""

    def __init__(self, database: Database, poll_interval: float = 0.5) -> None:
        self.database = database
        self.poll_interval = poll_interval

    def publish(self, event: JobEvent) -> None:
        """Nothing to send: the update is already in the job's row."""

    def asubscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> AsyncSubscription:
        watch = Watch(job_ids, user_id, until_final)
        return _AsyncDbSubscription(_DbPoller(self.database, watch, self.poll_interval))

    def close(self) -> None:
        pass


class EventBus(Protocol):
    def publish(self, event: JobEvent) -> None: ...

    def asubscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> AsyncSubscription: ...

    def close(self) -> None: ...


def is_redis_url(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("redis", "rediss", "unix")  # type: ignore[union-attr]
