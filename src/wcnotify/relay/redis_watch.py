"""The watch store in Redis, beside the Redis mailbox (rules in ``watch_store.py``).

Keys (``P`` is the relay prefix):

* ``P w:r:<sha256(client, typ, whu)>`` string, ``Watch.to_json()``, ``PEXPIREAT`` its expiry;
  ``P w:ri`` sorted set of those key names scored by expiry (to list them without SCAN);
* ``P w:s`` sorted set, ``"<topic> <client>"`` -> expiry: the standing ``POST /rpc`` subscriptions;
* ``P w:q`` sorted set, event id -> due time; ``P w:e:<id>`` string, the event, expiring after its give-up
  time; ``P w:g:<id>`` the dedupe guard (``SET NX``), expiring after ``RELAY_WATCH_DEDUPE_WINDOW``.

Enqueue and claim are Lua scripts, so two nodes never both take an event or both store a duplicate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from redis.asyncio import Redis

from wcnotify import spec
from wcnotify.relay.watch_store import Watch, WatchEvent
from wcnotify.spec import WatchType

# KEYS: q.  ARGV: prefix, dedupe ms, then (id, due, body, expire-at ms) per event.
_ENQUEUE = """
local p, window = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('SET', p .. 'w:g:' .. id, '1', 'NX', 'PX', window) then
    redis.call('SET', p .. 'w:e:' .. id, ARGV[i + 2], 'PXAT', ARGV[i + 3])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], id)
  end
end
return 0
"""

# KEYS: q.  ARGV: prefix, now, limit, lease until.  Returns {next due or '', body...}.
_CLAIM = """
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {''}
for _, id in ipairs(ids) do
  local body = redis.call('GET', p .. 'w:e:' .. id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[4], id)
    out[#out + 1] = body
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then out[1] = first[2] end
return out
"""


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


class RedisWatchStore:
    """:class:`~wcnotify.relay.watch_store.WatchStore` in the relay's Redis."""

    def __init__(self, redis: Redis, prefix: str = spec.RELAY_REDIS_KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._index = prefix + "w:ri"
        self._subs = prefix + "w:s"
        self._queue = prefix + "w:q"
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)

    def _watch_key(self, client: str, typ: WatchType, whu: str) -> str:
        digest = hashlib.sha256(f"{client}\n{typ.value}\n{whu}".encode()).hexdigest()
        return f"{self.prefix}w:r:{digest}"

    async def _read_watches(self, now: float) -> list[Watch]:
        await self.redis.zremrangebyscore(self._index, "-inf", now)
        names: list[bytes] = await self.redis.zrange(self._index, 0, -1)  # type: ignore[assignment]
        if not names:
            return []
        return [Watch.from_json(raw) for raw in await self.redis.mget(names) if raw is not None]

    async def load(self, now: float) -> tuple[list[Watch], list[tuple[str, str]]]:
        found = await self._read_watches(now)
        members: list[bytes] = await self.redis.zrangebyscore(self._subs, f"({now!r}", "+inf")  # type: ignore[assignment]
        subs = []
        for member in members:
            topic, _, client = member.decode().partition(" ")
            subs.append((topic, client))
        return found, subs

    async def watches_of(self, client: str, now: float) -> list[Watch]:
        return [w for w in await self._read_watches(now) if w.client == client]

    async def put_watch(self, watch: Watch) -> None:
        key = self._watch_key(watch.client, watch.typ, watch.whu)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, watch.to_json(), pxat=watch.expires_at * 1000)
            pipe.zadd(self._index, {key: watch.expires_at})
            pipe.expireat(self._index, watch.expires_at, gt=True)
            pipe.expireat(self._index, watch.expires_at, nx=True)
            await pipe.execute()

    async def delete_watch(self, client: str, typ: WatchType, whu: str) -> None:
        key = self._watch_key(client, typ, whu)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(self._index, key)
            await pipe.execute()

    async def add_subscriptions(self, client: str, topics: Sequence[str], expires_at: float) -> None:
        if not topics:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._subs, {f"{t} {client}": expires_at for t in topics})
            pipe.expireat(self._subs, math.ceil(expires_at), gt=True)
            pipe.expireat(self._subs, math.ceil(expires_at), nx=True)
            await pipe.execute()

    async def remove_subscriptions(self, client: str, topics: Sequence[str]) -> None:
        if topics:
            await self.redis.zrem(self._subs, *(f"{t} {client}" for t in topics))

    async def enqueue(self, events: Sequence[WatchEvent], now: float) -> None:
        if not events:
            return
        args: list[str | int | float | bytes] = [self.prefix, _ms(spec.RELAY_WATCH_DEDUPE_WINDOW)]
        for e in events:
            args.extend((e.id, repr(e.due), e.to_json(), _ms(e.give_up_at) + 60_000))
        await self._enqueue(keys=[self._queue], args=args)

    async def claim(self, now: float, limit: int, lease: float) -> tuple[list[WatchEvent], float | None]:
        out = await self._claim(keys=[self._queue], args=[self.prefix, repr(now), limit, repr(now + lease)])
        events = []
        for raw in out[1:]:
            event = WatchEvent.from_json(raw)
            event.due = now + lease
            events.append(event)
        return events, (float(out[0]) if out[0] else None)

    async def finish(self, event: WatchEvent, now: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._queue, event.id)
            pipe.delete(f"{self.prefix}w:e:{event.id}")
            await pipe.execute()

    async def retry(self, event: WatchEvent) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.prefix}w:e:{event.id}", event.to_json(), pxat=_ms(event.give_up_at) + 60_000)
            pipe.zadd(self._queue, {event.id: event.due})
            await pipe.execute()

    async def purge(self, now: float) -> None:
        await self.redis.zremrangebyscore(self._index, "-inf", now)
        await self.redis.zremrangebyscore(self._subs, "-inf", now)
