"""Shared fixtures for the integration tests that need an external service.

``redis_service``: a Redis at ``WCNOTIFY_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and a key
prefix unique to the test; every key under that prefix is deleted afterwards. Without a reachable Redis the
test is skipped with the reason shown, unless ``WCNOTIFY_REQUIRE_SERVICES=1``, in which case it fails.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import redis

REQUIRE_SERVICES = os.environ.get("WCNOTIFY_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("WCNOTIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def service_unavailable(reason: str) -> None:
    """Fail when the environment promises its services (``WCNOTIFY_REQUIRE_SERVICES=1``), else skip visibly."""
    if REQUIRE_SERVICES:
        pytest.fail(f"service unavailable: {reason}", pytrace=False)
    pytest.skip(f"service unavailable: {reason}")


@dataclass(frozen=True)
class RedisService:
    url: str
    prefix: str  # every key and channel of the test starts with it


@pytest.fixture
def redis_service() -> Iterator[RedisService]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        service_unavailable(f"Redis at {REDIS_URL}: {exc}")
    prefix = f"wcnotify-test:{os.urandom(6).hex()}:"
    try:
        yield RedisService(REDIS_URL, prefix)
    finally:
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        except redis.RedisError:  # Redis went away during the test (a restart test); nothing left to clean
            pass
        client.close()


# --------------------------------------------------------------------------------------- databases

POSTGRES_URL = os.environ.get("WCNOTIFY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason (checked once per session)."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {POSTGRES_URL}: {exc}"
    return None


_postgres_problem: list[str | None] = []


def _drop_schema(schema: str) -> None:

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards).

    Every storage-backed test takes this fixture and so runs on both databases.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'wcnotify.db'}"
        return
    if not _postgres_problem:
        _postgres_problem.append(_postgres_reachable())
    if _postgres_problem[0]:
        service_unavailable(_postgres_problem[0])
    schema = f"t_{os.urandom(6).hex()}"
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        _drop_schema(schema)
