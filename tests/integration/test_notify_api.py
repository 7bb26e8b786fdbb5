"""The notify server's HTTP API on SQLite and PostgreSQL: projects (admin token), project-secret auth,
subscribe-topic, did.json documents, notification types, the explorer-shaped notify-config, the relay
webhook's security, and a property test: no body a client sends gets a 500."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON
from wcnotify import spec
from wcnotify.protocol.crypto import Ed25519KeyPair, topic_of
from wcnotify.protocol.did import did_web, encode_did_key, parse_did_document
from wcnotify.relay.server import RelayConfig, RelayServer

from .notify_stack import ADMIN, ADMIN_HEADERS, Wallet, refused, running_stack, stack_in_thread
from .test_notify_scenarios import only
from .test_relay_durability import free_port


async def test_projects_subscribe_topic_and_did_documents(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url

        # projects need the admin token
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {ADMIN}"}):
            refused(await http.post(f"{base}/v1/projects", json={"name": "x"}, headers=headers), 401, "admin token")
            refused(await http.get(f"{base}/v1/projects", headers=headers), 401, "admin token")
        refused(await http.post(f"{base}/v1/projects", json={}, headers=ADMIN_HEADERS), 422, "name")
        refused(await http.post(f"{base}/v1/projects", json={"name": "n" * 256}, headers=ADMIN_HEADERS), 422, "name")
        r = await http.post(f"{base}/v1/projects", json={"name": "Gm", "description": "daily gm",
                                                          "icons": ["https://gm.example/icon.png"]},
                            headers=ADMIN_HEADERS)
        assert r.status_code == 201, r.text
        pid, secret = r.json()["projectId"], r.json()["secret"]
        mine = {"authorization": f"Bearer {secret}"}
        assert pid in [p["projectId"] for p in (await http.get(f"{base}/v1/projects", headers=ADMIN_HEADERS)).json()]
        rival = await stack.create_dapp()

        # subscribe-topic: the project secret, on either path
        url = f"{base}/{pid}/subscribe-topic"
        body = {"appDomain": "gm.example"}
        refused(await http.post(url, json=body), 401, "project secret")
        refused(await http.post(url, json=body, headers={"authorization": "Bearer wrong"}), 401, "Invalid")
        refused(await http.post(url, json=body, headers=rival.headers), 401, "Invalid")  # another project's secret
        refused(await http.post(f"{base}/nope/subscribe-topic", json=body, headers=mine), 401, "Invalid")
        refused(await http.post(f"{base}/v1/{pid}/did.json"), 405, "")  # (GET only)
        refused(await http.get(f"{base}/v1/{pid}/did.json"), 404, "subscribe-topic first")
        first = await http.post(url, json=body, headers=mine)
        assert first.status_code == 200, first.text
        keys = first.json()
        assert set(keys) == {"subscribeKey", "authenticationKey"}
        again = await http.post(f"{base}/v1/{pid}/subscribe-topic", json={"appDomain": "GM.example"}, headers=mine)
        assert again.json() == keys  # idempotent: same keys
        refused(await http.post(url, json={"appDomain": rival.domain}, headers=mine), 409, "in-use by another project")
        refused(await http.post(url, json={}, headers=mine), 422, "appDomain")
        refused(await http.post(url, json={"appDomain": 7}, headers=mine), 422, "appDomain")
        for bad in ("not a domain!", "https://gm.example", "gm.example/path", "gm.example:99999x", ""):
            refused(await http.post(url, json={"appDomain": bad}, headers=mine), 422, "appDomain")
        refused(await http.post(url, json={"appDomain": "a" * 254}, headers=mine), 422, "appDomain")
        refused(await http.post(url, content=b"{", headers=mine | {"content-type": "application/json"}), 422)
        huge = orjson.dumps({"appDomain": "gm.example", "pad": "x" * spec.NOTIFY_MAX_BODY_BYTES})
        refused(await http.post(url, content=huge, headers=mine), 413, "larger than")
        assert (await http.post(url, json=body, headers=mine)).json() == keys  # nothing of that changed the keys

        # the dapp's did.json: what it hosts at https://gm.example/.well-known/did.json
        r = await http.get(f"{base}/v1/{pid}/did.json")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        parsed = parse_did_document(r.json(), did_web("gm.example"))
        assert parsed.key_agreement.hex() == keys["subscribeKey"]
        assert parsed.authentication.hex() == keys["authenticationKey"]
        refused(await http.get(f"{base}/v1/{uuid.uuid4().hex}/did.json"), 404, "no project")

        # the server's own did.json: its watch topic and signing key
        r = await http.get(f"{base}{spec.DID_JSON_PATH}")
        own = parse_did_document(r.json())
        identity = stack.notify.service.identity
        assert r.json()["id"] == did_web(base.removeprefix("http://"))
        assert topic_of(own.key_agreement) == identity.watch_topic
        assert own.authentication == identity.authentication.public_key

        project = (await http.get(f"{base}/v1/{pid}/project", headers=mine)).json()
        assert project["appDomain"] == "gm.example" and project["subscribeKey"] == keys["subscribeKey"]


async def test_notification_types_and_notify_config(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        dapp, other = await stack.create_dapp(types=()), await stack.create_dapp(types=("alerts",))
        url = f"{base}/v1/{dapp.project_id}/notification-types"
        refused(await http.post(url, json={"name": "alerts"}), 401, "project secret")
        refused(await http.post(url, json={"name": "alerts"}, headers=other.headers), 401, "Invalid")
        refused(await http.get(url, headers=other.headers), 401, "Invalid")
        refused(await http.post(url, json={}, headers=dapp.headers), 422, "name")
        refused(await http.post(url, json={"name": "x" * 65}, headers=dapp.headers), 422, "name")
        refused(await http.post(url, json={"name": "x", "imageUrls": {"sm": 5}}, headers=dapp.headers), 422,
                "imageUrls.sm")

        r = await http.post(url, json={"name": "alerts", "description": "Price alerts",
                                       "imageUrls": {"sm": "https://a.example/s.png"}}, headers=dapp.headers)
        assert r.status_code == 201, r.text
        alerts = r.json()["id"]
        assert str(uuid.UUID(alerts)) == alerts
        refused(await http.post(url, json={"name": "alerts"}, headers=dapp.headers), 409, "'alerts'")
        news = (await http.post(url, json={"name": "news"}, headers=dapp.headers)).json()["id"]
        # the same name in another project is another type
        assert (await http.get(f"{base}/v1/{other.project_id}/notification-types", headers=other.headers)).json()[0][
            "id"] == other.types["alerts"]
        listed = (await http.get(url, headers=dapp.headers)).json()
        assert listed == [
            {"id": alerts, "name": "alerts", "description": "Price alerts",
             "imageUrls": {"sm": "https://a.example/s.png"}},
            {"id": news, "name": "news", "description": "", "imageUrls": {}},
        ]

        refused(await http.delete(f"{url}/{uuid.uuid4()}", headers=dapp.headers), 404, "no notification type")
        refused(await http.delete(f"{url}/{other.types['alerts']}", headers=dapp.headers), 404)  # not this project's
        refused(await http.delete(f"{url}/{news}"), 401)
        assert (await http.delete(f"{url}/{news}", headers=dapp.headers)).status_code == 204
        assert [t["id"] for t in (await http.get(url, headers=dapp.headers)).json()] == [alerts]

        # the explorer's shape, by domain or by project id
        config_url = f"{base}/w3i/v1/notify-config"
        by_domain = await http.get(config_url, params={"appDomain": dapp.domain})
        assert by_domain.status_code == 200, by_domain.text
        data = by_domain.json()["data"]
        assert data["name"] == dapp.domain and data["description"] == "" and data["appDomain"] == dapp.domain
        assert data["notificationTypes"] == [listed[0]]
        assert (await http.get(config_url, params={"projectId": dapp.project_id})).json() == by_domain.json()
        refused(await http.get(config_url, params={"appDomain": "nobody.example"}), 404)
        refused(await http.get(config_url), 404)


async def test_relay_webhook_refuses_what_the_relay_did_not_sign(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        url = stack.notify_url + spec.NOTIFY_WEBHOOK_PATH
        post = stack.http.post
        evt = {"messageId": "0" * 64, "status": "accepted", "topic": "ab" * 32, "message": "AAAA",
               "attestation": None, "publishedAt": int(time.time() * 1000), "tag": spec.NOTIFY_UPDATE.request_tag}

        refused(await post(url, content=b"not json"), 422, "not JSON")
        for body in ([], {}, {"eventAuth": "x"}, {"eventAuth": []}, {"eventAuth": ["a", "b"]}):
            refused(await post(url, json=body), 422, "eventAuth")
        refused(await post(url, json={"eventAuth": [7]}), 422, "JWT string")
        refused(await post(url, json={"eventAuth": ["a.b.c"]}), 422, "Could not verify watch event")
        refused(await post(url, json=stack.watch_event(evt, aud="https://elsewhere.example")), 422,
                "Could not verify watch event", "audience")
        refused(await post(url, json=stack.watch_event(evt, key=Ed25519KeyPair.generate())), 422,
                "Could not verify watch event: not signed by the relay")
        refused(await post(url, json=stack.watch_event(evt, now=int(time.time()) - 7200)), 422,
                "Could not verify watch event", "expired")
        refused(await post(url, json=stack.watch_event(evt | {"status": "weird"})), 422, "status")
        refused(await post(url, json=stack.watch_event(evt | {"tag": "4008"})), 422, "tag")
        refused(await post(url, json=stack.watch_event({k: v for k, v in evt.items() if k != "topic"})), 422, "topic")
        # signed by the relay but about a topic nobody holds: accepted (and dropped), not retried
        assert (await post(url, json=stack.watch_event(evt))).status_code == 204
        assert (await post(url, json=stack.watch_event(evt | {"tag": 4003}))).status_code == 204


async def test_a_relay_back_with_a_new_key_is_believed_at_once(database_url: str, tmp_path: Path) -> None:
    """The relay restarts with a new key and its state (mailbox, watch registrations) on disk: its next watch
    events are signed by the new key. The notify server fetches the relay's key again on the first such event
    and handles it: the wallet's request is answered now, not after the daily re-sync (it waited that long in
    the relay's mailbox). The fetch is not repeated for every unknown signer."""
    relay_config = RelayConfig(port=free_port(), database_url=f"sqlite:///{tmp_path / 'relay.db'}",
                               key_seed=os.urandom(32))
    async with running_stack(database_url, relay_config=relay_config) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])
            old_did = stack.notify.service.relay.relay_did
            await stack.relay.stop()
            restarted = RelayServer(dataclasses.replace(relay_config, key_seed=os.urandom(32)))
            await restarted.start()
            try:
                answer = await wallet.update(dapp, ["alerts", "news"])  # the wallet's client reconnects by itself
                assert sorted(only(answer["sbs"])["scope"]) == sorted([dapp.types["alerts"], dapp.types["news"]])
                link = stack.notify.service.relay
                assert link.relay_did == encode_did_key(restarted.relay.key.public_key) != old_did
                # a stranger's key, a moment later: not fetched again (503: a relay would retry, and be checked then)
                fetched = link._key_fetched_at
                evt = {"messageId": "0" * 64, "status": "accepted", "topic": "ab" * 32, "message": "AAAA",
                       "attestation": None, "publishedAt": int(time.time() * 1000),
                       "tag": spec.NOTIFY_UPDATE.request_tag}
                refused(await stack.http.post(stack.notify_url + spec.NOTIFY_WEBHOOK_PATH,
                                              json=stack.watch_event(evt, key=Ed25519KeyPair.generate())),
                        503, "retry")
                assert link._key_fetched_at == fetched
            finally:
                await restarted.stop()


