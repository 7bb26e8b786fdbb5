"""The web console end to end in headless Chromium: a real stack (relay, keys and notify servers on SQLite), a
dapp whose site serves its did.json on a localhost port, N protocol-level test wallets subscribed to it, and a
browser that logs in, sends a notification from the form and watches its delivery count reach N; the wallets
then hold the notification. The browser is Debian's Chromium driven by playwright-core (``js/console_flow.mjs``).

Set ``WCNOTIFY_BROWSER_ARTIFACTS=<dir>`` to keep the screenshot (it is taken on failure too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from tests.integration.notify_stack import ADMIN, Wallet, running_stack
from wcnotify.dapp import DidHost
from wcnotify.serving import AsgiService

from .conftest import BrowserTools, node_env

WALLETS = 3
FLOW_TIMEOUT = 120  # seconds for the whole browser run; each step inside waits at most 20 s


async def run_flow(tools: BrowserTools, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``console_flow.mjs`` with ``request`` on stdin (on this event loop's terms: the stack keeps serving
    while the browser works); its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        tools.node, str(tools.js_dir / "console_flow.mjs"), cwd=tools.js_dir, env=node_env(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), FLOW_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the browser run took longer than {FLOW_TIMEOUT} s") from None
    lines = [line for line in stdout.decode().splitlines() if line.strip()]
    assert lines, f"console_flow.mjs printed nothing (exit {proc.returncode}):\n{stderr.decode()[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result.get("ok"), (
        f"the browser run failed: {result.get('error')}\nscreenshot: {request['screenshot']}\n"
        f"requests: {result.get('requests')}\nconsole: {result.get('consoleMessages')}\n"
        f"page errors: {result.get('pageErrors')}\nstderr: {stderr.decode()[-2000:]}"
    )
    return result


async def test_a_notification_sent_from_the_console_reaches_every_subscriber(
    browser_tools: BrowserTools, tmp_path: Path
) -> None:
    artifacts = Path(os.environ.get("WCNOTIFY_BROWSER_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "console.png"
    async with running_stack(f"sqlite:///{tmp_path / 'notify.db'}") as stack, contextlib.AsyncExitStack() as stop:
        site = AsgiService(None, "127.0.0.1", 0, name="dapp site")
        dapp = await stack.create_dapp(domain=f"localhost:{site.port}")
        r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/did.json")
        site.app = DidHost(r.json())
        await stop.enter_async_context(site)
        wallets = [await stop.enter_async_context(Wallet(stack)) for _ in range(WALLETS)]
        for wallet in wallets:
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp)

        result = await run_flow(browser_tools, {
            "baseUrl": stack.notify_url, "adminToken": ADMIN, "projectId": dapp.project_id, "secret": dapp.secret,
            "typeName": "alerts", "title": "From the console", "body": f"to {WALLETS} wallets",
            "url": "https://app.example.com/news", "accounts": [str(w.account) for w in wallets],
            "expected": WALLETS, "chromium": browser_tools.chromium, "screenshot": str(screenshot),
        })

        assert result["counts"] == {"total": WALLETS, "queued": 0, "published": WALLETS, "failed": 0, "withdrawn": 0}
        assert f"Queued for {WALLETS} account(s)" in result["sendResult"]
        assert result["didState"] == "ok"  # the console checked the site's did.json
        assert result["projectRows"] == 1 and result["projectName"] == dapp.domain
        assert result["wrongTokenError"] == "That is not the admin token."
        assert f"{WALLETS} subscriber(s) now" in result["chartCaption"] and result["chartBars"] >= 1
        # the credentials stayed in sessionStorage and in headers: never in a URL or the page's console
        assert result["storage"] == ["wcnotify.console"] and result["storageAfterLogout"] == []
        assert result["whoAfterReload"] == f"logged in: administrator, project {dapp.project_id}"
        assert result["projectLoginWho"] == f"logged in: project {dapp.project_id}"
        assert result["projectLoginCanListProjects"] is False
        assert result["secretInUrl"] == [] and result["secretInConsole"] == []
        assert result["foreignRequests"] == [] and result["pageErrors"] == []
        assert screenshot.stat().st_size > 10_000

        # what the table counted as published is in every wallet
        status = await stack.status(dapp, result["notificationId"])
        assert status["published"] == WALLETS
        for wallet in wallets:
            claims = await wallet.next_notification(dapp)
            assert claims["msg"]["title"] == "From the console" and claims["msg"]["url"] == "https://app.example.com/news"

