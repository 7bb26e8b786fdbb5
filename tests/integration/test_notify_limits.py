"""Rate limits and metrics of the notify server over real HTTP, on SQLite and PostgreSQL: the project's send
bucket (429 with ``Retry-After``, other projects unaffected, recovery after the refill), the subscriber's
bucket ("Rate limit exceeded" in ``failed``, only for that subscriber), one bucket shared by two replicas
through Redis, failing open when Redis is down, ``/metrics`` after a delivery, and the OpenAPI description."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from wcnotify import spec
from wcnotify.notify.ratelimit import Rate
from wcnotify.notify.server import NotifyConfig, NotifyServer
from wcnotify.protocol.crypto import topic_of

from .conftest import RedisService
from .notify_stack import ADMIN, Dapp, RpcRefused, Stack, Wallet, db_snapshot, refused, running_stack


def notify_body(dapp: Dapp, accounts: list[str], notification_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"notification": {"type": dapp.types["alerts"], "title": "t", "body": "b"},
                            "accounts": accounts}
    if notification_id is not None:
        body["notification_id"] = notification_id
    return body


async def notify(http: httpx.AsyncClient, url: str, dapp: Dapp, **kwargs: Any) -> httpx.Response:
    return await http.post(f"{url}/{dapp.project_id}/notify", json=notify_body(dapp, [], **kwargs),
                           headers=dapp.headers)


def limited(response: httpx.Response) -> int:
    """Assert a 429 that says what happened; its Retry-After in seconds."""
    refused(response, 429, "Rate limit exceeded", "Try again in")
    return int(response.headers["retry-after"])


async def test_the_project_send_bucket(database_url: str) -> None:
    async with running_stack(database_url, send_rate=Rate(2.0, 3)) as stack:
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        url = stack.notify_url
        for _ in range(3):
            assert (await notify(stack.http, url, dapp)).status_code == 200
        # the burst is spent: every send route of the project is refused, and nothing is queued
        assert limited(await notify(stack.http, url, dapp, notification_id="late")) == 1
        r = await stack.http.post(f"{url}/v1/{dapp.project_id}/notify", json=[notify_body(dapp, [])],
                                  headers=dapp.headers)
        limited(r)
        r = await stack.http.post(f"{url}/v1/{dapp.project_id}/notify/broadcast", headers=dapp.headers,
                                  json={"notification": notify_body(dapp, [])["notification"]})
        limited(r)
        refused(await stack.http.get(f"{url}/v1/{dapp.project_id}/notifications/late", headers=dapp.headers), 404)
        # another project has its own bucket
        assert (await notify(stack.http, url, other)).status_code == 200
        # at 2 tokens a second, half a second gives one send back (and only one)
        await asyncio.sleep(0.6)
        assert (await notify(stack.http, url, dapp)).status_code == 200
        limited(await notify(stack.http, url, dapp))


async def test_the_subscriber_bucket(database_url: str) -> None:
    async with running_stack(database_url, subscriber_rate=Rate(1 / 3600, 2)) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice, Wallet(stack) as bob, Wallet(stack) as carol:
            for w, types in ((alice, ["alerts"]), (bob, ["alerts"]), (carol, ["news"])):
                await w.register(dapp.domain)
                await w.subscribe(dapp, types)
            a, b, c = str(alice.account), str(bob.account), str(carol.account)
            # carol is out of scope: failed for that, and it spends none of her tokens
            for i in range(2):
                result = await stack.send(dapp, [a, c], "alerts", title=f"n{i}")
                assert result["sent"] == [a] and result["failed"][0]["account"] == c
            # alice has had her two: she alone is failed (under both spellings the dapp used); bob is sent
            lower = f"eip155:1:{alice.eth.address.lower()}"
            result = await stack.send(dapp, [a, b, lower], "alerts", notification_id="third", title="n2")
            assert result == {"sent": [b], "not_found": [],
                              "failed": [{"account": a, "reason": spec.NOTIFY_REASON_RATE_LIMITED},
                                         {"account": lower, "reason": spec.NOTIFY_REASON_RATE_LIMITED}]}
            assert (await stack.delivered(dapp, "third", 1))["total"] == 1
            got = [(await alice.next_notification(dapp))["msg"]["title"] for _ in range(2)]
            assert sorted(got) == ["n0", "n1"]
            assert await alice.nothing(topic_of(alice.sub_key(dapp)), wait=0.3)
            assert (await bob.next_notification(dapp))["msg"]["title"] == "n2"
            # the dapp's welcome and broadcasts are not counted against the subscriber (see ratelimit.py)
            r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/notify/broadcast",
                                      json={"notification": notify_body(dapp, [])["notification"]},
                                      headers=dapp.headers)
            assert r.status_code == 200 and r.json()["queued"] == 2


async def test_wallet_request_buckets(database_url: str) -> None:
    """A flood of subscribes from one identity key is refused once its bucket is empty ("Rate limit exceeded.
    Try again at …", nothing written), while another wallet is unaffected; the default table is the reference's."""
    assert {(tag, scope): rate for tag, scope, rate in spec.NOTIFY_WALLET_RATES} == {
        (4000, "client"): "100/d:500", (4000, "topic"): "1/s:50000", (4010, "client"): "1/s:100",
        (4008, "topic"): "1/s:100", (4004, "topic"): "1/h:10", (4014, "topic"): "2/s:100", (4016, "topic"): "2/s:100",
    }
    async with running_stack(database_url) as stack:
        limits = stack.notify.service.limits
        limits.wallet_rates = ((4000, "client", Rate(1 / 3600, 2)), (4010, "client", Rate(1 / 3600, 1)))
        dapp = await stack.create_dapp()
        async with Wallet(stack) as flooder, Wallet(stack) as other:
            for w in (flooder, other):
                await w.register(dapp.domain, all_apps=True)
            await flooder.subscribe(dapp, ["alerts"])
            await flooder.subscribe(dapp, ["alerts", "news"])  # a repeat subscribe is a subscribe too
            before = await db_snapshot(database_url)
            with pytest.raises(RpcRefused, match=r"Rate limit exceeded\. Try again at \d+"):
                await flooder.subscribe(dapp, ["news"])
            assert await db_snapshot(database_url) == before  # refused: nothing written
            assert (await other.subscribe(dapp, ["news"]))["sbs"]  # another key has its own bucket
            await flooder.watch()
            with pytest.raises(RpcRefused, match="Rate limit exceeded"):
                await flooder.watch()
        assert limits.denied["wallet"] == 2


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_replicas_share_the_project_bucket_through_redis(database_url: str, redis_service: RedisService) -> None:
    shared = {"redis_url": redis_service.url, "redis_prefix": redis_service.prefix, "send_rate": Rate(0.1, 3)}
    async with running_stack(database_url, **shared) as stack:
        first = stack.notify
        second = NotifyServer(NotifyConfig(
            relay_url=stack.relay.http_url, keys_urls=(stack.keys.url,), port=0, database_url=database_url,
            admin_token=ADMIN, seed=first.config.seed, **shared,
        ))
        await second.start()
        try:
            dapp, other = await stack.create_dapp(), await stack.create_dapp()
            urls = [first.url, second.url, first.url]
            for url in urls:  # three tokens, taken on both replicas
                assert (await notify(stack.http, url, dapp)).status_code == 200
            waits = [limited(await notify(stack.http, url, dapp)) for url in (first.url, second.url)]
            assert all(9 <= w <= 10 for w in waits), waits  # one token every ten seconds
            assert (await notify(stack.http, second.url, other)).status_code == 200
            # the buckets live under the deployment's prefix (and expire once full)
            keys = await asyncio.to_thread(_redis_keys, redis_service)
            assert keys and all(k.startswith(redis_service.prefix) for k in keys), keys
        finally:
            await second.stop()


def _redis_keys(service: RedisService) -> list[str]:
    import redis  # noqa: PLC0415 (only this test talks to Redis directly)

    client = redis.Redis.from_url(service.url)
    try:
        return [k.decode() for k in client.scan_iter(match=service.prefix + "*")]
    finally:
        client.close()


async def test_an_unreachable_redis_fails_open(database_url: str) -> None:
    # a port nothing listens on: connection refused at once
    async with running_stack(database_url, redis_url="redis://127.0.0.1:1/0", send_rate=Rate(0.1, 1),
                             redis_prefix=f"t{os.urandom(4).hex()}:") as stack:
        dapp = await stack.create_dapp()
        for _ in range(3):  # beyond the burst of 1, yet allowed
            assert (await notify(stack.http, stack.notify_url, dapp)).status_code == 200
        metrics = await scrape(stack)
        assert sample(metrics, "wcnotify_notify_rate_limit_errors_total") >= 3


# ------------------------------------------------------------------------------------------ metrics


async def scrape(stack: Stack, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                                            float]:
    r = await stack.http.get(f"{stack.notify_url}/metrics",
                             headers={"authorization": f"Bearer {ADMIN}"} if headers is None else headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text) for s in family.samples
    }


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


