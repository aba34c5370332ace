"""Following jobs through the event bus from synchronous tests.

The bus offers one subscription API, asyncio's (the SSE streams are its
users); these helpers run it to the end in a fresh event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from soundforge.jobs.events import EventBus, JobEvent


def follow_until_final(
    bus: EventBus,
    job_ids: Iterable[str],
    user_id: int | None = None,
    *,
    then: Callable[[], object] | None = None,
) -> list[JobEvent]:
    """Every event of ``job_ids`` until each is final: the snapshot taken on
    subscribing first, then the changes. ``then`` starts (in a thread, while the
    events are read) once the subscription holds its snapshot, so what it does
    is heard as changes."""

    async def follow() -> list[JobEvent]:
        async with bus.asubscribe(job_ids=job_ids, user_id=user_id, until_final=True) as sub:
            running = asyncio.create_task(asyncio.to_thread(then)) if then else None
            events = [event async for event in sub]
            if running is not None:
                await running  # its errors fail the test
            return events

    return asyncio.run(follow())


def first_events(
    bus: EventBus,
    job_ids: Iterable[str],
    user_id: int | None = None,
    *,
    count: int = 1,
    between: Callable[[], object] | None = None,
    timeout: float = 10.0,
) -> list[JobEvent | None]:
    """The first event, then (after ``between`` ran) ``count - 1`` more, each
    within ``timeout`` seconds (None where none came)."""

    async def follow() -> list[JobEvent | None]:
        async with bus.asubscribe(job_ids=job_ids, user_id=user_id) as sub:
            seen = [await sub.get(timeout=timeout)]
            if between is not None:
                await asyncio.to_thread(between)
            for _ in range(count - 1):
                seen.append(await sub.get(timeout=timeout))
            return seen

    return asyncio.run(follow())
