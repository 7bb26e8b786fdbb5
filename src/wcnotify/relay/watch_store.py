"""What the watch webhooks must not forget: registrations, standing ``POST /rpc`` subscriptions, undelivered events.

The notify server relies on all three across a relay restart, and, with several relay nodes, on every node
knowing them. So they live where the mailbox lives (``sql_watch.py`` beside ``relay_messages``,
``redis_watch.py`` beside the Redis mailbox); :class:`MemoryWatchStore` keeps them in this process, as a
relay without a database keeps its mailbox.

Rules every backend keeps:

* A registration is keyed by ``(client, typ, whu)``; putting it again replaces it. It is gone once its
  ``expires_at`` passed (the Redis key carries that TTL).
* A standing subscription is keyed by ``(topic, client)`` with an expiry, refreshed by subscribing again.
* An event is keyed by :func:`event_id` (what happened to which message for which registration), and
  ``enqueue`` is idempotent on it for ``RELAY_WATCH_DEDUPE_WINDOW`` seconds even after it was delivered:
  several nodes may each see the same event (a client subscribed on two nodes) and exactly one POST goes out.
* ``claim`` hands out due events and pushes their due time ``lease`` seconds ahead, so another node (or this
  one after a crash mid-POST) retries them only if this attempt never reported back.

The nodes keep registrations and standing subscriptions in memory for the publish path (a database read per
publish would cost more than the publish); they load them on start, apply the changes other nodes announce
over the backplane, and reload everything every purge interval in case an announcement was missed.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from wcnotify import spec
from wcnotify.spec import WatchStatus, WatchType


@dataclass(frozen=True, slots=True)
class Watch:
    """One registration: ``client`` (the watched did:key), ``typ`` and ``whu``."""

    client: str
    typ: WatchType
    whu: str
    service: str  # the registration's sub (the service URL), used as the event aud
    tags: frozenset[int]
    statuses: frozenset[WatchStatus]
    expires_at: int

    @property
    def key(self) -> tuple[str, WatchType, str]:
        return (self.client, self.typ, self.whu)

    def to_json(self) -> bytes:
        return orjson.dumps(
            [self.client, self.typ.value, self.whu, self.service, sorted(self.tags),
             sorted(s.value for s in self.statuses), self.expires_at]
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Watch:
        client, typ, whu, service, tags, statuses, expires_at = orjson.loads(raw)
        return cls(client, WatchType(typ), whu, service, frozenset(tags), frozenset(WatchStatus(s) for s in statuses),
                   int(expires_at))


@dataclass(order=True, slots=True)
class WatchEvent:
    """One signed ``irn_watchEvent`` waiting to be POSTed to ``whu``."""

    due: float
    id: str = field(compare=False)
    whu: str = field(compare=False)
    jwt: str = field(compare=False)
    give_up_at: float = field(compare=False)
    attempts: int = field(default=0, compare=False)

    def to_json(self) -> bytes:
        return orjson.dumps([self.id, self.whu, self.jwt, self.due, self.give_up_at, self.attempts])

    @classmethod
    def from_json(cls, raw: bytes | str) -> WatchEvent:
        eid, whu, jwt, due, give_up_at, attempts = orjson.loads(raw)
        return cls(float(due), eid, whu, jwt, float(give_up_at), int(attempts))


def event_id(watch: Watch, topic: str, message_id: str, status: WatchStatus) -> str:
    """The same on every node for the same happening, so the store can keep one copy."""
    parts = (watch.client, watch.typ.value, watch.whu, topic, message_id, status.value)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class WatchStore(Protocol):
    """Persistence of :mod:`wcnotify.relay.watch`. Every method takes ``now`` where time matters."""

    async def load(self, now: float) -> tuple[list[Watch], list[tuple[str, str]]]:
        """Every live registration and every live standing subscription as ``(topic, client)``."""
        ...

    async def watches_of(self, client: str, now: float) -> list[Watch]:
        """The live registrations of ``client`` (read from the store: the limit is checked against it)."""
        ...

    async def put_watch(self, watch: Watch) -> None: ...

    async def delete_watch(self, client: str, typ: WatchType, whu: str) -> None: ...

    async def add_subscriptions(self, client: str, topics: Sequence[str], expires_at: float) -> None: ...

    async def remove_subscriptions(self, client: str, topics: Sequence[str]) -> None: ...

    async def enqueue(self, events: Sequence[WatchEvent], now: float) -> None:
        """Store ``events`` unless an event with the same id was stored within the dedupe window."""
        ...

    async def claim(self, now: float, limit: int, lease: float) -> tuple[list[WatchEvent], float | None]:
        """Up to ``limit`` due events (leased for ``lease`` s), and the due time of the next one (None: none)."""
        ...

    async def finish(self, event: WatchEvent, now: float) -> None:
        """The event is delivered (or given up): never hand it out again."""
        ...

    async def retry(self, event: WatchEvent) -> None:
        """Store ``event.due`` and ``event.attempts`` after a failed attempt."""
        ...

    async def purge(self, now: float) -> None:
        """Forget expired registrations and subscriptions, and finished events past the dedupe window."""
        ...


class MemoryWatchStore:
    """The store in this process: what a relay without a database (or Redis) keeps; lost on restart."""

    def __init__(self) -> None:
        self._watches: dict[tuple[str, WatchType, str], Watch] = {}
        self._subs: dict[tuple[str, str], float] = {}  # (topic, client) -> expires_at
        self._events: dict[str, WatchEvent] = {}
        self._seen: dict[str, float] = {}  # event id -> until when a repeat is ignored
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    async def load(self, now: float) -> tuple[list[Watch], list[tuple[str, str]]]:
        return (
            [w for w in self._watches.values() if w.expires_at > now],
            [k for k, exp in self._subs.items() if exp > now],
        )

    async def watches_of(self, client: str, now: float) -> list[Watch]:
        return [w for w in self._watches.values() if w.client == client and w.expires_at > now]

    async def put_watch(self, watch: Watch) -> None:
        self._watches[watch.key] = watch

    async def delete_watch(self, client: str, typ: WatchType, whu: str) -> None:
        self._watches.pop((client, typ, whu), None)

    async def add_subscriptions(self, client: str, topics: Sequence[str], expires_at: float) -> None:
        for topic in topics:
            self._subs[(topic, client)] = expires_at

    async def remove_subscriptions(self, client: str, topics: Sequence[str]) -> None:
        for topic in topics:
            self._subs.pop((topic, client), None)

    async def enqueue(self, events: Sequence[WatchEvent], now: float) -> None:
        for event in events:
            if self._seen.get(event.id, 0) > now:
                continue
            self._seen[event.id] = now + spec.RELAY_WATCH_DEDUPE_WINDOW
            self._events[event.id] = event
            heapq.heappush(self._heap, (event.due, next(self._seq), event.id))

    async def claim(self, now: float, limit: int, lease: float) -> tuple[list[WatchEvent], float | None]:
        out: list[WatchEvent] = []
        while self._heap and self._heap[0][0] <= now and len(out) < limit:
            due, _seq, eid = heapq.heappop(self._heap)
            event = self._events.get(eid)
            if event is None or event.due != due:  # finished, or re-queued with another due time
                continue
            event.due = now + lease
            heapq.heappush(self._heap, (event.due, next(self._seq), eid))
            out.append(event)
        while self._heap and self._events.get(self._heap[0][2]) is None:
            heapq.heappop(self._heap)
        return out, (self._heap[0][0] if self._heap else None)

    async def finish(self, event: WatchEvent, now: float) -> None:
        self._events.pop(event.id, None)

    async def retry(self, event: WatchEvent) -> None:
        if event.id in self._events:
            self._events[event.id] = event
            heapq.heappush(self._heap, (event.due, next(self._seq), event.id))

    async def purge(self, now: float) -> None:
        for key in [k for k, w in self._watches.items() if w.expires_at <= now]:
            del self._watches[key]
        for sub in [k for k, exp in self._subs.items() if exp <= now]:
            del self._subs[sub]
        for eid in [e for e, until in self._seen.items() if until <= now]:
            del self._seen[eid]

