"""Slow and dead consumers slow nobody else.

* A wallet connection subscribed to all 2,000 topics that never reads its socket (so never acks; its TCP
  buffers fill and stay full): the other wallets get a 2,000-notification send about as fast as without it.
* A dapp webhook that hangs: the subscribe that fires it is answered, the new subscriber gets what is sent to
  it, and a broadcast drains, all while the webhook's request is still hanging.
"""

from __future__ import annotations

import time

import orjson
from websockets.asyncio.client import connect

from tests.integration.notify_stack import Wallet, running_stack
from tests.integration.test_notify_delivery import Fleet, add_subscribers, broadcast
from tests.integration.test_notify_webhooks import Receiver, add_webhook
from wcnotify.relay.client import relay_auth_jwt
from wcnotify.relay.testing import Ed25519KeyPair

from .harness import shown_once

COUNT = 2000


async def test_a_wallet_that_never_reads_or_acks_does_not_slow_the_others(sqlite_url: str) -> None:
    async with running_stack(sqlite_url) as stack:
        dapp = await stack.create_dapp()
        keys = await add_subscribers(sqlite_url, dapp, "alerts", COUNT)
        fleet = Fleet(keys)
        client = await fleet.listen(stack.relay.ws_url)
        try:
            t0 = time.monotonic()
            assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "yardstick") == COUNT
            await fleet.all_received()
            alone = time.monotonic() - t0
            fleet.received.clear()

            # the dead wallet: subscribes to every topic, then never reads again (max_queue=1: the client
            # library stops reading the socket after one frame), so it never acknowledges anything
            url = stack.relay.ws_url
            token = relay_auth_jwt(Ed25519KeyPair.generate(), url, int(time.time()))
            async with connect(f"{url}/?auth={token}", proxy=None, compression=None, max_queue=1,
                               close_timeout=1) as dead:
                topics = list(keys)
                for n, start in enumerate(range(0, COUNT, 500)):
                    await dead.send(orjson.dumps({"id": n + 1, "jsonrpc": "2.0", "method": "irn_batchSubscribe",
                                                  "params": {"topics": topics[start : start + 500]}}).decode())
                    while (answer := orjson.loads(await dead.recv())).get("id") != n + 1:
                        pass  # the mailbox's backlog (the yardstick send) comes first: read past it, unacked
                    assert "result" in answer, answer
                t0 = time.monotonic()
                assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "past-the-dead") == COUNT
                await fleet.all_received(timeout=60)
                beside_dead = time.monotonic() - t0
                shown_once(fleet)
                print(f"\ndead consumer: {COUNT} to live wallets in {beside_dead:.2f} s beside a wallet that never "
                      f"reads, {alone:.2f} s without it")
                assert beside_dead <= max(3 * alone, 3.0)
        finally:
            await client.close()


async def test_a_hanging_dapp_webhook_blocks_no_delivery(sqlite_url: str) -> None:
    hook = Receiver()
    hook.hang = True
    await hook.start()
    try:
        async with running_stack(sqlite_url, webhook_retry_base=0.05) as stack:
            dapp = await stack.create_dapp()
            await add_webhook(stack, dapp, hook.url)
            fleet = Fleet(await add_subscribers(sqlite_url, dapp, "alerts", 500))
            client = await fleet.listen(stack.relay.ws_url)
            try:
                async with Wallet(stack) as wallet:
                    await wallet.register(dapp.domain)
                    t0 = time.monotonic()
                    await wallet.subscribe(dapp, ["alerts"])  # makes a webhook event: the receiver hangs on it
                    answered = time.monotonic() - t0
                    await hook.wait_hits(1)
                    sent = await stack.send(dapp, [str(wallet.account)], "alerts", title="despite the hook")
                    assert not sent.get("not_found") and not sent.get("failed"), sent
                    assert (await wallet.next_notification(dapp, timeout=5))["msg"]["title"] == "despite the hook"
                    assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "hooked") == 501
                    await fleet.all_received(timeout=10)
                    shown_once(fleet)
                    assert hook.accepted == [] and not hook.released.is_set()  # still hanging all along
                    print(f"\nhanging webhook: subscribe answered in {answered:.2f} s; notifications and a "
                          f"broadcast of 501 delivered while the webhook hung")
            finally:
                await client.close()
    finally:
        await hook.stop()
