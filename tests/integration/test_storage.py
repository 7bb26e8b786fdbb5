"""Migrations: applied on start, idempotent, safe when several processes start at once, and the
result matches ``storage.tables`` exactly (so queries and schema cannot drift apart); and the notify database's
SQLite writers take turns on a lock of their own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import OperationalError

from wcnotify.notify.store import Database
from wcnotify.storage import create_engine, migrate, open_database, reading
from wcnotify.storage.tables import metadata

# the newest revision is the file with the highest number: "0002_dapp_side.py" -> "0002"
HEAD = max(p.name[:4] for p in (Path(__file__).parents[2] / "src/wcnotify/storage/migrations/versions").glob("0*.py"))


async def test_migrations_create_every_table_and_match_the_metadata(database_url: str) -> None:
    engine = await open_database(database_url)
    try:
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert set(metadata.tables) <= names
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
            assert diff == []
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert version == HEAD
    finally:
        await engine.dispose()


async def test_migrating_twice_and_concurrently_is_harmless(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(e) for e in engines))
        await migrate(engines[0])
        async with engines[0].connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one()
        assert count == 1
    finally:
        for e in engines:
            await e.dispose()


async def test_sqlite_writers_of_one_process_take_turns_without_the_busy_handler(tmp_path: Path) -> None:
    """notify.store.Database queues its SQLite writers on a lock: the second waits for the first to commit
    and then runs, without SQLite's busy handler (here disabled, busy_timeout=0, so a writer that met a taken
    write lock would fail at once with 'database is locked'). Three waiting writers run in arrival order."""
    engine = await open_database(f"sqlite:///{tmp_path / 'turns.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    await engine.dispose()  # later connections get the pragma
    db = Database(engine)
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE turns (name TEXT)"))
            first_in.set()
            await release.wait()
        order.append("first")

    async def writer(name: str) -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO turns VALUES (:n)"), {"n": name})
        order.append(name)

    try:
        holder = asyncio.create_task(first())
        await first_in.wait()
        waiting = []
        for name in ("a", "b", "c"):
            waiting.append(asyncio.create_task(writer(name)))
            await asyncio.sleep(0.01)  # each has asked for its turn before the next
        assert not any(t.done() for t in waiting)
        release.set()
        await asyncio.gather(holder, *waiting)
        assert order == ["first", "a", "b", "c"]
        async with db.read() as conn:
            assert [r[0] for r in await conn.execute(text("SELECT name FROM turns ORDER BY rowid"))] == ["a", "b", "c"]
    finally:
        await db.close()


async def test_sqlite_readers_take_no_write_lock(tmp_path: Path) -> None:
    """A read (``Database.read``, ``storage.reading``: the notify server's queries, the relay's backlog reads, the
    keys server's lookups) runs while a write transaction is open, on its snapshot: it takes no write lock. With
    the busy handler disabled (busy_timeout=0) a reader that asked for the lock would fail at once with
    'database is locked', as a writer does here."""
    engine = await open_database(f"sqlite:///{tmp_path / 'readers.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    await engine.dispose()
    db = Database(engine)
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE kept (name TEXT)"))
            await conn.execute(text("INSERT INTO kept VALUES ('before')"))
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO kept VALUES ('uncommitted')"))
            async with db.read() as reader:  # the last committed state, while the writer holds its lock
                assert [r[0] for r in await reader.execute(text("SELECT name FROM kept"))] == ["before"]
            async with reading(engine) as reader:
                assert (await reader.execute(text("SELECT count(*) FROM kept"))).scalar_one() == 1
            with pytest.raises(OperationalError, match="locked"):  # a second writer meets the lock
                async with engine.begin() as other:
                    await other.execute(text("INSERT INTO kept VALUES ('x')"))
    finally:
        await db.close()
