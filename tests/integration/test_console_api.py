"""The web console's HTTP side (notify/api/console.py) over real sockets, on SQLite and PostgreSQL: the page and
its files with their security headers; the read-only ``/v1/{projectId}/console/…`` endpoints (recent
notifications with delivery counts, subscriber counts per day and hour, the webhook outbox, the did.json
check against a live localhost site in each of its outcomes); their auth and their 4xx for bad input."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from wcnotify.dapp._asgi import lifespan
from wcnotify.notify.console import didcheck
from wcnotify.protocol.crypto import Ed25519KeyPair, X25519KeyPair, topic_of
from wcnotify.protocol.did import build_did_document
from wcnotify.serving import AsgiService
from wcnotify.storage import create_engine
from wcnotify.storage.tables import notifications, projects, subscriber_notifications, subscribers

from .notify_stack import ADMIN_HEADERS, Dapp, Stack, Wallet, refused, running_stack

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


# ------------------------------------------------------------------------------------------ helpers


class Site:
    """An app's web site on a localhost port: ``routes[path] = (status, headers, body)`` or ``"hang"``."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes] | str] = {}
        self.server = AsgiService(self, "127.0.0.1", 0, name="app site")
        self.released = asyncio.Event()

    @property
    def domain(self) -> str:
        return f"localhost:{self.server.port}"

    def serve_json(self, document: Any) -> None:
        self.routes["/.well-known/did.json"] = (200, [(b"content-type", b"application/json")], orjson.dumps(document))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        route = self.routes.get(scope["path"], (404, [], b"not here"))
        if route == "hang":
            await self.released.wait()
            route = (503, [], b"")
        assert not isinstance(route, str)
        status, headers, body = route
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.server.start()
    try:
        yield s
    finally:
        s.released.set()
        await s.server.stop()


async def console_get(stack: Stack, dapp: Dapp, path: str, **params: Any) -> dict[str, Any]:
    r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/console/{path}", params=params,
                             headers=dapp.headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


async def insert_subscribers(database_url: str, dapp: Dapp, created_at: list[int]) -> list[str]:
    """Subscriber rows as a subscribe writes them, with chosen creation times (the past cannot be waited for)."""
    engine = create_engine(database_url)
    ids = []
    try:
        async with engine.begin() as conn:
            project = (await conn.execute(select(projects.c.id).where(projects.c.project_id == dapp.project_id))).one()
            for stamp in created_at:
                key = X25519KeyPair.generate().public_key
                sid = str(uuid.uuid4())
                address = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
                await conn.execute(subscribers.insert().values(
                    id=sid, project=project.id, account=f"eip155:1:{address}", address=f"eip155:{address}",
                    sym_key=key.hex(), topic=topic_of(key), expiry=int(time.time()) + 3600, created_at=stamp,
                    updated_at=stamp,
                ))
                ids.append(sid)
    finally:
        await engine.dispose()
    return ids


