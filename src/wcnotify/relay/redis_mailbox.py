"""The mailbox in Redis, shared by every relay node that names the same Redis and key prefix.

Keys (``P`` is the prefix, ``spec.RELAY_REDIS_KEY_PREFIX`` by default):

* ``P t:<topic>:q`` sorted set, message id -> publish sequence (``P seq``, one counter): publish order;
* ``P t:<topic>:x`` sorted set, message id -> expires_at (seconds): the live count for the cap;
* ``P t:<topic>:b`` hash, message id -> ``publisher|json([message, tag, published_at, expires_at, prompt])``;
* ``P a:<client>:<topic>`` sorted set, message id -> expires_at: what that client id acknowledged;
* ``P due`` sorted set, topic -> earliest expires_at of its messages: what ``purge`` has to look at.

Every topic key and ack key carries a ``PEXPIREAT`` at its latest message's expiry, so a topic whose
messages have all expired disappears by itself even if no node ever purges. Expired messages inside a topic
that still has live ones are skipped by reads and removed by the next ``put`` on that topic or by ``purge``.
Each operation is one Lua script, so "drop expired, dedupe, check the cap, insert" is atomic across nodes.

The scripts build the purge keys from the prefix, so this targets a single Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import orjson
from redis.asyncio import Redis

from wcnotify import spec
from wcnotify.relay.mailbox import MailboxFullError, StoredMessage

_CHUNKED_REMOVE = """
local function remove(key, cmd, ids)
  for i = 1, #ids, 1000 do
    redis.call(cmd, key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end
"""

# KEYS: seq, due, then q, x, b per topic.  ARGV: now, cap, ntopics, topic names, then per message
# (topic index, message id, expires_at, body).  Returns {1, flag...} or {-1, topic index} when full.
_PUT = _CHUNKED_REMOVE + """
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local nt = tonumber(ARGV[3])
local function k(t, j) return KEYS[2 + 3 * (t - 1) + j] end
for t = 1, nt do
  local gone = redis.call('ZRANGEBYSCORE', k(t, 2), '-inf', now)
  if #gone > 0 then
    remove(k(t, 1), 'ZREM', gone)
    remove(k(t, 3), 'HDEL', gone)
    redis.call('ZREMRANGEBYSCORE', k(t, 2), '-inf', now)
  end
end
local first = 4 + nt
local n = (#ARGV - first + 1) / 4
local flags = {1}
local adding = {}
local seen = {}
for m = 0, n - 1 do
  local base = first + 4 * m
  local t = tonumber(ARGV[base])
  local mid = ARGV[base + 1]
  local key = t .. ':' .. mid
  if seen[key] or redis.call('HEXISTS', k(t, 3), mid) == 1 then
    flags[m + 2] = 0
  else
    seen[key] = true
    flags[m + 2] = 1
    adding[t] = (adding[t] or 0) + 1
  end
end
for t, count in pairs(adding) do
  if redis.call('ZCARD', k(t, 2)) + count > cap then return {-1, t} end
end
for m = 0, n - 1 do
  if flags[m + 2] == 1 then
    local base = first + 4 * m
    local t = tonumber(ARGV[base])
    local mid = ARGV[base + 1]
    redis.call('ZADD', k(t, 1), redis.call('INCR', KEYS[1]), mid)
    redis.call('ZADD', k(t, 2), ARGV[base + 2], mid)
    redis.call('HSET', k(t, 3), mid, ARGV[base + 3])
  end
end
for t in pairs(adding) do
  local last = redis.call('ZRANGE', k(t, 2), -1, -1, 'WITHSCORES')
  local at = math.ceil(tonumber(last[2]) * 1000) + 1000
  for j = 1, 3 do redis.call('PEXPIREAT', k(t, j), at) end
  local earliest = redis.call('ZRANGE', k(t, 2), 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[2], 'LT', earliest[2], ARGV[3 + t])
end
return flags
"""

# KEYS: q, x, b, a per topic.  ARGV: now, limit, "<client>|", then one "after" seq per topic.
# Returns flat (topic index, id, body, seq) quadruples.  Reads the topic in slices of 200 ids, from the cursor.
_PENDING = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local mine = ARGV[3]
local ml = #mine
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local q, x, b, a = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 3], KEYS[4 * i + 4]
  local from = '(' .. ARGV[4 + i]
  while true do
    local slice = redis.call('ZRANGEBYSCORE', q, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 200)
    if #slice == 0 then break end
    for j = 1, #slice, 2 do
      local mid = slice[j]
      local exp = redis.call('ZSCORE', x, mid)
      if exp and tonumber(exp) > now and not redis.call('ZSCORE', a, mid) then
        local body = redis.call('HGET', b, mid)
        if body and string.sub(body, 1, ml) ~= mine then
          out[#out + 1] = i
          out[#out + 1] = mid
          out[#out + 1] = body
          out[#out + 1] = slice[j + 1]
          if #out >= 4 * limit then return out end
        end
      end
    end
    if #slice < 400 then break end
    from = '(' .. slice[#slice]
  end
end
return out
"""

# KEYS: x, a per receipt.  ARGV: now, then one message id per receipt.
_ACK = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local x, a = KEYS[2 * i - 1], KEYS[2 * i]
  local mid = ARGV[i + 1]
  local exp = redis.call('ZSCORE', x, mid)
  if exp and tonumber(exp) > now then
    redis.call('ZADD', a, exp, mid)
    redis.call('ZREMRANGEBYSCORE', a, '-inf', now)
    local last = redis.call('ZRANGE', a, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', a, math.ceil(tonumber(last[2]) * 1000) + 1000)
  end
end
return 0
"""

# KEYS: due.  ARGV: now, prefix, batch.  Returns {messages removed, topics visited}.
_PURGE = _CHUNKED_REMOVE + """
local now = tonumber(ARGV[1])
local p = ARGV[2]
local topics = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local removed = 0
for _, t in ipairs(topics) do
  local q, x, b = p .. 't:' .. t .. ':q', p .. 't:' .. t .. ':x', p .. 't:' .. t .. ':b'
  local gone = redis.call('ZRANGEBYSCORE', x, '-inf', now)
  if #gone > 0 then
    remove(q, 'ZREM', gone)
    remove(b, 'HDEL', gone)
    redis.call('ZREMRANGEBYSCORE', x, '-inf', now)
    removed = removed + #gone
  end
  local earliest = redis.call('ZRANGE', x, 0, 0, 'WITHSCORES')
  if #earliest == 0 then
    redis.call('ZREM', KEYS[1], t)
  else
    redis.call('ZADD', KEYS[1], earliest[2], t)
  end
end
return {removed, #topics}
"""


def _body(m: StoredMessage) -> bytes:
    return m.publisher.encode() + b"|" + orjson.dumps([m.message, m.tag, m.published_at, m.expires_at, m.prompt])


def _message(topic: str, mid: bytes, body: bytes, seq: int = 0) -> StoredMessage:
    publisher, _, rest = body.partition(b"|")
    message, tag, published_at, expires_at, prompt = orjson.loads(rest)
    return StoredMessage(topic, message, mid.decode(), tag, published_at, expires_at, publisher.decode(), prompt, seq)


class RedisMailbox:
    """:class:`~wcnotify.relay.mailbox.Mailbox` in Redis (see the module docstring for the keys)."""

    runs_outside_a_task = False  # redis-py wraps its reads in asyncio.timeout(), which needs a current task

    def __init__(self, redis: Redis, per_topic_cap: int, prefix: str = spec.RELAY_REDIS_KEY_PREFIX) -> None:
        self.redis = redis
        self.per_topic_cap = per_topic_cap
        self.prefix = prefix
        self._put = redis.register_script(_PUT)
        self._pending = redis.register_script(_PENDING)
        self._ack = redis.register_script(_ACK)
        self._purge = redis.register_script(_PURGE)

    @classmethod
    async def open(cls, url: str, per_topic_cap: int, prefix: str = spec.RELAY_REDIS_KEY_PREFIX) -> RedisMailbox:
        """Connect to ``url`` (``redis://host:port/db``) and check that Redis answers."""
        redis = Redis.from_url(url)
        await redis.ping()
        return cls(redis, per_topic_cap, prefix)

    def _topic_keys(self, topic: str) -> list[str]:
        base = f"{self.prefix}t:{topic}:"
        return [base + "q", base + "x", base + "b"]

    def _ack_key(self, client: str, topic: str) -> str:
        return f"{self.prefix}a:{client}:{topic}"

    async def put(self, messages: Sequence[StoredMessage], now: float) -> list[bool]:
        if not messages:
            return []
        topics = list(dict.fromkeys(m.topic for m in messages))
        index = {t: i + 1 for i, t in enumerate(topics)}
        keys = [self.prefix + "seq", self.prefix + "due"]
        for topic in topics:
            keys.extend(self._topic_keys(topic))
        args: list[str | bytes | float | int] = [repr(now), self.per_topic_cap, len(topics), *topics]
        for m in messages:
            args.extend((index[m.topic], m.message_id, repr(m.expires_at), _body(m)))
        result = await self._put(keys=keys, args=args)
        if int(result[0]) < 0:
            raise MailboxFullError(topics[int(result[1]) - 1], self.per_topic_cap)
        return [bool(int(flag)) for flag in result[1:]]

    async def pending(
        self, client: str, topics: Sequence[str], now: float, limit: int, after: Mapping[str, int] | None = None
    ) -> list[StoredMessage]:
        if not topics or limit <= 0:
            return []
        keys: list[str] = []
        for topic in topics:
            keys.extend(self._topic_keys(topic))
            keys.append(self._ack_key(client, topic))
        cursors = [(after or {}).get(t, 0) for t in topics]
        flat = await self._pending(keys=keys, args=[repr(now), limit, client + "|", *cursors])
        return [
            _message(topics[int(flat[i])], flat[i + 1], flat[i + 2], int(flat[i + 3])) for i in range(0, len(flat), 4)
        ]

    async def ack(self, client: str, receipts: Iterable[tuple[str, str]], now: float) -> None:
        unique = list(dict.fromkeys(receipts))
        if not unique:
            return
        keys: list[str] = []
        for topic, _mid in unique:
            keys.extend((self._topic_keys(topic)[1], self._ack_key(client, topic)))
        await self._ack(keys=keys, args=[repr(now), *(mid for _topic, mid in unique)])

    async def purge(self, now: float) -> int:
        """Sweep topics with expired messages; messages of wholly expired topics went with their keys already."""
        removed = 0
        for _ in range(1000):  # bounded: each call handles RELAY_REDIS_PURGE_BATCH topics
            gone, visited = await self._purge(
                keys=[self.prefix + "due"], args=[repr(now), self.prefix, spec.RELAY_REDIS_PURGE_BATCH]
            )
            removed += int(gone)
            if int(visited) < spec.RELAY_REDIS_PURGE_BATCH:
                break
        return removed

    async def close(self) -> None:
        await self.redis.aclose()
