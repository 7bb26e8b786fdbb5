"""``wcnotify up`` and ``wcnotify demo`` through the installed command, as a newcomer runs them.

``up`` runs as a subprocess on a temporary data dir: the ready line gives the URLs (port 0 -> the real ports),
a project is created with the printed admin token through ``wcnotify project create``, the README's curl
calls are made with httpx, a wallet (the SDK, in this process) subscribes and goes offline while a
notification is delivered to it; SIGINT stops the process with exit 0 and no traceback. The second ``up`` on
the same directory (same ports, text output) still has the admin token, the project, the server's keys (its
did.json), the relay's key, the subscription, and the notification waiting in the relay's mailbox, which the
wallet gets when it comes back.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from eth_account import Account as EthAccount

from wcnotify.dapp import DidHost, NotifyDappClient
from wcnotify.notify.server import NotifyServer
from wcnotify.serving import AsgiService
from wcnotify.up import EmbeddedStack, UpOptions, serve
from wcnotify.wallet import NotifyClient

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"
README = Path(__file__).resolve().parents[2] / "README.md"


class Up:
    """A ``wcnotify up`` process: a thread collects stdout lines (so a wait has a deadline), stderr goes to a file."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.stderr_path = tmp / f"up-stderr-{time.monotonic_ns()}.txt"
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([WCNOTIFY, "up", *args], stdout=subprocess.PIPE, stderr=err, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_until(self, predicate: Any, timeout: float = 30) -> str:
        """Lines until one satisfies ``predicate`` (that line), failing with everything seen on a timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no expected line (exit {self.proc.poll()}): {''.join(self.seen)}{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig``; (exit status, the rest of stdout)."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.reader.join(5)
        rest = []
        while (line := self.lines.get(timeout=1)) is not None:
            rest.append(line)
        return code, "".join(rest)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WCNOTIFY, *args], capture_output=True, text=True, timeout=timeout, check=False)


async def acli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, *args)


async def test_up_serves_keeps_everything_across_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    site = AsgiService(None, "127.0.0.1", 0, name="dapp site")  # the dapp's site: its did.json, on loopback
    domain = f"localhost:{site.port}"
    eth = EthAccount.create()
    account = f"eip155:1:{eth.address}"
    first = Up(tmp_path, "--data-dir", str(data), "--relay-port", "0", "--keys-port", "0", "--notify-port", "0",
               "--json")
    try:
        ready = json.loads(await asyncio.to_thread(first.read_until, lambda line: '"ready"' in line))
        token = ready["adminToken"]
        assert token == (data / "admin-token").read_text().strip()
        assert (data / "admin-token").stat().st_mode & 0o077 == 0 and (data / "notify.seed").exists()
        urls = {name: ready[name] for name in ("relay", "relayHttp", "keys", "notify")}
        ports = {name: url.rsplit(":", 1)[1] for name, url in urls.items()}
        assert "0" not in ports.values() and urls["relay"].startswith("ws://127.0.0.1:")
        notify = urls["notify"]

        # the next steps as printed: a project with the admin token (the CLI), a type and a broadcast (curl)
        done = await acli("project", "create", "--name", "Gm", "--app-domain", domain, "--server", notify,
                          "--admin-token", token, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        project = json.loads(done.stdout)
        pid, auth = project["projectId"], {"authorization": f"Bearer {project['secret']}"}
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            r = await http.post(f"{notify}/v1/{pid}/notification-types", json={"name": "gm"}, headers=auth)
            assert r.status_code == 201, r.text
            type_id = r.json()["id"]
            r = await http.post(f"{notify}/v1/{pid}/notify/broadcast", headers=auth, json={
                "notification": {"type": type_id, "title": "gm", "body": "Your first notification"}})
            assert r.status_code == 200, r.text

            # one process per data dir
            second = await acli("up", "--data-dir", str(data), "--relay-port", "0", "--keys-port", "0",
                                "--notify-port", "0")
            assert second.returncode == 1 and "in use by another `wcnotify up`" in second.stderr, second.stderr

            # a wallet subscribes, goes offline, and a notification for it is published meanwhile
            servers = {"relay_url": urls["relay"], "keys_server_url": urls["keys"], "notify_server_url": notify}
            async with NotifyDappClient(notify, pid, project["secret"]) as dapp:
                site.app = DidHost(client=dapp)
                async with site, NotifyClient(tmp_path / "w1.db", **servers) as wallet:
                    await wallet.register_with_key(account, eth.key, "wallet.example")
                    await wallet.subscribe(account, domain)
            r = await http.post(f"{notify}/v1/{pid}/notify", headers=auth, json=[{
                "notification_id": "while-away", "accounts": [account],
                "notification": {"type": type_id, "title": "while you were away", "body": "kept"}}])
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 10
            while (status := (await http.get(f"{notify}/v1/{pid}/notifications/while-away", headers=auth)).json())[
                    "published"] < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert status["published"] == 1, status
            did_json = (await http.get(f"{notify}/.well-known/did.json")).json()
            relay_key = (await http.get(f"{urls['relayHttp']}/public-key")).text

        code, rest = await asyncio.to_thread(first.stop, signal.SIGINT)
        assert code == 0, rest + first.stderr()
        assert json.loads(rest.strip().splitlines()[-1])["event"] == "stopped"
        assert "Traceback" not in first.stderr(), first.stderr()
    finally:
        first.kill()

    # the same directory again, on the same ports, with the text a person reads
    again = Up(tmp_path, "--data-dir", str(data), "--relay-port", ports["relay"], "--keys-port", ports["keys"],
               "--notify-port", ports["notify"])
    try:
        await asyncio.to_thread(again.read_until, lambda line: line.startswith("Ready in"))
        text = "".join(again.seen)
        assert f"admin token    {token}" in text and f"notify server  {notify}" in text, text
        assert f"export WCNOTIFY_SERVER_URL={notify} WCNOTIFY_ADMIN_TOKEN={token}" in text
        assert "--relay-url" in text  # the demo line names the relay and keys server on non-default ports

        listed = await acli("project", "list", "--server", notify, "--admin-token", token, "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert [p["projectId"] for p in json.loads(listed.stdout)] == [pid]
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            assert (await http.get(f"{notify}/.well-known/did.json")).json() == did_json  # the seed was kept
            assert (await http.get(f"{urls['relayHttp']}/public-key")).text == relay_key
            r = await http.post(f"{notify}/v1/{pid}/subscribers", headers=auth, json={"accounts": [account]})
            assert r.status_code == 200 and account in r.json(), r.text

        async with NotifyClient(tmp_path / "w1.db", **servers) as wallet:  # back online: the mailbox has it
            deadline = time.monotonic() + 10
            while not (got := await wallet.notifications(domain)) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert [n.title for n in got] == ["while you were away"]

        # the next steps run as printed (but the demo, which test_docs_curl runs): project, type, broadcast
        steps = text.split("Next, in another terminal:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        script = "\n".join(["set -euo pipefail", *(line.strip() for line in steps if " demo " not in line)])
        ran = await asyncio.to_thread(subprocess.run, ["bash", "-c", script], cwd=tmp_path, capture_output=True,
                                      text=True, timeout=30, env={**os.environ, "PATH": f"{Path(WCNOTIFY).parent}:"
                                                                  f"{os.environ.get('PATH', '')}"})
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"notification_id": ANY, "queued": 0}

        code, rest = await asyncio.to_thread(again.stop, signal.SIGTERM)
        assert code == 0, rest + again.stderr()
        assert "SIGTERM: stopping" in rest and "stopped; the data is kept in" in rest, rest
        assert "Traceback" not in again.stderr(), again.stderr()
    finally:
        again.kill()


def test_up_says_what_to_do_when_a_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = cli("up", "--data-dir", str(tmp_path / "d"), "--relay-port", "0", "--keys-port", port,
                   "--notify-port", "0", timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} for the keys server is in use" in done.stderr and "--keys-port" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (tmp_path / "file").write_text("")
    done = cli("up", "--data-dir", str(tmp_path / "file"), timeout=30)
    assert done.returncode == 1 and "is a file, not a directory" in done.stderr, done.stderr


STEPS = (
    "relay, keys server and notify server start",
    "the dapp creates a project",
    "the dapp claims its app domain and serves did.json",
    "the dapp adds notification types",
    "the dapp registers a webhook on its own site",
    "wallet device W1 registers the account's identity key",
    "W1 subscribes to the app",
    "W1 enables Sync",
    "device Wx receives the subscription through Sync",
    "Wx registers its own identity key",
    "the dapp sends a notification; both devices show it",
    "the dapp's webhook is told: subscribed",
    "Wx unsubscribes; W1 sees it disappear",
    "the dapp's webhook is told: unsubscribed",
)


def test_demo_plays_the_whole_story_on_its_own_stack() -> None:
    done = cli("demo", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for number, title in enumerate(STEPS, start=1):
        assert f"✔ {number}. {title}" in done.stdout, done.stdout
    assert "through Sync  same topic" in done.stdout and "verified against the app's key" in done.stdout
    assert f"All {len(STEPS)} steps passed" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_demo_against_a_closed_port_names_the_step_and_what_to_do() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    done = cli("demo", "--against", f"http://127.0.0.1:{closed}", "--admin-token", "x", timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "✘ 1. the running stack answers" in done.stdout and "cannot reach the notify server" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    missing = cli("demo", "--against", f"http://127.0.0.1:{closed}", timeout=60)
    assert missing.returncode == 2 and "needs the server's admin token" in missing.stdout


async def test_a_signal_during_start_up_stops_what_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the notify server is still reaching the relay: no ready line, every port let go, no error."""
    bound: list[EmbeddedStack] = []

    async def interrupted(self: NotifyServer, timeout: float = 10) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # up's handler turns it into its stop event
        await asyncio.sleep(60)

    monkeypatch.setattr(NotifyServer, "wait_relay", interrupted)
    original = EmbeddedStack.__init__

    def remember(self: EmbeddedStack, *args: Any) -> None:
        original(self, *args)
        bound.append(self)

    monkeypatch.setattr(EmbeddedStack, "__init__", remember)
    ready: list[EmbeddedStack] = []
    stopping: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    options = UpOptions(tmp_path / "data", relay_port=0, keys_port=0, notify_port=0)
    await asyncio.wait_for(serve(options, on_ready=lambda stack, _s: ready.append(stack),
                                 on_stopping=stopping.append), 20)
    assert (ready, stopping) == ([], ["SIGINT"])
    assert signal.getsignal(signal.SIGINT) is before  # the test process's handler is back
    for service in bound[0].services():  # every port is free again
        with socket.socket() as s:
            s.bind(("127.0.0.1", service.port))