def test_random_json_bodies_never_get_a_500(database_url: str) -> None:
    """Arbitrary (and truncated) bodies to every route that reads one: a 4xx with an error message, never a
    500 (a sent notification may be 200: the type can be a real one)."""
    with stack_in_thread(database_url) as (stack, _loop), httpx.Client(trust_env=False, timeout=10) as http:
        base = stack.notify_url
        r = http.post(f"{base}/v1/projects", json={"name": "fuzz"}, headers=ADMIN_HEADERS)
        pid, secret = r.json()["projectId"], r.json()["secret"]
        mine = {"authorization": f"Bearer {secret}"}
        assert http.post(f"{base}/{pid}/subscribe-topic", json={"appDomain": "fuzz.example"},
                         headers=mine).status_code == 200
        type_id = http.post(f"{base}/v1/{pid}/notification-types", json={"name": "t"}, headers=mine).json()["id"]
        # every route that takes a body: projects and types, sending, subscribers, settings, webhooks, the relay's
        targets = [
            ("POST", "/v1/projects", ADMIN_HEADERS),
            ("POST", f"/{pid}/subscribe-topic", mine),
            ("POST", f"/v1/{pid}/subscribe-topic", mine),
            ("POST", f"/v1/{pid}/notification-types", mine),
            ("POST", f"/v1/{pid}/mark-all-as-read", mine),
            ("POST", f"/{pid}/notify", mine),
            ("POST", f"/v1/{pid}/notify", mine),
            ("POST", f"/v1/{pid}/notify/broadcast", mine),
            ("POST", f"/v1/{pid}/subscribers", mine),
            ("PATCH", f"/v1/{pid}/project", mine),
            ("POST", f"/v0/{pid}/welcome-notification", mine),
            ("POST", f"/v1/{pid}/webhooks", mine),
            ("POST", spec.NOTIFY_WEBHOOK_PATH, {}),
            ("POST", f"/{pid}/subscribe-topic", {}),
        ]
        fields = st.sampled_from([
            "name", "description", "icons", "appDomain", "imageUrls", "eventAuth", "sm", "notification_id",
            "notification", "accounts", "type", "title", "body", "url", "listed", "enabled", "events",
        ])
        values = JSON | st.just(type_id) | st.lists(st.sampled_from(["eip155:1:0x" + "ab" * 20, "x:y:z"]), max_size=3)
        notification = st.fixed_dictionaries({"type": st.just(type_id) | JSON, "title": JSON, "body": JSON})
        bodies = (
            JSON
            | st.dictionaries(fields, values, max_size=5)
            | st.fixed_dictionaries({"eventAuth": st.lists(JSON_TEXT_OR_JWT, max_size=2)})
            | st.fixed_dictionaries({"notification": notification, "accounts": values})
        )

        @settings(max_examples=120, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(target=st.sampled_from(targets), body=bodies, raw=st.booleans())
        def check(target: tuple[str, str, dict[str, str]], body: Any, raw: bool) -> None:
            method, path, headers = target
            content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
            if raw:  # not always JSON: cut it short
                content = content[: max(1, len(content) // 2)]
            response = http.request(method, base + path, content=content,
                                    headers=headers | {"content-type": "application/json"})
            assert response.status_code < 500, (path, content, response.status_code, response.text)
            if response.status_code >= 400:
                assert isinstance(response.json()["error"], str)

        check()


JSON_TEXT_OR_JWT = st.text(max_size=20) | st.builds(
    lambda a, b, c: f"{a}.{b}.{c}", st.text("abcXYZ-_0", max_size=8), st.text("abcXYZ-_0", max_size=8),
    st.text("abcXYZ-_0", max_size=8),
)
