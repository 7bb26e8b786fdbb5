"""The notify server does not connect into its own network for a dapp (notify/netguard.py), over real sockets,
on SQLite and PostgreSQL.

With ``allow_private_urls`` off (the default of ``wcnotify server``): a webhook to a loopback, link-local or
``localhost`` URL is refused with 422 and nothing is stored; a webhook to a name that resolves to 127.0.0.1
(DNS faked through the service's ``net_guard.resolver``: nothing here leaves the machine), with a real
receiver listening there, gets no request and its delivery state shows the refusal; the console's did.json
check of such a domain answers "unreachable" without connecting. With the option on (``wcnotify up``, the
test stacks), the same local receivers and site are reached.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from .notify_stack import Stack, Wallet, refused, running_stack
from .test_notify_webhooks import FAST, add_webhook, list_hooks, receivers


def fake_dns(stack: Stack, table: dict[str, list[str]]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    stack.notify.service.net_guard.resolver = resolve


async def console_did_status(stack: Stack, project_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await stack.http.get(f"{stack.notify_url}/v1/{project_id}/console/did-status", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_private_webhook_urls_are_refused_when_registered(database_url: str) -> None:
    async with running_stack(database_url, allow_private_urls=False) as stack:
        dapp = await stack.create_dapp()
        base = f"{stack.notify_url}/v1/{dapp.project_id}/webhooks"
        port = 6379
        for url, words in [
            (f"http://127.0.0.1:{port}/", "127.0.0.1 is not a public address (loopback)"),
            (f"http://[::1]:{port}/hook", "::1 is not a public address (loopback)"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a public address (link-local)"),
            (f"http://localhost:{port}/", "localhost is this server itself"),
            (f"https://api.localhost:{port}/", "api.localhost is this server itself"),
            ("http://10.0.0.8/", "private"),
            ("http://100.64.0.1/", "carrier-grade NAT"),
            ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1"),
            ("http://2130706433/", "loopback"),  # 127.0.0.1 spelled as one number
            ("http://0.0.0.0:8082/", "unspecified"),
        ]:
            r = await stack.http.post(base, json={"url": url}, headers=dapp.headers)
            refused(r, 422, words, "--allow-private-urls", "WCNOTIFY_ALLOW_PRIVATE_URLS")
        assert await list_hooks(stack, dapp) == []  # nothing stored
        # a public address, and any name (checked again at each delivery), are registered
        await add_webhook(stack, dapp, "https://8.8.8.8/hooks")
        await add_webhook(stack, dapp, "https://hooks.example.com/notify")
        assert len(await list_hooks(stack, dapp)) == 2


async def test_a_name_resolving_inside_gets_no_request(database_url: str) -> None:
    async with (running_stack(database_url, allow_private_urls=False, **FAST) as stack,
                receivers(1) as (receiver,)):
        fake_dns(stack, {"hooks.test": ["127.0.0.1"], "mixed.test": ["8.8.8.8", "127.0.0.1"]})
        dapp = await stack.create_dapp()
        inside = await add_webhook(stack, dapp, f"http://hooks.test:{receiver.port}/hooks/notify?token=abc")
        mixed = await add_webhook(stack, dapp, f"http://mixed.test:{receiver.port}/hooks/notify")
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])  # a "subscribed" event for both webhooks

        deadline = time.monotonic() + 10
        while True:
            hooks = {h["id"]: h for h in await list_hooks(stack, dapp)}
            if all(h["consecutive_failures"] >= 2 for h in hooks.values()):  # retried, refused again
                break
            assert time.monotonic() < deadline, hooks
            await asyncio.sleep(0.05)
        for hook, address in ((inside, "127.0.0.1"), (mixed, "127.0.0.1")):
            state = hooks[hook["id"]]
            assert state["delivered"] == 0 and state["pending"] == 1 and state["failed"] >= 2
            error = state["last_error"]
            assert error.startswith("refused, no connection made: ") and f"resolves to {address}" in error, error
            assert "--allow-private-urls" in error
        assert receiver.hits == []  # listening all along, never reached

        # the console's outbox shows the same; the did.json check of a domain resolving inside connects nowhere
        r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/console/webhook-outbox",
                                 headers=dapp.headers)
        assert {w["last_error"] for w in r.json()["webhooks"]} == {hooks[inside["id"]]["last_error"],
                                                                  hooks[mixed["id"]]["last_error"]}
        fake_dns(stack, {"app.test": ["10.1.2.3"]})
        for domain, words in ((f"localhost:{receiver.port}", "localhost is this server itself"),
                              (f"app.test:{receiver.port}", "app.test resolves to 10.1.2.3, not a public address")):
            site = await stack.create_dapp(domain=domain)
            result = await console_did_status(stack, site.project_id, site.headers)
            assert result["state"] == "unreachable" and not result["ok"], result
            assert words in result["detail"] and "--allow-private-urls" in result["detail"], result
            assert result["url"] is not None and result["url"].endswith(f"{domain}/.well-known/did.json")
        assert receiver.hits == []


async def test_with_private_urls_allowed_local_receivers_are_reached(database_url: str) -> None:
    async with running_stack(database_url, allow_private_urls=True, **FAST) as stack, receivers(1) as (receiver,):
        dapp = await stack.create_dapp()
        await add_webhook(stack, dapp, receiver.url)  # http://127.0.0.1:PORT/…
        await add_webhook(stack, dapp, f"http://localhost:{receiver.port}/hooks/notify")
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])
        hits = await receiver.wait(2)
        assert {h.json["event"] for h in hits} == {"subscribed"}
        # the did.json check fetches from localhost too (the receiver answers "ok": not a did.json)
        site = await stack.create_dapp(domain=f"localhost:{receiver.port}")
        result = await console_did_status(stack, site.project_id, site.headers)
        assert result["state"] == "invalid" and result["httpStatus"] == 200, result
        assert len(receiver.hits) == 3


async def test_delivery_connects_to_the_address_it_checked_not_a_second_lookup(database_url: str) -> None:
    """DNS rebinding: a name that passes the check and then resolves elsewhere. The check's own answer is
    the only one used: ``hooks.invalid`` (a name no DNS ever resolves, RFC 2606) reaches the receiver only
    because the request connects to the checked address, with the original name as its Host header. (The
    guard here counts loopback as public, so that the address it approves can be a local receiver.)"""
    async with (running_stack(database_url, allow_private_urls=False, **FAST) as stack,
                receivers(1) as (receiver,)):
        fake_dns(stack, {"hooks.invalid": ["127.0.0.1"]})
        stack.notify.service.net_guard.is_public = lambda _address: True
        dapp = await stack.create_dapp()
        await add_webhook(stack, dapp, f"http://hooks.invalid:{receiver.port}/hooks/notify")
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, ["alerts"])
        (hit,) = await receiver.wait(1)
        assert hit.json["event"] == "subscribed"
        assert hit.headers["host"] == f"hooks.invalid:{receiver.port}"
