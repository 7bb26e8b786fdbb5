"""The wallet commands (`wcnotify wallet …`) against a live stack, with the dapp commands as the sender: init,
register (key file, development key, a signature pasted on stdin), apps, subscribe through the registry or
did:web, inbox (and --follow, live, in a real process), read, unsubscribe, Sync to a second device, errors.
Also runs every command of docs/cli.md, in order, as written."""

from __future__ import annotations

import json
import queue
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account as EthAccount

from wcnotify.dapp import DidHost
from wcnotify.protocol.cacao import recover_eip191, sign_eip191
from wcnotify.serving import AsgiService
from wcnotify.wallet.store import WalletStore

from .cli_harness import CliStack, cli_stack, create_project

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[CliStack]:
    with cli_stack(database_url, tmp_path) as running:
        yield running


def key_file(tmp: Path, name: str = "key.hex") -> tuple[Path, str]:
    """A fresh private key in a file (as hex, 0x first) and its account."""
    eth = EthAccount.create()
    path = tmp / name
    path.write_text("0x" + bytes(eth.key).hex() + "\n")
    return path, f"eip155:1:{eth.address}"


class Lines:
    """A process's output, line by line, read in a thread so the test can wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def until(self, pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def test_a_wallet_subscribes_through_the_registry_and_reads_its_inbox(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts", "news", listed=True)
    init = cli.json("wallet init --generate-key")
    account = init["account"]
    assert init["development_key"] is True and init["relay_url"] == cli.stack.relay.ws_url
    assert (Path(init["wallet"]).stat().st_mode & 0o777) == 0o600
    assert "development key" in cli.invoke("wallet init").stdout  # again: the URLs kept, the key kept, and said

    registered = cli.invoke("wallet register")
    assert f"{account} registered on this device" in registered.stdout
    assert json.loads(cli.invoke("wallet register --json").stdout)["already"] is True

    apps = cli.json("wallet apps")
    assert [(a["domain"], [t["name"] for t in a["types"]], a["subscribed"]) for a in apps] == [
        ("gm.example.com", ["alerts", "news"], False)]
    assert cli.json("wallet apps nothing-like-it") == []

    subscribed = cli.json("wallet subscribe gm.example.com --type alerts")
    assert subscribed["via"] == "registry" and subscribed["types"] == ["alerts"] and subscribed["account"] == account
    assert cli.json("wallet apps gm")[0]["subscribed"] is True
    assert "no notifications" in cli.invoke("wallet inbox").stdout

    sent = cli.json(f"send --type alerts --title 'ETH 4k' --body 'ETH crossed 4000' --account {account} --wait")
    assert sent["sent"] == [account] and sent["delivery"]["published"] == 1
    failed = cli.json(f"send --type news --title Weekly --body digest --account {account}")
    assert failed["failed"] == [{"account": account, "reason": "Client is not subscribed to this notification type"}]

    inbox = cli.json("wallet inbox")
    assert [(n["title"], n["body"], n["is_read"], n["app_domain"]) for n in inbox] == [
        ("ETH 4k", "ETH crossed 4000", False, "gm.example.com")]
    shown = cli.invoke("wallet inbox gm.example.com").stdout
    assert "● " in shown and "gm.example.com  ETH 4k: ETH crossed 4000" in shown and inbox[0]["id"] in shown

    cli.invoke(f"wallet read gm.example.com --id {inbox[0]['id']}")
    assert cli.json("wallet inbox --unread") == []
    assert cli.json("wallet inbox gm.example.com")[0]["is_read"] is True
    cli.json(f"send --type alerts --title second --body b --account {account} --wait")
    assert [n["title"] for n in cli.json("wallet inbox --unread")] == ["second"]
    assert "marked every notification of gm.example.com read" in cli.invoke("wallet read gm.example.com --all").stdout
    assert cli.json("wallet inbox --unread") == []

    assert "unsubscribed from gm.example.com" in cli.invoke("wallet unsubscribe gm.example.com").stdout
    assert "no subscriptions yet" in cli.invoke("wallet inbox").stdout
    assert cli.json(f"send --type alerts --title gone --body b --account {account}")["not_found"] == [account]


def test_inbox_follow_prints_notifications_live(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts", listed=True)
    account = cli.json("wallet init --generate-key")["account"]
    cli.invoke("wallet register")
    cli.invoke("wallet subscribe gm.example.com")
    cli.invoke(f"send --type alerts --title before --body 'already here' --account {account} --wait")

    follower = cli.popen("wallet", "inbox", "--follow", "--for", "5")
    try:
        lines = Lines(follower)
        lines.until("before: already here")
        lines.until("following new notifications for 5 s")
        cli.invoke(f"send --type alerts --title live --body 'just now' --account {account}")
        assert "gm.example.com  live: just now" in lines.until("live: just now", timeout=5)
        assert follower.wait(10) == 0  # --for ended it
    finally:
        follower.kill()
        follower.wait()

    # --json --follow: one object per line, the inbox first (oldest first), then what arrives
    follower = cli.popen("wallet", "inbox", "--follow", "--for", "5", "--json")
    try:
        lines = Lines(follower)
        lines.until("following new notifications")
        cli.invoke(f"send --type alerts --title 'live 2' --body again --account {account}")
        lines.until('"title": "live 2"', timeout=5)
        assert follower.wait(10) == 0
    finally:
        follower.kill()
        follower.wait()
    objects = [json.loads(line) for line in lines.seen if line.startswith("{")]
    assert [o["title"] for o in objects] == ["before", "live", "live 2"]


def test_register_with_a_key_file_or_a_signature_pasted_on_stdin(cli: CliStack) -> None:
    key, account = key_file(cli.tmp)
    cli.invoke("wallet init")
    assert cli.json(f"wallet register --private-key-file {key}") == {
        "account": account, "registered": True, "already": False}

    # a second device of another account, whose user signs in a wallet app: the message is shown, the
    # signature read from stdin
    eth = EthAccount.create()
    other = f"eip155:1:{eth.address}"
    wallet = str(cli.tmp / "phone.db")
    cli.invoke(["wallet", "init", "--wallet", wallet])
    proc = cli.popen("wallet", "register", "--wallet", wallet, "--account", other, "--signature-from-stdin")
    try:
        lines = Lines(proc)
        lines.until("--- message ---")
        start = len(lines.seen)
        lines.until("--- end of message ---")
        message = "".join(lines.seen[start:-1]).removesuffix("\n")
        assert message.startswith("wcnotify-cli wants you to sign in with your Ethereum account:\n" + eth.address)
        assert recover_eip191(message, sign_eip191(message, eth.key)) == eth.address
        assert proc.stdin is not None
        proc.stdin.write(sign_eip191(message, eth.key) + "\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0, "".join(lines.seen)
    finally:
        proc.kill()
        proc.wait()
    assert cli.json(f"wallet register --wallet {wallet}")["already"] is True

    # a signature by another key is refused, with what to do
    third = str(cli.tmp / "third.db")
    cli.invoke(["wallet", "init", "--wallet", third])
    wrong = cli.invoke(["wallet", "register", "--wallet", third, "--account", other, "--signature-from-stdin"],
                       ok=False, input=sign_eip191("something else", eth.key) + "\n")
    assert wrong.exit_code == 1 and "does not register" in wrong.stderr
    empty = cli.invoke(["wallet", "register", "--wallet", third, "--account", other, "--signature-from-stdin"],
                       ok=False, input="")
    assert empty.exit_code == 1 and "no signature on stdin" in empty.stderr
    not_mine = cli.invoke(["wallet", "register", "--wallet", third, "--account", other, "--private-key-file",
                           str(key)], ok=False)
    assert not_mine.exit_code == 1 and f"that private key is not {other}'s" in not_mine.stderr


def test_subscribe_through_did_web_when_the_app_is_not_listed(cli: CliStack) -> None:
    site = AsgiService(None, "127.0.0.1", 0, name="dapp site")
    domain = f"localhost:{site.port}"
    created = create_project(cli, "Site", domain, "alerts")
    document = httpx.get(created["didJson"], trust_env=False).json()
    site.app = DidHost(document)
    cli.call(site.start())
    try:
        account = cli.json("wallet init --generate-key")["account"]
        cli.invoke("wallet register")
        assert cli.json("wallet apps") == []
        subscribed = cli.json(f"wallet subscribe {domain}")
        assert subscribed["via"] == "did:web" and subscribed["types"] == ["alerts"]
        cli.invoke(f"send --type alerts --title hi --body there --account {account} --wait")
        assert [n["title"] for n in cli.json(f"wallet inbox {domain}")] == ["hi"]
    finally:
        cli.call(site.stop())


def test_errors_say_what_to_do_without_a_traceback(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts", listed=True)

    nowhere = cli.process("wallet", "inbox", "--wallet", str(cli.tmp / "missing.db"))
    assert nowhere.returncode == 1 and "no wallet at" in nowhere.stderr and "wcnotify wallet init" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr and not (cli.tmp / "missing.db").exists()

    not_a_wallet = cli.tmp / "notes.txt"
    not_a_wallet.write_text("just some text, long enough to not be a SQLite header" * 20)
    odd = cli.process("wallet", "inbox", "--wallet", str(not_a_wallet))  # and it exits (no sqlite thread left)
    assert odd.returncode == 1 and "is not a wallet file" in odd.stderr and "Traceback" not in odd.stderr

    key, account = key_file(cli.tmp)
    cli.invoke(f"wallet init --private-key-file {key}")
    nobody = cli.invoke("wallet subscribe gm.example.com", ok=False)
    assert nobody.exit_code == 1 and "no account is registered" in nobody.stderr
    assert "wcnotify wallet register" in nobody.stderr
    stranger = cli.invoke("wallet subscribe gm.example.com --account eip155:1:0x" + "ab" * 20, ok=False)
    assert stranger.exit_code == 1 and "is not registered on this device" in stranger.stderr
    assert "wcnotify wallet register" in stranger.stderr

    cli.invoke("wallet register")
    unknown_type = cli.invoke("wallet subscribe gm.example.com --type prices", ok=False)
    assert unknown_type.exit_code == 1 and "no notification type 'prices'; its types: alerts" in unknown_type.stderr
    unknown_app = cli.invoke("wallet subscribe localhost:9", ok=False)
    assert unknown_app.exit_code == 1 and "cannot fetch http://localhost:9/.well-known/did.json" in unknown_app.stderr
    assert "wcnotify project update --listed" in unknown_app.stderr
    not_subscribed = cli.invoke("wallet read gm.example.com --all", ok=False)
    assert not_subscribed.exit_code == 1 and "wcnotify wallet subscribe" in not_subscribed.stderr
    neither = cli.invoke("wallet read gm.example.com", ok=False)
    assert neither.exit_code == 2 and "--all" in neither.output
    taken = cli.invoke("wallet init --generate-key", ok=False)
    assert taken.exit_code == 1 and f"already has a development key ({account})" in taken.stderr

    down = cli.process("wallet", "init", "--wallet", str(cli.tmp / "down.db"), "--relay-url", "ws://127.0.0.1:9")
    assert down.returncode == 0
    relay_down = cli.process("wallet", "apps", "--wallet", str(cli.tmp / "down.db"))
    assert relay_down.returncode == 1 and "cannot connect to the relay at ws://127.0.0.1:9" in relay_down.stderr
    assert "Is the relay running" in relay_down.stderr and "Traceback" not in relay_down.stderr


def test_sync_shares_the_subscription_with_a_second_device(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts", listed=True)
    key, account = key_file(cli.tmp)
    cli.invoke(f"wallet init --private-key-file {key}")
    cli.invoke("wallet register")
    cli.invoke("wallet subscribe gm.example.com")
    assert cli.json("wallet sync") == {"account": account, "sync": True, "subscriptions": ["gm.example.com"]}

    # device 2 holds the same key (a development key here) and only enables Sync: no registration of its own
    second = str(cli.tmp / "second.db")
    cli.invoke(["wallet", "init", "--wallet", second, "--private-key-file", str(key)])
    synced = cli.json(f"wallet sync --wallet {second}")
    assert synced == {"account": account, "sync": True, "subscriptions": ["gm.example.com"]}

    follower = cli.popen("wallet", "inbox", "--wallet", second, "--follow", "--for", "5", "--json")
    try:
        lines = Lines(follower)
        lines.until("following new notifications")
        cli.invoke(f"send --type alerts --title 'to both' --body devices --account {account}")
        lines.until('"title": "to both"', timeout=5)
        assert follower.wait(10) == 0
    finally:
        follower.kill()
        follower.wait()
    assert [n["title"] for n in cli.json("wallet inbox")] == ["to both"]  # device 1 got it too


def test_the_settings_live_in_the_sdk_wallet_file(cli: CliStack) -> None:
    """The CLI's settings are rows of the SDK's keys table: the file stays one the SDK opens as it is."""
    cli.invoke("wallet init --generate-key")

    async def rows() -> list[str]:
        store = await WalletStore.open(cli.env["WCNOTIFY_WALLET"], history_cap=10)
        try:
            return [name for name, _, _ in await store.keys_with_prefix("cli:")]
        finally:
            await store.close()

    assert cli.call(rows()) == ["cli:dev-key", "cli:settings"]


# ------------------------------------------------------------------------------------------ the guide


def guide_commands() -> list[str]:
    """Every line of docs/cli.md's ```sh blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_docs_cli_md_runs_as_written(cli: CliStack) -> None:
    """Each command of the guide, in order. What the test adds: the stack's URLs in the environment (where the
    guide's `wcnotify up` would print them), the values the guide says to export (read from the output the
    guide says to read them from), and --for 3 on the one --follow (which otherwise runs until Ctrl-C)."""
    env = dict(cli.env)
    ran: list[str] = []
    for line in guide_commands():
        if line.startswith("export "):
            for name in re.findall(r"(\w+)=", line):
                assert name in env, f"the guide exports {name}, which no earlier command printed"
            continue
        assert line.startswith("wcnotify "), f"docs/cli.md: not a wcnotify command: {line}"
        if line == "wcnotify up":  # the test's stack plays it
            continue
        args = [re.sub(r"\$(\w+)", lambda m: env[m[1]], a) for a in shlex.split(line)[1:]]
        if "--follow" in args:
            args += ["--for", "3"]
        done = cli.invoke(args, **env)
        ran.append(line)
        if args[:2] == ["project", "create"]:
            env["WCNOTIFY_PROJECT_ID"] = re.findall(r"projectId: (\w+)", done.stdout)[0]
            env["WCNOTIFY_PROJECT_SECRET"] = re.findall(r"secret: (\w+)", done.stdout)[0]
        if args[:2] == ["wallet", "init"]:
            env["ACCOUNT"] = re.findall(r"account: (\S+)", done.stdout)[0]
        if args[0] == "send":
            assert "1 sent, 0 failed, 0 not subscribed" in done.stdout, done.stdout
        if args[:2] == ["wallet", "inbox"]:
            assert "gm.example.com  gm: it works" in done.stdout, done.stdout
    assert len(ran) == 15, ran
