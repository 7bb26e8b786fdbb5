"""The attack matrix of issue 8 (docs/security.md), each row through the real interfaces: relay sockets and
HTTP, on SQLite and PostgreSQL where storage is involved. Rows already proven elsewhere are listed in
docs/security.md with their tests and not repeated here.

- a JWT replayed in a fresh envelope (new ciphertext, so not caught as a re-published message) within its
  lifetime changes nothing twice: subscribe after a delete, delete after a re-subscribe, update;
- one project's secret opens none of another project's routes, and no project secret opens an admin route;
- oversized bodies on every service's HTTP endpoints are 413 (declared or chunked);
- slowloris: 50 sockets each dribbling a header byte per second for 10 s while others are served;
- a client that guesses (or learns) a subscription topic gets ciphertext it cannot open;
- secrets never reach a log record at DEBUG through project creation, subscribe, send and webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from wcnotify import spec
from wcnotify.protocol.crypto import CryptoError, X25519KeyPair, decrypt, decrypt_type1, topic_of
from wcnotify.protocol.did import did_web
from wcnotify.relay.client import RelayClient, RelayHttpClient, RelayMessage
from wcnotify.storage import create_engine
from wcnotify.storage.tables import (
    broadcast_parts,
    dapp_webhooks,
    notification_types,
    notifications,
    projects,
    subscribers,
)

from .notify_stack import ADMIN, ADMIN_HEADERS, Dapp, RpcRefused, Wallet, db_snapshot, refused, running_stack
from .test_notify_webhooks import add_webhook, receivers

PROJECT_TABLES = (projects, notification_types, notifications, dapp_webhooks, subscribers, broadcast_parts)


def subscribe_claims(wallet: Wallet, dapp: Dapp, types: list[str]) -> dict[str, Any]:
    return wallet.claims(act=spec.Act.NOTIFY_SUBSCRIPTION, aud=dapp.auth_did, app=did_web(dapp.domain),
                         scp=" ".join(dapp.types[t] for t in types))


async def send_subscribe(wallet: Wallet, dapp: Dapp, claims: dict[str, Any]) -> dict[str, Any]:
    """The same claims signed again (Ed25519 is deterministic: the same JWT) in a fresh type-1 envelope."""
    answer = await wallet.call(spec.NOTIFY_SUBSCRIBE, claims, topic=topic_of(dapp.subscribe_key),
                               receiver=dapp.subscribe_key)
    for entry in answer["sbs"]:
        wallet.subscriptions[entry["appDomain"]] = entry
        topic = topic_of(bytes.fromhex(entry["symKey"]))
        if topic not in wallet.relay.topics:
            await wallet.relay.subscribe(topic)
    return answer


async def send_on_subscription(wallet: Wallet, dapp: Dapp, rpc: spec.RpcSpec, claims: dict[str, Any]) -> dict[str, Any]:
    """A request under the wallet's current subscription key (type 0: a fresh nonce, a fresh ciphertext)."""
    key = wallet.sub_key(dapp)
    return await wallet.call(rpc, claims, topic=topic_of(key), key=key)


