"""``wcnotify demo``: the seeds' story over real sockets, played by the wallet and dapp SDKs.

A dapp creates a project, claims an app domain (``localhost:PORT``, a site it serves with
:class:`~wcnotify.dapp.DidHost`), adds notification types and registers a webhook on that same site. Wallet
device W1 registers the account's identity key and subscribes; device Wx gets the subscription through the
Sync API alone (it has no identity key yet), then registers its own key so it can act; the dapp sends and both
devices show the notification; the dapp's webhook hears of the subscription; Wx unsubscribes and W1 sees the
subscription disappear. Every step checks its own result and is bounded by a timeout, so a broken stack makes
the demo stop at the step that failed, naming it.

The stack is either one the demo starts (``wcnotify up``'s :class:`~wcnotify.up.EmbeddedStack` on free ports
in a temporary directory) or a running one (``--against``). Nothing leaves the machine: every party is on
loopback. Against a running stack the demo leaves its project behind (there is no project deletion).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from eth_account import Account as EthAccount

from wcnotify import event_loop, spec
from wcnotify.dapp import (
    ConflictError,
    DappApiError,
    DidHost,
    Notification,
    NotificationType,
    NotifyAdminClient,
    NotifyDappClient,
    SubscriptionEvent,
    UnauthorizedError,
    WebhookReceiver,
)
from wcnotify.protocol.cacao import identity_key, sign_eip191
from wcnotify.protocol.crypto import topic_of
from wcnotify.protocol.did import did_web, parse_did_document
from wcnotify.serving import AsgiService
from wcnotify.up import DEFAULT_KEYS_PORT, DEFAULT_RELAY_PORT, DataDir, EmbeddedStack, UpError, UpOptions
from wcnotify.wallet import (
    EventStream,
    NotificationReceived,
    NotifyClient,
    Subscription,
    SubscriptionsChanged,
    WalletError,
    WalletEvent,
)

STEP_TIMEOUT = 20.0  # seconds any one step may take; the whole story takes a few seconds on loopback
WALLET_DOMAIN = "wallet.example"  # the SIWE domain the user signs for: the wallet's, not the dapp's

E = TypeVar("E", bound=WalletEvent)


@dataclass(frozen=True)
class Servers:
    """Where the three services are: the wallet SDK's ``relay_url``/``keys_server_url``/``notify_server_url``."""

    relay_url: str  # ws://
    keys_url: str
    notify_url: str
    admin_token: str

    @classmethod
    def around(cls, notify_url: str, admin_token: str, relay_url: str | None = None,
               keys_url: str | None = None) -> Servers:
        """A running stack from its notify server's URL; the relay and keys server default to ``wcnotify up``'s
        ports on the same host."""
        host = urlsplit(notify_url).hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return cls(relay_url or f"ws://{host}:{DEFAULT_RELAY_PORT}", keys_url or f"http://{host}:{DEFAULT_KEYS_PORT}",
                   notify_url.rstrip("/"), admin_token)


class StepFailed(Exception):
    """A step of the story did not do what it should; ``reason`` says what happened instead."""

    def __init__(self, number: int, title: str, reason: str) -> None:
        super().__init__(f"step {number} ({title}) failed: {reason}")
        self.number = number
        self.title = title
        self.reason = reason


class Detail:
    """What a step found, filled in by its body and printed beside its title."""

    text = ""


Report = Callable[[int, str, str], None]  # (number, title, detail) of each step that passed


class Story:
    """Numbers the steps, bounds each by ``timeout`` and turns any failure into :class:`StepFailed`."""

    def __init__(self, report: Report, *, timeout: float = STEP_TIMEOUT) -> None:
        self.report = report
        self.timeout = timeout
        self.passed = 0

    @contextlib.asynccontextmanager
    async def step(self, title: str) -> AsyncIterator[Detail]:
        number = self.passed + 1
        detail = Detail()
        try:
            async with asyncio.timeout(self.timeout):
                yield detail
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(number, title, reason(exc, self.timeout)) from exc
        self.passed = number
        self.report(number, title, detail.text)


