"""The mailbox: every published message, kept until its TTL, and which client acknowledged which.

Rules every backend keeps (the integration tests run the same suite against each):

* A message is stored under ``(topic, message_id)`` once; publishing it again while it is stored changes
  nothing and reports it as not new (so it is not fanned out twice).
* ``pending(client, topic)`` is every unexpired message of ``topic`` that ``client`` neither published nor
  acknowledged, in publish order. This is what a subscriber gets on subscribe and on fetch. Each message it
  returns carries ``seq`` (increasing in publish order within a topic); ``after={topic: seq}`` skips what a
  previous page returned, which is how a large backlog is sent in pages without re-reading it.
* An acknowledgement is stored per client id (not per connection), so it survives reconnects, and lives as
  long as the message it acknowledges.
* ``put`` refuses a whole batch with :class:`MailboxFullError` when a topic would hold more than its cap of
  unexpired messages, before storing anything.
* ``put`` returns only once the messages are stored as durably as the backend can (the relay answers
  ``true`` after that).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One published message as the relay keeps it."""

    topic: str
    message: str
    message_id: str  # hex(sha256(utf8(message)))
    tag: int
    published_at: int  # milliseconds since the epoch, as irn_subscription carries it
    expires_at: float  # seconds since the epoch
    publisher: str  # client id (did:key) of the publisher, who never gets it back
    prompt: bool = False
    seq: int = field(default=0, compare=False)  # publish order in the mailbox (0: not read from a mailbox)


class MailboxFullError(Exception):
    """A topic already holds its cap of unexpired messages. Subscribers must drain it (or wait for TTLs)."""

    def __init__(self, topic: str, cap: int) -> None:
        super().__init__(f"topic {topic} already holds {cap} undelivered messages; wait for them to expire")
        self.topic = topic
        self.cap = cap