async def test_a_jwt_replayed_in_a_fresh_envelope_changes_nothing_twice(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            subscribe = subscribe_claims(wallet, dapp, ["alerts"])
            await send_subscribe(wallet, dapp, subscribe)
            first_key = wallet.sub_key(dapp)

            # update to news, then the old update to alerts+news again in a new envelope: refused
            update = wallet.claims(act=spec.Act.NOTIFY_UPDATE, aud=dapp.auth_did, app=did_web(dapp.domain),
                                   scp=dapp.types["news"])
            await send_on_subscription(wallet, dapp, spec.NOTIFY_UPDATE, update)
            await wallet.update(dapp, ["alerts"])  # a new JWT (other claims): accepted
            state = await db_snapshot(database_url)
            with pytest.raises(RpcRefused, match="already used"):
                await send_on_subscription(wallet, dapp, spec.NOTIFY_UPDATE, update)
            assert await db_snapshot(database_url) == state

            # the subscribe JWT again, in a fresh envelope: no second subscription, no new key
            with pytest.raises(RpcRefused, match="already used"):
                await send_subscribe(wallet, dapp, subscribe)
            assert await db_snapshot(database_url) == state

            # delete; the old subscribe JWT must not bring the subscription back
            delete = wallet.claims(act=spec.Act.NOTIFY_DELETE, aud=dapp.auth_did, app=did_web(dapp.domain))
            await send_on_subscription(wallet, dapp, spec.NOTIFY_DELETE, delete)
            gone = await db_snapshot(database_url)
            assert gone["subscribers"] == []
            with pytest.raises(RpcRefused, match="already used"):
                await send_subscribe(wallet, dapp, subscribe)
            assert await db_snapshot(database_url) == gone

            # a new subscribe (new JWT) is accepted; the old delete under the new key must not remove it
            await wallet.subscribe(dapp, ["news"])
            second_key = wallet.sub_key(dapp)
            assert second_key != first_key
            state = await db_snapshot(database_url)
            with pytest.raises(RpcRefused, match="already used"):
                await send_on_subscription(wallet, dapp, spec.NOTIFY_DELETE, delete)
            assert await db_snapshot(database_url) == state
            assert [r.topic for r in await _subscribers(database_url)] == [topic_of(second_key)]
            # and the old delete on the old topic: nobody can answer it (no subscription), nothing changes
            await wallet.relay.publish(topic_of(first_key), "AAAA", ttl=300, tag=spec.NOTIFY_DELETE.request_tag)
            await wallet.history(dapp)
            assert await db_snapshot(database_url) == state


async def _subscribers(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(subscribers))).all())
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------- cross-project and admin


def _fill(path: str, project_id: str) -> str:
    out = path.replace("{project_id}", project_id)
    for name in ("{type_id}", "{notification_id}", "{webhook_id}"):
        out = out.replace(name, str(uuid.uuid4()))
    return out


# project routes anyone may call (they publish what the dapp hosts, or are the wallets' own)
PUBLIC_PROJECT_ROUTES = {("GET", "/v1/{project_id}/did.json")}