class CheckFailed(Exception):
    """What the demo saw differs from what the protocol promises."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def reason(exc: BaseException, timeout: float) -> str:
    """One line a person can act on, for any failure a step can meet."""
    if isinstance(exc, TimeoutError):
        return f"nothing within {timeout:.0f} s (is every service running? see the log above)"
    if isinstance(exc, UnauthorizedError):
        return ("the notify server refused the admin token: pass the one `wcnotify up` printed "
                "(--admin-token or WCNOTIFY_ADMIN_TOKEN; it is also in DATA_DIR/admin-token)")
    if isinstance(exc, httpx.HTTPError):
        return f"{exc} ({type(exc).__name__}): is the server running at that URL?"
    if isinstance(exc, CheckFailed | UpError | DappApiError | WalletError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def short(value: str, keep: int = 16) -> str:
    return value if len(value) <= keep else value[:keep] + "…"


async def next_event(stream: EventStream, kind: type[E], when: Callable[[E], bool] = lambda _e: True) -> E:
    """The next event of ``kind`` that satisfies ``when`` (the step's timeout bounds the wait)."""
    while True:
        event = await stream.next()
        if isinstance(event, kind) and when(event):
            return event


async def next_webhook(queue: asyncio.Queue[SubscriptionEvent], name: spec.WebhookEvent) -> SubscriptionEvent:
    while True:
        event = await queue.get()
        if event.event == name:
            return event


# ------------------------------------------------------------------------------------------ the stack


async def reach(servers: Servers, detail: Detail) -> None:
    """A running stack answers: each service's /health, and the notify server's relay link is up."""
    names = {"notify server": servers.notify_url, "keys server": servers.keys_url,
             "relay": servers.relay_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)}
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        for name, url in names.items():
            try:
                response = await http.get(url.rstrip("/") + "/health")
            except httpx.HTTPError as exc:
                option = {"relay": "--relay-url", "keys server": "--keys-url"}.get(name, "--against")
                raise CheckFailed(f"cannot reach the {name} at {url} ({type(exc).__name__}): is `wcnotify up` "
                                  f"running? pass its URL with {option}, or run `wcnotify demo` alone to start "
                                  "a stack of its own") from exc
            check(response.status_code == 200, f"the {name} at {url} answered /health with {response.status_code}")
            if name == "notify server":
                check("relay link up" in response.text, f"the notify server at {url} has not reached its relay "
                      f"yet ({response.text.strip()!r}): wait a moment and run the demo again")
    detail.text = f"relay {servers.relay_url}, keys {servers.keys_url}, notify {servers.notify_url}"


@contextlib.asynccontextmanager
async def own_stack(workdir: Path, detail: Detail) -> AsyncIterator[Servers]:
    """A stack of the demo's own: ``wcnotify up`` on free ports, its data in ``workdir``."""
    data = DataDir.open(workdir / "stack")
    try:
        stack = EmbeddedStack(UpOptions(data.path, relay_port=0, keys_port=0, notify_port=0), data)
        async with stack:
            urls = stack.urls
            detail.text = f"relay {urls['relay']}, keys {urls['keys']}, notify {urls['notify']} (SQLite, temp dir)"
            yield Servers(urls["relay"], urls["keys"], urls["notify"], stack.admin_token)
    finally:
        data.close()


# -------------------------------------------------------------------------------------------- the story


@dataclass
class DappSite:
    """The dapp's website on a loopback port: its did.json (DidHost) and its webhook receiver, one site."""

    service: AsgiService
    host: DidHost

    @property
    def domain(self) -> str:
        return f"localhost:{self.service.port}"


async def claim_site(client: NotifyDappClient) -> tuple[DappSite, str]:
    """Bind a site on a free port and claim ``localhost:PORT`` as the project's app domain. A running stack
    may still hold that domain for an older demo's project (ports are reused): then take another port."""
    for _attempt in range(5):
        service = AsgiService(None, "127.0.0.1", 0, name="dapp site")
        domain = f"localhost:{service.port}"
        try:
            keys = await client.set_app_domain(domain)
        except ConflictError:
            service.sock.close()
            continue
        service.app = host = DidHost(client=client)
        return DappSite(service, host), keys.subscribe_key
    raise CheckFailed("five localhost ports in a row are app domains of other projects on this server")


@dataclass
class Dapp:
    """What the dapp has once it is set up: its API client, its site and what its webhook heard."""

    client: NotifyDappClient
    site: DappSite
    gm: NotificationType
    heard: asyncio.Queue[SubscriptionEvent]


@dataclass
class Devices:
    """The user's account and its two wallet devices."""

    account: str
    w1: NotifyClient
    wx: NotifyClient
    subscription: Subscription


