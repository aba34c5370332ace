"""The /check/ rate limiter, on a clock the test controls."""

from __future__ import annotations

import pytest

from soundforge.engines.lalalai.poller import RateLimiter, limiter_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_thirty_a_minute_then_wait_for_the_oldest_to_expire() -> None:
    clock = Clock()
    limiter = RateLimiter(30, 60.0, clock=clock)
    for second in range(30):
        clock.now = 1000.0 + second
        stamp = limiter.acquire(clock.wait)
        assert stamp is not None
        limiter.done(stamp)
    assert clock.waits == []
    clock.now = 1030.0
    assert limiter.delay() == pytest.approx(30.0)
    stamp = limiter.acquire(clock.wait)
    assert stamp is not None
    assert clock.waits == [pytest.approx(30.0)]
    assert clock.now == pytest.approx(1060.0)


def test_a_request_counts_until_its_answer_arrives() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 10.0, clock=clock)
    stamp = limiter.acquire(clock.wait)
    assert stamp is not None
    clock.now += 2.5  # a slow answer
    limiter.done(stamp)
    # The next slot opens 10 s after the answer, not after the request.
    assert limiter.delay() == pytest.approx(10.0)


def test_giving_up_while_waiting() -> None:
    limiter = RateLimiter(1, 10.0, clock=Clock())
    assert limiter.acquire(lambda seconds: False) is not None
    assert limiter.acquire(lambda seconds: True) is None


def test_one_limiter_per_key_fingerprint() -> None:
    first = limiter_for("key-test-one", 30, 60.0)
    assert limiter_for("key-test-one", 30, 60.0) is first
    assert limiter_for("key-test-two", 30, 60.0) is not first
    with pytest.raises(ValueError):
        RateLimiter(0, 60.0)
