"""Redis connections cut under two relay nodes: routing comes back, the mailbox keeps everything published before.

Restarting Redis needs service control this environment does not give (and ``DEBUG RESTART`` would hit every
other user of the server), so the stand-in is ``CLIENT KILL`` of every connection of the two nodes (their
pub/sub and their mailbox pools; each node names its connections ``wcnotify-relay:<node>``): to the nodes it is
the same as Redis going away and coming back at once.

This test caught a hang: redis-py lost the cancellation of the node's pub/sub command task while it reconnected,
the reconnect loop waited on that task forever, and the node never listened again (4 runs in 6 hit it before
``RedisBackplane._retire``).
"""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis

from tests.integration.conftest import RedisService
from tests.integration.test_relay_redis import nodes, pub
from wcnotify import spec
from wcnotify.relay.client import RelayHttpClient
from wcnotify.relay.testing import RawRelayPeer, random_topic

BEFORE = 300  # messages published before the cut, on as many topics


async def test_redis_connections_cut_routing_returns_and_the_mailbox_lost_nothing(
    redis_service: RedisService,
) -> None:
    client = aioredis.Redis.from_url(redis_service.url)
    try:
        async with nodes(redis_service) as (a, b):
            names = {f"wcnotify-relay:{n.relay.backplane.node}" for n in (a, b) if n.relay.backplane is not None}
            assert len(names) == 2
            topics = [random_topic() for _ in range(BEFORE)]
            async with RelayHttpClient(a.http_url) as publisher:
                await publisher.request("irn_batchPublish", {"messages": [pub(t, f"before-{i}")
                                                                          for i, t in enumerate(topics[:150])]})
                await publisher.request("irn_batchPublish", {"messages": [pub(t, f"before-{i + 150}")
                                                                          for i, t in enumerate(topics[150:])]})

            killed = 0
            for entry in await client.client_list():
                if entry.get("name") in names:
                    await client.client_kill_filter(_id=entry["id"])
                    killed += 1
            assert killed >= 2, killed

            # routing: a live subscriber on B hears a publish on A again (bounded: the node re-subscribes its
            # channels within a second or so); publishes answered with an error were not accepted, not lost
            live_topic = random_topic()
            errors, got = 0, set()
            async with await RawRelayPeer.open(b.ws_url) as live, await RawRelayPeer.open(a.ws_url) as on_a:
                for _ in range(50):  # the subscribe needs Redis too: retried while it is refused
                    # the node answers a subscribe once its pub/sub listens, or after RELAY_REDIS_SUBSCRIBE_TIMEOUT
                    # (5 s) while it reconnects: wait past that (a 5 s call timeout raced it in a CI run)
                    timeout = spec.RELAY_REDIS_SUBSCRIBE_TIMEOUT + 10
                    if "error" not in await live.call("irn_subscribe", {"topic": live_topic}, timeout=timeout):
                        break
                    errors += 1
                for i in range(50):
                    if "error" in await on_a.call("irn_publish", pub(live_topic, f"after-{i}")):
                        errors += 1
                        continue
                    with contextlib.suppress(TimeoutError):
                        got.add((await live.push(timeout=0.2))["params"]["data"]["message"])
                    if got:
                        break
                assert got, "node B never routed a publish from node A again after the cut"

            # the mailbox: every message answered before the cut is still there, on either node
            async with await RawRelayPeer.open(b.ws_url) as later:
                fetched: list[str] = []
                for start in range(0, BEFORE, 100):
                    for topic in topics[start : start + 100]:
                        answer = await later.call("irn_fetchMessages", {"topic": topic})
                        fetched += [m["message"] for m in answer["result"]["messages"]]
            assert sorted(fetched) == sorted(f"before-{i}" for i in range(BEFORE))
            print(f"\nredis cut: {killed} connections killed; {errors} publishes refused right after; "
                  f"all {BEFORE} earlier messages still in the mailbox")
    finally:
        await client.aclose()
