"""``MemoryMailbox.put`` stores a copy of each message with its ``seq``, built field by field (not with
``dataclasses.replace``, which was a tenth of the relay's publish path): every field must survive it."""

from __future__ import annotations

import asyncio
import dataclasses

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
