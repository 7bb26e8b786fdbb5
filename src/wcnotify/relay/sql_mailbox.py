"""The mailbox in SQL (SQLAlchemy Core, async): SQLite (WAL) for one node, PostgreSQL for several.

Two tables: ``relay_messages`` (one row per ``(topic, message_id)``, ``seq`` giving publish order) and
``relay_acks`` (one row per client and message received); three more belong to the watch webhooks
(``sql_watch.py``) and are created with them. The relay creates its tables itself (``create_all``): they are
not part of the keys/notify servers' Alembic migrations, so a relay can share their database or use its own.

``put`` runs in one transaction and commits before it returns, so a relay that answered ``true`` still has
the message after ``kill -9``. SQLite runs in WAL mode with ``synchronous=NORMAL`` (the shared
``storage.engine.create_engine``): a committed transaction survives the process dying (not a power cut,
which would need ``FULL``). Expired rows are deleted by ``purge``; reads ignore them meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from wcnotify.relay.ack_batch import AckBatcher, AckRow
from wcnotify.relay.mailbox import MailboxFullError, StoredMessage
from wcnotify.storage.engine import create_engine, reading

metadata = MetaData()

messages = Table(
    "relay_messages",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("topic", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("tag", BigInteger, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("publisher", String(128), nullable=False),
    Column("prompt", Boolean, nullable=False, default=False),
    UniqueConstraint("topic", "message_id", name="uq_relay_messages_topic_id"),
    Index("ix_relay_messages_topic_seq", "topic", "seq"),
    Index("ix_relay_messages_expires", "expires_at"),
)

acks = Table(
    "relay_acks",
    metadata,
    Column("client", String(128), primary_key=True),
    Column("topic", String(64), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_relay_acks_expires", "expires_at"),
)

# watch webhooks (wcnotify.relay.sql_watch): registrations, standing POST /rpc subscriptions, the event queue
watches = Table(
    "relay_watches",
    metadata,
    Column("client", String(128), primary_key=True),
    Column("typ", String(16), primary_key=True),
    Column("whu", String(512), primary_key=True),
    Column("body", Text, nullable=False),  # Watch.to_json()
    Column("expires_at", Float, nullable=False),
)

http_subscriptions = Table(
    "relay_http_subscriptions",
    metadata,
    Column("topic", String(64), primary_key=True),
    Column("client", String(128), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_relay_http_subscriptions_expires", "expires_at"),
)

watch_events = Table(
    "relay_watch_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("whu", Text, nullable=False),
    Column("jwt", Text, nullable=False),
    Column("due", Float, nullable=False),
    Column("give_up_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("done", Boolean, nullable=False, default=False),
    Column("keep_until", Float, nullable=False),  # a repeat of this id is ignored until then
    Index("ix_relay_watch_events_due", "done", "due"),
)


def _postgres_schema(url: str) -> str | None:
    """The ``?search_path=`` schema of a PostgreSQL URL (create_engine applies it; it must exist first)."""
    if not url.startswith("postgres"):
        return None
    values = parse_qs(urlsplit(url).query).get("search_path")
    return values[0] if values else None


class SqlMailbox:
    """:class:`~wcnotify.relay.mailbox.Mailbox` over an async SQLAlchemy engine."""

    # not outside a task: SQLAlchemy's pool waits for a free connection under asyncio.timeout(), which needs a
    # current task (the load bench's concurrent subscribes hit it: "Timeout should be used inside a task")
    runs_outside_a_task = False

    def __init__(self, engine: AsyncEngine, per_topic_cap: int) -> None:
        self.engine = engine
        self.per_topic_cap = per_topic_cap
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._acks = AckBatcher(self._write_acks)

    @classmethod
    async def open(cls, url: str, per_topic_cap: int) -> SqlMailbox:
        """Connect (SQLite in WAL mode) and create the relay's tables if they are missing."""
        engine = create_engine(url)  # SQLite: WAL, synchronous=NORMAL, BEGIN IMMEDIATE (storage/engine.py)
        try:
            async with engine.begin() as conn:
                schema = _postgres_schema(url)
                if schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.run_sync(metadata.create_all)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, per_topic_cap)

    async def put(self, batch: Sequence[StoredMessage], now: float) -> list[bool]:
        topics = sorted({m.topic for m in batch})
        async with self.engine.begin() as conn:
            # expired rows of these topics go first, so they neither count nor block a re-publish
            await conn.execute(delete(messages).where(messages.c.topic.in_(topics), messages.c.expires_at <= now))
            keys = list({(m.topic, m.message_id) for m in batch})
            present: set[tuple[str, str]] = set()
            for start in range(0, len(keys), 200):
                chunk = keys[start : start + 200]
                rows = await conn.execute(
                    select(messages.c.topic, messages.c.message_id).where(
                        tuple_(messages.c.topic, messages.c.message_id).in_(chunk)
                    )
                )
                present.update((r.topic, r.message_id) for r in rows)
            new_rows: list[dict[str, Any]] = []
            adding: dict[str, int] = {}
            flags: list[bool] = []
            for m in batch:
                key = (m.topic, m.message_id)
                if key in present:
                    flags.append(False)
                    continue
                present.add(key)
                flags.append(True)
                adding[m.topic] = adding.get(m.topic, 0) + 1
                new_rows.append(
                    {
                        "topic": m.topic, "message_id": m.message_id, "message": m.message, "tag": m.tag,
                        "published_at": m.published_at, "expires_at": m.expires_at, "publisher": m.publisher,
                        "prompt": m.prompt,
                    }
                )
            if not new_rows:
                return flags
            counts = await conn.execute(
                select(messages.c.topic, func.count())
                .where(messages.c.topic.in_(list(adding)))
                .group_by(messages.c.topic)
            )
            for topic, count in counts:
                if count + adding[topic] > self.per_topic_cap:
                    raise MailboxFullError(topic, self.per_topic_cap)
            for topic, count in adding.items():
                if count > self.per_topic_cap:
                    raise MailboxFullError(topic, self.per_topic_cap)
            await conn.execute(messages.insert(), new_rows)
        return flags

    async def pending(
        self, client: str, topics: Sequence[str], now: float, limit: int, after: Mapping[str, int] | None = None
    ) -> list[StoredMessage]:
        acked = exists().where(
            and_(acks.c.client == client, acks.c.topic == messages.c.topic, acks.c.message_id == messages.c.message_id)
        )
        after = {t: seq for t, seq in (after or {}).items() if seq > 0 and t in topics}
        fresh = [t for t in topics if t not in after]
        which = or_(
            *([messages.c.topic.in_(fresh)] if fresh else []),
            *(and_(messages.c.topic == t, messages.c.seq > seq) for t, seq in after.items()),
        )
        query = (
            select(messages)
            .where(
                which,
                messages.c.expires_at > now,
                messages.c.publisher != client,
                ~acked,
            )
            .order_by(messages.c.seq)
            .limit(limit)
        )
        async with reading(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        found = [
            StoredMessage(
                r.topic, r.message, r.message_id, r.tag, r.published_at, r.expires_at, r.publisher, bool(r.prompt),
                r.seq,
            )
            for r in rows
        ]
        if len(topics) > 1:  # keep topics in the order asked, each in publish order
            rank = {t: i for i, t in enumerate(topics)}
            found.sort(key=lambda m: rank[m.topic])
        return found

    async def ack(self, client: str, receipts: Iterable[tuple[str, str]], now: float) -> None:
        # concurrent acks (one per push, from every client) share a transaction: see relay/ack_batch.py
        await self._acks.add(client, dict.fromkeys(receipts), now)

    async def _write_acks(self, rows: Sequence[AckRow], now: float) -> None:
        """One transaction for a batch of ``(client, topic, message_id)``: only unexpired messages get a row."""
        keys = list(dict.fromkeys((topic, mid) for _client, topic, mid in rows))
        async with self.engine.begin() as conn:
            expiry: dict[tuple[str, str], int] = {}
            for start in range(0, len(keys), 200):
                found = await conn.execute(
                    select(messages.c.topic, messages.c.message_id, messages.c.expires_at).where(
                        tuple_(messages.c.topic, messages.c.message_id).in_(keys[start : start + 200]),
                        messages.c.expires_at > now,
                    )
                )
                expiry.update(((r.topic, r.message_id), r.expires_at) for r in found)
            values = [
                {"client": client, "topic": topic, "message_id": mid, "expires_at": expiry[(topic, mid)]}
                for client, topic, mid in dict.fromkeys(rows)
                if (topic, mid) in expiry
            ]
            for start in range(0, len(values), 200):
                await conn.execute(self._insert(acks).values(values[start : start + 200]).on_conflict_do_nothing())

    async def purge(self, now: float) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(messages).where(messages.c.expires_at <= now))
            await conn.execute(delete(acks).where(acks.c.expires_at <= now))
        return int(result.rowcount or 0)

    async def close(self) -> None:
        await self._acks.close()
        await self.engine.dispose()
