"""Relay limits and the per-client token bucket.

Every bound the relay enforces is a field of :class:`RelayLimits`, whose defaults come from ``spec.py``, so
a deployment (or a test) tightens one bound without touching code. The token bucket takes ``now`` as an
argument: rate limits are tested by moving a number, not by sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

from wcnotify import spec


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The bounds of one relay. Defaults are the protocol's (or wcnotify's, where the protocol is silent)."""

    min_ttl: int = spec.RELAY_MIN_TTL
    max_ttl: int = spec.RELAY_MAX_TTL
    max_message_bytes: int = spec.RELAY_MAX_MESSAGE_BYTES
    max_batch: int = spec.RELAY_BATCH_MAX
    mailbox_per_topic: int = spec.RELAY_MAILBOX_MAX_PER_TOPIC
    fetch_page: int = spec.RELAY_FETCH_PAGE
    # backlog messages pushed per page after a subscribe; the next page is read once the client has acked
    # half of what is in flight, so a large backlog never floods the outbox (and closes the socket with 1013)
    backlog_page: int = spec.RELAY_BACKLOG_PAGE
    rate_per_second: float = spec.RELAY_RATE_PER_SECOND
    rate_burst: int = spec.RELAY_RATE_BURST
    max_frame_bytes: int = spec.RELAY_MAX_FRAME_BYTES
    # deliveries sent to one connection and not yet acknowledged; the oldest are forgotten beyond this
    # (they stay in the mailbox and come back on the next subscribe)
    max_in_flight: int = 10_000
    # frames queued for one connection; a client that reads slower than this is disconnected
    max_outbox: int = 20_000


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second; one request takes one token."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough; a clock going backwards refills nothing."""
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def is_full(self, now: float) -> bool:
        """True when the bucket has refilled completely (it can then be forgotten)."""
        return self._tokens + max(0.0, now - self._last) * self.rate >= self.burst
