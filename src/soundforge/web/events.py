"""Server-Sent Events for job progress, on top of the pipeline's event bus.

Two streams: one job (``/jobs/{id}/events``, ``/api/jobs/{id}/events``), which
ends when the job is final, and all of a user's jobs (``/events``), which the
pages use: one connection per page however many jobs run (browsers allow only
six per site over HTTP/1.1). Each stream starts with the current state, so a
page that connects late still shows the right progress. Each ``job`` event is
a ``JobEventOut``: the same state fields as the job's JSON (``JobOut``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sse_starlette.sse import EventSourceResponse

from soundforge.jobs.events import EventBus
from soundforge.web.resources import JobEventOut

# A comment line this often keeps proxies from closing an idle stream and lets
# the server notice a browser that went away.
KEEPALIVE_SECONDS = 15.0


class JobEvents:
    """SSE responses over the pipeline's event bus (Redis pub/sub, or polling
    the job rows when there is no Redis)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def _stream(
        self,
        request: Request,
        job_ids: list[str] | None,
        user_id: int,
        until_final: bool,
    ) -> AsyncIterator[dict[str, str]]:
        async with self.bus.asubscribe(
            job_ids=job_ids, user_id=user_id, until_final=until_final
        ) as subscription:
            while True:
                if await request.is_disconnected():
                    return
                event = await subscription.get(timeout=1.0)
                if event is None:
                    if until_final and subscription.done:
                        yield {"event": "end", "data": "{}"}
                        return
                    continue
                yield {
                    "event": "job",
                    "id": f"{event.job_id}:{event.version}",
                    "data": JobEventOut.from_event(event).model_dump_json(),
                }
                if until_final and subscription.done:
                    yield {"event": "end", "data": "{}"}
                    return

    def job_stream(self, request: Request, job_id: str, user_id: int) -> EventSourceResponse:
        return self._response(self._stream(request, [job_id], user_id, until_final=True))

    def user_stream(self, request: Request, user_id: int) -> EventSourceResponse:
        return self._response(self._stream(request, None, user_id, until_final=False))

    @staticmethod
    def _response(stream: AsyncIterator[dict[str, str]]) -> EventSourceResponse:
        return EventSourceResponse(
            stream,
            ping=int(KEEPALIVE_SECONDS),
            # Tell proxies (nginx) not to buffer the stream.
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
