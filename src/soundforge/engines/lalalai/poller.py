"""The ``/check/`` loop, shared by every separation of this process.

LALAL.AI allows 30 ``/check/`` requests a minute per key, and one request may
ask about up to 200 tasks. So instead of each separation polling on its own
(two concurrent jobs with three tasks each would burn the budget six times as
fast), one ``CheckPoller`` per (API URL, key) asks about *all* unfinished
tasks of all its watchers in one request, and a ``RateLimiter`` per key (shared
by all pollers of that key) keeps the pace under the limit. A 429 still
answered by the provider (another process using the same key) is met with
exponential back-off.

The poller's thread starts with the first watch and ends when nothing is left
to watch, so an idle process holds no thread and no connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from soundforge.engines.lalalai.client import LalalaiClient
from soundforge.engines.lalalai.errors import RateLimitedError
from soundforge.engines.lalalai.responses import TaskStatus
from soundforge.engines.lalalai.retrying import RetryPolicy
from soundforge.errors import SoundForgeError

log = logging.getLogger(__name__)

# The provider's published limit for /check/.
CHECK_LIMIT = 30
CHECK_WINDOW = 60.0
# How long an idle poller thread waits for new work before it ends.
IDLE_LINGER = 2.0


class _Stamp:
    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class RateLimiter:
    """At most ``limit`` requests in any ``window`` seconds (a sliding log,
    which unlike a token bucket never allows a burst over the limit).

    The provider counts a request when it *arrives*, which is some time after
    we send it; so a request counts here from when it was sent *until its
    answer came back* (``acquire()`` then ``done()``): our window then always
    ends after the provider's does, and network jitter can't push us over.
    """

    def __init__(
        self,
        limit: int = CHECK_LIMIT,
        window: float = CHECK_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._stamps: deque[_Stamp] = deque()
        self._lock = threading.Lock()

    def configure(self, limit: int, window: float) -> None:
        with self._lock:
            self.limit = limit
            self.window = window

    def delay(self) -> float:
        """Seconds until a slot frees up; 0 when one is free now."""
        with self._lock:
            return self._delay_locked(self._clock())

    def _delay_locked(self, now: float) -> float:
        while self._stamps and self._stamps[0].at <= now - self.window:
            self._stamps.popleft()
        if len(self._stamps) < self.limit:
            return 0.0
        # Answers can come back out of order: the slot that frees first is
        # the one of the (len - limit + 1)-th earliest stamp.
        times = sorted(stamp.at for stamp in self._stamps)
        return max(times[len(times) - self.limit] + self.window - now, 1e-3)

    def acquire(self, wait: Callable[[float], bool] | None = None) -> _Stamp | None:
        """Take a slot, sleeping until one is free; call ``done(stamp)`` when
        the answer is in. ``wait(seconds)`` sleeps and returns True to give up
        (a stop request), in which case None is returned."""
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay_locked(now)
                if delay <= 0:
                    stamp = _Stamp(now)
                    self._stamps.append(stamp)
                    return stamp
            if wait is None:
                time.sleep(delay)
            elif wait(delay):
                return None

    def done(self, stamp: _Stamp) -> None:
        with self._lock:
            stamp.at = max(stamp.at, self._clock())


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(key_id: str, limit: int = CHECK_LIMIT, window: float = CHECK_WINDOW) -> RateLimiter:
    """The process-wide limiter of one key (by its fingerprint, never the key)."""
    with _limiters_lock:
        limiter = _limiters.get(key_id)
        if limiter is None:
            limiter = _limiters[key_id] = RateLimiter(limit, window)
        elif (limiter.limit, limiter.window) != (limit, window):
            limiter.configure(limit, window)
        return limiter


class TaskWatch:
    """What one separation waits on: its task ids and their latest status."""

    def __init__(self, task_ids: Iterable[str], interval: float) -> None:
        self.task_ids = tuple(dict.fromkeys(task_ids))
        self.interval = interval
        self._statuses: dict[str, TaskStatus] = {}
        self._error: SoundForgeError | None = None
        self._lock = threading.Lock()
        self._changed = threading.Event()

    def pending(self) -> list[str]:
        with self._lock:
            if self._error is not None:
                return []
            return [tid for tid in self.task_ids if not self._is_final(tid)]

    def _is_final(self, task_id: str) -> bool:
        status = self._statuses.get(task_id)
        return status is not None and status.final

    def deliver(self, statuses: dict[str, TaskStatus]) -> None:
        with self._lock:
            for task_id in self.task_ids:
                if task_id in statuses:
                    self._statuses[task_id] = statuses[task_id]
        self._changed.set()

    def fail(self, error: SoundForgeError) -> None:
        with self._lock:
            self._error = error
        self._changed.set()

    def wake(self) -> None:
        self._changed.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until something changed (or ``wake()``), at most ``timeout``."""
        self._changed.wait(timeout)
        self._changed.clear()

    def snapshot(self) -> tuple[dict[str, TaskStatus], SoundForgeError | None]:
        with self._lock:
            return dict(self._statuses), self._error


