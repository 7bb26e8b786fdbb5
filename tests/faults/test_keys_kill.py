"""kill -9 of the keys server (a ``wcnotify keys`` process) in the middle of a 2,000-notification send.

Sending needs no keys server: the send finishes, every wallet shown the notification once. Registering an
identity during the outage fails at once with an error that names the unreachable keys server. A subscribe
sent during the outage is not refused (the identity cannot be checked: not the wallet's fault), the notify
server answers the relay's webhook 500 and the relay retries it; once the keys server is back the subscribe
succeeds without the wallet doing anything, and the new subscriber gets what is sent to it.
"""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import pytest

from tests.integration.notify_stack import Wallet
from tests.integration.test_notify_delivery import Fleet, add_subscribers, broadcast
from wcnotify.keys.client import KeysClientError
from wcnotify.notify.delivery import DeliveryConfig
from wcnotify.relay.server import RelayConfig, RelayServer

from .harness import keys_process, notify_server, redeliveries, shown_once, until

COUNT = 2000


async def test_kill9_of_the_keys_server_mid_send(sqlite_url: str, tmp_path: Path) -> None:
    keys = keys_process(f"sqlite:///{tmp_path / 'keys.db'}", tmp_path)
    await keys.start()
    try:
        async with (
            RelayServer(RelayConfig(port=0, watch_retry_base=0.1)) as relay,
            notify_server(sqlite_url, relay.http_url, keys_url=keys.url,
                          delivery=DeliveryConfig(batch=50, workers=1)) as stack,
        ):
            stack.relay, stack.keys = relay, types.SimpleNamespace(url=keys.url)
            dapp = await stack.create_dapp()
            fleet = Fleet(await add_subscribers(sqlite_url, dapp, "alerts", COUNT))
            client = await fleet.listen(relay.ws_url)
            async with Wallet(stack) as early, Wallet(stack) as late:
                await early.register(dapp.domain)  # before the outage; its first lookup comes during it
                try:
                    assert await broadcast(stack.http, stack.notify_url, dapp, "alerts", "keys-down") == COUNT
                    await until(lambda: len(fleet.received) >= 100, 30, "first deliveries")
                    keys.kill9()
                    assert len(fleet.received) < COUNT, "the send finished before the kill: nothing was tested"

                    with pytest.raises(KeysClientError) as refused:
                        await late.register(dapp.domain)
                    assert refused.value.status is None and "keys server (unreachable)" in str(refused.value)

                    pending = asyncio.create_task(early.subscribe(dapp, ["alerts"]))
                    await fleet.all_received(timeout=60)  # sending never needed the keys server
                    status = await stack.delivered(dapp, "keys-down", COUNT, timeout=30)
                    assert (status["published"], status["failed"]) == (COUNT, 0)
                    shown_once(fleet)
                    assert not pending.done(), "a subscribe was answered while its identity could not be checked"

                    await keys.start()  # same port, same database
                    answer = await asyncio.wait_for(pending, 20)
                    assert dapp.domain in {entry["appDomain"] for entry in answer["sbs"]}
                    sent = await stack.send(dapp, [str(early.account)], "alerts", title="after the outage")
                    assert not sent.get("not_found") and not sent.get("failed"), sent
                    assert (await early.next_notification(dapp))["msg"]["title"] == "after the outage"
                    await late.register(dapp.domain)  # and registering works again
                    print(f"\nkeys server kill: all {COUNT} delivered during the outage "
                          f"({redeliveries(fleet)} redeliveries); the held subscribe succeeded after the restart")
                finally:
                    await client.close()
    finally:
        keys.stop()
