"""Routing between relay nodes over Redis pub/sub.

* One channel per topic, ``<prefix>c:<topic>``. A node SUBSCRIBEs to a topic's channel when the topic gets
  its first local subscriber and UNSUBSCRIBEs when it loses its last (the router tells it), so Redis sends a
  node only the topics someone on it listens to. A session's subscribe waits (bounded) until the node
  listens before reading the backlog, so a message published meanwhile on another node is not missed.
* A stored message is PUBLISHed once, as ``json([node, message_id, expires_at, publisher, prompt]) "\\n"
  data``, where ``data`` is the ``irn_subscription`` data object serialized once; receivers hand that slice
  to their router as is. A node ignores its own messages (it routed them locally before publishing).
* Redis going away: the listener task opens a new pub/sub connection with backoff and subscribes to every
  topic that has local subscribers again. What was published while no node listened is in the mailbox; a
  client gets it on its next subscribe or fetch. A PUBLISH that fails is logged, not raised: the message is
  already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from wcnotify import spec
from wcnotify.relay.mailbox import StoredMessage
from wcnotify.relay.router import Router, subscription_data

log = logging.getLogger("wcnotify.relay.redis")


def encode(node: str, m: StoredMessage) -> bytes:
    """The pub/sub payload of ``m``: a small header line, then its ``irn_subscription`` data object."""
    head = orjson.dumps([node, m.message_id, m.expires_at, m.publisher, m.prompt])
    return head + b"\n" + subscription_data(m)


def decode(payload: bytes) -> tuple[str, StoredMessage, bytes]:
    """``(node, message, data)`` from a payload made by :func:`encode`."""
    head, _, data = payload.partition(b"\n")
    node, mid, expires_at, publisher, prompt = orjson.loads(head)
    d = orjson.loads(data)
    return node, StoredMessage(d["topic"], d["message"], mid, d["tag"], d["publishedAt"], expires_at, publisher,
                               prompt), data


class RedisBackplane:
    """Connects one node's :class:`~wcnotify.relay.router.Router` to every other node's through Redis."""

    def __init__(
        self,
        redis: Redis,
        router: Router,
        prefix: str = spec.RELAY_REDIS_KEY_PREFIX,
        *,
        node: str | None = None,
        subscribe_timeout: float = spec.RELAY_REDIS_SUBSCRIBE_TIMEOUT,
        reconnect_min: float = spec.RELAY_REDIS_RECONNECT_MIN,
        reconnect_max: float = spec.RELAY_REDIS_RECONNECT_MAX,
    ) -> None:
        self.redis = redis
        self.router = router
        self.prefix = prefix
        self.node = node or os.urandom(8).hex()  # tells this node's own messages apart on the channel
        self.subscribe_timeout = subscribe_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._channel_prefix = f"{prefix}c:".encode()
        self._control = f"{prefix}node:{self.node}".encode()
        self._notices = f"{prefix}notices".encode()  # cluster-wide change notices (watch registrations, …)
        # called with each notice another node sent; with each message another node stored, after routing it
        # here; and after a reconnect (notices sent while disconnected are lost)
        self.on_notice: Callable[[bytes], None] | None = None
        self.on_remote: Callable[[StoredMessage], None] | None = None
        self.on_reconnect: Callable[[], None] | None = None
        self._desired: set[str] = set()  # topics with local subscribers
        self._sent: set[str] = set()  # topics SUBSCRIBEd on the current pub/sub connection
        self._confirmed: set[str] = set()  # ... and confirmed by Redis
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connects = 0  # pub/sub connections opened (more than 1: it reconnected)
        self.received = 0  # messages from other nodes routed here

    def channel(self, topic: str) -> bytes:
        return self._channel_prefix + topic.encode()

    # -- the router's listener

    def topic_added(self, topic: str) -> None:
        self._desired.add(topic)
        if topic not in self._confirmed and topic not in self._waiters:
            self._waiters[topic] = asyncio.get_running_loop().create_future()
        self._wake.set()

    def topic_removed(self, topic: str) -> None:
        self._desired.discard(topic)
        waiter = self._waiters.pop(topic, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # nobody is left to wait for it
        self._wake.set()

    async def ready(self, topics: Sequence[str]) -> None:
        """Wait (at most ``subscribe_timeout``) until this node listens for ``topics``."""
        waiting = [f for t in topics if (f := self._waiters.get(t)) is not None and not f.done()]
        if waiting:
            _done, late = await asyncio.wait(waiting, timeout=self.subscribe_timeout)
            if late:
                log.warning("redis pub/sub did not confirm %d topic(s) within %.1f s", len(late),
                            self.subscribe_timeout)

    # -- publishing

    async def publish(self, messages: Sequence[StoredMessage], _now: float) -> None:
        """PUBLISH each newly stored message to its topic's channel (a RelayState.on_publish hook)."""
        payloads = [(self.channel(m.topic), encode(self.node, m)) for m in messages]
        for attempt in (1, 2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, payload in payloads:
                        pipe.publish(channel, payload)
                    await pipe.execute()
                return
            except RedisConnectionError as exc:
                # a pooled connection Redis dropped meanwhile fails once; the retry takes a fresh one. If Redis
                # had taken the first attempt before the drop, a live subscriber on another node gets the push
                # twice before acking it. Relay delivery is at least once anyway (an unacked push is sent again
                # on the next subscribe), which is why clients track message ids (the JS relayer's MessageTracker)
                if attempt == 2:
                    log.warning("redis publish failed (%s); %d message(s) stay in the mailbox only", exc, len(messages))
            except RedisError as exc:  # stored already: other nodes' subscribers get it from the mailbox
                log.warning("redis publish failed (%s); %d message(s) stay in the mailbox only", exc, len(messages))
                return

    async def announce(self, notice: bytes) -> None:
        """Send ``notice`` to every other node's ``on_notice`` (at most once; a node that is away misses it)."""
        await self.redis.publish(self._notices, self.node.encode() + b"\n" + notice)

    # -- lifecycle

    async def start(self) -> None:
        """Start listening; returns once connected, or after ``subscribe_timeout`` if Redis is not there."""
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.subscribe_timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for future in self._waiters.values():
            future.cancel()
        await self.redis.aclose()

    async def _run(self) -> None:
        delay = self.reconnect_min
        while True:
            pubsub = self.redis.pubsub()
            # each connection gets its own wake-up event: a command task of an earlier connection that outlived
            # its cancellation (below) can then never take a wake-up meant for the current one
            wake = self._wake = asyncio.Event()
            tasks: set[asyncio.Task[None]] = set()
            try:
                self._sent.clear()
                self._confirmed.clear()
                for topic in self._desired:
                    self.topic_added(topic)
                await pubsub.subscribe(self._control, self._notices)
                self.connects += 1
                if self.connects > 1 and self.on_reconnect is not None:
                    self.on_reconnect()
                delay = self.reconnect_min
                tasks = {asyncio.create_task(self._read(pubsub)), asyncio.create_task(self._command(pubsub, wake))}
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis pub/sub lost (%s: %s); reconnecting in %.1f s", type(exc).__name__, exc, delay)
            finally:
                self._connected.clear()
                await self._retire(tasks, wake)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _retire(self, tasks: set[asyncio.Task[None]], wake: asyncio.Event) -> None:
        """Stop one connection's reader and command tasks, without waiting on them forever.

        redis-py can lose a cancellation delivered while it reconnects a connection inside a command: the
        command task then went back to waiting for work, and awaiting it here hung the reconnect loop for
        good (the cause of routing not coming back after Redis cut every connection). So the tasks get a
        bounded wait, and a task that outlives it is woken with its (now stale) event and returns by itself.
        """
        for task in tasks:
            task.cancel()
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=spec.RELAY_REDIS_TASK_STOP_TIMEOUT)
            for task in stuck:
                log.warning("redis pub/sub task %s ignored its cancellation; left to end by itself", task.get_name())
                task.add_done_callback(_consume_result)
        wake.set()

    async def _command(self, pubsub: Any, wake: asyncio.Event) -> None:
        """Bring the connection's subscriptions in line with the topics that have local subscribers."""
        while True:
            await wake.wait()
            if wake is not self._wake:
                return  # this connection was retired while the task waited
            wake.clear()
            add = self._desired - self._sent
            drop = self._sent - self._desired
            if add:
                self._sent |= add
                await pubsub.subscribe(*(self.channel(t) for t in add))
            if drop:
                self._sent -= drop
                self._confirmed -= drop
                await pubsub.unsubscribe(*(self.channel(t) for t in drop))

    async def _read(self, pubsub: Any) -> None:
        while True:
            msg = await pubsub.get_message(timeout=None)
            if msg is None:
                continue
            kind, channel = msg["type"], msg["channel"]
            if kind == "message":
                if channel == self._notices:
                    self._notice(msg["data"])
                else:
                    self._deliver(msg["data"])
            elif channel == self._control:
                if kind == "subscribe":
                    self._connected.set()
            elif kind == "subscribe":
                topic = channel[len(self._channel_prefix) :].decode()
                if topic in self._sent:
                    self._confirmed.add(topic)
                waiter = self._waiters.pop(topic, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _deliver(self, payload: bytes) -> None:
        try:
            node, message, data = decode(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed backplane message (%d bytes)", len(payload))
            return
        if node != self.node:
            self.received += 1
            self.router.route(message, data)
            if self.on_remote is not None:
                self.on_remote(message)

    def _notice(self, payload: bytes) -> None:
        node, _, notice = payload.partition(b"\n")
        if node != self.node.encode() and self.on_notice is not None:
            self.on_notice(notice)


def _consume_result(task: asyncio.Task[None]) -> None:
    """Retrieve a retired task's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
