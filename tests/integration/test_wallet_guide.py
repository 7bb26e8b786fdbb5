"""docs/wallet-sdk.md's example, run as written against a live stack (SQLite and PostgreSQL). The dapp serves its
did.json on a ``localhost`` port with the dapp SDK's DidHost, so the wallet uses its default HTTP resolver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount

from wcnotify.dapp import DidHost, Notification, NotifyAdminClient
from wcnotify.serving import AsgiService

from .notify_stack import ADMIN, running_stack

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "wallet-sdk.md"


def guide_code() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "wallet_sdk_guide"}
    exec(compile(blocks[0], str(GUIDE), "exec"), namespace)
    return namespace


async def test_the_guides_inbox_runs_as_written(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = guide_code()["inbox"]
    eth = EthAccount.create()
    account = f"eip155:1:{eth.address}"
    async with running_stack(database_url) as stack:
        site = AsgiService(None, "127.0.0.1", 0, name="dapp site")
        domain = f"localhost:{site.port}"
        async with NotifyAdminClient(stack.notify_url, ADMIN) as admin:
            credentials = await admin.create_project("Guide dapp")
            client = admin.dapp_client(credentials)
            await client.set_app_domain(domain)
            news = await client.add_notification_type("news", "What is new")
            site.app = DidHost(client=client)

            async def first_notification() -> None:
                result = await client.send(Notification(news.id, "Hello from the guide", "it works"), [account])
                assert result.sent == (account,) or list(result.sent) == [account]

            servers = {"relay_url": stack.relay.ws_url, "keys_server_url": stack.keys.url,
                       "notify_server_url": stack.notify_url}
            async with site:
                inboxed = await inbox(tmp_path / "wallet.db", servers, account, eth.key, domain, first_notification)
    assert [n.title for n in inboxed] == ["Hello from the guide"] and inboxed[0].is_read
    out = capsys.readouterr().out
    assert f"{domain}: Hello from the guide" in out and "* Hello from the guide" in out