async def dapp_sets_up(servers: Servers, story: Story, exits: contextlib.AsyncExitStack) -> Dapp:
    """A project, its app domain and did.json on the dapp's site, notification types, and a webhook."""
    async with story.step("the dapp creates a project") as detail:
        admin = await exits.enter_async_context(NotifyAdminClient(servers.notify_url, servers.admin_token))
        credentials = await admin.create_project("wcnotify demo", description="the dapp of `wcnotify demo`")
        client = admin.dapp_client(credentials)
        detail.text = f"project {credentials.project_id} (its secret stays with the dapp)"

    async with story.step("the dapp claims its app domain and serves did.json") as detail:
        site, subscribe_key = await claim_site(client)
        await exits.enter_async_context(site.service)
        url = f"http://{site.domain}{spec.DID_JSON_PATH}"
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            response = await http.get(url)
        check(response.status_code == 200, f"{url} answered {response.status_code}: {response.text[:200]}")
        keys = parse_did_document(response.json(), did_web(site.domain))
        check(keys.key_agreement.hex() == subscribe_key, "the served did.json has another key than the project's")
        detail.text = f"{keys.did} at {url}; wallets subscribe on {short(keys.subscribe_topic)}"

    async with story.step("the dapp adds notification types") as detail:
        gm = await client.add_notification_type("gm", "A greeting every morning")
        alerts = await client.add_notification_type("alerts", "Something needs your attention")
        detail.text = f"gm ({short(gm.id, 8)}), alerts ({short(alerts.id, 8)})"

    async with story.step("the dapp registers a webhook on its own site") as detail:
        hook_url = f"http://{site.domain}/hooks/notify"
        webhook = await client.create_webhook(hook_url)
        heard: asyncio.Queue[SubscriptionEvent] = asyncio.Queue()
        site.host.app = WebhookReceiver(webhook.secret, heard.put)  # every path but the did.json ones
        detail.text = f"{hook_url} for {', '.join(webhook.events)} (signed; WebhookReceiver checks each)"
    return Dapp(client, site, gm, heard)


async def devices_subscribe(servers: Servers, workdir: Path, story: Story, exits: contextlib.AsyncExitStack,
                            dapp: Dapp) -> Devices:
    """W1 registers and subscribes; Wx follows through Sync alone, then registers its own key."""
    eth = EthAccount.create()
    account = f"eip155:1:{eth.address}"

    async def device(name: str) -> NotifyClient:
        client = NotifyClient(workdir / f"{name}.db", relay_url=servers.relay_url, keys_server_url=servers.keys_url,
                              notify_server_url=servers.notify_url)
        return await exits.enter_async_context(client)

    async with story.step("wallet device W1 registers the account's identity key") as detail:
        w1 = await device("w1")
        registration = await w1.prepare_registration(account, WALLET_DOMAIN)
        await w1.register(registration, sign_eip191(registration.message, eth.key))  # the user's personal_sign
        detail.text = f"{short(account, 24)} signed a CACAO for {short(identity_key(registration.payload), 24)}"

    async with story.step("W1 subscribes to the app") as detail:
        sub = await w1.subscribe(account, dapp.site.domain, ["gm"])
        check(sub.scope == (dapp.gm.id,), f"subscribed to {sub.scope}, not to gm")
        check(sub.topic == topic_of(sub.sym_key), "the subscription topic is not sha256 of its key")
        detail.text = f"to gm; key P derived from Y and the server's Z, notify topic {short(sub.topic)}"

    async with story.step("W1 enables Sync") as detail:
        signature = sign_eip191(w1.sync.message(account), eth.key)  # signed once; every device may reuse it
        await w1.enable_sync(account, signature)
        stored = await w1.sync.items(account, spec.SYNC_STORE_PUSH_SUBSCRIPTION)
        check(sub.topic in stored, "W1 did not write its subscription to the Sync store")
        detail.text = f"its subscription is now in {spec.SYNC_STORE_PUSH_SUBSCRIPTION}"

    async with story.step("device Wx receives the subscription through Sync") as detail:
        wx = await device("wx")
        with wx.events() as events:
            await wx.enable_sync(account, signature)  # the same signature: the same stores
            if not await wx.subscriptions(account):
                await next_event(events, SubscriptionsChanged,
                                 lambda e: e.source == "sync" and any(s.topic == sub.topic for s in e.subscriptions))
        followed = await wx.subscriptions(account)
        check([(s.topic, s.sym_key) for s in followed] == [(sub.topic, sub.sym_key)],
              "Wx follows another subscription")
        check(not await wx.is_registered(account), "Wx has an identity key: it should have come through Sync only")
        detail.text = f"same topic {short(sub.topic)}, from the relay's mailbox; Wx has no identity key yet"

    async with story.step("Wx registers its own identity key") as detail:
        registration = await wx.prepare_registration(account, WALLET_DOMAIN)
        await wx.register(registration, sign_eip191(registration.message, eth.key))
        watched = await wx.subscriptions(account)
        check([s.topic for s in watched] == [sub.topic], f"watch reports {len(watched)} subscriptions, not 1")
        detail.text = ("now it can act, not only follow (a Sync-only device cannot unsubscribe); "
                       "watch reports the same subscription")
    return Devices(account, w1, wx, sub)


