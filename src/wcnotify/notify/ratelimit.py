"""Token-bucket rate limits of the notify server: per project on sending, per subscriber on deliveries.

Two buckets, as in the reference (reference-server.md §1.5):

* **send**, one per project: every ``/notify`` request (v0, v1, broadcast) takes one token; an empty bucket
  answers 429 with ``Retry-After`` and nothing is queued. It protects the database and the relay from one
  dapp's loop gone wrong.
* **subscriber**, one per subscription: every notification queued for it takes one token; an exhausted
  subscriber is reported in ``failed`` ("Rate limit exceeded") and the other accounts of the request still
  go out. It protects a wallet from being spammed by one dapp. Welcome notifications and broadcasts do not
  take subscriber tokens: the first answers the wallet's own subscribe, and a broadcast goes only to
  subscribers who opted into its type and is already limited by the send bucket.

A bucket holds ``burst`` tokens and refills at ``per_second``; a denied take consumes nothing, and the
answer says how long until a token is there (the ``Retry-After``). The math is :func:`take_token`, a pure
function with ``now`` passed in, so tests move a number instead of sleeping. Two backends run it:

* :class:`MemoryLimiter` when the server runs alone: a bounded dict of buckets (the least recently used
  bucket is forgotten beyond ``max_buckets``, which can only make a limit more lenient, never stricter);
* :class:`RedisLimiter` when replicas share ``--redis-url``: one atomic Lua script per call that takes a
  token from each of several buckets (the keys live under a per-deployment prefix and expire once full, so
  idle buckets cost nothing). Time is the caller's wall clock: replicas' clocks agree to NTP precision,
  and a clock behind the bucket's last update refills nothing rather than going negative.

If Redis is unreachable or slow (over ``timeout``), a take **fails open**: the request is allowed and a
warning is logged (at most once per :data:`WARN_EVERY` seconds). Rate limits guard against abuse, not
against correctness; refusing every send because a cache is down would turn a Redis outage into a
notification outage. :attr:`RedisLimiter.errors` counts these for ``/metrics``.

Redis Cluster is not supported (one script touches keys of several slots); a single Redis, or a primary
with replicas, is.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from wcnotify import spec

log = logging.getLogger("wcnotify.notify.ratelimit")

MAX_BUCKETS = 100_000  # memory backend: buckets kept at most (about 200 bytes each)
WARN_EVERY = 30.0  # s between two warnings that Redis is unreachable
REDIS_TIMEOUT = 0.5  # s a take may wait for Redis before failing open


class Rate(NamedTuple):
    """A bucket's shape: refilled at ``per_second`` tokens per second, holding at most ``burst``."""

    per_second: float
    burst: float

    def check(self, name: str) -> Rate:
        """This rate, or ValueError naming the setting (a zero refill would lock a bucket forever)."""
        if not (0 < self.per_second < math.inf and 1 <= self.burst < math.inf):
            raise ValueError(f"{name}: the refill must be > 0 tokens per second and the burst >= 1, got {self}")
        return self




_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(text: str) -> Rate | None:
    """A rate as an operator writes it: ``2/s:20`` (2 a second, bursts of 20), ``2/h:50``, ``5:10`` (per
    second), or ``off`` (None). ValueError says what is accepted."""
    if text.strip().lower() == "off":
        return None
    try:
        refill, burst = text.split(":")
        count, _, unit = refill.partition("/")
        rate = Rate(float(count) / _UNITS[unit.strip().lower() or "s"], float(burst))
    except (ValueError, KeyError):
        raise ValueError(f"{text!r} is not a rate: write COUNT/UNIT:BURST (UNIT s, m, h or d), e.g. 2/s:20, "
                         "or off") from None
    return rate.check(text)


def format_rate(rate: Rate | None) -> str:
    """The inverse of :func:`parse_rate`, in the largest unit that keeps the count at least 1."""
    if rate is None:
        return "off"
    for unit in ("s", "m", "h", "d"):
        count = rate.per_second * _UNITS[unit]
        if count >= 1 or unit == "d":
            return f"{count:g}/{unit}:{rate.burst:g}"
    raise AssertionError("unreachable")


# the reference's buckets (spec.py)
SEND_RATE = parse_rate(spec.NOTIFY_SEND_RATE)
SUBSCRIBER_RATE = parse_rate(spec.NOTIFY_SUBSCRIBER_RATE)


def _wallet_rates() -> tuple[tuple[int, str, Rate], ...]:
    rates = []
    for tag, scope, text in spec.NOTIFY_WALLET_RATES:
        rate = parse_rate(text)
        assert rate is not None, text
        rates.append((tag, scope, rate))
    return tuple(rates)


WALLET_RATES = _wallet_rates()


def take_token(
    state: tuple[float, float] | None, rate: Rate, now: float, cost: float = 1.0
) -> tuple[tuple[float, float], float]:
    """Take ``cost`` tokens from a bucket in ``state`` (tokens, last refill time; None for a new, full bucket).

    Returns the new state and the wait: 0.0 when the tokens were taken, else the seconds until there are
    enough (nothing is taken then). A clock that went backwards refills nothing.
    """
    tokens, last = state if state is not None else (rate.burst, now)
    if now > last:
        tokens = min(rate.burst, tokens + (now - last) * rate.per_second)
        last = now
    if tokens >= cost:
        return (tokens - cost, last), 0.0
    return (tokens, last), (cost - tokens) / rate.per_second


