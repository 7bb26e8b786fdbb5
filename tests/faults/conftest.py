"""The fault suite: real processes killed with SIGKILL, database and Redis connections cut, a relay down for a
while, consumers that never read. Every test is bounded (each wait has a deadline) and the whole suite runs in
the normal ``pytest`` invocation in a few minutes.

Services: PostgreSQL and Redis as in ``tests/integration/conftest.py`` (skipped with the reason when missing,
failing instead under ``WCNOTIFY_REQUIRE_SERVICES=1``). Every test here is marked ``faults``
(``pytest -m faults`` runs just them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.conftest import (
    POSTGRES_URL,
    _drop_schema,
    _postgres_problem,
    _postgres_reachable,
    redis_service,
    service_unavailable,
)

__all__ = ["postgres_url", "redis_service"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault-injection suite (tests/faults)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL schema of its own (dropped afterwards): the production database of the notify server."""
    if not _postgres_problem:
        _postgres_problem.append(_postgres_reachable())
    if _postgres_problem[0]:
        service_unavailable(_postgres_problem[0])
    schema = f"t_{os.urandom(6).hex()}"
    try:
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        _drop_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded default's database (``wcnotify up``)."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'wcnotify.db'}"
