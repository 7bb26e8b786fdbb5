"""Wallet-side commands: ``wcnotify wallet init|register|apps|subscribe|unsubscribe|inbox|read|sync``.

A wallet file is the wallet SDK's own SQLite file (:class:`wcnotify.wallet.NotifyClient`'s keys,
subscriptions and inbox), so a script can open the same file with the SDK, and copying the file moves the
device. What the CLI adds is kept in rows of that file's ``keys`` table, leaving the SDK's schema alone:

* ``cli:settings``: the servers' URLs (relay, keys server, notify server) that ``init`` stored, so no
  other command needs them again.
* ``cli:dev-key``: only with ``init --generate-key`` or ``--private-key-file``, an Ethereum private key kept
  **unencrypted**, so that ``register`` and ``sync`` can sign without a wallet app. It is a development
  convenience for demos and tests. A real account's key stays in its wallet, which signs the message that
  ``register --signature-from-stdin`` shows.

Each command opens the file, connects to the relay (the SDK then receives what arrived while it was off and
renews its watch of the account's subscriptions), does its one thing and closes. ``inbox`` also asks the
notify server for each subscription's history, so it shows what was sent even if the relay has not pushed
it yet; ``inbox --follow`` then prints notifications as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from wcnotify import spec
from wcnotify.cli_common import JSON_HELP, CommandError, literal, print_json, run, stderr, stdout

if TYPE_CHECKING:
    from wcnotify.wallet import App, Notification, NotifyClient, Subscription
    from wcnotify.wallet.store import WalletStore

wallet_app = typer.Typer(
    help="A wallet inbox in a local file: register an account, find and subscribe to apps, read notifications.",
    no_args_is_help=True,
)

SETTINGS_KEY = "cli:settings"
DEV_KEY = "cli:dev-key"
REGISTRATION_DOMAIN = "wcnotify-cli"  # the SIWE domain: who asks the user to sign (this command line)
DEFAULT_RELAY_URL = "ws://127.0.0.1:8080"
DEFAULT_KEYS_URL = f"http://127.0.0.1:{spec.KEYS_DEFAULT_PORT}"
DEFAULT_NOTIFY_URL = "http://127.0.0.1:8082"
DEV_KEY_WARNING = ("development key: kept unencrypted in the wallet file so the CLI can sign; never use it for "
                   "an account that holds anything")

_WALLET = typer.Option(Path("wallet.db"), "--wallet", envvar="WCNOTIFY_WALLET",
                       help="The wallet file (created by `wcnotify wallet init`).")
_ACCOUNT = typer.Option(None, "--account", help="CAIP-10 account (eip155:1:0x…). Default: the wallet's only one.")
_KEY_FILE = typer.Option(
    None, "--private-key-file",
    help="A file holding the account's hex private key, to sign with (development use).",
)
_STDIN = typer.Option(False, "--signature-from-stdin",
                      help="Print the message to sign, then read its 0x… EIP-191 signature from stdin.")
_JSON = typer.Option(False, "--json", help=JSON_HELP)


def register(app: typer.Typer) -> None:
    """Add the ``wallet`` group to the ``wcnotify`` app."""
    app.add_typer(wallet_app, name="wallet")


# ----------------------------------------------------------------------------------------- the file


@dataclasses.dataclass(frozen=True)
class _DevKey:
    account: str
    private_key: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class _WalletFile:
    path: Path
    relay_url: str
    keys_url: str
    notify_url: str
    dev_key: _DevKey | None


async def _open_store(path: Path) -> WalletStore:
    from wcnotify.wallet.store import WalletStore

    try:
        return await WalletStore.open(path, history_cap=spec.WALLET_HISTORY_CAP)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise CommandError(f"{path} is not a wallet file this version can open ({exc})") from exc


async def _read_file(path: Path) -> _WalletFile:
    if not path.exists():
        raise CommandError(f"no wallet at {path}: create one with `wcnotify wallet init --wallet {path}` "
                           "(or point --wallet / WCNOTIFY_WALLET at yours)")
    store = await _open_store(path)
    try:
        settings = await store.get_key(SETTINGS_KEY)
        dev = await store.get_key(DEV_KEY)
    finally:
        await store.close()
    if settings is None:
        raise CommandError(f"{path} has no server URLs: run `wcnotify wallet init --wallet {path}` on it")
    info = settings[1]
    dev_key = _DevKey(str(dev[1]["account"]), dev[0]) if dev is not None else None
    return _WalletFile(path, info["relay_url"], info["keys_url"], info["notify_url"], dev_key)


@contextlib.asynccontextmanager
async def _wallet(path: Path) -> AsyncIterator[tuple[NotifyClient, _WalletFile]]:
    """The started SDK client of the wallet file (connected to the relay), and what the CLI stored in it."""
    from wcnotify.wallet import NotifyClient, WalletError

    file = await _read_file(path)
    client = NotifyClient(path, relay_url=file.relay_url, keys_server_url=file.keys_url,
                          notify_server_url=file.notify_url)
    try:
        await client.start()
    except WalletError as exc:
        await client.close()
        raise CommandError(f"{exc}. Is the relay running (`wcnotify up`)? The wallet's server URLs are set with "
                           f"`wcnotify wallet init --wallet {path} --relay-url …`") from exc
    try:
        yield client, file
    finally:
        await client.close()


def _explain(exc: BaseException) -> str | None:
    """Advice for each wallet SDK error (checked subclass first)."""
    from wcnotify.wallet import (
        DidResolutionError,
        ForgedAnswerError,
        NoAnswerError,
        NotifyServerError,
        NotRegisteredError,
        UnknownSubscriptionError,
        WalletError,
    )

    if isinstance(exc, NotRegisteredError):
        return str(exc).replace("call register() first", "run `wcnotify wallet register` first")
    if isinstance(exc, UnknownSubscriptionError):
        return f"{exc}: subscribe with `wcnotify wallet subscribe APP_DOMAIN`"
    if isinstance(exc, DidResolutionError):
        return (f"{exc}. The app is not in the notify server's registry either: ask its dapp to list it "
                "(`wcnotify project update --listed`) or to serve its did.json")
    if isinstance(exc, NoAnswerError):
        return f"{exc}: is the notify server running and connected to the relay?"
    if isinstance(exc, NotifyServerError):
        return f"{exc}. Is it running? The wallet's server URLs are set with `wcnotify wallet init --notify-url …`"
    if isinstance(exc, ForgedAnswerError):
        return f"{exc}: the answer was refused; is the wallet pointed at the notify server you meant?"
    if isinstance(exc, WalletError):  # UnknownTypeError, RequestRefusedError, …: their messages say what to do
        return str(exc)
    return None


def _read_private_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="utf-8").strip().removeprefix("0x")
    except OSError as exc:
        raise CommandError(f"cannot read the private key file {path}: {exc.strerror or exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CommandError(f"{path} does not hold a private key: expected 64 hex digits (0x optional)")
    return key


def _account_of_key(key: bytes, chain: str) -> str:
    from eth_account import Account as EthAccount

    from wcnotify.protocol.did import Account, DidError

    try:
        return str(Account.parse(f"{chain}:{EthAccount.from_key(key).address}").checksummed())
    except DidError as exc:
        raise CommandError(f"--chain {chain!r} is not a CAIP-2 chain id (eip155:1): {exc}") from exc
    except ValueError as exc:
        raise CommandError(f"not a valid secp256k1 private key: {exc}") from exc


def _canonical(account: str) -> str:
    from wcnotify.wallet.models import canonical_account

    return canonical_account(account)


async def _default_account(client: NotifyClient, account: str | None) -> str:
    """``account`` as given, else the wallet's only registered account."""
    if account:
        return _canonical(account)
    accounts = await client.accounts()
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise CommandError("no account is registered in this wallet: run `wcnotify wallet register --account …`")
    raise CommandError(f"the wallet has several accounts ({', '.join(accounts)}): say which with --account")