@dataclass
class _Backoff:
    policy: RetryPolicy
    level: int = 0

    def next(self, floor: float) -> float:
        """Exponential from the poll interval (or the policy's base delay), with
        jitter, capped at the policy's max delay: the policy's own delays, one
        step further each time (the first back-off already doubles the interval)."""
        self.level += 1
        return self.policy.delay(self.level + 1, floor=floor)

    def reset(self) -> None:
        self.level = 0


class CheckPoller:
    """One poll loop for all tasks of one key on one API URL."""

    def __init__(
        self,
        make_client: Callable[[], LalalaiClient],
        limiter: RateLimiter,
        interval: float,
        backoff: RetryPolicy,
    ) -> None:
        self._make_client = make_client
        self._limiter = limiter
        self.interval = interval
        self._backoff = _Backoff(backoff)
        self._watches: list[TaskWatch] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Observable by tests and status pages.
        self.requests = 0
        self.rate_limited = 0

    def watch(self, task_ids: Iterable[str], interval: float | None = None) -> TaskWatch:
        watch = TaskWatch(task_ids, interval if interval is not None else self.interval)
        with self._cond:
            self._watches.append(watch)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="lalalai-check-poller", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return watch

    def unwatch(self, watch: TaskWatch) -> None:
        with self._cond:
            if watch in self._watches:
                self._watches.remove(watch)
            self._cond.notify_all()

    def stop(self) -> None:
        """End the loop now (tests; a process shutting down)."""
        self._stop.set()
        with self._cond:
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _work(self) -> tuple[list[str], float]:
        ids: list[str] = []
        interval = self.interval
        for watch in self._watches:
            pending = watch.pending()
            if pending:
                ids.extend(pending)
                interval = min(interval, watch.interval)
        return list(dict.fromkeys(ids)), interval

    def _run(self) -> None:
        client: LalalaiClient | None = None
        try:
            while not self._stop.is_set():
                with self._cond:
                    ids, interval = self._work()
                    if not ids:
                        self._cond.wait(IDLE_LINGER)
                        ids, interval = self._work()
                        if not ids:
                            self._thread = None
                            return
                stamp = self._limiter.acquire(self._stop.wait)
                if stamp is None:
                    break
                if client is None:
                    client = self._make_client()
                self.requests += 1
                try:
                    try:
                        statuses = client.check(ids)
                    finally:
                        self._limiter.done(stamp)
                except RateLimitedError:
                    self.rate_limited += 1
                    delay = self._backoff.next(interval)
                    log.warning("LALAL.AI rate-limited /check/; next check in %.1f s", delay)
                    self._stop.wait(delay)
                    continue
                except SoundForgeError as exc:
                    # Final for the watches that were waiting on these tasks;
                    # the client already retried what was worth retrying.
                    self._fail(ids, exc)
                    continue
                except Exception as exc:  # a poll loop must not die silently: tell the waiters
                    log.exception("LALAL.AI poll loop failed")
                    self._fail(ids, SoundForgeError(f"Checking LALAL.AI tasks failed: {exc}"))
                    continue
                self._backoff.reset()
                self._deliver(statuses)
                self._stop.wait(interval)
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None
            if client is not None:
                client.close()

    def _deliver(self, statuses: dict[str, TaskStatus]) -> None:
        with self._cond:
            watches = list(self._watches)
        for watch in watches:
            watch.deliver(statuses)

    def _fail(self, ids: list[str], error: SoundForgeError) -> None:
        wanted = set(ids)
        with self._cond:
            watches = [w for w in self._watches if wanted.intersection(w.task_ids)]
        for watch in watches:
            watch.fail(error)


_pollers: dict[tuple[str, str], CheckPoller] = {}
_pollers_lock = threading.Lock()


def poller_for(
    base_url: str,
    key_id: str,
    make_client: Callable[[], LalalaiClient],
    limiter: RateLimiter,
    interval: float,
    backoff: RetryPolicy,
) -> CheckPoller:
    """The process-wide poller for one key on one URL. The first caller's client
    factory and back-off are used; a caller asking for a shorter interval gets
    it for its own watches (``watch(interval=…)``)."""
    with _pollers_lock:
        poller = _pollers.get((base_url, key_id))
        if poller is None:
            poller = _pollers[(base_url, key_id)] = CheckPoller(
                make_client, limiter, interval, backoff
            )
        return poller
