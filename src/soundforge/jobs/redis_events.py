"""The Redis transport of job events: pub/sub on ``soundforge:job:{job_id}`` and
``soundforge:user:{user_id}``, so subscribers on every machine hear an update
as soon as it happens. The events, the watch and the database transport are in
``events.py``; ``pipeline.open_event_bus`` picks the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from soundforge.db.session import Database
from soundforge.jobs.events import (
    CHANNEL_PREFIX,
    AsyncSubscription,
    JobEvent,
    SubscriptionBase,
    Watch,
    load_events,
)

log = logging.getLogger(__name__)


def job_channel(job_id: str) -> str:
    return f"{CHANNEL_PREFIX}job:{job_id}"


def user_channel(user_id: int) -> str:
    return f"{CHANNEL_PREFIX}user:{user_id}"


def _channels(watch: Watch) -> list[str]:
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


class _AsyncRedisSubscription(SubscriptionBase):
    def __init__(self, bus: RedisEventBus, watch: Watch) -> None:
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
        events, gone = await asyncio.to_thread(load_events, self._bus.database, self._watch, None)
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

    def asubscribe(
        self,
        job_ids: Iterable[str] | None = None,
        user_id: int | None = None,
        *,
        until_final: bool = False,
    ) -> AsyncSubscription:
        return _AsyncRedisSubscription(self, Watch(job_ids, user_id, until_final))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
