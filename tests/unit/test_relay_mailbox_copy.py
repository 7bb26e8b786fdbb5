"""``MemoryMailbox.put`` stores a copy of each message with its ``seq``, built field by field (not with
``dataclasses.replace``, which was a tenth of the relay's publish path): every field must survive it."""

from __future__ import annotations

import asyncio
import dataclasses
import gc

from wcnotify.relay.mailbox import MemoryMailbox, StoredMessage


def test_stored_copy_keeps_every_field() -> None:
    # a field added to StoredMessage must be added to the copy in MemoryMailbox.put (then here)
    assert [f.name for f in dataclasses.fields(StoredMessage)] == [
        "topic", "message", "message_id", "tag", "published_at", "expires_at", "publisher", "prompt", "seq",
    ]
    original = StoredMessage("ab" * 32, "msg", "cd" * 32, 4002, 1_700_000_000_000, 2e9, "did:key:zPub", True)
    mailbox = MemoryMailbox(10)

    async def scenario() -> list[StoredMessage]:
        assert await mailbox.put([original], 1_700_000_000.0) == [True]
        return await mailbox.pending("did:key:zOther", [original.topic], 1_700_000_000.0, 10)

    (stored,) = asyncio.run(scenario())
    assert stored.seq > 0
    assert dataclasses.replace(stored, seq=0) == original
    assert all(getattr(stored, f.name) == getattr(original, f.name)
               for f in dataclasses.fields(StoredMessage) if f.name != "seq")


def test_kept_messages_are_not_tracked_by_the_collector() -> None:
    """The memory mailbox holds every message until its TTL; kept as tracked objects, each would be traversed
    by every older-generation pass of the collector (10 to 100 ms pauses under load in the relay bench). After
    one collection, 5,000 kept messages add no tracked objects beyond their containers."""
    mailbox = MemoryMailbox(10_000)
    now = 1_700_000_000.0

    async def keep(count: int) -> None:
        messages = [StoredMessage(f"{i % 50:064x}", f"msg-{i}", f"{i:064x}", 4002, 1_700_000_000_000, 2e9,
                                  "did:key:zPub", i % 2 == 0) for i in range(count)]
        assert all(await mailbox.put(messages, now))
        await mailbox.ack("did:key:zReader", [(m.topic, m.message_id) for m in messages], now)

    gc.collect()
    before = len(gc.get_objects())
    asyncio.run(keep(5_000))
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 500, grown  # the per-topic dicts and heaps, the ack dict; not one object per message
    pending = asyncio.run(mailbox.pending("did:key:zOther", [f"{0:064x}"], now, 1_000))
    assert len(pending) == 100 and all(isinstance(m, StoredMessage) for m in pending)
