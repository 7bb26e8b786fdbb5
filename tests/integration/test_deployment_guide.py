"""docs/deployment.md, run as written: two relay nodes on Redis, a keys server and two notify replicas on
PostgreSQL, health checks, a project, a send with curl, /metrics, pg_dump and pg_restore. Also: the guide's
configuration reference lists every option of ``wcnotify relay|keys|server`` with its env var and default.

Every command of the guide's ``sh`` blocks runs in ``bash`` in order, with only the substitutions the guide
lists at its top:

- the ports 8080, 8090, 8081, 8082 and 8092 become free ports (the same map for the whole run);
- the variables of "The environment" are set here: ``DATABASE_URL`` and ``RESTORE_DATABASE_URL`` are fresh
  PostgreSQL databases (created here and dropped afterwards: ``pg_dump`` cannot take a ``?search_path=`` URL,
  so a database of its own stands in for the per-test schema), ``REDIS_URL`` is the local Redis with key
  prefixes unique to the test (``WCNOTIFY_*_REDIS_PREFIX``), ``RELAY_URL``, ``KEYS_URL`` and
  ``NOTIFY_PUBLIC_URL`` point at relay node 1, the keys server and notify replica 1 (no load balancer here);
- what a command exports (``export X=…``) is carried to the next, as in one shell session;
- a command ending in ``&`` is a long-running process: started in a process group of its own and stopped
  (SIGTERM, then SIGKILL after 10 s) at the end, whatever happened.

The whole run is bounded: each command gets what is left of 60 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import typer.main

from wcnotify.cli import app

from .conftest import POSTGRES_URL, RedisService, service_unavailable
from .doc_runner import ShellSession, sh_commands
from .test_relay_durability import free_port

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
GUIDE_PORTS = ("8080", "8090", "8081", "8082", "8092")
BUDGET = 60.0  # seconds for the whole guide
ACCOUNT = "eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def guide_commands() -> list[str]:
    """Every command of the guide's ``sh`` blocks, in order (``\\`` continuations joined)."""
    return sh_commands(GUIDE)


# ------------------------------------------------------------------------------ configuration table


def reference_tables() -> dict[str, dict[str, list[str]]]:
    """``{command: {option: [env var cell, default cell, meaning]}}`` from the guide's reference."""
    text = GUIDE.read_text().split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, list[str]]] = {}
    for name, body in re.findall(r"### `wcnotify (\w+)`\n(.*?)(?=\n### |\Z)", text, re.DOTALL):
        rows = {}
        for line in body.splitlines():
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) == 4 and cells[0].startswith("`--"):
                rows[cells[0].strip("`")] = cells[1:]
        tables[name] = rows
    return tables


def shown_default(value: object) -> str:
    if value is None or value == [] or value is False:
        return "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


@pytest.mark.parametrize("command", ["relay", "keys", "server"])
def test_the_configuration_reference_lists_every_option(command: str) -> None:
    cli = typer.main.get_command(app)
    assert isinstance(cli, typer.main.TyperGroup)
    params = [p for p in cli.commands[command].params
              if p.name != "help" and not getattr(p, "hidden", False)]
    table = reference_tables()[command]
    options = {max(p.opts, key=len): p for p in params}
    assert set(table) == set(options), f"docs/deployment.md's `wcnotify {command}` table is out of date with --help"
    for option, param in options.items():
        env, default, meaning = table[option]
        assert env == (f"`{param.envvar}`" if param.envvar else "–"), f"{command} {option}: env var"
        expected = "required" if param.required else shown_default(param.default)
        if param.default is False:
            expected = "off"
        assert default == expected, f"{command} {option}: default {default!r}, the CLI says {expected!r}"
        assert meaning, f"{command} {option}: no meaning given"


# ------------------------------------------------------------------------------------ the guide run


def _database_url(name: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (the deployment's, and one to restore the dump into)."""
    names = [f"wcnotify_guide_{os.urandom(5).hex()}", f"wcnotify_restore_{os.urandom(5).hex()}"]
    try:
        for name in names:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_unavailable(f"PostgreSQL at {POSTGRES_URL}: {exc}")
    try:
        yield _database_url(names[0]), _database_url(names[1])
    finally:
        for name in names:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _restored_project_ids(url: str) -> list[str]:
    conn = await asyncpg.connect(url, timeout=3)
    try:
        return [row["project_id"] for row in await conn.fetch("SELECT project_id FROM projects")]
    finally:
        await conn.close()


def test_the_deployment_guide_runs_as_written(
    tmp_path: Path, redis_service: RedisService, databases: tuple[str, str]
) -> None:
    for tool in ("curl", "jq", "openssl", "pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            pytest.fail(f"docs/deployment.md runs `{tool}`, which is not installed (apt-get install it)")
    ports = {port: str(free_port()) for port in GUIDE_PORTS}
    database_url, restore_url = databases
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # this venv's wcnotify
        "DATABASE_URL": database_url,
        "RESTORE_DATABASE_URL": restore_url,
        "REDIS_URL": redis_service.url,
        "WCNOTIFY_RELAY_REDIS_PREFIX": redis_service.prefix + "relay:",
        "WCNOTIFY_NOTIFY_REDIS_PREFIX": redis_service.prefix + "notify:",
        "RELAY_URL": f"http://127.0.0.1:{ports['8080']}",
        "KEYS_URL": f"http://127.0.0.1:{ports['8081']}",
        "NOTIFY_PUBLIC_URL": f"http://127.0.0.1:{ports['8082']}",
        "NO_COLOR": "1",
    }
    for name in ("WCNOTIFY_SEED", "WCNOTIFY_ADMIN_TOKEN", "WCNOTIFY_SERVER_URL"):  # the guide makes its own
        env.pop(name, None)

    def substitute(command: str) -> str:  # the guide's ports become the free ones
        return re.sub(r"\b(" + "|".join(GUIDE_PORTS) + r")\b", lambda m: ports[m[1]], command)

    session = ShellSession(tmp_path, env, BUDGET, substitute)
    try:
        for written in guide_commands():
            session.run(written)
    finally:
        session.stop()
    env, outputs, procs = session.env, session.outputs, session.procs
    assert all(proc.returncode is not None for proc in procs) and len(procs) == 5

    # what the commands did
    project = json.loads((tmp_path / "project.json").read_text())
    assert env["PROJECT_ID"] == project["projectId"] and len(env["PROJECT_SECRET"]) == 64
    assert re.fullmatch(r"[0-9a-f-]{8,}", env["TYPE_ID"]), env["TYPE_ID"]
    health = [out for cmd, out in outputs if cmd.startswith("until curl")]
    assert len(health) == 5 and all("relay link up" in out for out in health[3:])
    assert '"status"' in health[0] and '"status"' in health[1]  # relay: {"status": "ok", "connections": N}
    sent = json.loads(next(out for cmd, out in outputs if cmd.startswith("curl -fsS -X POST")))
    assert sent["not_found"] == [ACCOUNT], sent
    metrics = next(out for cmd, out in outputs if "/metrics" in cmd)
    assert 'wcnotify_notify_queue_depth{status="queued"}' in metrics
    assert "wcnotify_notify_http_requests_total" in metrics
    tables = next(out for cmd, out in outputs if cmd.startswith("pg_restore --list"))
    assert int(tables.strip()) > 5
    assert asyncio.run(_restored_project_ids(restore_url)) == [project["projectId"]]
    assert (tmp_path / "relay.key").read_text().strip()