def retry_after(wait: float) -> int:
    """The ``Retry-After`` header value for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


class Limiter(Protocol):
    """Where the buckets live. ``take`` takes one token from each bucket in ``keys`` (independently) and
    returns, per key, 0.0 if granted or the seconds to wait."""

    async def take(self, keys: Sequence[str], rate: Rate) -> list[float]: ...

    async def aclose(self) -> None: ...


class MemoryLimiter:
    """Buckets in this process: right for a server that runs alone (replicas would each allow the rate)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, keys: Sequence[str], rate: Rate) -> list[float]:
        now = self.clock()
        waits = []
        for key in keys:
            state, wait = take_token(self._buckets.get(key), rate, now)
            self._buckets[key] = state
            self._buckets.move_to_end(key)
            waits.append(wait)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return waits

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS: the buckets.  ARGV: now, per_second, burst, cost, ttl_ms.  Each bucket is a hash {t: tokens, l: last};
# the same math as take_token. Returns one wait per key, as a string (Lua numbers would be cut to integers).
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 't', 'l')
  local tokens = tonumber(state[1])
  local last = tonumber(state[2])
  if tokens == nil or last == nil then
    tokens = burst
    last = now
  end
  if now > last then
    tokens = math.min(burst, tokens + (now - last) * rate)
    last = now
  end
  local wait = 0
  if tokens >= cost then
    tokens = tokens - cost
  else
    wait = (cost - tokens) / rate
  end
  redis.call('HSET', key, 't', string.format('%.17g', tokens), 'l', string.format('%.17g', last))
  redis.call('PEXPIRE', key, ttl)
  out[i] = string.format('%.17g', wait)
end
return out
"""


class RedisLimiter:
    """Buckets in Redis, shared by every replica that names the same Redis and prefix."""

    def __init__(
        self, redis: Redis, prefix: str = spec.NOTIFY_RATE_REDIS_PREFIX, *, clock: Callable[[], float] = time.time,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.timeout = timeout
        self.errors = 0  # takes that failed open
        self._warned_at = -math.inf
        self._take = redis.register_script(_TAKE)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = spec.NOTIFY_RATE_REDIS_PREFIX, *, clock: Callable[[], float] = time.time
    ) -> RedisLimiter:
        """Connects lazily (on the first take): the server starts even while Redis is down."""
        redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
                               client_name="wcnotify-notify")
        return cls(redis, prefix, clock=clock)

    async def take(self, keys: Sequence[str], rate: Rate) -> list[float]:
        if not keys:
            return []
        # a full bucket is the same as no bucket: let Redis drop it once it would have refilled
        ttl_ms = math.ceil(rate.burst / rate.per_second * 1000) + 1000
        try:
            raw = await self._take(
                keys=[self.prefix + "rl:" + k for k in keys],
                args=[repr(self.clock()), repr(rate.per_second), repr(float(rate.burst)), "1", ttl_ms],
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning("rate limits not enforced: Redis is unavailable (%s); allowing requests", exc)
            return [0.0] * len(keys)
        return [float(w) for w in raw]

    async def aclose(self) -> None:
        await self.redis.aclose()


class RateLimits:
    """The notify server's two buckets over one :class:`Limiter`; a rate of None switches a bucket off."""

    def __init__(self, limiter: Limiter, send: Rate | None = SEND_RATE,
                 subscriber: Rate | None = SUBSCRIBER_RATE, wallet: bool = True) -> None:
        self.limiter = limiter
        self.send_rate = send.check("send rate") if send is not None else None
        self.subscriber_rate = subscriber.check("subscriber rate") if subscriber is not None else None
        self.denied = {"send": 0, "subscriber": 0, "wallet": 0}  # for /metrics
        self.wallet_rates: tuple[tuple[int, str, Rate], ...] = WALLET_RATES if wallet else ()

    @classmethod
    def open(
        cls, redis_url: str | None, redis_prefix: str = spec.NOTIFY_RATE_REDIS_PREFIX, *,
        send: Rate | None = SEND_RATE, subscriber: Rate | None = SUBSCRIBER_RATE, wallet: bool = True,
    ) -> RateLimits:
        """In Redis when ``redis_url`` is given (replicas share the buckets), else in this process."""
        limiter: Limiter = RedisLimiter.from_url(redis_url, redis_prefix) if redis_url else MemoryLimiter()
        return cls(limiter, send, subscriber, wallet)

    async def send(self, project_id: str) -> float:
        """Take a send token of the project: 0.0 to go ahead, else the seconds to wait."""
        if self.send_rate is None:
            return 0.0
        [wait] = await self.limiter.take([f"send:{project_id}"], self.send_rate)
        if wait:
            self.denied["send"] += 1
        return wait

    async def deliveries(self, subscriber_ids: Sequence[str]) -> set[str]:
        """Take one token of each subscriber: the ids that may get the notification."""
        if self.subscriber_rate is None:
            return set(subscriber_ids)
        waits = await self.limiter.take([f"sub:{s}" for s in subscriber_ids], self.subscriber_rate)
        allowed = {s for s, wait in zip(subscriber_ids, waits, strict=True) if not wait}
        self.denied["subscriber"] += len(subscriber_ids) - len(allowed)
        return allowed

    async def wallet(self, tag: int, topic: str, iss: str) -> float:
        """Take the wallet-request tokens of ``tag`` (spec.NOTIFY_WALLET_RATES): 0.0, or the longest wait.

        Every bucket of the request is asked; a bucket that grants spends its token even when another denies
        (the buckets are independent, as in the reference's multi-key Lua script)."""
        if not self.wallet_rates:
            return 0.0
        waits = [0.0]
        for rule_tag, scope, rate in self.wallet_rates:
            if rule_tag == tag:
                [wait] = await self.limiter.take([f"w{tag}:{scope}:{iss if scope == 'client' else topic}"], rate)
                waits.append(wait)
        if max(waits):
            self.denied["wallet"] = self.denied.get("wallet", 0) + 1
        return max(waits)

    async def aclose(self) -> None:
        await self.limiter.aclose()