Signer = Callable[[str], Awaitable[str]]


def _signer(account: str, *, key_file: Path | None, from_stdin: bool, dev: _DevKey | None, as_json: bool,
            what: str) -> Signer:
    """How the user signs ``what`` for ``account``: the key file, the development key, or by hand (stdin)."""
    from wcnotify.protocol.cacao import sign_eip191
    from wcnotify.protocol.did import Account

    if key_file is not None and from_stdin:
        raise CommandError("sign with either --private-key-file or --signature-from-stdin, not both")
    if from_stdin:
        async def by_hand(message: str) -> str:
            if as_json:
                print_json({"account": account, "sign": message})
            else:
                sys.stdout.write(f"Sign this {what} message with {account} (EIP-191 personal_sign), then paste the "
                                 "0x… signature on one line:\n--- message ---\n"
                                 f"{message}\n--- end of message ---\nsignature: ")
                sys.stdout.flush()
            line: str = await asyncio.to_thread(sys.stdin.readline)
            if not line.strip():
                raise CommandError("no signature on stdin: paste the 0x… signature of the message shown")
            return line.strip()

        return by_hand
    key = _read_private_key(key_file) if key_file is not None else None
    if key is None and dev is not None and Account.parse(dev.account).same_address(Account.parse(account)):
        key = dev.private_key
    if key is None:
        raise CommandError(f"the {what} message must be signed by {account}: pass --private-key-file F, or "
                           "--signature-from-stdin to sign it in your wallet app")
    if not Account.parse(_account_of_key(key, "eip155:1")).same_address(Account.parse(account)):
        raise CommandError(f"that private key is not {account}'s")
    signing_key = key

    async def with_key(message: str) -> str:
        return sign_eip191(message, signing_key)

    return with_key


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _notification_json(n: Notification) -> dict[str, Any]:
    return dataclasses.asdict(n)


