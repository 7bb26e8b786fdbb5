"""AckBatcher: concurrent acks share one write, each caller returns once its acks are written, a failed
write fails exactly the callers whose acks it held, and close() leaves nobody waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from wcnotify.relay.ack_batch import AckBatcher, AckRow


class Store:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[AckRow]] = []
        self.fail_on = fail_on
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, rows: Sequence[AckRow], now: float) -> None:
        await self.gate.wait()
        if self.fail_on is not None and len(self.batches) == self.fail_on:
            self.batches.append([])
            raise OSError("disk gone")
        self.batches.append(list(rows))


async def test_acks_arriving_together_are_written_together() -> None:
    store = Store()
    batcher = AckBatcher(store.write)
    await asyncio.gather(*(batcher.add(f"c{i}", [("t", f"m{i}")], 1.0) for i in range(100)))
    assert sum(len(b) for b in store.batches) == 100 and batcher.writes == len(store.batches) == 1


async def test_acks_during_a_write_go_in_the_next_one_and_a_lone_ack_is_not_delayed() -> None:
    store = Store()
    batcher = AckBatcher(store.write)
    await batcher.add("a", [("t", "m0")], 1.0)  # alone: written at once
    assert store.batches == [[("a", "t", "m0")]]
    store.gate.clear()
    first = asyncio.create_task(batcher.add("a", [("t", "m1")], 1.0))
    await asyncio.sleep(0.01)  # the write of m1 is in flight, held by the gate
    later = [asyncio.create_task(batcher.add("b", [("t", f"n{i}")], 1.0)) for i in range(10)]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(t.done() for t in later)
    store.gate.set()
    await asyncio.gather(first, *later)
    assert store.batches[1] == [("a", "t", "m1")] and len(store.batches[2]) == 10


async def test_a_failed_write_fails_its_callers_only() -> None:
    store = Store(fail_on=0)
    batcher = AckBatcher(store.write)
    results = await asyncio.gather(*(batcher.add("c", [("t", f"m{i}")], 1.0) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    await batcher.add("c", [("t", "again")], 1.0)  # the next batch is written
    assert store.batches[-1] == [("c", "t", "again")]


async def test_close_leaves_nobody_waiting() -> None:
    store = Store()
    store.gate.clear()
    batcher = AckBatcher(store.write)
    waiting = asyncio.create_task(batcher.add("c", [("t", "m")], 1.0))
    await asyncio.sleep(0.01)
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
