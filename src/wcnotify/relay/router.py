"""Which live connection listens to which topic, and the fan-out of one message to them.

The router never awaits: ``route`` hands each subscriber the message and its ``data`` object serialized once
(the part of ``irn_subscription`` every receiver shares), and each subscriber frames it and queues it. A
multi-node relay puts a backplane beside the router: it is told (``listener``) when a topic gets its first
and loses its last local subscriber, so a node listens only for topics someone on it subscribed to, and it
calls ``route`` for messages published on other nodes (every node routes to its own connections).
"""

from __future__ import annotations

from typing import Protocol

import orjson

from wcnotify.relay.mailbox import StoredMessage


class Subscriber(Protocol):
    """A live connection as the router sees it."""

    @property
    def client_id(self) -> str: ...

    def deliver(self, message: StoredMessage, data: bytes) -> None:
        """Queue ``message`` for sending; ``data`` is its pre-serialized ``params.data`` object. Never blocks."""
        ...


class TopicListener(Protocol):
    """Told when a topic gets its first local subscriber and when it loses its last (a backplane)."""

    def topic_added(self, topic: str) -> None: ...

    def topic_removed(self, topic: str) -> None: ...


def subscription_data(message: StoredMessage) -> bytes:
    """The ``params.data`` of ``irn_subscription``, serialized once per message, in the JS member order."""
    return orjson.dumps(
        {"topic": message.topic, "message": message.message, "publishedAt": message.published_at, "tag": message.tag}
    )


class Router:
    """Topic -> live subscribers, in one process."""

    def __init__(self) -> None:
        self._topics: dict[str, set[Subscriber]] = {}
        self.listener: TopicListener | None = None

    def add(self, topic: str, subscriber: Subscriber) -> None:
        subs = self._topics.get(topic)
        if subs is None:
            subs = self._topics[topic] = set()
            if self.listener is not None:
                self.listener.topic_added(topic)
        subs.add(subscriber)

    def remove(self, topic: str, subscriber: Subscriber) -> None:
        subs = self._topics.get(topic)
        if subs is not None:
            subs.discard(subscriber)
            if not subs:
                del self._topics[topic]
                if self.listener is not None:
                    self.listener.topic_removed(topic)

    def client_ids(self, topic: str) -> set[str]:
        return {sub.client_id for sub in self._topics.get(topic, ())}

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    @property
    def topic_count(self) -> int:
        return len(self._topics)

    def topics(self) -> list[str]:
        """Every topic with at least one local subscriber."""
        return list(self._topics)

    def route(self, message: StoredMessage, data: bytes | None = None) -> int:
        """Deliver ``message`` to every subscriber of its topic except its publisher; return how many.

        ``data`` is its ``subscription_data`` when the caller has it already (a backplane received it so)."""
        subs = self._topics.get(message.topic)
        if not subs:
            return 0
        if data is None:
            data = subscription_data(message)
        count = 0
        for sub in tuple(subs):  # a deliver may unsubscribe (slow consumer dropped)
            if sub.client_id != message.publisher:
                sub.deliver(message, data)
                count += 1
        return count
