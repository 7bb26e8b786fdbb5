"""The notify server's wallet side end to end: real relay, real keys server, real notify server,
on SQLite and PostgreSQL (reference-server.md §5 scenarios for these handlers)."""

from __future__ import annotations

import asyncio
import dataclasses

from eth_account import Account as EthAccount

from wcnotify import spec
from wcnotify.notify.server import NotifyServer
from wcnotify.protocol.crypto import derive_sym_key, topic_of
from wcnotify.protocol.did import did_web

from .notify_stack import Wallet, running_stack


async def test_subscribe_then_update_then_delete(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            answer = await wallet.subscribe(dapp, ["alerts"])
            assert answer["act"] == "notify_subscription_response"
            assert answer["iss"] == dapp.auth_did and answer["aud"] == wallet.did
            assert answer["app"] == did_web(dapp.domain)
            (entry,) = answer["sbs"]
            assert entry["appDomain"] == dapp.domain and entry["scope"] == [dapp.types["alerts"]]
            assert entry["account"] == str(wallet.account)
            # the seed protocol: P = HKDF(X25519(Y, Z)) derived by the wallet equals sbs.symKey
            z = bytes.fromhex(answer["publicKey"])
            assert derive_sym_key(wallet.last_sender.private_key, z).hex() == entry["symKey"]

            updated = await wallet.update(dapp, ["alerts", "news"])
            assert updated["act"] == "notify_update_response"
            assert updated["sbs"][0]["scope"] == sorted(dapp.types.values())

            deleted = await wallet.delete(dapp)
            assert deleted["act"] == "notify_delete_response" and deleted["sbs"] == []


async def test_requests_sent_while_the_server_was_down_are_handled_when_it_returns(database_url: str) -> None:
    """The relay's mailbox keeps a wallet's subscribe for the server; a restarted server fetches it."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        config = stack.notify.config
        await stack.notify.stop()
        async with Wallet(stack) as wallet:
            await wallet.register(dapp.domain)
            pending = asyncio.create_task(wallet.subscribe(dapp, ["news"]))
            await asyncio.sleep(0.5)
            assert not pending.done()
            async with NotifyServer(dataclasses.replace(config, port=0)) as again:
                await again.wait_relay()
                answer = await asyncio.wait_for(pending, 15)
        assert answer["sbs"][0]["scope"] == [dapp.types["news"]]
        assert topic_of(bytes.fromhex(answer["sbs"][0]["symKey"]))


async def test_first_subscribes_of_one_account_from_two_devices_at_once(database_url: str) -> None:
    """Two first subscribes of one account to one app, delivered by the relay at the same moment (its watch
    worker posts a batch concurrently, and replicas behind a balancer take them in parallel). Both saw no
    subscriber; on PostgreSQL the second insert hit the (project, address) key and the webhook answered 500
    until the relay's retry. Now both are answered at once with the one subscription."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        for _ in range(5):
            eth = EthAccount.create()
            async with Wallet(stack, eth=eth) as w1, Wallet(stack, eth=eth) as w2:
                await asyncio.gather(w1.register(dapp.domain), w2.register(dapp.domain))
                scope = " ".join(dapp.types.values())
                prepared = [
                    await w.prepare(spec.NOTIFY_SUBSCRIBE, w.claims(act=spec.Act.NOTIFY_SUBSCRIPTION,
                                                                    aud=dapp.auth_did, app=did_web(dapp.domain),
                                                                    scp=scope), receiver=dapp.subscribe_key)
                    for w in (w1, w2)
                ]
                topic = topic_of(dapp.subscribe_key)
                posted = await asyncio.gather(*(stack.redeliver(topic, message, spec.NOTIFY_SUBSCRIBE.request_tag)
                                                 for _request, message, _key, _reply in prepared))
                assert [r.status_code for r in posted] == [204, 204], [r.text[:200] for r in posted]
                answers = [await w.answer(spec.NOTIFY_SUBSCRIBE, request, key, reply)
                           for w, (request, _message, key, reply) in zip((w1, w2), prepared, strict=True)]
                keys = [{e["symKey"] for e in a["sbs"] if e["appDomain"] == dapp.domain} for a in answers]
                assert len(keys[0]) == 1 and keys[0] == keys[1]  # one subscription, seen by both devices
