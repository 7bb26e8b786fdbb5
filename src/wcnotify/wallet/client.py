"""``NotifyClient``: the wallet SDK. One device, any number of accounts, state in one SQLite file.

How it works, and the rules it keeps:

* **One relay connection** for everything: subscription topics, the watch topic of each registered account,
  the reply topics of pending type-1 requests, Sync store topics and pairing topics. Each topic has a
  *route* (its sym key and a handler). The relay client key is kept in the wallet file, so the relay's
  per-client acknowledgements survive restarts.
* **Nothing acknowledged is lost.** The relay client acknowledges a message when the ``on_message`` callback
  returns, so a notification is verified and written to the file *inside* that callback. Work that needs the
  relay again (answering, subscribing to a new topic) must not run there (the callback runs on the
  connection's reader, which would then wait for itself): it goes to one ordered work queue.
* **Trust nothing unverified.** A notification is shown only if its ``messageAuth`` verifies against the
  subscription's ``appAuthenticationKey`` and names this account and app (the JS client checks only ``act``).
  Answers from the notify server must be signed by the key the request was addressed to. A subscription's
  key is derived here from Y and the server's Z (the seed protocol) and must equal ``sbs.symKey``.
* **Shown once.** Notifications are de-duplicated by ``msg.id`` (the file's primary key), so the relay
  delivering a message twice, or history returning one already received, shows it once.
* **Kept fresh.** ``watch_subscriptions`` (the final protocol's multi-device mechanism) is called at
  registration and start, again after a relay reconnect, and at least every ``WALLET_WATCH_REFRESH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from wcnotify import spec
from wcnotify.keys.client import KeysClient, KeysClientError
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.cacao import (
    Cacao,
    CacaoError,
    CacaoPayload,
    prepare_registration,
    sign_eip191,
    siwe_message,
    verify_cacao,
)
from wcnotify.protocol.crypto import (
    CryptoError,
    Ed25519KeyPair,
    X25519KeyPair,
    decrypt,
    derive_sym_key,
    encode_type0,
    encode_type1,
    topic_of,
)
from wcnotify.protocol.did import (
    Account,
    DidError,
    DidWebKeys,
    did_web,
    did_web_domain,
    encode_did_key,
    parse_did_document,
)
from wcnotify.protocol.jwt import (
    JwtError,
    NotifyClaims,
    NotifyDeleteClaims,
    NotifyDeleteResponseClaims,
    NotifyGetNotificationsClaims,
    NotifyGetNotificationsResponseClaims,
    NotifyMarkNotificationsAsReadClaims,
    NotifyMarkNotificationsAsReadResponseClaims,
    NotifyMessageClaims,
    NotifyMessageResponseClaims,
    NotifySubscriptionClaims,
    NotifySubscriptionResponseClaims,
    NotifySubscriptionsChangedClaims,
    NotifyUpdateClaims,
    NotifyUpdateResponseClaims,
    NotifyWatchSubscriptionsClaims,
    NotifyWatchSubscriptionsResponseClaims,
)
from wcnotify.relay.client import RelayClient, RelayClientError, RelayMessage
from wcnotify.wallet.models import (
    App,
    MalformedEntryError,
    Notification,
    NotificationReceived,
    NotificationRejected,
    NotificationType,
    Subscription,
    SubscriptionsChanged,
    WalletError,
    WalletEvent,
    canonical_account,
    parse_types,
)
from wcnotify.wallet.proposals import Proposals
from wcnotify.wallet.resolver import DidResolver, HttpDidResolver
from wcnotify.wallet.store import WalletStore
from wcnotify.wallet.sync import SyncStores

log = logging.getLogger("wcnotify.wallet")

C = TypeVar("C", bound=NotifyClaims)

# A route handler sees every request published on its topic (already decrypted and parsed). It runs inside
# the relay's reader: it may write to the wallet file, and hands anything that talks to the relay to
# ``NotifyClient.defer``.
RouteHandler = Callable[[RelayMessage, jsonrpc.Request], Awaitable[None]]


# ----------------------------------------------------------------------------------------- errors


class NotRegisteredError(WalletError):
    """The account has no registered identity key on this device; call ``register`` first."""


class UnknownSubscriptionError(WalletError):
    """No subscription with that topic (or app) on this device."""


class UnknownTypeError(WalletError):
    """The app has no notification type with that name or id."""


class RequestRefusedError(WalletError):
    """The notify server answered the request with an error; ``message`` is its explanation."""

    def __init__(self, message: str, code: int = spec.NotifyError.CLIENT) -> None:
        super().__init__(f"the notify server refused: {message}")
        self.message = message
        self.code = code


class NoAnswerError(WalletError):
    """No answer within the timeout: the notify server or the relay is down or unreachable."""


class ForgedAnswerError(WalletError):
    """An answer did not verify (wrong signer, audience, account or key): it was ignored."""


class NotifyServerError(WalletError):
    """The notify server's HTTP API could not be used (unreachable, or answered something unexpected)."""


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Registration:
    """What the user must sign to register this device's identity key for ``account``."""

    account: str
    message: str  # the SIWE text; sign it with EIP-191 (personal_sign)
    payload: CacaoPayload = dataclasses.field(repr=False)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    notifications: tuple[Notification, ...]
    has_more: bool
    has_more_unread: bool