async def insert_notification(database_url: str, dapp: Dapp, statuses: dict[str, str], *, created_at: int,
                              notification_id: str) -> None:
    """One notification with a delivery row per subscriber id in ``statuses`` (id -> status)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            project = (await conn.execute(select(projects.c.id).where(projects.c.project_id == dapp.project_id))).one()
            nid = str(uuid.uuid4())
            await conn.execute(notifications.insert().values(
                id=nid, project=project.id, notification_id=notification_id, type=dapp.types["alerts"],
                title=f"title of {notification_id}", body="b", created_at=created_at,
            ))
            for sid, status in statuses.items():
                await conn.execute(subscriber_notifications.insert().values(
                    id=str(uuid.uuid4()), notification=nid, subscriber=sid, status=status, is_read=False,
                    created_at=created_at, updated_at=created_at,
                    # an hour ahead: the live server's workers must not claim the queued row, nor its sweeper
                    # requeue the processing one, while the test reads their states (a fresh-clone CI run saw it)
                    next_attempt_at=int(time.time() * 1000) + 3_600_000,
                ))
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------- the page


async def test_console_page_and_files_are_served_with_a_strict_policy(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        r = await stack.http.get(f"{stack.notify_url}/console")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "default-src 'none'" in policy
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert '<script src="/console/console.js"' in r.text
        # nothing from another host: every src and href is a path on this server (or the page itself)
        assert {v[0] for v in re.findall(r'(?:src|href)="([^"]*)"', r.text)} <= {"/", "#"}
        for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
            r = await stack.http.get(f"{stack.notify_url}/console/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            assert "url(" not in r.text and "@import" not in r.text and "import(" not in r.text
            assert re.findall(r"https?://[^\s\"']*", r.text) in ([], ["http://www.w3.org/2000/svg"])
        r = await stack.http.get(f"{stack.notify_url}/console/", follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == "/console"
        # only the files of the table: not index.html twice, not the v0 /{project_id}/subscribers route
        for name in ("index.html", "subscribers", "console.JS", "didcheck.py", "__init__.py"):
            refused(await stack.http.get(f"{stack.notify_url}/console/{name}"), 404, "the console is at /console")
        for path in ("..%2F__init__.py", "static/console.js", "..%2F..%2Fapi%2Fconsole.py"):
            refused(await stack.http.get(f"{stack.notify_url}/console/{path}"), 404)
        r = await stack.http.post(f"{stack.notify_url}/console", data={"secret": "x"})
        assert r.status_code == 405  # a login form whose script did not run posts here and gets nothing


# ---------------------------------------------------------------------------------- auth and input


async def test_console_endpoints_need_the_project_secret_and_refuse_bad_input(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        base = f"{stack.notify_url}/v1/{dapp.project_id}/console"
        paths = ("did-status", "notifications", "subscriber-history", "webhook-outbox")
        for path in paths:
            refused(await stack.http.get(f"{base}/{path}"), 401, "project secret")
            refused(await stack.http.get(f"{base}/{path}", headers=other.headers), 401, "Invalid project id or secret")
            refused(await stack.http.get(f"{base}/{path}", headers=ADMIN_HEADERS), 401, "Invalid project id or secret")
            refused(await stack.http.get(f"{stack.notify_url}/v1/nope/console/{path}", headers=dapp.headers), 401)
        for path, params, field in (
            ("notifications", {"limit": 0}, "limit"), ("notifications", {"limit": 101}, "limit"),
            ("notifications", {"limit": "ten"}, "limit"), ("webhook-outbox", {"limit": 201}, "limit"),
            ("subscriber-history", {"bucket": "week"}, "bucket"), ("subscriber-history", {"buckets": 0}, "buckets"),
            ("subscriber-history", {"buckets": 367}, "buckets"), ("subscriber-history", {"buckets": "1e9"}, "buckets"),
            ("subscriber-history", {"bucket": "day\x00"}, "bucket"),
        ):
            r = await stack.http.get(f"{base}/{path}", params=params, headers=dapp.headers)
            refused(r, 422, field)


# ------------------------------------------------------------------------------------ notifications


async def test_recent_notifications_count_deliveries_by_status(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        assert (await console_get(stack, dapp, "notifications")) == {"notifications": []}
        # real wallets: a notification sent and published to both
        async with Wallet(stack) as w1, Wallet(stack) as w2:
            for wallet in (w1, w2):
                await wallet.register(dapp.domain)
                await wallet.subscribe(dapp)
            await stack.send(dapp, [str(w1.account), str(w2.account)], "alerts", notification_id="live")
            await stack.delivered(dapp, "live", 2)
            await w1.next_notification(dapp)
        # and an older one in every state (processing is reported as queued, as GET …/notifications/{id} does)
        sids = await insert_subscribers(database_url, dapp, [int(time.time() * 1000)] * 5)
        states = dict(zip(sids, ["queued", "processing", "published", "failed", "withdrawn"], strict=True))
        await insert_notification(database_url, dapp, states, created_at=int(time.time() * 1000) - 60_000,
                                  notification_id="mixed")
        listed = (await console_get(stack, dapp, "notifications"))["notifications"]
        assert [n["notification_id"] for n in listed] == ["live", "mixed"]  # newest first
        live, mixed = listed
        assert (live["total"], live["published"], live["queued"], live["failed"]) == (2, 2, 0, 0)
        assert live["type"] == dapp.types["alerts"] and live["title"] == "hello"
        assert {k: mixed[k] for k in ("total", "queued", "published", "failed", "withdrawn")} == {
            "total": 5, "queued": 2, "published": 1, "failed": 1, "withdrawn": 1}
        # each entry is what the single-notification status says
        assert mixed == await stack.status(dapp, "mixed")
        assert [n["notification_id"] for n in (await console_get(stack, dapp, "notifications", limit=1))[
            "notifications"]] == ["live"]
        # another project sees none of them
        other = await stack.create_dapp()
        assert (await console_get(stack, other, "notifications"))["notifications"] == []


# -------------------------------------------------------------------------------------- subscribers


async def test_subscriber_history_counts_current_subscribers_by_when_they_subscribed(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        empty = await console_get(stack, dapp, "subscriber-history")
        assert empty["bucket"] == "day" and empty["current"] == 0 and len(empty["points"]) == 30
        assert all(p["new"] == 0 and p["total"] == 0 for p in empty["points"])
        assert "unsubscribed" in empty["counts"]
        now = int(time.time() * 1000)
        stamps = [now - 40 * DAY_MS, now - 5 * DAY_MS, now - 5 * DAY_MS, now - DAY_MS, now - 3 * HOUR_MS]
        await insert_subscribers(database_url, dapp, stamps)
        async with Wallet(stack) as wallet:  # and one real subscribe, now
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp)
            stamps.append(int(time.time() * 1000))
            for bucket, size, count in (("day", DAY_MS, 30), ("hour", HOUR_MS, 48), ("day", DAY_MS, 1)):
                history = await console_get(stack, dapp, "subscriber-history", bucket=bucket, buckets=count)
                points = history["points"]
                assert history["bucket"] == bucket and history["current"] == 6 and len(points) == count
                starts = [p["start"] for p in points]
                assert starts == [starts[0] + i * size for i in range(count)] and starts[0] % size == 0
                expected_new = [sum(1 for t in stamps if s <= t < s + size) for s in starts]
                assert [p["new"] for p in points] == expected_new
                assert [p["total"] for p in points] == [sum(1 for t in stamps if t < s + size) for s in starts]
                assert points[-1]["total"] == 6
            # an unsubscribe deletes the row: the account leaves every bucket, past ones included
            await wallet.delete(dapp)
            history = await console_get(stack, dapp, "subscriber-history")
            assert history["current"] == 5 and history["points"][-1]["total"] == 5


# ------------------------------------------------------------------------------------- webhook outbox


async def test_webhook_outbox_shows_deliveries_and_failures(database_url: str) -> None:
    async with site() as good, site() as bad, running_stack(database_url, webhook_retry_base=30) as stack:
        good.routes["/hook"] = (200, [], b"ok")
        bad.routes["/hook"] = (500, [], b"receiver is broken")
        dapp = await stack.create_dapp()
        assert await console_get(stack, dapp, "webhook-outbox") == {"webhooks": [], "events": []}
        ids = {}
        for name, s in (("good", good), ("bad", bad)):
            r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/webhooks",
                                      json={"url": f"http://127.0.0.1:{s.server.port}/hook"}, headers=dapp.headers)
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp)
            deadline = time.monotonic() + 10
            while True:
                outbox = await console_get(stack, dapp, "webhook-outbox")
                states = {e["webhook"]: e["state"] for e in outbox["events"]}
                if states == {ids["good"]: "delivered", ids["bad"]: "retrying"}:
                    break
                assert time.monotonic() < deadline, outbox
                await asyncio.sleep(0.05)
        hooks = {w["id"]: w for w in outbox["webhooks"]}
        assert "secret" not in hooks[ids["good"]]
        assert (hooks[ids["good"]]["delivered"], hooks[ids["good"]]["failed"]) == (1, 0)
        failing = hooks[ids["bad"]]
        assert failing["failed"] >= 1 and failing["consecutive_failures"] >= 1 and failing["pending"] == 1
        assert failing["last_error"].startswith("HTTP 500") and failing["next_attempt_at"] > time.time() * 1000
        for event in outbox["events"]:
            assert event["event"] == "subscribed" and event["account"] == str(wallet.account)
            assert (event["delivered_at"] is not None) == (event["state"] == "delivered")
        assert [e["id"] for e in outbox["events"]] == sorted((e["id"] for e in outbox["events"]), reverse=True)
        limited = await console_get(stack, dapp, "webhook-outbox", limit=1)
        assert len(limited["events"]) == 1 and len(limited["webhooks"]) == 2


# ------------------------------------------------------------------------------------- did.json check


async def test_did_status_in_each_outcome(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with site() as app_site, running_stack(database_url) as stack:
        async def status(dapp: Dapp) -> dict[str, Any]:
            return await console_get(stack, dapp, "did-status")

        # no domain yet
        r = await stack.http.post(f"{stack.notify_url}/v1/projects", json={"name": "bare"}, headers=ADMIN_HEADERS)
        bare = Dapp(r.json()["projectId"], r.json()["secret"], "", b"", b"")
        result = await status(bare)
        assert result["state"] == "no_domain" and not result["ok"] and result["url"] is None

        dapp = await stack.create_dapp(domain=app_site.domain)
        url = f"http://{app_site.domain}/.well-known/did.json"
        # the site does not serve it yet
        result = await status(dapp)
        assert (result["state"], result["httpStatus"], result["url"]) == ("http_error", 404, url)
        assert f"/v1/{dapp.project_id}/did.json" in result["detail"]
        # served as the server gives it: ok
        r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/did.json")
        app_site.serve_json(r.json())
        result = await status(dapp)
        assert result["state"] == "ok" and result["ok"] and result["httpStatus"] == 200 and result["checkedAt"] > 0
        # another project's keys under this domain
        app_site.serve_json(build_did_document(app_site.domain, X25519KeyPair.generate().public_key,
                                               Ed25519KeyPair.generate().public_key))
        result = await status(dapp)
        assert result["state"] == "mismatch" and "key agreement" in result["detail"]
        assert "authentication key" in result["detail"]
        # the right keys for another domain (id mismatch), not JSON, too large
        app_site.serve_json(build_did_document("other.example.com", dapp.subscribe_key, dapp.authentication_key))
        assert (await status(dapp))["state"] == "invalid"
        app_site.routes["/.well-known/did.json"] = (200, [], b"<html>hello</html>")
        assert (await status(dapp))["state"] == "invalid"
        app_site.routes["/.well-known/did.json"] = (200, [], b" " * (didcheck.MAX_DOCUMENT + 10))
        result = await status(dapp)
        assert result["state"] == "invalid" and "larger than" in result["detail"]
        # a redirect is reported, not followed
        app_site.routes["/.well-known/did.json"] = (302, [(b"location", b"http://127.0.0.1:1/")], b"")
        result = await status(dapp)
        assert result["state"] == "http_error" and "redirects are not followed" in result["detail"]
        # a site that never answers: bounded by the timeout
        monkeypatch.setattr(didcheck, "TIMEOUT", 0.5)
        app_site.routes["/.well-known/did.json"] = "hang"
        started = time.monotonic()
        result = await status(dapp)
        assert result["state"] == "unreachable" and "within 0.5 s" in result["detail"]
        assert time.monotonic() - started < 3

        # nothing listening (https for anything but localhost; a refused port answers at once)
        closed = await stack.create_dapp(domain="127.0.0.1:1")
        result = await status(closed)
        assert result["state"] == "unreachable" and result["url"] == "https://127.0.0.1:1/.well-known/did.json"
        # plain http is only used for localhost itself: a look-alike is fetched over https
        odd = await stack.create_dapp(domain="localhost.invalid")
        result = await status(odd)
        assert result["state"] == "unreachable" and result["url"] == "https://localhost.invalid/.well-known/did.json"