class Mailbox(Protocol):
    """What the relay core needs from storage. Every method takes ``now`` (seconds) instead of reading a clock."""

    # True when every method may have its first step run outside an asyncio task (the WebSocket protocol runs a
    # frame's handling inline, relay/ws_protocol.py): nothing in it calls asyncio.current_task(), as
    # asyncio.timeout() does, and so redis-py and SQLAlchemy's connection pool. Only the memory mailbox is.
    runs_outside_a_task: bool

    async def put(self, messages: Sequence[StoredMessage], now: float) -> list[bool]:
        """Store ``messages``; for each, True if it was new. Raises MailboxFullError (storing nothing)."""
        ...

    async def pending(
        self, client: str, topics: Sequence[str], now: float, limit: int, after: Mapping[str, int] | None = None
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages of ``topics`` for ``client`` (see the module rules), each topic in order,
        only those with ``seq`` above ``after[topic]`` for the topics ``after`` names."""
        ...

    async def ack(self, client: str, receipts: Iterable[tuple[str, str]], now: float) -> None:
        """Record that ``client`` has received each ``(topic, message_id)``; unknown receipts are ignored."""
        ...

    async def purge(self, now: float) -> int:
        """Delete expired messages and acknowledgements; return how many messages went."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


# a message as MemoryMailbox keeps it: StoredMessage's fields, in its order, in a plain tuple (see there)
_Kept = tuple[str, str, str, int, int, float, str, bool, int]
_ID: Final = 2
_EXPIRES: Final = 5
_PUBLISHER: Final = 6
_SEQ: Final = 8


class MemoryMailbox:
    """The mailbox in a dict: for tests, benchmarks and a relay that may lose messages on restart.

    Each topic keeps an expiry heap beside its messages, so dropping expired ones costs O(log n) per message
    that expires instead of a scan of the topic on every publish (which made a hot topic O(n) per publish).

    Messages are kept as plain tuples of strings and numbers, not as :class:`StoredMessage` objects: the
    garbage collector stops tracking such a tuple after its first pass (it untracks only exact tuples and
    dicts, never an instance of a class, a tuple subclass included). The mailbox holds every message until
    its TTL, hundreds of thousands under load, and as tracked objects each was traversed again by every
    collection of an older generation: at 8,000 msgs/s in the relay bench those took 10 to 100 ms, and the
    relay's p99 publish-to-push latency was 15 to 190 ms.
    """

    runs_outside_a_task = True  # it never awaits anything

    def __init__(self, per_topic_cap: int) -> None:
        self.per_topic_cap = per_topic_cap
        # topic -> message_id -> message; dicts keep insertion order, which is publish order
        self._topics: dict[str, dict[str, _Kept]] = {}
        self._expiry: dict[str, list[tuple[float, str]]] = {}  # topic -> heap of (expires_at, message_id)
        self._seq = itertools.count(1)
        # client -> (topic, message_id) -> expires_at
        self._acks: dict[str, dict[tuple[str, str], float]] = {}

    def _live(self, topic: str, now: float) -> dict[str, _Kept]:
        """The messages of ``topic``, with the expired ones dropped first so the cap counts only live ones."""
        stored = self._topics.get(topic)
        if stored is None:
            return {}
        heap = self._expiry[topic]
        while heap and heap[0][0] <= now:
            _exp, mid = heapq.heappop(heap)
            m = stored.get(mid)
            if m is not None and m[_EXPIRES] <= now:
                del stored[mid]
        if not stored:
            del self._topics[topic]
            del self._expiry[topic]
        return stored

    async def put(self, messages: Sequence[StoredMessage], now: float) -> list[bool]:
        adding: dict[str, set[str]] = {}
        for m in messages:
            live = self._live(m.topic, now)
            if m.message_id not in live:
                adding.setdefault(m.topic, set()).add(m.message_id)
        for topic, ids in adding.items():
            if len(self._live(topic, now)) + len(ids) > self.per_topic_cap:
                raise MailboxFullError(topic, self.per_topic_cap)
        new: list[bool] = []
        for m in messages:
            stored = self._topics.setdefault(m.topic, {})
            if m.message_id in stored:
                new.append(False)
            else:
                # the copy with its seq, as a plain tuple (see the class docstring), built field by field:
                # this runs once per message of every publish
                stored[m.message_id] = (
                    m.topic, m.message, m.message_id, m.tag, m.published_at, m.expires_at, m.publisher, m.prompt,
                    next(self._seq),
                )
                heapq.heappush(self._expiry.setdefault(m.topic, []), (m.expires_at, m.message_id))
                new.append(True)
        return new

    async def pending(
        self, client: str, topics: Sequence[str], now: float, limit: int, after: Mapping[str, int] | None = None
    ) -> list[StoredMessage]:
        acks = self._acks.get(client, {})
        out: list[StoredMessage] = []
        for topic in topics:
            floor = after.get(topic, 0) if after else 0
            for kept in self._live(topic, now).values():
                if kept[_SEQ] > floor and kept[_PUBLISHER] != client and (topic, kept[_ID]) not in acks:
                    out.append(StoredMessage(*kept))
                    if len(out) >= limit:
                        return out
        return out
    async def ack(self, client: str, receipts: Iterable[tuple[str, str]], now: float) -> None:
        acks: dict[tuple[str, str], float] | None = None
        for topic, mid in receipts:
            m = self._topics.get(topic, {}).get(mid)
            if m is None or m[_EXPIRES] <= now:
                continue
            if acks is None:
                acks = self._acks.setdefault(client, {})
            acks[(topic, mid)] = m[_EXPIRES]

    async def purge(self, now: float) -> int:
        before = sum(len(v) for v in self._topics.values())
        for topic in list(self._topics):
            self._live(topic, now)
        for client in list(self._acks):
            acks = self._acks[client]
            for key in [k for k, exp in acks.items() if exp <= now]:
                del acks[key]
            if not acks:
                del self._acks[client]
        return before - sum(len(v) for v in self._topics.values())

    async def close(self) -> None:
        self._topics.clear()
        self._expiry.clear()
        self._acks.clear()
