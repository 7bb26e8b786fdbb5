"""kill -9 of one of two relay nodes (sharing Redis) in the middle of a 2,000-notification send.

The nodes are ``wcnotify relay --redis-url`` processes behind a failover front (:class:`FailoverProxy`, the
load balancer of a multi-node deployment: RelayClient and the notify server take one relay URL). The notify
server publishes through the front, so to node A; half the wallets are connected through the front (node A),
half straight to node B (so routing between the nodes is exercised before the kill). Node A is killed once
some but not all notifications arrived: the wallets on A reconnect through the front to B and re-subscribe,
the notify server's interrupted publish counts as a relay outage and is retried on B, and in the end every
wallet has the notification once as shown to the user (any repeat carries the same ``msg.id``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.integration.conftest import RedisService
from tests.integration.test_notify_delivery import Fleet, add_subscribers, broadcast
from wcnotify.notify.delivery import DeliveryConfig

from .harness import FailoverProxy, notify_server, redeliveries, relay_node, shown_once, until

COUNT = 2000


async def test_kill9_of_one_relay_node_mid_send_fails_over_and_loses_nothing(
    redis_service: RedisService, postgres_url: str, tmp_path: Path
) -> None:
    a, b = relay_node(redis_service, tmp_path), relay_node(redis_service, tmp_path)
    proxy = FailoverProxy([a.port, b.port])
    for node in (a, b):  # the front's URL is a URL of every node (the auth JWT's aud)
        node.args += ["--public-url", proxy.http_url, "--public-url", proxy.ws_url]
    try:
        await a.start()
        await b.start()
        # small batches from one worker: the send takes a while, so the kill lands in the middle of it
        async with proxy, notify_server(postgres_url, proxy.http_url,
                                        delivery=DeliveryConfig(batch=50, workers=1)) as stack:
            dapp = await stack.create_dapp()
            keys = await add_subscribers(postgres_url, dapp, "alerts", COUNT)
            topics = list(keys)
            on_a = Fleet({t: keys[t] for t in topics[: COUNT // 2]})
            on_b = Fleet({t: keys[t] for t in topics[COUNT // 2 :]})
            clients = [await on_a.listen(proxy.ws_url), await on_b.listen(b.ws_url)]
            try:
                assert proxy.routed[a.port] >= 2 and proxy.routed[b.port] == 0  # notify link and fleet on A
                assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "failover") == COUNT
                await until(lambda: len(on_a.received) + len(on_b.received) >= COUNT // 10, 30, "first deliveries")
                a.kill9()
                killed_at = time.monotonic()
                at_kill = len(on_a.received) + len(on_b.received)
                assert at_kill < COUNT, "the send finished before the kill: nothing was tested"

                await on_a.all_received(timeout=60)
                await on_b.all_received(timeout=60)
                recovered = time.monotonic() - killed_at
                status = await stack.delivered(dapp, "failover", COUNT, timeout=30)
                assert (status["published"], status["queued"], status["failed"]) == (COUNT, 0, 0)
                await asyncio.sleep(0.3)  # let any repeat arrive before checking its msg.id
                shown_once(on_a, on_b)
                assert proxy.routed[b.port] >= 2  # the fleet and the notify link came back through B
                print(f"\nrelay node kill: {at_kill}/{COUNT} delivered at the kill, all {COUNT} "
                      f"{recovered:.1f} s after it; {redeliveries(on_a, on_b)} redeliveries (same msg.id); "
                      f"{stack.notify.service.deliverer.outages} outage pauses")
            finally:
                for client in clients:
                    await client.close()
    finally:
        a.stop()
        b.stop()