@dataclass(slots=True)
class _Route:
    key: bytes
    handler: RouteHandler | None = None


class EventStream:
    """Events from the moment the stream was created; ``async for`` it or ``await next(timeout)``."""

    def __init__(self, owner: set[asyncio.Queue[WalletEvent]]) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[WalletEvent] = asyncio.Queue()
        owner.add(self._queue)

    async def next(self, timeout: float | None = None) -> WalletEvent:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def close(self) -> None:
        self._owner.discard(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> WalletEvent:
        return await self._queue.get()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------- client


class NotifyClient:
    """A wallet device. ``async with NotifyClient(path, relay_url=…, keys_server_url=…, notify_server_url=…)``."""

    def __init__(
        self,
        path: str | Path,
        *,
        relay_url: str,
        keys_server_url: str,
        notify_server_url: str,
        resolver: DidResolver | None = None,
        http: httpx.AsyncClient | None = None,
        history_cap: int = spec.WALLET_HISTORY_CAP,
        response_timeout: float = spec.WALLET_RESPONSE_TIMEOUT,
        watch_refresh: float = spec.WALLET_WATCH_REFRESH,
        keeper_interval: float = spec.WALLET_KEEPER_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.relay_url = relay_url
        self.keys_server_url = keys_server_url.rstrip("/")
        self.notify_server_url = notify_server_url.rstrip("/")
        self.history_cap = history_cap
        self.response_timeout = response_timeout
        # the keeper renews a watch older than ``watch_refresh`` (the server drops a watcher after a day) or from
        # an earlier relay connection, checking every ``keeper_interval``; tests shorten both
        self.watch_refresh = watch_refresh
        self.keeper_interval = keeper_interval
        self.clock = clock
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=10, trust_env=False)
        self.resolver: DidResolver = resolver or HttpDidResolver(self.http)
        self._store: WalletStore | None = None
        self._relay: RelayClient | None = None
        self._routes: dict[str, _Route] = {}
        self._pending: dict[jsonrpc.JsonRpcId, asyncio.Future[jsonrpc.Result | jsonrpc.Error]] = {}
        self._ids = jsonrpc.PayloadIds(int.from_bytes(os.urandom(2)) % 1000)
        self._listeners: set[asyncio.Queue[WalletEvent]] = set()
        self._work: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._server_keys: DidWebKeys | None = None
        self._watched: dict[str, tuple[float, int]] = {}  # account -> (when, relay connection number)
        self._types: dict[str, tuple[NotificationType, ...]] = {}  # app domain -> its types (from the server)
        # hooks (the Sync stores use them): after this device subscribes or updates, and after it deletes
        self.after_subscribe: list[Callable[[Subscription], Awaitable[None]]] = []
        self.after_delete: list[Callable[[Subscription], Awaitable[None]]] = []
        self.sync = SyncStores(self)
        self.proposals = Proposals(self)

    # ------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> NotifyClient:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def store(self) -> WalletStore:
        if self._store is None:
            raise WalletError("the client is not started: use `async with NotifyClient(...)` or await start()")
        return self._store

    @property
    def relay(self) -> RelayClient:
        if self._relay is None:
            raise WalletError("the client is not started: use `async with NotifyClient(...)` or await start()")
        return self._relay

    async def start(self) -> None:
        """Open the wallet file, connect to the relay, re-subscribe every known topic and renew watches."""
        self._store = await WalletStore.open(self.path, history_cap=self.history_cap)
        stored = await self._store.get_key("relay")
        if stored is None:
            seed = os.urandom(32)
            await self._store.put_key("relay", seed)
        else:
            seed = stored[0]
        self._relay = RelayClient(self.relay_url, Ed25519KeyPair.from_seed(seed), on_message=self._on_message)
        try:
            await self._relay.connect()
        except (OSError, RelayClientError) as exc:
            await self._store.close()
            raise WalletError(f"cannot connect to the relay at {self.relay_url}: {exc}") from exc
        self._tasks.append(asyncio.create_task(self._worker()))
        for sub in await self._store.subscriptions():
            self._routes[sub.topic] = _Route(sub.sym_key, self._on_subscription_request)
        await self._subscribe_topics(list(self._routes))
        await self.sync.resume()
        await self.proposals.resume()
        for account in await self.accounts():
            try:
                await self.watch_subscriptions(account)
            except WalletError as exc:  # a notify server that is down must not keep the wallet from starting
                log.warning("watching %s failed, will retry: %s", account, exc)
        self._tasks.append(asyncio.create_task(self._keeper()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._relay is not None:
            await self._relay.close()
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._own_http:
            await self.http.aclose()

    def events(self) -> EventStream:
        """A stream of :data:`WalletEvent` from now on (each stream gets every event)."""
        return EventStream(self._listeners)

    def emit(self, event: WalletEvent) -> None:
        for queue in list(self._listeners):
            queue.put_nowait(event)

    def defer(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` on the ordered work queue (for route handlers, which must not wait on the relay)."""
        self._work.put_nowait(job)

    async def _worker(self) -> None:
        while True:
            job = await self._work.get()
            try:
                await job()
            except Exception:  # one failed job must not stop the queue
                log.exception("wallet background job failed")

    async def _keeper(self) -> None:
        while True:
            await asyncio.sleep(self.keeper_interval)
            for account in await self.accounts():
                when, connection = self._watched.get(account, (0.0, -1))
                stale = self.clock() - when > self.watch_refresh
                if stale or connection != self.relay.connects:
                    try:
                        await self.watch_subscriptions(account)
                    except WalletError as exc:
                        log.warning("renewing the watch of %s failed: %s", account, exc)

    # ------------------------------------------------------------------------------------- routing

    async def route(self, topic: str, key: bytes, handler: RouteHandler | None = None) -> None:
        """Receive ``topic`` (type 0/1 under ``key``): answers resolve pending requests, requests go to ``handler``."""
        known = topic in self._routes
        self._routes[topic] = _Route(key, handler)
        if not known or topic not in self.relay.topics:
            await self._subscribe_topics([topic])

    async def listen(self, sub: Subscription) -> None:
        """Receive the notifications of ``sub`` (a subscription already in the wallet file)."""
        await self.route(sub.topic, sub.sym_key, self._on_subscription_request)

    async def unroute(self, topic: str) -> None:
        if self._routes.pop(topic, None) is not None and topic in self.relay.topics:
            with contextlib.suppress(RelayClientError):
                await self.relay.unsubscribe(topic)

    async def _subscribe_topics(self, topics: Sequence[str]) -> None:
        missing = [t for t in topics if t not in self.relay.topics]
        for start in range(0, len(missing), spec.RELAY_BATCH_MAX):
            await self.relay.batch_subscribe(missing[start : start + spec.RELAY_BATCH_MAX])

    async def _on_message(self, message: RelayMessage) -> None:
        route = self._routes.get(message.topic)
        if route is None:
            return
        try:
            parsed = jsonrpc.parse_message(decrypt(message.message, route.key))
        except (CryptoError, jsonrpc.JsonRpcError) as exc:
            log.warning("unreadable message on %s…: %s", message.topic[:12], exc)
            return
        if isinstance(parsed, jsonrpc.Request):
            if route.handler is not None:
                await route.handler(message, parsed)
            return
        future = self._pending.pop(parsed.id, None) if parsed.id is not None else None
        if future is not None and not future.done():
            future.set_result(parsed)

    def next_id(self) -> int:
        return self._ids.next(int(self.clock() * 1000))

    async def request(
        self,
        rpc: spec.RpcSpec,
        token: str,
        *,
        topic: str,
        key: bytes | None = None,
        receiver: bytes | None = None,
        sender: X25519KeyPair | None = None,
    ) -> str:
        """Publish ``{params_key: token}`` and return the answer's JWT (``result_key``).

        Type 1 to ``receiver`` (the answer comes on sha256 of the derived key, routed for the wait unless it
        already is), or type 0 under ``key`` on ``topic`` (the answer comes on the same topic).
        """
        assert rpc.params_key is not None and rpc.result_key is not None
        request = jsonrpc.Request(self.next_id(), rpc.method, {rpc.params_key: token})
        temporary = None
        if receiver is not None:
            sender = sender or X25519KeyPair.generate()
            key = derive_sym_key(sender.private_key, receiver)
            message = encode_type1(key, sender.public_key, jsonrpc.encode(request))
            reply_topic = topic_of(key)
            if reply_topic not in self._routes:
                temporary = reply_topic
                await self.route(reply_topic, key)
        else:
            assert key is not None
            message = encode_type0(key, jsonrpc.encode(request))
        future: asyncio.Future[jsonrpc.Result | jsonrpc.Error] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            await self.relay.publish(topic, message, ttl=rpc.request_ttl, tag=rpc.request_tag, prompt=rpc.prompt)
            answer = await asyncio.wait_for(future, self.response_timeout)
        except TimeoutError:
            raise NoAnswerError(
                f"{rpc.method}: no answer from the notify server within {self.response_timeout} s"
            ) from None
        except RelayClientError as exc:
            raise NoAnswerError(f"{rpc.method}: the relay did not take the request: {exc}") from exc
        finally:
            self._pending.pop(request.id, None)
            if temporary is not None:
                await self.unroute(temporary)
        if isinstance(answer, jsonrpc.Error):
            raise RequestRefusedError(answer.message, answer.code)
        result = answer.result
        if not isinstance(result, dict) or not isinstance(result.get(rpc.result_key), str):
            raise ForgedAnswerError(f"{rpc.method}: the answer has no {rpc.result_key}")
        token_out: str = result[rpc.result_key]
        return token_out

    # ------------------------------------------------------------------------------------ identity

    async def accounts(self) -> list[str]:
        """Accounts with a registered identity key on this device."""
        return [name.removeprefix("identity:") for name, _, info in await self.store.keys_with_prefix("identity:")
                if info.get("registered")]

    async def _identity(self, account: str, *, registered: bool = True) -> tuple[Ed25519KeyPair, dict[str, Any]]:
        stored = await self.store.get_key(f"identity:{account}")
        if stored is None or (registered and not stored[1].get("registered")):
            raise NotRegisteredError(f"{account} is not registered on this device: call register() first")
        return Ed25519KeyPair.from_seed(stored[0]), stored[1]

    async def prepare_registration(self, account: str, domain: str, *, all_apps: bool = True) -> Registration:
        """The SIWE message the user signs to let this device's identity key act for ``account``.

        ``all_apps``: one signature covers every app (what a wallet inbox wants); otherwise only ``domain``.
        """
        account = canonical_account(account)
        stored = await self.store.get_key(f"identity:{account}")
        seed = stored[0] if stored is not None else os.urandom(32)
        info = {"domain": domain, "all_apps": all_apps, "registered": bool(stored and stored[1].get("registered"))}
        await self.store.put_key(f"identity:{account}", seed, info)
        payload = prepare_registration(
            account=Account.parse(account), domain=domain,
            identity_public_key=Ed25519KeyPair.from_seed(seed).public_key, keys_server_url=self.keys_server_url,
            all_apps=all_apps, nonce=os.urandom(16).hex(), now=self.clock(),
        )
        return Registration(account, siwe_message(payload), payload)

    async def register(self, registration: Registration, signature: str) -> None:
        """Send the signed CACAO to the keys server, then start watching the account's subscriptions."""
        cacao = Cacao(registration.payload, signature)
        try:
            verify_cacao(cacao, now=int(self.clock()))
        except CacaoError as exc:
            raise WalletError(f"the signature does not register {registration.account}: {exc}") from exc
        try:
            async with KeysClient(self.keys_server_url, http=self.http) as keys:
                await keys.register(cacao)
        except KeysClientError as exc:
            raise WalletError(f"the keys server refused the registration: {exc}") from exc
        stored = await self.store.get_key(f"identity:{registration.account}")
        assert stored is not None
        await self.store.put_key(f"identity:{registration.account}", stored[0], {**stored[1], "registered": True})
        await self.watch_subscriptions(registration.account)

    async def register_with_key(
        self, account: str, private_key: bytes | str, domain: str, *, all_apps: bool = True
    ) -> None:
        """Register with a raw secp256k1 key (eth-account signs); for wallets that hold the key themselves."""
        registration = await self.prepare_registration(account, domain, all_apps=all_apps)
        await self.register(registration, sign_eip191(registration.message, private_key))

    async def is_registered(self, account: str) -> bool:
        return canonical_account(account) in await self.accounts()

    async def unregister(self, account: str) -> None:
        """Withdraw the identity key at the keys server and forget the account on this device."""
        account = canonical_account(account)
        identity, _ = await self._identity(account)
        try:
            async with KeysClient(self.keys_server_url, http=self.http) as keys:
                await keys.unregister_key(identity, Account.parse(account), now=int(self.clock()))
        except KeysClientError as exc:
            if exc.status != 404:
                raise WalletError(f"the keys server refused to unregister: {exc}") from exc
        for sub in await self.store.subscriptions(account):
            await self.unroute(sub.topic)
        watch = await self.store.get_key(f"watch:{account}")
        if watch is not None and self._server_keys is not None:
            await self.unroute(topic_of(derive_sym_key(watch[0], self._server_keys.key_agreement)))
        self._watched.pop(account, None)
        await self.store.forget_account(account)

    def _claims(self, identity: Ed25519KeyPair, account: str, ttl: int) -> dict[str, Any]:
        """Shared claims. ``jti`` makes every request unique: EdDSA is deterministic, so two equal requests in
        one second (subscribe, delete, subscribe again) would otherwise be the same JWT, which the server
        applies only once (a replay defence)."""
        now = int(self.clock())
        return {"iat": now, "exp": now + ttl, "iss": encode_did_key(identity.public_key),
                "sub": Account.parse(account).did_pkh, "ksu": self.keys_server_url,
                "extra": {"jti": os.urandom(16).hex()}}

    # ------------------------------------------------------------------------------ notify server

    async def _get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        url = self.notify_server_url + path
        try:
            response = await self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise NotifyServerError(f"cannot reach the notify server at {self.notify_server_url}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise NotifyServerError(f"GET {url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise NotifyServerError(f"GET {url} did not answer JSON") from exc

    async def server_keys(self) -> DidWebKeys:
        """The notify server's own keys (its did.json), for watching subscriptions."""
        if self._server_keys is None:
            document = await self._get_json(spec.DID_JSON_PATH)
            if document is None:
                raise NotifyServerError(f"{self.notify_server_url} publishes no {spec.DID_JSON_PATH}")
            try:
                self._server_keys = parse_did_document(document)
            except DidError as exc:
                raise NotifyServerError(f"the notify server's did.json is invalid: {exc}") from exc
        return self._server_keys

    async def app_types(self, domain: str) -> tuple[NotificationType, ...]:
        """The app's notification types, from the notify server (``/w3i/v1/notify-config``)."""
        if domain not in self._types:
            answer = await self._get_json("/w3i/v1/notify-config", {"appDomain": domain})
            if answer is None:
                raise UnknownTypeError(f"the notify server knows no app at {domain!r}, so not its types")
            try:
                self._types[domain] = parse_types((answer.get("data") or {}).get("notificationTypes"))
            except (AttributeError, MalformedEntryError) as exc:
                raise NotifyServerError(f"the notify config of {domain} is malformed: {exc}") from exc
        return self._types[domain]

    async def _type_ids(self, domain: str, types: Iterable[str] | None, known: Sequence[NotificationType] = ()
                        ) -> list[str]:
        known = known or await self.app_types(domain)
        if types is None:
            return sorted(t.id for t in known)
        by_name = {t.name: t.id for t in known} | {t.id: t.id for t in known}
        out = set()
        for wanted in types:
            if wanted not in by_name:
                names = ", ".join(sorted(t.name for t in known)) or "none"
                raise UnknownTypeError(f"{domain} has no notification type {wanted!r}; its types: {names}")
            out.add(by_name[wanted])
        return sorted(out)

    async def apps(self, query: str | None = None) -> list[App]:
        """Apps listed in the notify server's registry (all pages, up to ``WALLET_REGISTRY_MAX``)."""
        apps: list[App] = []
        cursor = None
        while len(apps) < spec.WALLET_REGISTRY_MAX:
            params: dict[str, Any] = {"limit": spec.WALLET_REGISTRY_PAGE}
            if query:
                params["q"] = query
            if cursor:
                params["cursor"] = cursor
            page = await self._get_json("/v1/apps", params)
            if not isinstance(page, dict) or not isinstance(page.get("apps"), list):
                raise NotifyServerError("the notify server's /v1/apps answered something that is not a page")
            for entry in page["apps"]:
                try:
                    app = App.from_registry(entry)
                except MalformedEntryError as exc:
                    log.warning("skipping a malformed registry entry: %s", exc)
                    continue
                self._types[app.domain] = app.types
                apps.append(app)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return apps

    # ---------------------------------------------------------------------------------- subscribe

    async def subscribe(self, account: str, app: str | App, types: Iterable[str] | None = None) -> Subscription:
        """Subscribe ``account`` to an app (a domain, or an :class:`App` from :meth:`apps`).

        ``types``: names or ids; None means all of the app's types. Returns the new subscription, already
        receiving. The seed's steps: resolve did:web (X, A); Y fresh; S = DH(Y, X); listen on sha256(S);
        send the type-1 ``wc_notifySubscribe``; check the answer is signed by A for us; P = DH(Y, Z) must
        equal ``sbs.symKey``; listen on sha256(P).
        """
        subscription, _token = await self.subscribe_with_auth(account, app, types)
        return subscription

    async def subscribe_with_auth(
        self, account: str, app: str | App, types: Iterable[str] | None = None
    ) -> tuple[Subscription, str]:
        """:meth:`subscribe`, also returning the ``subscriptionAuth`` JWT sent (a proposal's approval carries it)."""
        account = canonical_account(account)
        identity, _ = await self._identity(account)
        if isinstance(app, App):
            domain, keys, known = app.domain, app.keys, app.types
        else:
            domain = app.lower()
            keys, known = await self.resolver.resolve(domain), ()
        scope = await self._type_ids(domain, types, known)
        y = X25519KeyPair.generate()
        claims = NotifySubscriptionClaims(
            **self._claims(identity, account, spec.NOTIFY_SUBSCRIBE.request_ttl),
            aud=keys.authentication_did_key, app=did_web(domain), scp=" ".join(scope),
        )
        subscription_auth = claims.sign(identity)
        token = await self.request(spec.NOTIFY_SUBSCRIBE, subscription_auth, topic=keys.subscribe_topic,
                                   receiver=keys.key_agreement, sender=y)
        answer = self._verify(NotifySubscriptionResponseClaims, token, identity, keys.authentication_did_key, account)
        entries = self._entries(answer.sbs, account)
        mine = next((s for s in entries if s.app_domain == domain), None)
        if mine is None:
            raise ForgedAnswerError(f"the subscribe answer lists no subscription to {domain}")
        if mine.app_authentication_key != keys.authentication_did_key:
            raise ForgedAnswerError("the subscribe answer names another authentication key than the app's did.json")
        # The seed protocol's check: P = HKDF(DH(Y, Z)) must be the symKey the answer lists. The server sends Z
        # only when it creates the subscription. Without Z the check cannot run, and that is legitimate in two
        # cases: the account was already subscribed (the server renews that subscription and keeps its key,
        # derived from another request's Y, maybe another device's: notify/handlers.py _write_subscribe), and
        # the final reference server, which draws the key from a random secret and never sends Z
        # (protocol.md §8 Subscribe). The answer is still signed by the app's key for us, checked above, and
        # the topic is derived from symKey (Subscription.from_sbs). A Z that is present must match.
        z = answer.extra.get(spec.NOTIFY_SUBSCRIBE_KEY_CLAIM)
        if z is not None and not isinstance(z, str):
            raise ForgedAnswerError("the subscribe answer's publicKey is not a hex string")
        if isinstance(z, str):
            try:
                derived = derive_sym_key(y.private_key, bytes.fromhex(z))
            except (ValueError, CryptoError) as exc:
                raise ForgedAnswerError(f"the subscribe answer's publicKey is not an X25519 key: {exc}") from exc
            if derived != mine.sym_key:
                raise ForgedAnswerError("the subscription key is not the one derived from Y and the server's Z")
        await self._apply(account, [s for s in entries if s.app_domain == domain], app_domain=domain,
                          source="subscribe")
        for hook in self.after_subscribe:
            await hook(mine)
        return mine, subscription_auth

    def _verify(self, kind: type[C], token: str, identity: Ed25519KeyPair, signer: str, account: str) -> C:
        """Verify an answer's JWT: signed by ``signer``, addressed to our identity key, about ``account``."""
        try:
            claims = kind.verify(token, now=int(self.clock()), aud=encode_did_key(identity.public_key))
            same = Account.from_did_pkh(claims.sub).same_address(Account.parse(account))
        except (JwtError, DidError) as exc:
            raise ForgedAnswerError(f"the answer does not verify: {exc}") from exc
        if claims.iss != signer:
            raise ForgedAnswerError(f"the answer is signed by {claims.iss[:60]}, not by {signer[:60]}")
        if not same:
            raise ForgedAnswerError("the answer is about another account")
        return claims

    def _entries(self, sbs: list[dict[str, Any]], account: str) -> list[Subscription]:
        out = []
        for entry in sbs:
            try:
                sub = Subscription.from_sbs(entry)
            except MalformedEntryError as exc:
                log.warning("ignoring a malformed subscription entry: %s", exc)
                continue
            if Account.parse(sub.account).same_address(Account.parse(account)):
                out.append(dataclasses.replace(sub, account=account))
        return out

    async def _apply(self, account: str, subscriptions: Sequence[Subscription], *, app_domain: str | None,
                     source: str, announce: bool = False) -> None:
        """Make the account's subscriptions (of one app, or all) these; follow added topics, drop removed ones."""
        before = {s.topic: s for s in await self.store.subscriptions(account)}
        added, removed = await self.store.replace_subscriptions(account, subscriptions, app_domain=app_domain)
        for sub in subscriptions:
            self._routes[sub.topic] = _Route(sub.sym_key, self._on_subscription_request)
        await self._subscribe_topics([s.topic for s in added])
        for sub in removed:
            await self.unroute(sub.topic)
        changed = added or removed or any(before.get(s.topic) != s for s in subscriptions)
        if changed and announce:
            self.emit(SubscriptionsChanged(account, tuple(await self.store.subscriptions(account)), source))

    async def subscriptions(self, account: str | None = None) -> list[Subscription]:
        return await self.store.subscriptions(None if account is None else canonical_account(account))

    async def subscription(self, topic_or_domain: str, account: str | None = None) -> Subscription:
        """One subscription by topic, or by app domain (with ``account`` when several accounts have one)."""
        for sub in await self.subscriptions(account):
            if topic_or_domain in (sub.topic, sub.app_domain):
                return sub
        raise UnknownSubscriptionError(f"no subscription {topic_or_domain[:64]!r} on this device")

    async def _call(self, sub: Subscription, rpc: spec.RpcSpec, kind: Any, claims_type: Any, **claims: Any) -> Any:
        """Send a request about ``sub`` on its topic, signed by this device's identity key; the verified answer.

        A device that learned the subscription through Sync only holds its key (enough to receive), not an
        identity key: the server accepts update, delete, history and read requests only when signed by a key
        the keys server vouches for, so such a device must register before it can act on the subscription."""
        try:
            identity, _ = await self._identity(sub.account)
        except NotRegisteredError:
            raise NotRegisteredError(
                f"{sub.account} is not registered on this device (it follows {sub.app_domain} through Sync only): "
                f"{rpc.method} must be signed by a registered identity key, so call register() on this device first"
            ) from None
        request = claims_type(**self._claims(identity, sub.account, rpc.request_ttl), aud=sub.app_authentication_key,
                              app=sub.app, **claims)
        token = await self.request(rpc, request.sign(identity), topic=sub.topic, key=sub.sym_key)
        return self._verify(kind, token, identity, sub.app_authentication_key, sub.account)

    async def update(self, topic_or_domain: str, types: Iterable[str], *, account: str | None = None) -> Subscription:
        """Change which notification types the subscription receives (names or ids; the full new set)."""
        sub = await self.subscription(topic_or_domain, account)
        scope = await self._type_ids(sub.app_domain, types, self._types.get(sub.app_domain, ()))
        answer = await self._call(sub, spec.NOTIFY_UPDATE, NotifyUpdateResponseClaims, NotifyUpdateClaims,
                                  scp=" ".join(scope))
        entries = [s for s in self._entries(answer.sbs, sub.account) if s.app_domain == sub.app_domain]
        await self._apply(sub.account, entries, app_domain=sub.app_domain, source="update")
        updated = await self.subscription(sub.topic)
        for hook in self.after_subscribe:
            await hook(updated)
        return updated

    async def delete(self, topic_or_domain: str, *, account: str | None = None) -> None:
        """Unsubscribe: the server forgets the subscription (and tells the dapp); this device stops listening."""
        sub = await self.subscription(topic_or_domain, account)
        answer = await self._call(sub, spec.NOTIFY_DELETE, NotifyDeleteResponseClaims, NotifyDeleteClaims)
        entries = [s for s in self._entries(answer.sbs, sub.account)
                   if s.app_domain == sub.app_domain and s.topic != sub.topic]
        await self._apply(sub.account, entries, app_domain=sub.app_domain, source="delete")
        for hook in self.after_delete:
            await hook(sub)

    # ------------------------------------------------------------------------------- notifications

    async def _on_subscription_request(self, message: RelayMessage, request: jsonrpc.Request) -> None:
        """A request on a subscription topic: a notification from the server (other devices' update or delete
        requests on the shared topic are not for us)."""
        if request.method != spec.NOTIFY_MESSAGE.method and message.tag != spec.NOTIFY_MESSAGE.request_tag:
            return
        sub = await self.store.subscription(message.topic)
        if sub is None:
            return
        token = request.params.get("messageAuth") if isinstance(request.params, dict) else None
        try:
            if not isinstance(token, str):
                raise WalletError("wc_notifyMessage has no messageAuth")
            claims = NotifyMessageClaims.verify(token, now=int(self.clock()))
            if claims.iss != sub.app_authentication_key:
                raise WalletError(f"signed by {claims.iss[:60]}, not by the app's key {sub.app_authentication_key}")
            if not Account.from_did_pkh(claims.sub).same_address(Account.parse(sub.account)):
                raise WalletError("addressed to another account")
            if did_web_domain(claims.app) != sub.app_domain:
                raise WalletError(f"claims to come from {claims.app[:80]}, not {sub.app}")
            notification = Notification.from_msg(claims.msg, topic=sub.topic, account=sub.account,
                                                 app_domain=sub.app_domain)
        except (WalletError, JwtError, DidError) as exc:
            log.warning("dropped a notification on %s… from %s: %s", sub.topic[:12], sub.app_domain, exc)
            self.emit(NotificationRejected(sub.topic, sub.app_domain, str(exc)))
            return
        if await self.store.add_notification(notification):
            self.emit(NotificationReceived(notification))
        self.defer(lambda: self._acknowledge(sub, request.id))

    async def _acknowledge(self, sub: Subscription, request_id: jsonrpc.JsonRpcId) -> None:
        """``notify_message_response``: the protocol's receipt (the final server ignores it; older ones did not).

        A device that only follows the account through Sync has no identity key to sign one with."""
        try:
            identity, _ = await self._identity(sub.account)
        except NotRegisteredError:
            return
        rpc = spec.NOTIFY_MESSAGE
        assert rpc.response_ttl is not None and rpc.response_tag is not None and rpc.result_key is not None
        claims = NotifyMessageResponseClaims(**self._claims(identity, sub.account, rpc.response_ttl),
                                             aud=sub.app_authentication_key, app=sub.app)
        reply = jsonrpc.Result(request_id, {rpc.result_key: claims.sign(identity)})
        await self.relay.publish(sub.topic, encode_type0(sub.sym_key, jsonrpc.encode(reply)),
                                 ttl=rpc.response_ttl, tag=rpc.response_tag)

    async def notifications(self, topic_or_domain: str | None = None, *, account: str | None = None,
                            limit: int = 50, unread_only: bool = False) -> list[Notification]:
        """The local inbox, newest first (of one subscription, or of every one)."""
        topic = None
        if topic_or_domain is not None:
            topic = (await self.subscription(topic_or_domain, account)).topic
        return await self.store.notifications(topic, account=None if account is None else canonical_account(account),
                                              limit=limit, unread_only=unread_only)

    async def history(self, topic_or_domain: str, *, account: str | None = None, limit: int = 50,
                      after: str | None = None, unread_first: bool = True) -> HistoryPage:
        """A page of the server's history (``after``: the last id of the previous page); kept locally too."""
        sub = await self.subscription(topic_or_domain, account)
        limit = max(1, min(limit, spec.NOTIFY_HISTORY_MAX_LIMIT))
        answer = await self._call(sub, spec.NOTIFY_GET_NOTIFICATIONS, NotifyGetNotificationsResponseClaims,
                                  NotifyGetNotificationsClaims, lmt=limit, aft=after, urf=unread_first)
        out = []
        for item in answer.nfs:
            try:
                n = Notification.from_msg(item, topic=sub.topic, account=sub.account, app_domain=sub.app_domain)
            except MalformedEntryError as exc:
                log.warning("skipping a malformed history item: %s", exc)
                continue
            # the server's read flag is the account's (another device may have marked it read): keep it here too
            await self.store.add_notification(n, update_read=True)
            out.append(n)
        return HistoryPage(tuple(out), answer.mre, answer.mur)

    async def mark_read(self, topic_or_domain: str, ids: Sequence[str] | None = None, *,
                        account: str | None = None) -> None:
        """Mark ``ids`` (or everything, when None) read on the server and here."""
        sub = await self.subscription(topic_or_domain, account)
        if ids is not None and not ids:
            return
        extra: dict[str, Any] = {"all": True} if ids is None else {"all": False, "ids": list(ids)}
        await self._call(sub, spec.NOTIFY_MARK_NOTIFICATIONS_AS_READ, NotifyMarkNotificationsAsReadResponseClaims,
                         NotifyMarkNotificationsAsReadClaims, **extra)
        await self.store.mark_read(sub.topic, ids)

    # ---------------------------------------------------------------------------------------- sync

    async def enable_sync(self, account: str, signature: str) -> None:
        """Share ``account``'s subscriptions with the user's other devices (Sync API); ``signature`` is the
        user's EIP-191 signature of ``client.sync.message(account)``."""
        await self.sync.enable(account, signature)

    # --------------------------------------------------------------------------------------- watch

    async def watch_subscriptions(self, account: str) -> list[Subscription]:
        """Ask the notify server for the account's subscriptions and to report every later change.

        The watch key kY is kept per account, so the topic changes arrive on stays the same across restarts.
        """
        account = canonical_account(account)
        identity, info = await self._identity(account)
        server = await self.server_keys()
        stored = await self.store.get_key(f"watch:{account}")
        if stored is None:
            kind_y = X25519KeyPair.generate()
            await self.store.put_key(f"watch:{account}", kind_y.private_key)
        else:
            kind_y = X25519KeyPair.from_private(stored[0])
        key = derive_sym_key(kind_y.private_key, server.key_agreement)
        await self.route(topic_of(key), key, self._watch_handler(account))
        app_domain = None if info.get("all_apps", True) else str(info["domain"]).lower()
        claims = NotifyWatchSubscriptionsClaims(
            **self._claims(identity, account, spec.NOTIFY_WATCH_SUBSCRIPTIONS.request_ttl),
            aud=server.authentication_did_key, app=None if app_domain is None else did_web(app_domain),
        )
        token = await self.request(spec.NOTIFY_WATCH_SUBSCRIPTIONS, claims.sign(identity),
                                   topic=server.subscribe_topic, receiver=server.key_agreement, sender=kind_y)
        answer = self._verify(NotifyWatchSubscriptionsResponseClaims, token, identity,
                              server.authentication_did_key, account)
        self._watched[account] = (self.clock(), self.relay.connects)
        await self._apply(account, self._entries(answer.sbs, account), app_domain=app_domain, source="watch",
                          announce=True)
        return await self.store.subscriptions(account)

    def _watch_handler(self, account: str) -> RouteHandler:
        async def on_change(message: RelayMessage, request: jsonrpc.Request) -> None:
            if message.tag != spec.NOTIFY_SUBSCRIPTIONS_CHANGED.request_tag:
                return
            token = request.params.get("subscriptionsChangedAuth") if isinstance(request.params, dict) else None
            if not isinstance(token, str):
                return

            async def apply() -> None:
                identity, info = await self._identity(account)
                server = await self.server_keys()
                try:
                    claims = self._verify(NotifySubscriptionsChangedClaims, token, identity,
                                          server.authentication_did_key, account)
                except ForgedAnswerError as exc:
                    log.warning("ignored a subscriptions-changed message for %s: %s", account, exc)
                    return
                app_domain = None if info.get("all_apps", True) else str(info["domain"]).lower()
                await self._apply(account, self._entries(claims.sbs, account), app_domain=app_domain,
                                  source="watch", announce=True)

            self.defer(apply)

        return on_change