async def test_one_projects_secret_opens_no_route_of_another_nor_an_admin_route(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        mine, theirs = await stack.create_dapp(), await stack.create_dapp()
        http, base = stack.http, stack.notify_url
        await stack.send(theirs, ["eip155:1:0x" + "ab" * 20])  # something of theirs to see, if we could
        before = await db_snapshot(database_url, PROJECT_TABLES)
        paths = (await http.get(f"{base}/openapi.json")).json()["paths"]
        tried: list[tuple[str, str, int]] = []
        for path, methods in paths.items():
            if "{project_id}" not in path:
                continue
            for method in methods:
                if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    continue
                if (method.upper(), path) in PUBLIC_PROJECT_ROUTES:
                    continue
                url = base + _fill(path, theirs.project_id)
                body = {} if method.upper() in ("POST", "PUT", "PATCH") else None
                r = await http.request(method.upper(), url, json=body, headers=mine.headers)
                tried.append((method.upper(), path, r.status_code))
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert "Invalid" in r.json()["error"], r.text
        assert len(tried) >= 20, tried  # every dapp route of the OpenAPI document
        # admin routes: neither project's secret, nor a secret with the admin token's prefix
        for headers in (mine.headers, theirs.headers, {"authorization": f"Bearer {ADMIN[:-1]}"}):
            refused(await http.get(f"{base}/v1/projects", headers=headers), 401, "admin token")
            refused(await http.post(f"{base}/v1/projects", json={"name": "x"}, headers=headers), 401, "admin token")
        assert await db_snapshot(database_url, PROJECT_TABLES) == before


# ------------------------------------------------------------------------------- oversized bodies


async def _chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def test_oversized_bodies_are_413_declared_or_chunked(database_url: str) -> None:
    """The notify server (dapp API and relay webhook) and the relay's /rpc refuse a body over their cap
    whether Content-Length declares it or it comes chunked; the server still serves afterwards. (The keys
    server: test_keys.py::test_oversized_bodies_are_413_unread; relay WebSocket frames:
    test_relay_limits.py::test_oversized_frame_closes_that_socket_only.)"""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        http = stack.http
        cap = spec.NOTIFY_MAX_BODY_BYTES
        for url, headers in ((f"{stack.notify_url}/{dapp.project_id}/notify", dapp.headers),
                             (stack.notify_url + spec.NOTIFY_WEBHOOK_PATH, {}),
                             (f"{stack.notify_url}/v1/projects", ADMIN_HEADERS)):
            r = await http.post(url, content=b"{" + b" " * cap + b"}", headers=headers)
            assert r.status_code == 413, (url, r.status_code)
            r = await http.post(url, content=_chunks(cap + 1), headers=headers)
            # chunked: BodyLimit stops reading at the cap; FastAPI turns the error raised from its body read
            # into "400 There was an error parsing the body" on JSON routes (docs/security.md)
            assert r.status_code in (400, 413), (url, r.status_code, r.text)
        # the relay's HTTP RPC, authenticated, with one byte more than a frame may hold
        relay_cap = spec.RELAY_MAX_FRAME_BYTES
        async with RelayHttpClient(stack.relay.http_url) as client:
            auth = {"authorization": f"Bearer {client._auth()}"}
        r = await http.post(f"{stack.relay.http_url}/rpc", content=_chunks(relay_cap + 1), headers=auth)
        assert r.status_code == 413, r.text
        # and everything still works
        assert (await stack.send(dapp, ["eip155:1:0x" + "cd" * 20]))["not_found"] is not None


# -------------------------------------------------------------------------------------- slowloris

SLOW_SOCKETS = 50
SLOW_SECONDS = 10


async def test_slowloris_connections_do_not_stop_others_being_served(database_url: str) -> None:
    """50 sockets each send a request line, then one header byte per second for 10 s, on the notify server
    and on the relay. Meanwhile a normal client is served (p100 latency figure in docs/security.md). uvicorn
    has no header-read timeout (its keep-alive timer starts after a first response), so the slow sockets stay
    open as long as they dribble: they are bounded by h11's 16 KiB incomplete-header cap (a larger header is
    refused at once, checked here) and by the process's file descriptor limit."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        targets = [(stack.notify.config.host if hasattr(stack.notify.config, "host") else "127.0.0.1",
                    _port(stack.notify_url)), ("127.0.0.1", _port(stack.relay.http_url))]
        writers: list[asyncio.StreamWriter] = []
        for host, port in targets:
            for _ in range(SLOW_SOCKETS // len(targets)):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
                writers.append(writer)

        async def dribble() -> None:
            for _ in range(SLOW_SECONDS):
                for writer in writers:
                    writer.write(b"a")
                await asyncio.sleep(1)

        dribbling = asyncio.create_task(dribble())
        latencies: list[float] = []
        async with Wallet(stack) as wallet:
            while not dribbling.done():
                started = time.monotonic()
                assert (await stack.http.get(f"{stack.notify_url}/health")).status_code == 200
                await stack.send(dapp, [str(wallet.account)])
                await wallet.relay.subscribe(topic_of(os.urandom(32)))  # the relay's WebSocket side
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.5)  # the project's send bucket: 2/s
        await dribbling
        assert len(latencies) >= SLOW_SECONDS, latencies
        assert max(latencies) < 2.0, latencies  # p100 of a health check + a send + a relay subscribe
        print(f"slowloris: {len(writers)} slow sockets x {SLOW_SECONDS} s; {len(latencies)} normal rounds, "
              f"max {max(latencies) * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms")
        for writer in writers:
            writer.close()

        # an unfinished header beyond h11's 16 KiB cap is refused at once, not buffered without bound
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack.notify_url))
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32768)  # never ends
        answer = await asyncio.wait_for(reader.read(200), 5)
        assert answer == b"" or b" 4" in answer.split(b"\r\n")[0], answer  # closed or a 4xx
        writer.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


# ------------------------------------------------------------------------------- guessed topics


async def test_a_client_on_someone_elses_topics_sees_only_ciphertext(database_url: str) -> None:
    """Eve learns Alice's subscription topic (the relay operator sees topics) and the dapp's subscribe topic
    (public: sha256 of the key in did.json), subscribes to both on the relay and gets every message: she
    cannot open any. (A notification she publishes there is dropped by the SDK as forged:
    test_wallet_sdk.py.)"""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as alice:
            await alice.register(dapp.domain)
            eve = RelayClient(stack.relay.ws_url)
            await eve.connect()
            try:
                await eve.subscribe(topic_of(dapp.subscribe_key))
                await alice.subscribe(dapp, ["alerts"])
                sub_key = alice.sub_key(dapp)
                await eve.subscribe(topic_of(sub_key))
                secret_title = "secret-title-" + os.urandom(8).hex()
                await stack.send(dapp, [str(alice.account)], "alerts", title=secret_title)
                claims = await alice.next_notification(dapp)
                assert secret_title in str(claims["msg"])

                seen: list[RelayMessage] = []
                deadline = time.monotonic() + 5
                while len({m.topic for m in seen}) < 2 and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        seen.append(await eve.next_message(timeout=0.5))
                assert {m.topic for m in seen} == {topic_of(dapp.subscribe_key), topic_of(sub_key)}, seen
                guesses = [os.urandom(32), dapp.subscribe_key, dapp.authentication_key,
                           bytes.fromhex(topic_of(sub_key))]
                for m in seen:
                    raw = base64.b64decode(m.message)
                    assert secret_title.encode() not in raw and alice.account.address.lower().encode() not in (
                        raw.lower())
                    assert b"notify_" not in raw and b"eyJ" not in raw  # no claims, no JWT in the clear
                    for guess in guesses:
                        with pytest.raises(CryptoError):
                            decrypt(m.message, guess)
                    if m.topic == topic_of(dapp.subscribe_key):  # type 1: only the dapp's X25519 key opens it
                        with pytest.raises(CryptoError):
                            decrypt_type1(m.message, X25519KeyPair.generate().private_key)
            finally:
                await eve.close()


# ------------------------------------------------------------------------------ secrets in logs


async def test_no_secret_reaches_a_log_record_at_debug(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Project creation, subscribe-topic, a wallet's register/subscribe/update/delete, a send and its
    delivery, and webhook deliveries, with every logger at DEBUG: no record (message, arguments or
    traceback) holds the admin token, a project secret, a webhook secret, a subscription or response sym
    key, or a private key (project keys, the server's seed, the relay's key, the wallet's identity key).
    uvicorn's access log is off in every service (serving.AsgiService)."""
    caplog.set_level(logging.DEBUG)
    async with receivers() as (receiver,), running_stack(database_url) as stack:
        for name in ("wcnotify", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        dapp = await stack.create_dapp()
        hook = await add_webhook(stack, dapp, receiver.url)
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])
            await wallet.watch(dapp.domain)
            sub_key = wallet.subscriptions[dapp.domain]["symKey"]
            result = await stack.send(dapp, [str(wallet.account)], "alerts", notification_id="n-1")
            assert result["sent"] == [str(wallet.account)], result
            await wallet.next_notification(dapp)
            await wallet.update(dapp, ["alerts", "news"])
            await wallet.delete(dapp)
            await receiver.wait(3)  # subscribed, updated, unsubscribed: signed with the webhook secret
            engine = create_engine(database_url)
            try:
                async with engine.connect() as conn:
                    row = (await conn.execute(select(projects).where(projects.c.project_id == dapp.project_id))).one()
            finally:
                await engine.dispose()
            secrets_ = {
                "admin token": ADMIN,
                "project secret": dapp.secret,
                "webhook secret": hook["secret"],
                "subscription sym key": sub_key,
                "watch sym key": (wallet.watch_key or b"").hex(),
                "last response key": wallet.last_answer_key.hex(),
                "project subscribe private key": row.subscribe_private,
                "project authentication private key": row.authentication_private,
                "server seed": stack.notify.config.seed,
                "relay private key": stack.relay.relay.key.seed.hex(),
                "wallet identity private key": wallet.identity.seed.hex(),
                "wallet eth private key": wallet.eth.key.hex().removeprefix("0x"),
            }
    records = caplog.records
    assert len(records) > 20, len(records)  # the loggers did speak
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    blob = "\n".join(texts)
    for name, value in secrets_.items():
        assert value and len(value) >= 16, name
        for form in {value, value.lower(), value.upper()}:
            assert form not in blob, f"{name} appears in a log record"
    print(f"secrets in logs: {len(records)} records at DEBUG, none holds any of {len(secrets_)} secrets")