# -------------------------------------------------------------------------------------------- init


@wallet_app.command("init")
def init(
    *,
    wallet: Path = _WALLET,
    relay_url: str | None = typer.Option(
        None, "--relay-url", envvar="WCNOTIFY_RELAY_URL",
        help=f"The relay (ws:// or http://, same port). Default: {DEFAULT_RELAY_URL}, or what the file has.",
    ),
    keys_url: str | None = typer.Option(
        None, "--keys-url", envvar="WCNOTIFY_KEYS_URL",
        help=f"The keys server. Default: {DEFAULT_KEYS_URL}, or what the file has.",
    ),
    notify_url: str | None = typer.Option(
        None, "--notify-url", envvar="WCNOTIFY_SERVER_URL",
        help=f"The notify server. Default: {DEFAULT_NOTIFY_URL}, or what the file has.",
    ),
    generate_key: bool = typer.Option(
        False, "--generate-key", help="Development convenience: create an Ethereum key, kept unencrypted in the file."
    ),
    private_key_file: Path | None = typer.Option(  # noqa: B008
        None, "--private-key-file", help="Development convenience: import this hex private key into the file."
    ),
    chain: str = typer.Option("eip155:1", help="The chain of the development key's account (CAIP-2)."),
    as_json: bool = _JSON,
) -> None:
    """Create a wallet file (or change its server URLs); optionally give it a development key.

    Example: wcnotify wallet init --wallet alice.db --generate-key
    """
    if generate_key and private_key_file is not None:
        raise typer.BadParameter("--generate-key or --private-key-file, not both")
    imported = _read_private_key(private_key_file) if private_key_file is not None else None
    key = os.urandom(32) if generate_key else imported

    async def main() -> dict[str, Any]:
        store = await _open_store(wallet)
        try:
            stored = await store.get_key(SETTINGS_KEY)
            before = stored[1] if stored is not None else {}
            urls = {
                "relay_url": _ws_url(relay_url or before.get("relay_url") or DEFAULT_RELAY_URL),
                "keys_url": (keys_url or before.get("keys_url") or DEFAULT_KEYS_URL).rstrip("/"),
                "notify_url": (notify_url or before.get("notify_url") or DEFAULT_NOTIFY_URL).rstrip("/"),
            }
            await store.put_key(SETTINGS_KEY, b"", urls)
            dev = await store.get_key(DEV_KEY)
            account = str(dev[1]["account"]) if dev is not None else None
            if key is not None:
                new_account = _account_of_key(key, chain)
                if dev is not None and dev[0] != key:
                    raise CommandError(f"{wallet} already has a development key ({account}); use another --wallet")
                await store.put_key(DEV_KEY, key, {"account": new_account, "note": DEV_KEY_WARNING})
                account = new_account
        finally:
            await store.close()
        for part in (wallet, Path(f"{wallet}-wal"), Path(f"{wallet}-shm")):  # the device's keys are in there
            if part.exists():
                part.chmod(0o600)
        return {"wallet": str(wallet), **urls, "account": account, "development_key": account is not None}

    result = run(main(), _explain)
    if as_json:
        print_json(result)
        return
    console = stdout()
    console.print(f"wallet [bold]{literal(wallet)}[/] ready", soft_wrap=True)
    for name in ("relay_url", "keys_url", "notify_url"):
        console.print(f"  {name}: {literal(result[name])}", soft_wrap=True)
    if result["account"]:
        console.print(f"  account: {result['account']}", soft_wrap=True)
        console.print(f"[yellow]{DEV_KEY_WARNING}[/]")
        console.print(f"Next: wcnotify wallet register --wallet {literal(wallet)}", soft_wrap=True)
    else:
        console.print(f"Next: wcnotify wallet register --wallet {literal(wallet)} --account eip155:1:0x… "
                      "--signature-from-stdin", soft_wrap=True)


