"""The notify server's token buckets without I/O: the math with a fake clock (burst, refill, the wait that
becomes ``Retry-After``), the memory backend's bound, the per-project and per-subscriber facade, and the
operator's rate syntax."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.notify.ratelimit import (
    SEND_RATE,
    SUBSCRIBER_RATE,
    MemoryLimiter,
    Rate,
    RateLimits,
    format_rate,
    parse_rate,
    retry_after,
    take_token,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(rate: Rate, now: float, count: int) -> tuple[tuple[float, float] | None, list[float]]:
    state: tuple[float, float] | None = None
    waits = []
    for _ in range(count):
        state, wait = take_token(state, rate, now)
        waits.append(wait)
    return state, waits


def test_a_new_bucket_allows_the_burst_then_says_how_long_to_wait() -> None:
    rate = Rate(2.0, 5)
    state, waits = drain(rate, 100.0, 6)
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.5)  # one token at 2 a second
    assert retry_after(waits[5]) == 1
    assert state == (0.0, 100.0)  # the denied take consumed nothing


def test_refill_is_proportional_to_elapsed_time_and_capped_at_the_burst() -> None:
    rate = Rate(2.0, 5)
    state, _ = drain(rate, 100.0, 5)
    state, wait = take_token(state, rate, 100.25)  # half a token back: not enough
    assert wait == pytest.approx(0.25)
    state, wait = take_token(state, rate, 100.5)  # one token back
    assert wait == 0.0 and state[0] == pytest.approx(0.0)
    state, _ = take_token(state, rate, 1_000_000.0)  # an idle day refills to the burst, not beyond
    assert state[0] == pytest.approx(4.0)


def test_a_clock_going_backwards_refills_nothing() -> None:
    rate = Rate(1.0, 2)
    state, _ = drain(rate, 100.0, 2)
    state, wait = take_token(state, rate, 50.0)
    assert wait == pytest.approx(1.0) and state == (0.0, 100.0)


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.001, 0.5, 1.0, 1.01, 1799.2)] == [1, 1, 1, 2, 1800]
    # the subscriber bucket: one token every half hour
    _, waits = drain(SUBSCRIBER_RATE, 0.0, int(SUBSCRIBER_RATE.burst) + 1)
    assert retry_after(waits[-1]) == 1800


@given(
    per_second=st.floats(0.001, 1000), burst=st.integers(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 10), st.integers(0, 5)), max_size=30),
)
def test_never_more_than_burst_plus_refill(per_second: float, burst: int, steps: list[tuple[float, int]]) -> None:
    """Over any schedule of takes, granted tokens never exceed the burst plus what the elapsed time refilled."""
    rate = Rate(per_second, burst)
    state: tuple[float, float] | None = None
    now, granted = 0.0, 0
    for advance, takes in steps:
        now += advance
        for _ in range(takes):
            state, wait = take_token(state, rate, now)
            granted += wait == 0.0
            assert wait == 0.0 or 0 < wait <= 1 / per_second + 1e-9
    assert granted <= burst + now * per_second + 1e-6


async def test_memory_limiter_keys_are_independent_and_refill_with_the_clock() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    rate = Rate(1.0, 2)
    assert await limiter.take(["a", "a", "b"], rate) == [0.0, 0.0, 0.0]
    waits = await limiter.take(["a", "b"], rate)
    assert waits[0] == pytest.approx(1.0) and waits[1] == 0.0
    clock.now += 1.0
    assert await limiter.take(["a"], rate) == [0.0]


async def test_memory_limiter_is_bounded_and_forgets_the_least_recently_used() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock, max_buckets=3)
    rate = Rate(0.001, 1)
    for key in ("a", "b", "c"):
        assert await limiter.take([key], rate) == [0.0]
    assert (await limiter.take(["a"], rate))[0] > 0  # "a" is now the most recently used
    assert (await limiter.take(["d"], rate)) == [0.0]
    assert len(limiter) == 3
    # "b" was forgotten (a fresh, full bucket: more lenient, never stricter); "a" was kept
    assert await limiter.take(["b"], rate) == [0.0]
    assert (await limiter.take(["a"], rate))[0] > 0
    await limiter.aclose()
    assert len(limiter) == 0


async def test_rate_limits_per_project_and_per_subscriber() -> None:
    clock = Clock()
    limits = RateLimits(MemoryLimiter(clock=clock), send=Rate(1.0, 2), subscriber=Rate(1 / 3600, 1))
    assert [await limits.send("p1") for _ in range(2)] == [0.0, 0.0]
    assert await limits.send("p1") == pytest.approx(1.0)
    assert await limits.send("p2") == 0.0  # another project has its own bucket
    assert await limits.deliveries(["s1", "s2"]) == {"s1", "s2"}
    assert await limits.deliveries(["s1", "s3"]) == {"s3"}
    assert limits.denied == {"send": 1, "subscriber": 1, "wallet": 0}
    clock.now += 3600
    assert await limits.deliveries(["s1"]) == {"s1"}


async def test_wallet_buckets_are_per_key_or_topic_and_the_longest_wait_wins() -> None:
    clock = Clock()
    limits = RateLimits(MemoryLimiter(clock=clock))
    limits.wallet_rates = ((4000, "client", Rate(1.0, 1)), (4000, "topic", Rate(0.5, 2)), (4004, "topic", Rate(1.0, 1)))
    assert await limits.wallet(4000, "project-topic", "did:key:a") == 0.0
    assert await limits.wallet(4000, "project-topic", "did:key:a") == pytest.approx(1.0)  # a's bucket is empty
    assert await limits.wallet(4000, "project-topic", "did:key:b") == pytest.approx(2.0)  # now the project's too
    assert await limits.wallet(4004, "sub-topic", "did:key:a") == 0.0  # other tags have other buckets
    assert await limits.wallet(4014, "sub-topic", "did:key:a") == 0.0  # a tag with no rule is never limited
    assert limits.denied["wallet"] == 2
    off = RateLimits(MemoryLimiter(clock=clock), wallet=False)
    assert [await off.wallet(4004, "t", "k") for _ in range(20)] == [0.0] * 20


async def test_a_bucket_switched_off_allows_everything() -> None:
    limits = RateLimits(MemoryLimiter(), send=None, subscriber=None)
    assert [await limits.send("p") for _ in range(1000)] == [0.0] * 1000
    assert await limits.deliveries(["s"] * 3) == {"s"}


def test_rates_are_checked() -> None:
    for bad in (Rate(0, 5), Rate(-1, 5), Rate(1, 0.5), Rate(math.inf, 5), Rate(1, math.nan)):
        with pytest.raises(ValueError, match="refill must be > 0"):
            RateLimits(MemoryLimiter(), send=bad)


def test_the_operators_rate_syntax() -> None:
    assert Rate(2.0, 20) == SEND_RATE and Rate(2 / 3600, 50) == SUBSCRIBER_RATE  # the reference's buckets
    assert parse_rate("5:10") == Rate(5.0, 10) and parse_rate("3/d:3") == Rate(3 / 86400, 3)
    assert parse_rate("OFF") is None
    assert [format_rate(r) for r in (SEND_RATE, SUBSCRIBER_RATE, Rate(0.5 / 60, 3), None)] == [
        "2/s:20", "2/h:50", "30/h:3", "off"]
    for bad in ("", "2", "2/y:3", "x/s:3", "1:2:3", "0/s:3", "2/s:0"):
        with pytest.raises(ValueError):
            parse_rate(bad)
