"""Migrations: applied on start, idempotent, safe when several processes start at once, and the
result matches ``storage.tables`` exactly (so queries and schema cannot drift apart)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from wcnotify.storage import create_engine, migrate, open_database
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