async def test_metrics_after_a_delivery(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        refused(await stack.http.get(f"{stack.notify_url}/metrics"), 401, "admin token")
        async with Wallet(stack) as alice:
            await alice.register(dapp.domain)
            await alice.subscribe(dapp, ["alerts"])
            await stack.send(dapp, [str(alice.account)], "alerts", notification_id="m-1")
            await alice.next_notification(dapp)
            assert (await stack.delivered(dapp, "m-1", 1))["published"] == 1
        m = await scrape(stack)
        assert sample(m, "wcnotify_notify_published_total") == 1
        assert sample(m, "wcnotify_notify_failed_total") == 0
        assert sample(m, "wcnotify_notify_queue_depth", status="queued") == 0
        assert sample(m, "wcnotify_notify_queue_depth", status="processing") == 0
        assert sample(m, "wcnotify_notify_in_flight") == 0  # the batch was let go once settled
        assert sample(m, "wcnotify_notify_publish_latency_seconds_count") >= 1
        assert sample(m, "wcnotify_notify_publish_latency_seconds_sum") > 0
        assert sample(m, "wcnotify_notify_webhook_backlog") == 0
        assert sample(m, "wcnotify_notify_rate_limited_total", bucket="send") == 0
        # requests are counted by route template, never by the raw path
        assert sample(m, "wcnotify_notify_http_requests_total", method="POST", route="/{project_id}/notify",
                      status="200") == 1
        assert not any(dapp.project_id in dict(labels).get("route", "") for _, labels in m)


async def test_metrics_can_be_public(database_url: str) -> None:
    async with running_stack(database_url, metrics_public=True, send_rate=Rate(0.01, 1)) as stack:
        dapp = await stack.create_dapp()
        await notify(stack.http, stack.notify_url, dapp)
        limited(await notify(stack.http, stack.notify_url, dapp))
        await stack.http.get(f"{stack.notify_url}/no/such/path")
        m = await scrape(stack, headers={})
        assert sample(m, "wcnotify_notify_rate_limited_total", bucket="send") == 1
        assert sample(m, "wcnotify_notify_http_requests_total", method="POST", route="/{project_id}/notify",
                      status="429") == 1
        assert sample(m, "wcnotify_notify_http_requests_total", method="GET", route="unmatched", status="404") == 1


async def test_openapi_describes_the_dapp_api(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        r = await stack.http.get(f"{stack.notify_url}/openapi.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        for path, method in (("/{project_id}/notify", "post"), ("/v1/{project_id}/notify", "post"),
                             ("/v1/{project_id}/notify/broadcast", "post"), ("/{project_id}/subscribe-topic", "post"),
                             ("/v1/projects", "post"), ("/metrics", "get")):
            assert method in paths.get(path, {}), path
        r = await stack.http.get(f"{stack.notify_url}/docs")
        assert r.status_code == 200 and "swagger" in r.text.lower()