async def dapp_reaches_devices(story: Story, dapp: Dapp, devices: Devices) -> None:
    """The send reaches both devices, the webhook hears of the subscription, Wx unsubscribes, W1 sees it."""
    account, w1, wx, sub = devices.account, devices.w1, devices.wx, devices.subscription
    async with story.step("the dapp sends a notification; both devices show it") as detail:
        with w1.events() as e1, wx.events() as ex:
            result = await dapp.client.send(Notification(dapp.gm.id, "gm", "Your first notification"), [account])
            check(list(result.sent) == [account], f"sent to {result.sent}, failed {result.failed}, "
                  f"not found {result.not_found}")

            def mine(e: NotificationReceived) -> bool:  # (the wallet sees the server's message id, not the dapp's)
                return (e.notification.type, e.notification.title) == (dapp.gm.id, "gm")

            got1, gotx = await asyncio.gather(next_event(e1, NotificationReceived, mine),
                                              next_event(ex, NotificationReceived, mine))
        shown = got1.notification
        check(shown.id == gotx.notification.id and shown.body == gotx.notification.body, "the devices differ")
        detail.text = f"W1 and Wx: “{shown.title}: {shown.body}”, each verified against the app's key"

    async with story.step("the dapp's webhook is told: subscribed") as detail:
        event = await next_webhook(dapp.heard, spec.WebhookEvent.SUBSCRIBED)
        check(event.account.lower() == account.lower(), f"the event is about {event.account}")
        check(event.notification_types == (dapp.gm.id,), f"the event lists types {event.notification_types}")
        detail.text = f"{short(event.account, 24)} to gm (signature and timestamp checked)"

    async with story.step("Wx unsubscribes; W1 sees it disappear") as detail:
        with w1.events() as events:
            await wx.delete(dapp.site.domain)
            change = await next_event(events, SubscriptionsChanged,
                                      lambda e: all(s.topic != sub.topic for s in e.subscriptions))
        left = await w1.subscriptions(account)
        check(all(s.topic != sub.topic for s in left), "W1 still holds the subscription")
        through = {"watch": "watch (wc_notifySubscriptionsChanged)", "sync": "Sync (wc_syncDel)"}
        detail.text = f"W1 heard it first through {through.get(change.source, change.source)}; {len(left)} left"

    async with story.step("the dapp's webhook is told: unsubscribed") as detail:
        event = await next_webhook(dapp.heard, spec.WebhookEvent.UNSUBSCRIBED)
        check(event.account.lower() == account.lower(), f"the event is about {event.account}")
        still = await dapp.client.lookup_subscribers([account])
        check(not still, f"the server still lists {account} as a subscriber")
        detail.text = f"{short(event.account, 24)} left; the server lists no subscriber any more"


async def run(report: Report, *, servers: Servers | None = None, timeout: float = STEP_TIMEOUT) -> int:
    """Play the story (on its own stack unless ``servers``); the number of steps, or :class:`StepFailed`.

    Closing the wallets, the site and the stack is bounded too, and a failure there is reported like a step's.
    """
    story = Story(report, timeout=timeout)
    try:
        with tempfile.TemporaryDirectory(prefix="wcnotify-demo-") as tmp:
            workdir = Path(tmp)
            async with asyncio.timeout(timeout * 20), contextlib.AsyncExitStack() as exits:
                if servers is None:
                    async with story.step("relay, keys server and notify server start") as detail:
                        servers = await exits.enter_async_context(own_stack(workdir, detail))
                else:
                    async with story.step("the running stack answers") as detail:
                        await reach(servers, detail)
                dapp = await dapp_sets_up(servers, story, exits)
                devices = await devices_subscribe(servers, workdir, story, exits, dapp)
                await dapp_reaches_devices(story, dapp, devices)
    except StepFailed:
        raise
    except Exception as exc:
        if isinstance(exc.__context__, StepFailed):  # the clean-up after a failed step failed too: the step first
            raise exc.__context__ from exc
        raise StepFailed(story.passed + 1, "clean up (wallets, dapp site, stack)", reason(exc, timeout)) from exc
    return story.passed


def main(report: Report, *, servers: Servers | None = None, timeout: float = STEP_TIMEOUT) -> tuple[int, float]:
    """Run the demo on a fresh event loop: (steps passed, seconds). Raises :class:`StepFailed`."""
    began = time.monotonic()
    passed = event_loop.run(run(report, servers=servers, timeout=timeout))
    return passed, time.monotonic() - began


__all__ = ["STEP_TIMEOUT", "Servers", "StepFailed", "main", "run"]

