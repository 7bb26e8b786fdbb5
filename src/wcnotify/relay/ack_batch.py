"""Acks written together: many clients' acknowledgements in one storage transaction.

Every ``irn_subscription`` push is acked by its client, so a relay fanning a notification out to N wallets
receives N acks within milliseconds. With a SQL mailbox each ack was its own transaction (BEGIN IMMEDIATE,
a lookup, an insert, a commit): at 200 deliveries/s that alone kept the relay at about 64% of a CPU. Here an
ack joins the batch that is waiting: while one write is in flight the next acks queue up, and the next
write takes all of them. A lone ack is written at once (no timer), so nothing waits longer than one write.

The caller's ``await`` returns once its acks are committed, as before: a client's next backlog page, read
right after, must not bring back what it just acked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence

AckRow = tuple[str, str, str]  # (client, topic, message_id)


class AckBatcher:
    """Coalesces concurrent ``add`` calls into calls of ``write`` (one per batch, in arrival order)."""

    def __init__(self, write: Callable[[Sequence[AckRow], float], Awaitable[None]]) -> None:
        self._write = write
        self._rows: list[AckRow] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._now = 0.0
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # batches written (fewer than acks added: the point of this class)

    async def add(self, client: str, receipts: Iterable[tuple[str, str]], now: float) -> None:
        """Queue ``client``'s acks and return once they are stored (raises what the write raised)."""
        rows = [(client, topic, mid) for topic, mid in receipts]
        if not rows:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rows.extend(rows)
        self._waiters.append(future)
        self._now = now  # the latest caller's clock: a batch spans milliseconds
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="relay-ack-batch")
        await future

    async def _run(self) -> None:
        while self._rows:
            await asyncio.sleep(0)  # acks read from the same socket burst join this batch
            rows, waiters, now = self._rows, self._waiters, self._now
            self._rows, self._waiters = [], []
            try:
                await self._write(rows, now)
            except asyncio.CancelledError:
                _settle(waiters, asyncio.CancelledError())
                raise
            except Exception as exc:
                _settle(waiters, exc)
            else:
                _settle(waiters, None)
            self.writes += 1

    async def close(self) -> None:
        """Stop writing; callers still waiting get CancelledError (their acks were not stored)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        _settle(self._waiters, asyncio.CancelledError())
        self._rows, self._waiters = [], []


def _settle(waiters: list[asyncio.Future[None]], outcome: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # its caller was cancelled meanwhile
            continue
        if outcome is None:
            waiter.set_result(None)
        elif isinstance(outcome, asyncio.CancelledError):
            waiter.cancel()
        else:
            waiter.set_exception(outcome)
