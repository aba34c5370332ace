"""Live job updates: ``publish`` on every change, ``subscribe`` to follow jobs.

Every change of a job's status or progress (10 % steps) is written to its
database row *and then* published as a ``JobEvent``. Two transports, chosen by
``open_event_bus(settings, database)``:

* ``SOUNDFORGE_QUEUE_URL=redis://…`` → ``RedisEventBus``: Redis pub/sub, on the
  channels ``soundforge:job:{job_id}`` and ``soundforge:user:{user_id}``;
  subscribers hear an update as soon as it happens, across machines.
* otherwise → ``DatabaseEventBus``: ``publish`` is a no-op (the row already
  holds the update) and subscribers poll the rows every
  ``SOUNDFORGE_EVENTS_POLL_INTERVAL`` seconds (0.5 s): no server needed.

API (the web app's SSE endpoints use it)::

    bus = open_event_bus(settings, database)
    bus.publish(event)                                  # after the DB commit

    # one job, ending by itself once the job is final (or deleted):
    with bus.subscribe(job_ids=[job_id], user_id=user.id, until_final=True) as sub:
        for event in sub:                               # blocks between events
            send(event.to_dict())

    # a dashboard: every job of the user, as long as the page is open:
    async with bus.asubscribe(user_id=user.id) as sub:
        while True:
            event = await sub.get(timeout=15)           # None = nothing new (send a ping)
            ...

A subscription first yields the *current* state of the jobs it watches (all of
``job_ids``; for ``user_id`` alone, the user's queued and running jobs), then
the changes. Each event carries the row's ``version``; a subscription never
yields an older or equal version of a job twice, so the snapshot and live
events join without gaps or repeats. A watched job whose row is gone yields
one event with ``status="deleted"``. Passing ``user_id`` together with
``job_ids`` restricts the subscription to that user's jobs: someone else's
job id looks deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from sqlalchemy import ColumnElement, Row, or_, select

from soundforge.config import Settings
from soundforge.db.base import utcnow
from soundforge.db.models import ACTIVE_STATUSES, ProcessingJob
from soundforge.db.session import Database
from soundforge.jobs.config import PipelineSettings

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
class _Watch:
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


def _load_events(
    database: Database, watch: _Watch, since: datetime | None
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


class Subscription(Protocol):
    def get(self, timeout: float | None = None) -> JobEvent | None: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[JobEvent]: ...
    def __enter__(self) -> Subscription: ...
    def __exit__(self, *exc: object) -> None: ...


class AsyncSubscription(Protocol):
    @property
    def done(self) -> bool: ...
    async def get(self, timeout: float | None = None) -> JobEvent | None: ...
    async def aclose(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[JobEvent]: ...
    async def __aenter__(self) -> AsyncSubscription: ...
    async def __aexit__(self, *exc: object) -> None: ...


class _Buffered:
    """What the sync and async subscriptions share: events fetched from the
    backend but not handed out yet, filtered by the watch."""

    def __init__(self, watch: _Watch) -> None:
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


class _SyncBase(_Buffered):
    """``get``/iteration on top of a backend's ``_fetch(timeout)``."""

    def _fetch(self, timeout: float) -> list[JobEvent]:
        raise NotImplementedError

    def get(self, timeout: float | None = None) -> JobEvent | None:
        """The next event; None when ``timeout`` passed first, or when the
        subscription is done (``until_final`` and every job final)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            event = self._take()
            if event is not None:
                return event
            if self._watch.done:
                return None
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pending.extend(self._fetch(min(remaining, 1.0)))
        return None

    def __iter__(self) -> Iterator[JobEvent]:
        while not self._closed:
            event = self.get(timeout=None if not self._watch.until_final else 1.0)
            if event is not None:
                yield event
            elif self._watch.done:
                return

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncBase(_Buffered):
    """The same as ``_SyncBase`` for asyncio (the web app's SSE streams)."""

    async def _fetch(self, timeout: float) -> list[JobEvent]:
        raise NotImplementedError

    async def get(self, timeout: float | None = None) -> JobEvent | None:
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
    def __init__(self, database: Database, watch: _Watch, interval: float) -> None:
        self.database = database
        self.watch = watch
        self.interval = interval
        self.since: datetime | None = None
        self.next_poll = 0.0

    def wait_time(self) -> float:
        return max(0.0, self.next_poll - time.monotonic())

    def poll(self) -> list[JobEvent]:
        started = utcnow()
        events, gone = _load_events(self.database, self.watch, self.since)
        self.since = started - _POLL_SLACK
        self.next_poll = time.monotonic() + self.interval
        events.extend(
            self.watch.missing_event(job_id)
            for job_id in sorted(gone)
            if job_id not in self.watch.final
        )
        return events


class _DbSubscription(_SyncBase):
    def __init__(self, poller: _DbPoller) -> None:
        super().__init__(poller.watch)
        self._poller = poller
        # The snapshot is the state when subscribing, as Redis subscriptions
        # read it: a change made right after subscribing arrives as a change,
        # not folded into a late first poll.
        self._pending.extend(poller.poll())

    def _fetch(self, timeout: float) -> list[JobEvent]:
        wait = self._poller.wait_time()
        if wait > timeout:
            time.sleep(timeout)
            return []
        time.sleep(wait)
        return self._poller.poll()


class _AsyncDbSubscription(_AsyncBase):
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
        # The snapshot when subscribing (see _DbSubscription).
        self._pending.extend(await asyncio.to_thread(self._poller.poll))
        return self


class DatabaseEventBus:
    """No server: the job rows are the events, subscribers poll them."""

    def __init__(self, database: Database, poll_interval: float = 0.5) -> None:
        self.database = database
        self.poll_interval = poll_interval

    def publish(self, event: JobEvent) -> None:
        """Nothing to send: the update is already in the job's row."""

    def subscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> Subscription:
        watch = _Watch(job_ids, user_id, until_final)
        return _DbSubscription(_DbPoller(self.database, watch, self.poll_interval))

    def asubscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> AsyncSubscription:
        watch = _Watch(job_ids, user_id, until_final)
        return _AsyncDbSubscription(_DbPoller(self.database, watch, self.poll_interval))

    def close(self) -> None:
        pass


# --- Redis pub/sub -------------------------------------------------------------------
def job_channel(job_id: str) -> str:
    return f"{CHANNEL_PREFIX}job:{job_id}"


def user_channel(user_id: int) -> str:
    return f"{CHANNEL_PREFIX}user:{user_id}"


def _channels(watch: _Watch) -> list[str]:
    if watch.job_ids is not None:
        return [job_channel(job_id) for job_id in sorted(watch.job_ids)]
    assert watch.user_id is not None
    return [user_channel(watch.user_id)]


def _decode(message: dict[str, Any] | None) -> JobEvent | None:
    if not message or message.get("type") != "message":
        return None
    try:
        data = message["data"]
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return JobEvent.from_dict(json.loads(data))
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring a malformed job event: %.200r", message.get("data"))
        return None


class _RedisSubscription(_SyncBase):
    def __init__(self, bus: RedisEventBus, watch: _Watch) -> None:
        super().__init__(watch)
        self._bus = bus
        self._pubsub = bus.client.pubsub(ignore_subscribe_messages=True)
        # Subscribe before reading the snapshot: an update that lands in
        # between is then heard (and a repeat is dropped by its version).
        self._pubsub.subscribe(*_channels(watch))
        events, gone = _load_events(bus.database, watch, None)
        self._pending.extend(events)
        self._pending.extend(watch.missing_event(job_id) for job_id in sorted(gone))

    def _fetch(self, timeout: float) -> list[JobEvent]:
        event = _decode(self._pubsub.get_message(timeout=timeout))
        return [event] if event is not None else []

    def close(self) -> None:
        if not self._closed:
            super().close()
            with contextlib.suppress(Exception):
                self._pubsub.close()


class _AsyncRedisSubscription(_AsyncBase):
    def __init__(self, bus: RedisEventBus, watch: _Watch) -> None:
        super().__init__(watch)
        self._bus = bus
        self._client: Any = None
        self._pubsub: Any = None
        self._started = False

    async def _start(self) -> None:
        from redis import asyncio as aioredis

        self._client = aioredis.Redis.from_url(self._bus.url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*_channels(self._watch))
        events, gone = await asyncio.to_thread(_load_events, self._bus.database, self._watch, None)
        self._pending.extend(events)
        self._pending.extend(self._watch.missing_event(job_id) for job_id in sorted(gone))
        self._started = True

    async def _fetch(self, timeout: float) -> list[JobEvent]:
        if not self._started:
            await self._start()
            return []
        event = _decode(await self._pubsub.get_message(timeout=timeout))
        return [event] if event is not None else []

    async def __aenter__(self) -> _AsyncRedisSubscription:
        await self._start()
        return self

    async def aclose(self) -> None:
        if self._closed:
            return
        await super().aclose()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()


class RedisEventBus:
    """Redis pub/sub: updates reach every machine's subscribers at once."""

    def __init__(self, url: str, database: Database) -> None:
        import redis

        self.url = url
        self.database = database
        self.client = redis.Redis.from_url(url)

    def publish(self, event: JobEvent) -> None:
        """Send ``event``; a Redis failure is logged, never raised (the row has the state,
        and a new subscription starts from it)."""
        payload = event.to_json()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.publish(job_channel(event.job_id), payload)
                pipe.publish(user_channel(event.user_id), payload)
                pipe.execute()
        except Exception as exc:  # live updates are best effort: never fail the job
            log.warning("could not publish job event for %s: %s", event.job_id, exc)

    def subscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> Subscription:
        return _RedisSubscription(self, _Watch(job_ids, user_id, until_final))

    def asubscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> AsyncSubscription:
        return _AsyncRedisSubscription(self, _Watch(job_ids, user_id, until_final))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class EventBus(Protocol):
    def publish(self, event: JobEvent) -> None: ...

    def subscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> Subscription: ...

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


def open_event_bus(
    settings: Settings, database: Database, pipeline: PipelineSettings | None = None
) -> EventBus:
    if is_redis_url(settings.queue_url):
        assert settings.queue_url is not None
        return RedisEventBus(settings.queue_url, database)
    interval = (pipeline or PipelineSettings()).events_poll_interval
    return DatabaseEventBus(database, interval)