def _ws_url(url: str) -> str:
    """The relay's WebSocket URL; its http(s) URL (what `wcnotify up` prints for servers) names the same port."""
    url = url.rstrip("/")
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            return ws + url.removeprefix(http)
    if not url.startswith(("ws://", "wss://")):
        raise CommandError(f"--relay-url {url!r} is not a ws://, wss://, http:// or https:// URL")
    return url


# ---------------------------------------------------------------------------------------- register


@wallet_app.command("register")
def register_account(
    *,
    account: str | None = typer.Option(
        None, "--account", help="CAIP-10 account (eip155:1:0x…). Default: the development key's account."
    ),
    private_key_file: Path | None = _KEY_FILE,
    signature_from_stdin: bool = _STDIN,
    chain: str = typer.Option("eip155:1", help="With --private-key-file and no --account: the account's chain."),
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Register this device's identity key for an account, which signs a SIWE message once for every app.

    Sign with --private-key-file, the development key of `wallet init`, or in your wallet app
    (--signature-from-stdin shows the message and reads the signature).

    Example: wcnotify wallet register --account eip155:1:0xAb… --signature-from-stdin
    """

    async def main() -> dict[str, Any]:
        async with _wallet(wallet) as (client, file):
            if account:
                who = _canonical(account)
            elif private_key_file is not None:
                who = _account_of_key(_read_private_key(private_key_file), chain)
            elif file.dev_key is not None:
                who = file.dev_key.account
            elif await client.accounts():
                who = await _default_account(client, None)
            else:
                raise CommandError("say which account to register: --account eip155:1:0x…")
            if await client.is_registered(who):
                return {"account": who, "registered": True, "already": True}
            sign = _signer(who, key_file=private_key_file, from_stdin=signature_from_stdin, dev=file.dev_key,
                           as_json=as_json, what="registration")
            registration = await client.prepare_registration(who, REGISTRATION_DOMAIN, all_apps=True)
            await client.register(registration, await sign(registration.message))
            return {"account": who, "registered": True, "already": False}

    result = run(main(), _explain)
    if as_json:
        print_json(result)
        return
    state = "was already registered" if result["already"] else "registered"
    stdout().print(f"{result['account']} {state} on this device. Next: wcnotify wallet apps", soft_wrap=True)


# -------------------------------------------------------------------------------------------- apps


def _app_json(app: App, subscribed: set[str]) -> dict[str, Any]:
    return {"domain": app.domain, "name": app.name, "description": app.description, "icons": list(app.icons),
            "types": [dataclasses.asdict(t) for t in app.types], "subscribed": app.domain in subscribed}


@wallet_app.command("apps")
def apps(
    query: str | None = typer.Argument(None, help="Words to look for in the app's name or domain."),
    *,
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """List the apps in the notify server's registry, and which of them this wallet is subscribed to.

    Example: wcnotify wallet apps gm
    """

    async def main() -> tuple[list[App], set[str]]:
        async with _wallet(wallet) as (client, _file):
            found = await client.apps(query)
            return found, {s.app_domain for s in await client.subscriptions()}

    found, subscribed = run(main(), _explain)
    if as_json:
        print_json([_app_json(a, subscribed) for a in found])
        return
    if not found:
        stdout().print("no apps listed" + (f" matching {literal(query)!r}" if query else "") +
                       " (a dapp lists itself with `wcnotify project update --listed`)")
        return
    from rich.table import Table

    table = Table("domain", "name", "description", "types", "subscribed")
    for app in found:
        table.add_row(literal(app.domain), literal(app.name), literal(app.description),
                      literal(", ".join(t.name for t in app.types)), "yes" if app.domain in subscribed else "")
    stdout().print(table)


# ---------------------------------------------------------------------------------- (un)subscribe


@wallet_app.command("subscribe")
def subscribe(
    app_domain: str = typer.Argument(..., help="The app's domain (as `wcnotify wallet apps` lists it)."),
    *,
    type_: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--type", help="A notification type (name or id); repeatable. Default: all of the app's types."
    ),
    account: str | None = _ACCOUNT,
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Subscribe to an app, to all its notification types or to those named with --type.

    The app's keys come from the notify server's registry when the app is listed there, otherwise from its
    did:web document (https://APP_DOMAIN/.well-known/did.json).

    Example: wcnotify wallet subscribe gm.example.com --type alerts
    """

    async def main() -> dict[str, Any]:
        from wcnotify.wallet import NotifyServerError

        async with _wallet(wallet) as (client, _file):
            who = await _default_account(client, account)
            domain = app_domain.strip().lower()
            try:
                listed = next((a for a in await client.apps(domain) if a.domain == domain), None)
            except NotifyServerError:  # no registry to ask: the app's own did.json still works
                listed = None
            sub = await client.subscribe(who, listed or domain, type_ or None)
            names = {t.id: t.name for t in await client.app_types(sub.app_domain)}
            return {"account": sub.account, "app_domain": sub.app_domain, "topic": sub.topic,
                    "scope": list(sub.scope), "types": [names.get(t, t) for t in sub.scope],
                    "via": "registry" if listed else "did:web"}

    result = run(main(), _explain)
    if as_json:
        print_json(result)
        return
    stdout().print(f"{result['account']} subscribed to [bold]{literal(result['app_domain'])}[/] "
                   f"(types: {literal(', '.join(result['types']))}; keys from the {result['via']})", soft_wrap=True)


@wallet_app.command("unsubscribe")
def unsubscribe(
    app_domain: str = typer.Argument(..., help="The app's domain."),
    *,
    account: str | None = _ACCOUNT,
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Unsubscribe from an app: the notify server forgets the subscription and tells the dapp.

    Example: wcnotify wallet unsubscribe gm.example.com
    """

    async def main() -> str:
        async with _wallet(wallet) as (client, _file):
            who = _canonical(account) if account else None
            sub = await client.subscription(app_domain.strip().lower(), who)
            await client.delete(sub.topic)
            return sub.account

    who = run(main(), _explain)
    if as_json:
        print_json({"account": who, "app_domain": app_domain.strip().lower(), "unsubscribed": True})
        return
    stdout().print(f"{who} unsubscribed from {literal(app_domain)}", soft_wrap=True)


# ------------------------------------------------------------------------------------------- inbox


@wallet_app.command("inbox")
def inbox(
    app: str | None = typer.Argument(None, help="Only this app's notifications (its domain)."),
    *,
    unread: bool = typer.Option(False, "--unread", help="Only unread notifications."),
    limit: int = typer.Option(20, min=1, max=spec.NOTIFY_HISTORY_MAX_LIMIT, help="Most recent N per listing."),
    follow: bool = typer.Option(False, "--follow", help="Then print new notifications as they arrive (Ctrl-C stops)."),
    for_seconds: float | None = typer.Option(
        None, "--for", min=0, help="With --follow: stop after this many seconds (for scripts and tests)."
    ),
    account: str | None = _ACCOUNT,
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Show the inbox, newest first (● marks unread); --follow keeps printing new ones live.

    With --json: a JSON list; with --json --follow, one JSON object per line instead, as they come.

    Example: wcnotify wallet inbox gm.example.com --unread --follow
    """

    async def main() -> None:
        from wcnotify.wallet import NoAnswerError, NotificationReceived, NotificationRejected, NotRegisteredError

        async with _wallet(wallet) as (client, _file):
            who = _canonical(account) if account else None
            domain = app.strip().lower() if app else None
            with client.events() as events:  # from before the history calls: nothing falls between
                subs = [s for s in await client.subscriptions(who) if domain in (None, s.app_domain)]
                if domain is not None and not subs:
                    raise CommandError(f"not subscribed to {domain} in this wallet: "
                                       f"`wcnotify wallet subscribe {domain}`")
                for sub in subs:
                    try:  # the server's history, so what was sent shows even before the relay pushes it
                        await client.history(sub.topic, limit=limit)
                    except NotRegisteredError:  # a device that follows the account through Sync only
                        pass
                    except NoAnswerError as exc:
                        stderr().print(f"[yellow]showing the local inbox only:[/] {literal(exc)}")
                shown: list[Notification] = []  # only current subscriptions': the file keeps those of deleted ones
                for sub in subs:
                    shown += await client.notifications(sub.topic, limit=limit, unread_only=unread)
                shown = sorted(shown, key=lambda n: (n.sent_at, n.id), reverse=True)[:limit]
                _print_inbox(shown, as_json=as_json, follow=follow, subscribed=bool(subs))
                if not follow:
                    return
                seen = {n.id for n in shown}
                stderr().print("following new notifications" + (f" for {for_seconds:g} s" if for_seconds else "")
                               + " (Ctrl-C to stop)")
                loop = asyncio.get_running_loop()
                deadline = None if for_seconds is None else loop.time() + for_seconds
                while True:
                    left = None if deadline is None else deadline - loop.time()
                    if left is not None and left <= 0:
                        return
                    try:
                        event = await events.next(left)
                    except TimeoutError:
                        return
                    if isinstance(event, NotificationRejected):
                        stderr().print(f"[red]dropped a notification that did not verify[/] from "
                                       f"{literal(event.app_domain)}: {literal(event.reason)}")
                    if not isinstance(event, NotificationReceived):
                        continue
                    n = event.notification
                    if n.id in seen or n.topic not in {s.topic for s in await client.subscriptions(who)} or (
                            domain not in (None, n.app_domain)):
                        continue
                    seen.add(n.id)
                    if as_json:
                        print_json(_notification_json(n))
                    else:
                        stdout().print(_line(n), soft_wrap=True)

    run(main(), _explain)


def _line(n: Notification) -> str:
    mark = "  " if n.is_read else "[cyan]●[/] "
    text = f"{mark}{_when(n.sent_at)}  [bold]{literal(n.app_domain)}[/]  {literal(n.title)}: {literal(n.body)}"
    return text + (f"  {literal(n.url)}" if n.url else "")


def _print_inbox(shown: list[Notification], *, as_json: bool, follow: bool, subscribed: bool) -> None:
    if as_json:
        if follow:
            for n in reversed(shown):  # oldest first, then the live ones: one stream in time order
                print_json(_notification_json(n))
        else:
            print_json([_notification_json(n) for n in shown])
        return
    console = stdout()
    if not shown:
        console.print("no notifications" if subscribed else
                      "no subscriptions yet: find apps with `wcnotify wallet apps`, then `wcnotify wallet subscribe`")
        return
    for n in shown:
        console.print(_line(n), soft_wrap=True)
        console.print(f"      [dim]id {n.id}[/]")


# -------------------------------------------------------------------------------------------- read


@wallet_app.command("read")
def read(
    app: str = typer.Argument(..., help="The app's domain."),
    *,
    notification_id: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--id", help="A notification id (`wcnotify wallet inbox` shows them); repeatable."
    ),
    all_: bool = typer.Option(False, "--all", help="Every notification of the app."),
    account: str | None = _ACCOUNT,
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Mark notifications read, here and on the notify server (so the user's other devices see it too).

    Example: wcnotify wallet read gm.example.com --all
    """
    if bool(notification_id) == all_:
        raise typer.BadParameter("say what to mark read: --id ID (repeatable) or --all")

    async def main() -> str:
        async with _wallet(wallet) as (client, _file):
            who = _canonical(account) if account else None
            sub = await client.subscription(app.strip().lower(), who)
            await client.mark_read(sub.topic, None if all_ else notification_id)
            return sub.app_domain

    domain = run(main(), _explain)
    if as_json:
        print_json({"app_domain": domain, "all": all_, "ids": notification_id})
        return
    what = "every notification" if all_ else f"{len(notification_id)} notification(s)"
    stdout().print(f"marked {what} of {literal(domain)} read")


# -------------------------------------------------------------------------------------------- sync


@wallet_app.command("sync")
def sync(
    *,
    account: str | None = typer.Option(
        None, "--account", help="CAIP-10 account. Default: the wallet's only registered account, or the dev key's."
    ),
    private_key_file: Path | None = _KEY_FILE,
    signature_from_stdin: bool = _STDIN,
    settle: float = typer.Option(3.0, "--settle", min=0, hidden=True,
                                 help="Seconds to wait at most for the stores' records to arrive."),
    wallet: Path = _WALLET,
    as_json: bool = _JSON,
) -> None:
    """Enable Sync for an account: its subscriptions are shared with the user's other devices.

    The account signs one message; every device that enables Sync with the same account joins, and follows
    the account's subscriptions even without registering its own identity key.

    Example: wcnotify wallet sync --account eip155:1:0xAb… --signature-from-stdin
    """

    async def main() -> dict[str, Any]:
        async with _wallet(wallet) as (client, file):
            if account:
                who = _canonical(account)
            elif private_key_file is not None:
                who = _account_of_key(_read_private_key(private_key_file), "eip155:1")
            elif await client.accounts():
                who = await _default_account(client, None)
            elif file.dev_key is not None:
                who = file.dev_key.account
            else:
                raise CommandError("say which account to sync: --account eip155:1:0x…")
            sign = _signer(who, key_file=private_key_file, from_stdin=signature_from_stdin, dev=file.dev_key,
                           as_json=as_json, what="Sync")
            signature = await sign(client.sync.message(who))
            with client.events() as events:
                await client.enable_sync(who, signature)
                await _quiet(events, settle)
            subs: list[Subscription] = await client.subscriptions(who)
            return {"account": who, "sync": True, "subscriptions": sorted(s.app_domain for s in subs)}

    result = run(main(), _explain)
    if as_json:
        print_json(result)
        return
    shared = ", ".join(result["subscriptions"]) or "none yet"
    stdout().print(f"Sync enabled for {result['account']}; subscriptions: {literal(shared)}", soft_wrap=True)


async def _quiet(events: Any, settle: float) -> None:
    """Wait until the relay has gone half a second without changing anything, ``settle`` seconds at most: the
    stores' records arrive right after the subscribe, and the command should show them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while (left := deadline - loop.time()) > 0:
        try:
            await events.next(min(left, 0.5))
        except TimeoutError:
            return
