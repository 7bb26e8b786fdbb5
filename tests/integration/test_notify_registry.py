"""The public app registry, project settings and welcome notification settings over HTTP, on SQLite and
PostgreSQL: only listed apps with a domain appear; a wallet subscribes to an app knowing only its registry
entry; search and paging; every refused change is a 422 naming the field and changes nothing; auth and
isolation between projects; and no body a client sends to these endpoints gets a 500."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wcnotify.notify import directory
from wcnotify.notify.directory import CURSOR_APPS, CURSOR_SUBSCRIBERS, encode_cursor
from wcnotify.notify.store import Database, project_by_public_id
from wcnotify.protocol.did import did_web, parse_did_document
from wcnotify.storage import create_engine

from .notify_stack import ADMIN_HEADERS, Dapp, Stack, Wallet, refused, running_stack, stack_in_thread


async def patch(stack: Stack, dapp: Dapp, body: Any) -> httpx.Response:
    return await stack.http.patch(f"{stack.notify_url}/v1/{dapp.project_id}/project", json=body, headers=dapp.headers)


async def apps(stack: Stack, **params: Any) -> dict[str, Any]:
    r = await stack.http.get(f"{stack.notify_url}/v1/apps", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_listing_an_app_and_subscribing_from_its_registry_entry(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        gm = await stack.create_dapp(f"gm-{uuid.uuid4().hex[:6]}.example.com")
        news = await stack.create_dapp(f"news-{uuid.uuid4().hex[:6]}.example.com", types=("breaking",))
        hidden = await stack.create_dapp()
        project_url = f"{base}/v1/{gm.project_id}/project"
        assert (await http.get(project_url, headers=gm.headers)).json()["listed"] is False
        assert await apps(stack) == {"apps": [], "next_cursor": None}  # nobody listed yet

        # a project with no domain may choose to be listed, but has nothing a wallet could use until it has one
        r = await http.post(f"{base}/v1/projects", json={"name": "Domainless"}, headers=ADMIN_HEADERS)
        domainless = Dapp(r.json()["projectId"], r.json()["secret"], "", b"", b"")
        assert (await patch(stack, domainless, {"listed": True})).json()["listed"] is True

        r = await patch(stack, gm, {"name": "Gm Daily", "description": "A gm every morning",
                                    "icons": ["https://gm.example/i.png"], "listed": True})
        assert r.status_code == 200, r.text
        settings_now = r.json()
        assert settings_now["listed"] is True and settings_now["name"] == "Gm Daily"
        assert settings_now["description"] == "A gm every morning" and settings_now["icons"] == ["https://gm.example/i.png"]
        assert settings_now["appDomain"] == gm.domain and settings_now["subscribeKey"] == gm.subscribe_key.hex()
        assert (await http.get(project_url, headers=gm.headers)).json() == settings_now
        assert (await patch(stack, gm, {})).json() == settings_now  # nothing sent, nothing changed
        assert (await patch(stack, news, {"listed": True})).json()["name"] == news.domain  # only what is sent

        listing = await apps(stack)
        assert [a["appDomain"] for a in listing["apps"]] == [gm.domain, news.domain] and listing["next_cursor"] is None
        entry = listing["apps"][0]
        assert set(entry) == {"projectId", "name", "description", "icons", "appDomain", "didWeb", "didJson",
                              "didJsonUrl", "notificationTypes"}
        assert entry["projectId"] == gm.project_id and entry["name"] == "Gm Daily"
        assert entry["icons"] == ["https://gm.example/i.png"] and entry["didWeb"] == did_web(gm.domain)
        keys = parse_did_document(entry["didJson"], did_web(gm.domain))
        assert keys.key_agreement == gm.subscribe_key and keys.authentication == gm.authentication_key
        assert entry["didJsonUrl"] == f"{base}/v1/{gm.project_id}/did.json"
        assert (await http.get(entry["didJsonUrl"])).json() == entry["didJson"]
        assert {t["name"]: t["id"] for t in entry["notificationTypes"]} == gm.types
        assert [t["name"] for t in listing["apps"][1]["notificationTypes"]] == ["breaking"]

        # one app by its domain (any case), only while listed
        r = await http.get(f"{base}/v1/apps/{gm.domain}")
        assert r.status_code == 200 and r.json() == entry
        assert (await http.get(f"{base}/v1/apps/{gm.domain.upper()}")).json() == entry
        for domain in (hidden.domain, "nobody.example", "not a domain!", "did.json", "project"):
            refused(await http.get(f"{base}/v1/apps/{domain}"), 404, "no listed app")

        # a wallet that knows only the registry entry subscribes, and the dapp sees it
        found = Dapp(entry["projectId"], "", entry["appDomain"], keys.key_agreement, keys.authentication,
                     {t["name"]: t["id"] for t in entry["notificationTypes"]})
        async with Wallet(stack, chain="eip155:10") as wallet:
            await wallet.register(found.domain)
            answer = await wallet.subscribe(found, ["alerts"])
            assert answer["sbs"][0]["appDomain"] == gm.domain
        r = await http.post(f"{base}/v1/{gm.project_id}/subscribers", json={"accounts": [str(wallet.account)]},
                            headers=gm.headers)
        assert r.json() == {str(wallet.account): {"notification_types": [gm.types["alerts"]]}}

        # search: the name or the domain, ignoring case; % and _ are plain characters
        assert [a["appDomain"] for a in (await apps(stack, q="gm DAILY"))["apps"]] == [gm.domain]
        assert [a["appDomain"] for a in (await apps(stack, q=news.domain.upper()))["apps"]] == [news.domain]
        assert [a["appDomain"] for a in (await apps(stack, q="example.com"))["apps"]] == [gm.domain, news.domain]
        assert [a["appDomain"] for a in (await apps(stack, q=""))["apps"]] == [gm.domain, news.domain]
        for nothing in ("%", "_", "gm%daily", "nothing-like-it", hidden.domain, "Domainless"):
            assert (await apps(stack, q=nothing))["apps"] == [], nothing
        refused(await http.get(f"{base}/v1/apps", params={"q": "x" * 101}), 422, "q")
        refused(await http.get(f"{base}/v1/apps", params={"q": "gm\x00"}), 422, "q")

        # unlisting takes an app out at once
        assert (await patch(stack, gm, {"listed": False})).json()["listed"] is False
        assert [a["appDomain"] for a in (await apps(stack))["apps"]] == [news.domain]
        refused(await http.get(f"{base}/v1/apps/{gm.domain}"), 404)


async def test_project_settings_validation_and_auth(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        url = f"{base}/v1/{dapp.project_id}/project"
        before = (await http.get(url, headers=dapp.headers)).json()
        for body, field in [
            ({"name": ""}, "name"), ({"name": "n" * 256}, "name"), ({"name": None}, "name"), ({"name": 7}, "name"),
            ({"description": "d" * 1001}, "description"), ({"description": None}, "description"),
            ({"icons": "https://x.example/i.png"}, "icons"), ({"icons": ["https://x.example/i.png"] * 11}, "icons"),
            ({"icons": ["ok", ""]}, "icons.1"), ({"icons": None}, "icons"),
            ({"listed": "yes"}, "listed"), ({"listed": 1}, "listed"), ({"listed": None}, "listed"),
            ({"name": "fine", "listed": "true"}, "listed"),  # one bad field refuses the whole change
            ({"name": "a\x00b"}, "name"), ({"description": "\x00"}, "description"),  # PostgreSQL cannot store it
            ({"icons": ["https://x.example/\x00"]}, "icons: Value error, may not contain NUL"),
            ([], "body"),
        ]:
            refused(await patch(stack, dapp, body), 422, field)
        assert (await http.get(url, headers=dapp.headers)).json() == before

        body = {"name": "Taken over", "listed": True}
        refused(await http.patch(url, json=body), 401, "project secret")
        refused(await http.patch(url, json=body, headers={"authorization": "Bearer wrong"}), 401, "Invalid")
        refused(await http.patch(url, json=body, headers=other.headers), 401, "Invalid")
        assert (await http.get(url, headers=dapp.headers)).json() == before
        assert (await http.get(f"{base}/v1/{other.project_id}/project", headers=other.headers)).json()["name"] == \
            other.domain


async def test_paging_and_searching_the_registry(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        listed = []
        for i in range(12):
            dapp = await stack.create_dapp(f"app{i:02d}-{uuid.uuid4().hex[:4]}.example.org", types=())
            name = f"{'Even' if i % 2 == 0 else 'Odd'} app {i}"
            assert (await patch(stack, dapp, {"listed": True, "name": name})).status_code == 200
            listed.append(dapp.domain)
        await stack.create_dapp(types=())  # unlisted: never in a page

        async def walk(limit: int, **params: Any) -> list[str]:
            seen: list[str] = []
            cursor = None
            while True:
                page = await apps(stack, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
                seen += [a["appDomain"] for a in page["apps"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    return seen
                assert len(page["apps"]) == limit

        for limit in (1, 5, 11, 12, 100):
            assert await walk(limit) == sorted(listed), limit
        assert await walk(2, q="EVEN") == sorted(listed)[0::2]
        assert len((await apps(stack))["apps"]) == 12  # the default page holds them all

        for bad in (0, 101, "many"):
            refused(await http.get(f"{base}/v1/apps", params={"limit": bad}), 422, "limit")
        for bad in ("nope!", encode_cursor(CURSOR_SUBSCRIBERS, "eip155:0xab"), "A" * 600,
                    encode_cursor(CURSOR_APPS, "a\x00")):
            refused(await http.get(f"{base}/v1/apps", params={"cursor": bad}), 422, "cursor")


async def test_welcome_notification_settings(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        http, base = stack.http, stack.notify_url
        dapp, other = await stack.create_dapp(), await stack.create_dapp()
        url = f"{base}/v0/{dapp.project_id}/welcome-notification"

        r = await http.get(url, headers=dapp.headers)
        assert r.status_code == 200 and r.json() is None  # never set

        welcome = {"enabled": True, "type": dapp.types["news"], "title": "Welcome!", "body": "Thanks for subscribing",
                   "url": "https://gm.example/start"}
        r = await http.post(url, json=welcome, headers=dapp.headers)
        assert r.status_code == 204 and r.content == b""
        assert (await http.get(url, headers=dapp.headers)).json() == welcome

        # the limits are inclusive; url may be null or left out; the type's UUID in any case is stored canonical
        edge = {"enabled": False, "type": dapp.types["alerts"].upper(), "title": "t" * 64, "body": "b" * 255,
                "url": "u" * 255}
        assert (await http.post(url, json=edge, headers=dapp.headers)).status_code == 204
        assert (await http.get(url, headers=dapp.headers)).json() == edge | {"type": dapp.types["alerts"]}
        assert (await http.post(url, json=welcome | {"url": None}, headers=dapp.headers)).status_code == 204
        assert (await http.get(url, headers=dapp.headers)).json()["url"] is None
        bare = {k: v for k, v in welcome.items() if k != "url"}
        assert (await http.post(url, json=bare, headers=dapp.headers)).status_code == 204
        assert (await http.get(url, headers=dapp.headers)).json() == bare | {"url": None}

        # what the subscribe handler reads
        engine = create_engine(database_url)
        try:
            db = Database(engine)
            async with db.read() as conn:
                project = await project_by_public_id(conn, dapp.project_id)
                assert project is not None
                assert await directory.get_welcome(conn, project) == bare | {"url": None}
                other_project = await project_by_public_id(conn, other.project_id)
                assert other_project is not None and await directory.get_welcome(conn, other_project) is None
        finally:
            await engine.dispose()

        # every refusal: 422 naming the field, and the stored settings are untouched
        stored = bare | {"url": None}
        for body, field in [
            ({k: v for k, v in welcome.items() if k != "enabled"}, "enabled"),
            (welcome | {"enabled": "yes"}, "enabled"), (welcome | {"enabled": None}, "enabled"),
            ({k: v for k, v in welcome.items() if k != "type"}, "type"),
            (welcome | {"type": "news"}, "type"), (welcome | {"type": 7}, "type"),
            (welcome | {"type": str(uuid.uuid4())}, "type"),  # a UUID, but no type of this project
            (welcome | {"type": other.types["news"]}, "type"),  # another project's type
            (welcome | {"title": ""}, "title"), (welcome | {"title": "t" * 65}, "title"),
            ({k: v for k, v in welcome.items() if k != "title"}, "title"), (welcome | {"title": None}, "title"),
            (welcome | {"body": ""}, "body"), (welcome | {"body": "b" * 256}, "body"), (welcome | {"body": 5}, "body"),
            (welcome | {"url": ""}, "url"), (welcome | {"url": "u" * 256}, "url"), (welcome | {"url": 5}, "url"),
            (welcome | {"title": "hi\x00"}, "title"), (welcome | {"body": "\x00"}, "body"),
            (welcome | {"url": "https://x.example/\x00"}, "url"),
            ("welcome", "body"),
        ]:
            refused(await http.post(url, json=body, headers=dapp.headers), 422, field)
            assert (await http.get(url, headers=dapp.headers)).json() == stored, body
        refused(await http.post(url, json=welcome | {"type": str(uuid.uuid4())}, headers=dapp.headers), 422,
                "not a notification type of this project")

        # auth, and each project's settings are its own
        for method in ("GET", "POST"):
            kwargs: dict[str, Any] = {"json": welcome} if method == "POST" else {}
            refused(await http.request(method, url, **kwargs), 401, "project secret")
            refused(await http.request(method, url, headers={"authorization": "Bearer x"}, **kwargs), 401, "Invalid")
            refused(await http.request(method, url, headers=other.headers, **kwargs), 401, "Invalid")
        other_url = f"{base}/v0/{other.project_id}/welcome-notification"
        assert (await http.get(other_url, headers=other.headers)).json() is None
        refused(await http.post(other_url, json=welcome, headers=other.headers), 422, "type")  # dapp's type, not its
        assert (await http.get(url, headers=dapp.headers)).json() == stored


def test_random_queries_never_get_a_500(database_url: str) -> None:
    with stack_in_thread(database_url) as (stack, _loop), httpx.Client(trust_env=False, timeout=10) as http:
        base = stack.notify_url
        r = http.post(f"{base}/v1/projects", json={"name": "fuzz"}, headers=ADMIN_HEADERS)
        pid, secret = r.json()["projectId"], r.json()["secret"]
        mine = {"authorization": f"Bearer {secret}"}
        assert http.post(f"{base}/{pid}/subscribe-topic", json={"appDomain": "fuzz.example"},
                         headers=mine).status_code == 200
        # bodies to these routes: test_notify_api.py::test_random_json_bodies_never_get_a_500

        @settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(q=st.text(max_size=30), cursor=st.text(max_size=30), limit=st.text(max_size=5),
               domain=st.text(min_size=1, max_size=30))
        def check_queries(q: str, cursor: str, limit: str, domain: str) -> None:
            for response in (
                http.get(f"{base}/v1/apps", params={"q": q, "cursor": cursor, "limit": limit}),
                http.get(f"{base}/v1/{pid}/subscribers", params={"cursor": cursor, "limit": limit}, headers=mine),
                http.get(f"{base}/v1/apps/{quote(domain, safe='')}"),
            ):
                assert response.status_code < 500, (q, cursor, limit, domain, response.status_code, response.text)

        check_queries()
