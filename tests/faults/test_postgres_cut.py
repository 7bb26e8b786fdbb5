"""PostgreSQL connections cut (``pg_terminate_backend``) three times during a 2,000-notification send.

Only this test's connections are cut: the backends whose client port is one of this process's own sockets to
PostgreSQL (the in-process notify server's pool; asyncpg through SQLAlchemy takes no ``application_name`` in
the URL to scope by), so other tests sharing the server are left alone. The notify server reconnects by itself
and finishes: every wallet is shown the notification once, every row ends ``published``. A batch whose
settling hit the cut stays claimed until its lease ends and the sweeper requeues it (then it is published
again under the same ``msg.id``), so the lease here is short.
"""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit

import asyncpg

from tests.integration.conftest import POSTGRES_URL
from tests.integration.test_notify_delivery import Fleet, add_subscribers, broadcast
from wcnotify.notify.delivery import DeliveryConfig
from wcnotify.relay.server import RelayConfig, RelayServer

from .harness import notify_server, redeliveries, shown_once, until

COUNT = 2000
PG_PORT = urlsplit(POSTGRES_URL).port or 5432


def own_postgres_ports() -> set[int]:
    """Local ports of this process's TCP connections to PostgreSQL (from /proc: fd socket inodes)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == PG_PORT:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def cut_own_connections() -> int:
    """Terminate this process's PostgreSQL backends (but the one doing it); how many."""
    ports = own_postgres_ports()
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND client_port = ANY($1::int[])",
            list(ports),
        )
        return sum(1 for r in rows if r[0])
    finally:
        await conn.close()


async def test_postgres_connections_cut_during_a_send(postgres_url: str) -> None:
    delivery = DeliveryConfig(batch=50, workers=2, lease=2)
    async with RelayServer(RelayConfig(port=0)) as relay, notify_server(postgres_url, relay.http_url,
                                                                         delivery=delivery) as stack:
        dapp = await stack.create_dapp()
        fleet = Fleet(await add_subscribers(postgres_url, dapp, "alerts", COUNT))
        client = await fleet.listen(relay.ws_url)
        try:
            assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "pg-cut") == COUNT
            started = time.monotonic()
            cuts = []
            for threshold in (100, 600, 1200):
                await until(lambda t=threshold: len(fleet.received) >= t, 30, f"{threshold} deliveries")
                cuts.append((len(fleet.received), await cut_own_connections()))
            assert any(n for _, n in cuts) and cuts[0][0] < COUNT, cuts
            await fleet.all_received(timeout=60)
            status = await stack.delivered(dapp, "pg-cut", COUNT, timeout=40)
            assert (status["published"], status["queued"], status["failed"]) == (COUNT, 0, 0), status
            await asyncio.sleep(0.3)
            shown_once(fleet)
            print(f"\npostgres cut: backends terminated at (delivered, cut) {cuts}; all {COUNT} published "
                  f"{time.monotonic() - started:.1f} s after the send; {redeliveries(fleet)} redeliveries")
        finally:
            await client.close()
