"""Wallet requests that reach the notify server through the relay, dispatched by tag (spec.py tables).

Rules, in the order a request meets them:

1. The relay event names a topic and a tag. Tags 4003 and 4013 are answers the server ignores; a tag
   with no handler is ignored too. A message already handled (same id: a webhook retry or a replay)
   is not handled again: its stored answer is published again instead, so nothing changes twice.
2. The topic says whose key opens the envelope: the server's watch topic (type 1, server key), a
   project topic (type 1, the project's subscribe key) or a subscriber topic (type 0, the subscription
   key). An envelope nobody can open is dropped: there is no key to answer under.
3. The JSON-RPC request carries one JWT (``params[<key>]``). It is verified (signature by ``iss``,
   ``exp``, ``iat``, ``act``, ``aud`` = the right key), ``app`` must be the project's domain, ``iss`` must
   be an identity registered at an allowlisted keys server whose CACAO authorizes this app (or all apps)
   for the ``sub`` account, and the account must own the subscription it touches (chain-agnostic).
4. Every refusal is a JSON-RPC error (code -1, a message naming the cause) published where the answer
   would go; nothing is written. Server faults (database, keys server unreachable) raise
   :class:`ServerFault` so the webhook answers 500 and the relay retries.
5. Writes happen in one transaction together with the handled-message marker; network calls (keys
   server, relay) happen outside it. The answer is published after the commit, then the other watchers
   of the account are told (``wc_notifySubscriptionsChanged``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wcnotify import spec
from wcnotify.keys.client import IdentityError, KeysServerUnavailableError
from wcnotify.notify import sending, store, webhooks
from wcnotify.notify.identity import ServerIdentity
from wcnotify.notify.payload_ids import next_payload_id
from wcnotify.notify.ratelimit import RateLimits
from wcnotify.notify.store import Database, Project, Subscriber
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import (
    CryptoError,
    X25519KeyPair,
    decrypt_type1,
    derive_sym_key,
    encode_type0,
    message_id,
    topic_of,
)
from wcnotify.protocol.crypto import decrypt as decrypt_type0
from wcnotify.protocol.did import Account, DidError, did_web_domain
from wcnotify.protocol.jwt import (
    Claims,
    JwtError,
    NotifyClientClaims,
    NotifyDeleteClaims,
    NotifyDeleteResponseClaims,
    NotifyGetNotificationsClaims,
    NotifyGetNotificationsResponseClaims,
    NotifyMarkNotificationsAsReadClaims,
    NotifyMarkNotificationsAsReadResponseClaims,
    NotifySubscriptionClaims,
    NotifySubscriptionResponseClaims,
    NotifySubscriptionsChangedClaims,
    NotifyUpdateClaims,
    NotifyUpdateResponseClaims,
    NotifyWatchSubscriptionsClaims,
    NotifyWatchSubscriptionsResponseClaims,
)
from wcnotify.spec import RpcSpec

log = logging.getLogger("wcnotify.notify.handlers")

# Requests whose JWT changes state: each JWT applies once, whatever envelope carries it. The message id
# catches a re-published ciphertext; a JWT re-encrypted in a fresh envelope has a new id, and without this
# an old delete would remove a later subscription, an old subscribe would undo a delete, an old update would
# restore an old scope. Reads, mark-read (idempotent) and watch are left out: clients may legitimately send
# byte-identical ones (same claims within one second).
_ONCE_PER_JWT = frozenset(
    {spec.NOTIFY_SUBSCRIBE.request_tag, spec.NOTIFY_UPDATE.request_tag, spec.NOTIFY_DELETE.request_tag}
)


def _jwt_marker(token: str) -> str:
    """The handled_messages key of a JWT (kept until the JWT expires): sha256 of the token, domain-separated
    from message ids (sha256 of the envelope)."""
    return hashlib.sha256(b"wcnotify-jwt:" + token.encode()).hexdigest()


_KEEP_FOREVER = 2**63 - 1  # the largest BigInteger (SQLite and PostgreSQL): handled_messages.expires_at


class RequestError(Exception):
    """The wallet's request is refused; the message goes back to it verbatim."""


class ServerFault(Exception):
    """Not the wallet's fault (database, keys server): answer the relay 500 so it retries."""


class _Duplicate(Exception):
    """Another delivery of the same message committed first."""


class Resolver(Protocol):
    """What the handlers need of the identity resolver (``wcnotify.keys.client.IdentityResolver``)."""

    async def resolve(self, ksu: str, iss: str, *, now: int) -> Any: ...


@dataclass(frozen=True)
class RelayEvent:
    """A message the relay told us of (a watch event, or one fetched from the mailbox)."""

    topic: str
    message: str
    tag: int
    published_at: int = 0

    @property
    def message_id(self) -> str:
        return message_id(self.message)


@dataclass
class Outcome:
    """What handling a message asks of the relay, in order: subscribe, answer, tell watchers, unsubscribe."""

    subscribe: list[str] = field(default_factory=list)
    publish: list[dict[str, Any]] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)
    queued: bool = False  # notifications were queued for delivery (a welcome): wake the workers


def _publish_params(topic: str, sym_key: bytes, payload: jsonrpc.Message, ttl: int, tag: int) -> dict[str, Any]:
    message = encode_type0(sym_key, jsonrpc.encode(payload))
    return {"topic": topic, "message": message, "ttl": ttl, "tag": tag, "prompt": False}


@dataclass
class _Request:
    """One decrypted wallet request and where its answer goes."""

    rpc: RpcSpec
    event: RelayEvent
    request: jsonrpc.Request
    token: str
    reply_topic: str
    reply_key: bytes
    now: int
    project: Project | None = None
    subscriber: Subscriber | None = None
    sender_public: bytes | None = None  # type 1: the wallet's X25519 key (Y)
    validated: tuple[Any, ...] = ()  # what validation established, for the write step
    jwt_exp: int = 0  # the request JWT's exp, once verified

    @property
    def response_exp(self) -> int:
        assert self.rpc.response_ttl is not None
        return self.now + self.rpc.response_ttl

    def answer(self, payload: jsonrpc.Message) -> dict[str, Any]:
        assert self.rpc.response_ttl is not None and self.rpc.response_tag is not None
        return _publish_params(self.reply_topic, self.reply_key, payload, self.rpc.response_ttl, self.rpc.response_tag)

    def result(self, jwt: str) -> dict[str, Any]:
        assert self.rpc.result_key is not None
        return self.answer(jsonrpc.Result(self.request.id, {self.rpc.result_key: jwt}))

    def error(self, message: str) -> dict[str, Any]:
        return self.answer(jsonrpc.Error(self.request.id, spec.NOTIFY_CLIENT_ERROR_CODE, message))


Validator = Callable[["WalletHandlers", _Request], Awaitable[None]]
Writer = Callable[["WalletHandlers", _Request, AsyncConnection], Awaitable["Outcome"]]


def _parse_scope(scp: str) -> list[str]:
    ids = []
    for part in scp.split():
        try:
            ids.append(str(uuid.UUID(part)))
        except ValueError:
            raise RequestError(f"scp must be space-separated notification type ids (UUIDs): {part[:60]!r}") from None
    return sorted(set(ids))


class WalletHandlers:
    """Handles relay events for wallet requests; the webhook and the catch-up fetch both call :meth:`handle`."""

    def __init__(
        self, db: Database, resolver: Resolver, identity: ServerIdentity, *, clock: Callable[[], float] = time.time,
        limits: RateLimits | None = None,
    ) -> None:
        self.db = db
        self.resolver = resolver
        self.identity = identity
        self.clock = clock
        self.limits = limits

    # -------------------------------------------------------------------------------- entry point

    async def handle(self, event: RelayEvent) -> Outcome:
        rpc = spec.NOTIFY_BY_REQUEST_TAG.get(event.tag)
        if event.tag in spec.NOTIFY_IGNORED_TAGS or rpc is None or rpc.request_tag not in _VALIDATORS:
            return Outcome()
        async with self.db.read() as conn:
            done = await store.handled(conn, event.message_id)
        if done is not None:
            return self._replay(done)
        try:
            req = await self._open(rpc, event)
        except RequestError as exc:  # no key to answer under: nothing to do but log
            log.info("dropping %s on %s: %s", rpc.method, event.topic[:16], exc)
            return Outcome()
        outcome = Outcome()
        try:
            if rpc.request_tag in _ONCE_PER_JWT and req.token:
                async with self.db.read() as conn:
                    if await store.handled(conn, _jwt_marker(req.token)) is not None:
                        raise RequestError("This JWT was already used (a replay): sign a new request")
            await _VALIDATORS[rpc.request_tag](self, req)  # no transaction: may call the keys server
            await self._rate_limit(req)
            outcome = await self._commit_retrying_a_lost_race(req)
        except RequestError as exc:
            outcome = Outcome(publish=[req.error(str(exc))])
            async with self.db.write() as conn:
                if not await store.record_handled(
                    conn, event.message_id, expires_at=self._keep_until(req), response=outcome.publish[0],
                    subscribe_topic=None,
                ):
                    raise _Duplicate from None
        except _Duplicate:
            async with self.db.read() as conn:
                done = await store.handled(conn, event.message_id)
            return self._replay(done) if done else Outcome()
        return outcome

    async def _rate_limit(self, req: _Request) -> None:
        """The request's buckets (spec.NOTIFY_WALLET_RATES), keyed by the verified ``iss`` or the topic."""
        if self.limits is None:
            return
        iss = getattr(req.validated[0], "iss", "") if req.validated else ""
        wait = await self.limits.wallet(req.rpc.request_tag, req.event.topic, iss)
        if wait:
            raise RequestError(spec.NOTIFY_REASON_WALLET_RATE_LIMITED.format(unix=math.ceil(self.clock() + wait)))

    def _replay(self, done: store.Handled) -> Outcome:
        return Outcome(
            subscribe=[done.subscribe_topic] if done.subscribe_topic else [],
            publish=[done.response] if done.response else [],
        )

    def _keep_until(self, req: _Request) -> int:
        """Remember a message while its JWT could still verify: a replay after that is refused as expired.

        ``exp`` is at most ``NOTIFY_REQUEST_MAX_LIFETIME`` ahead (checked in :meth:`_claims`); the cap on the
        64-bit column stays as a second guard (an ``exp`` of ``1e300`` once failed the insert, and the relay
        retried the message until its TTL).
        """
        return min(max(req.now + req.rpc.request_ttl, req.jwt_exp) + spec.JWT_LEEWAY, _KEEP_FOREVER)

    async def _commit_retrying_a_lost_race(self, req: _Request) -> Outcome:
        """:meth:`_commit` in a write transaction, run again once if a concurrent request won a unique key.

        Two first subscribes of one account (two devices, or two replicas handling a relay batch) both see no
        subscriber; on PostgreSQL the second insert then fails on the (project, address) key. Its transaction is
        rolled back whole, so running it again is safe, and it now finds the winner's row and renews it, the
        answer a request arriving a moment later gets. (SQLite takes the write lock up front: no such race.)
        """
        for attempt in (1, 2):
            outcome = Outcome()
            try:
                async with self.db.write() as conn:
                    await self._commit(req, conn, outcome)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("%s on %s lost a race for a unique key; running it again", req.rpc.method,
                         req.event.topic[:16])
                continue
            return outcome
        raise AssertionError("unreachable")

    async def _commit(self, req: _Request, conn: AsyncConnection, outcome: Outcome) -> None:
        """Run the handler's writes, then claim the message in the same transaction."""
        req_outcome = await _WRITERS[req.rpc.request_tag](self, req, conn)
        outcome.subscribe += req_outcome.subscribe
        outcome.publish += req_outcome.publish
        outcome.unsubscribe += req_outcome.unsubscribe
        if not await store.record_handled(
            conn, req.event.message_id, expires_at=self._keep_until(req),
            response=req_outcome.publish[0] if req_outcome.publish else None,
            subscribe_topic=req_outcome.subscribe[0] if req_outcome.subscribe else None,
        ):
            raise _Duplicate
        if req.rpc.request_tag in _ONCE_PER_JWT and not await store.record_handled(
            conn, _jwt_marker(req.token), expires_at=self._keep_until(req), response=None, subscribe_topic=None,
        ):
            raise _Duplicate  # the same JWT in another envelope, handled concurrently: only one applies

    # -------------------------------------------------------------------------- opening a request

    async def _open(self, rpc: RpcSpec, event: RelayEvent) -> _Request:
        now = int(self.clock())
        project: Project | None = None
        subscriber: Subscriber | None = None
        sender: bytes | None = None
        try:
            if rpc is spec.NOTIFY_WATCH_SUBSCRIPTIONS:
                if event.topic != self.identity.watch_topic:
                    raise RequestError(f"Received {rpc.request_tag} on wrong topic: {event.topic}")
                sender, key, plain = decrypt_type1(event.message, self.identity.key_agreement.private_key)
                reply_topic = topic_of(key)
            elif rpc is spec.NOTIFY_SUBSCRIBE:
                async with self.db.read() as conn:
                    project = await store.project_by_topic(conn, event.topic)
                if project is None or project.subscribe_private is None:
                    raise RequestError(f"Received {rpc.request_tag} on wrong topic: {event.topic}")
                sender, key, plain = decrypt_type1(event.message, project.subscribe_key.private_key)
                reply_topic = topic_of(key)
            else:
                async with self.db.read() as conn:
                    subscriber = await store.subscriber_by_topic(conn, event.topic)
                    if subscriber is not None:
                        project = await store.project_by_id(conn, subscriber.project)
                if subscriber is None or project is None:
                    raise RequestError(f"Received {rpc.request_tag} on a topic with no subscription: {event.topic}")
                key = bytes.fromhex(subscriber.sym_key)
                plain = decrypt_type0(event.message, key)
                reply_topic = event.topic
        except CryptoError as exc:
            raise RequestError(f"cannot open the envelope: {exc}") from exc
        try:
            message = jsonrpc.parse_message(plain)
        except jsonrpc.JsonRpcError as exc:
            raise RequestError(f"not a JSON-RPC request: {exc}") from exc
        if not isinstance(message, jsonrpc.Request):
            raise RequestError("not a JSON-RPC request")
        req = _Request(rpc, event, message, "", reply_topic, key, now, project, subscriber, sender)
        params = message.params
        token = params.get(rpc.params_key) if isinstance(params, dict) and rpc.params_key else None
        if not isinstance(token, str):
            # answerable: we have the key; the error path of handle() publishes it
            req.token = ""
        else:
            req.token = token
        return req

    # ------------------------------------------------------------------------------ shared checks

    def _claims(self, req: _Request, cls: type[Claims], aud: str) -> Any:
        if not req.token:
            raise RequestError(f"params.{req.rpc.params_key} must be a JWT string")
        try:
            claims = cls.verify(req.token, now=req.now, aud=aud)
        except JwtError as exc:
            raise RequestError(f"JWT parse/verification error: {exc}") from exc
        if claims.exp > req.now + spec.NOTIFY_REQUEST_MAX_LIFETIME + spec.JWT_LEEWAY:
            # a request valid for longer could be replayed for that long; no client asks for it
            raise RequestError("JWT exp is too far in the future (at most 30 days)")
        req.jwt_exp = claims.exp
        return claims

    def _check_app(self, claims: Any, project: Project) -> None:
        try:
            domain = did_web_domain(claims.app)
        except DidError as exc:
            raise RequestError(f"app must be a did:web: {exc}") from exc
        if project.app_domain is None or domain.lower() != project.app_domain:
            raise RequestError("The requested app does not match the project's app domain")

    async def _authorize(self, claims: NotifyClientClaims, req: _Request, app_domain: str | None) -> Account:
        """The ``sub`` account, once the keys server vouches for ``iss`` acting for it on this app."""
        try:
            account = Account.from_did_pkh(claims.sub)
        except DidError as exc:
            raise RequestError(f"sub must be a did:pkh account: {exc}") from exc
        resolved = await _resolve(self.resolver, claims.ksu, claims.iss, req.now)
        grant = resolved.authorization
        if not grant.account.same_address(account):
            raise RequestError("The identity key is registered for another account than sub")
        if app_domain is None:
            if not grant.all_apps:
                raise RequestError("Watching all apps needs an identity authorized for all apps")
        elif not grant.allows(app_domain):
            raise RequestError(f"The identity key is authorized for {grant.domain} only, not {app_domain}")
        return account

    def _owner(self, account: Account, subscriber: Subscriber) -> None:
        if store.address_of(account) != subscriber.address:
            raise RequestError("The account does not own this subscription")

    async def _changed(
        self, conn: AsyncConnection, req: _Request, project: Project, address: str, claims: Any
    ) -> list[dict[str, Any]]:
        """``wc_notifySubscriptionsChanged`` for the account's other watchers (mjv 0: all of them)."""
        skip_self = _mjv(claims) >= 1
        out = []
        for w in await store.watchers_of(conn, address, project, req.now):
            if skip_self and w.did_key == claims.iss:
                continue
            sbs = await store.subscriptions_view(
                conn, address, w.account, project_id=w.project
            )
            jwt = NotifySubscriptionsChangedClaims(
                iat=req.now, exp=req.now + spec.NOTIFY_SUBSCRIPTIONS_CHANGED.request_ttl, iss=self.identity.did_key,
                aud=w.did_key, sub=Account.parse(w.account).did_pkh, sbs=sbs,
            ).sign(self.identity.authentication)
            rpc = spec.NOTIFY_SUBSCRIPTIONS_CHANGED
            payload = jsonrpc.Request(next_payload_id(), rpc.method,
                                      {rpc.params_key: jwt})
            key = bytes.fromhex(w.sym_key)
            out.append(_publish_params(topic_of(key), key, payload, rpc.request_ttl, rpc.request_tag))
        return out

    async def _caller_view(
        self, conn: AsyncConnection, req: _Request, address: str, account: Account, claims: Any
    ) -> list[dict[str, Any]]:
        """The answer's ``sbs``: what the caller's own watcher sees (every app for an all-apps watcher), as the
        reference does with mjv >= 1 (the caller's watcher is then told nothing else). Without a watcher, or
        with mjv 0, this app's subscriptions. notify-client replaces its whole list with this ``sbs``: an
        answer listing one app made it forget the others."""
        project = req.project
        assert project is not None
        if _mjv(claims) >= 1:
            for w in await store.watchers_of(conn, address, project, req.now):
                if w.did_key == claims.iss:
                    return await store.subscriptions_view(conn, address, str(account), project_id=w.project)
        return await store.subscriptions_view(conn, address, str(account), project_id=project.id)

    # -------------------------------------------------------------------------------- subscribe

    async def _validate_subscribe(self, req: _Request) -> None:
        project = req.project
        assert project is not None
        claims = self._claims(req, NotifySubscriptionClaims, project.authentication_did)
        self._check_app(claims, project)
        scope = _parse_scope(claims.scp)
        account = await self._authorize(claims, req, project.app_domain)
        req.validated = (claims, account, scope)

    async def _write_subscribe(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, account, scope = req.validated
        project = req.project
        assert project is not None and req.sender_public is not None
        await _check_scope(conn, project, scope)
        now_ms = req.now * 1000
        expiry = req.now + spec.NOTIFY_SUBSCRIPTION_TTL
        existing = await store.find_subscriber(conn, project, account)
        extra: dict[str, Any] = {}
        queued_welcome = False
        if existing is not None:
            subscriber = await store.renew_subscriber(conn, existing, scope, expiry=expiry, now_ms=now_ms)
        else:
            # the seed protocol: a fresh Z, P = HKDF(X25519(Z, Y)); the wallet can derive P from Z itself
            z = X25519KeyPair.generate()
            sym = derive_sym_key(z.private_key, req.sender_public)
            subscriber = await store.insert_subscriber(conn, project, account, sym, scope, expiry=expiry, now_ms=now_ms)
            extra[spec.NOTIFY_SUBSCRIBE_KEY_CLAIM] = z.public_key.hex()
            queued_welcome = await sending.queue_welcome(conn, project, subscriber, now_ms)
        await webhooks.record_change(conn, project, existing, subscriber, now_ms=now_ms)  # same transaction
        sbs = await self._caller_view(conn, req, subscriber.address, account, claims)
        jwt = NotifySubscriptionResponseClaims(
            iat=req.now, exp=req.response_exp, iss=project.authentication_did,
            aud=claims.iss, sub=claims.sub, app=claims.app, sbs=sbs, extra=extra,
        ).sign(project.authentication_key)
        changed = await self._changed(conn, req, project, subscriber.address, claims)
        return Outcome(subscribe=[subscriber.topic], publish=[req.result(jwt), *changed], queued=queued_welcome)

    # ---------------------------------------------------------------------------- update, delete

    async def _validate_owned(self, req: _Request, cls: type[NotifyClientClaims]) -> tuple[Any, Account]:
        project, subscriber = req.project, req.subscriber
        assert project is not None and subscriber is not None
        claims = self._claims(req, cls, project.authentication_did)
        self._check_app(claims, project)
        account = await self._authorize(claims, req, project.app_domain)
        self._owner(account, subscriber)
        return claims, account

    async def _validate_update(self, req: _Request) -> None:
        claims, account = await self._validate_owned(req, NotifyUpdateClaims)
        req.validated = (claims, account, _parse_scope(claims.scp))

    async def _write_update(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, account, scope = req.validated
        project, subscriber = req.project, req.subscriber
        assert project is not None and subscriber is not None
        await _check_scope(conn, project, scope)
        current = await store.subscriber_by_topic(conn, subscriber.topic)
        if current is None:
            raise RequestError("The subscription no longer exists")
        renewed = await store.renew_subscriber(
            conn, current, scope, expiry=req.now + spec.NOTIFY_SUBSCRIPTION_TTL, now_ms=req.now * 1000
        )
        await webhooks.record_change(conn, project, current, renewed, now_ms=req.now * 1000)
        sbs = await self._caller_view(conn, req, current.address, account, claims)
        jwt = NotifyUpdateResponseClaims(
            iat=req.now, exp=req.response_exp, iss=project.authentication_did,
            aud=claims.iss, sub=claims.sub, app=claims.app, sbs=sbs,
        ).sign(project.authentication_key)
        changed = await self._changed(conn, req, project, current.address, claims)
        return Outcome(publish=[req.result(jwt), *changed])

    async def _validate_delete(self, req: _Request) -> None:
        req.validated = await self._validate_owned(req, NotifyDeleteClaims)

    async def _write_delete(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, account = req.validated
        project, subscriber = req.project, req.subscriber
        assert project is not None and subscriber is not None
        current = await store.subscriber_by_topic(conn, subscriber.topic)
        if current is None:
            raise RequestError("The subscription no longer exists")
        await store.delete_subscriber(conn, current)
        await webhooks.record_change(conn, project, current, None, now_ms=req.now * 1000)
        sbs = await self._caller_view(conn, req, current.address, account, claims)
        jwt = NotifyDeleteResponseClaims(
            iat=req.now, exp=req.response_exp, iss=project.authentication_did,
            aud=claims.iss, sub=claims.sub, app=claims.app, sbs=sbs,
        ).sign(project.authentication_key)
        changed = await self._changed(conn, req, project, current.address, claims)
        return Outcome(publish=[req.result(jwt), *changed], unsubscribe=[current.topic])

    # ------------------------------------------------------------------------------------ watch

    async def _validate_watch(self, req: _Request) -> None:
        claims = self._claims(req, NotifyWatchSubscriptionsClaims, self.identity.did_key)
        project: Project | None = None
        domain: str | None = None
        if claims.app is not None:
            try:
                domain = did_web_domain(claims.app).lower()
            except DidError as exc:
                raise RequestError(f"app must be a did:web or null: {exc}") from exc
            async with self.db.read() as conn:
                project = await store.project_by_domain(conn, domain)
            if project is None:
                raise RequestError(f"No app is registered for {domain}")
        account = await self._authorize(claims, req, domain)
        req.project = project
        req.validated = (claims, account)

    async def _write_watch(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, account = req.validated
        address = store.address_of(account)
        if await store.count_other_watchers(conn, address, claims.iss, req.now) >= spec.NOTIFY_MAX_WATCHERS_PER_ACCOUNT:
            raise RequestError("Subscription watcher limit reached")
        await store.upsert_watcher(
            conn, account=account, project=req.project, did_key=claims.iss, sym_key=req.reply_key,
            expiry=req.now + spec.NOTIFY_WATCHER_TTL, now_ms=req.now * 1000,
        )
        sbs = await store.subscriptions_view(
            conn, address, str(account), project_id=req.project.id if req.project else None
        )
        jwt = NotifyWatchSubscriptionsResponseClaims(
            iat=req.now, exp=req.response_exp,
            iss=self.identity.did_key, aud=claims.iss, sub=claims.sub, sbs=sbs,
        ).sign(self.identity.authentication)
        return Outcome(publish=[req.result(jwt)])

    # ------------------------------------------------------------------------- history, read

    async def _validate_history(self, req: _Request) -> None:
        claims, account = await self._validate_owned(req, NotifyGetNotificationsClaims)
        if not 1 <= claims.lmt <= spec.NOTIFY_HISTORY_MAX_LIMIT:
            raise RequestError(f"lmt must be between 1 and {spec.NOTIFY_HISTORY_MAX_LIMIT}")
        if claims.aft is not None:
            try:
                uuid.UUID(claims.aft)
            except ValueError:
                raise RequestError("aft must be a notification id (UUID) or null") from None
        req.validated = (claims, account)

    async def _write_history(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, _account = req.validated
        project, subscriber = req.project, req.subscriber
        assert project is not None and subscriber is not None
        page = await store.history(conn, subscriber, limit=claims.lmt, after=claims.aft, unread_first=claims.urf)
        if page is None:
            raise RequestError(f"aft {claims.aft} is not one of this subscription's notifications")
        nfs, more, more_unread = page
        jwt = NotifyGetNotificationsResponseClaims(
            iat=req.now, exp=req.response_exp,
            iss=project.authentication_did, aud=claims.iss, sub=claims.sub, app=claims.app, nfs=nfs, mre=more,
            mur=more_unread,
        ).sign(project.authentication_key)
        return Outcome(publish=[req.result(jwt)])

    async def _validate_mark(self, req: _Request) -> None:
        claims, account = await self._validate_owned(req, NotifyMarkNotificationsAsReadClaims)
        if claims.all:
            if claims.ids is not None:
                raise RequestError("ids must be absent when all is true")
        else:
            if not claims.ids:
                raise RequestError("ids must list 1 or more notification ids when all is false")
            if len(claims.ids) > spec.NOTIFY_MARK_READ_MAX_IDS:
                raise RequestError(f"ids may list at most {spec.NOTIFY_MARK_READ_MAX_IDS} notifications")
            for value in claims.ids:
                try:
                    uuid.UUID(value)
                except ValueError:
                    raise RequestError(f"ids must be UUIDs; got {value[:60]!r}") from None
        req.validated = (claims, account)

    async def _write_mark(self, req: _Request, conn: AsyncConnection) -> Outcome:
        claims, _account = req.validated
        project, subscriber = req.project, req.subscriber
        assert project is not None and subscriber is not None
        await store.mark_read(conn, subscriber, None if claims.all else claims.ids)
        jwt = NotifyMarkNotificationsAsReadResponseClaims(
            iat=req.now, exp=req.response_exp,
            iss=project.authentication_did, aud=claims.iss, sub=claims.sub, app=claims.app,
        ).sign(project.authentication_key)
        return Outcome(publish=[req.result(jwt)])


async def _check_scope(conn: AsyncConnection, project: Project, scope: list[str]) -> None:
    known = {t.id for t in await store.list_types(conn, project)}
    unknown = [t for t in scope if t not in known]
    if unknown:
        raise RequestError(f"Unknown notification type(s) for {project.app_domain}: {', '.join(unknown)}")


def _mjv(claims: Any) -> int:
    with contextlib.suppress(TypeError, ValueError):
        return int(claims.mjv)
    return 0


async def _resolve(resolver: Resolver, ksu: str, iss: str, now: int) -> Any:
    try:
        return await resolver.resolve(ksu, iss, now=now)
    except KeysServerUnavailableError as exc:
        raise ServerFault(str(exc)) from exc
    except IdentityError as exc:
        raise RequestError(str(exc)) from exc


_VALIDATORS: dict[int, Validator] = {
    spec.NOTIFY_SUBSCRIBE.request_tag: WalletHandlers._validate_subscribe,
    spec.NOTIFY_UPDATE.request_tag: WalletHandlers._validate_update,
    spec.NOTIFY_DELETE.request_tag: WalletHandlers._validate_delete,
    spec.NOTIFY_WATCH_SUBSCRIPTIONS.request_tag: WalletHandlers._validate_watch,
    spec.NOTIFY_GET_NOTIFICATIONS.request_tag: WalletHandlers._validate_history,
    spec.NOTIFY_MARK_NOTIFICATIONS_AS_READ.request_tag: WalletHandlers._validate_mark,
}
_WRITERS: dict[int, Writer] = {
    spec.NOTIFY_SUBSCRIBE.request_tag: WalletHandlers._write_subscribe,
    spec.NOTIFY_UPDATE.request_tag: WalletHandlers._write_update,
    spec.NOTIFY_DELETE.request_tag: WalletHandlers._write_delete,
    spec.NOTIFY_WATCH_SUBSCRIPTIONS.request_tag: WalletHandlers._write_watch,
    spec.NOTIFY_GET_NOTIFICATIONS.request_tag: WalletHandlers._write_history,
    spec.NOTIFY_MARK_NOTIFICATIONS_AS_READ.request_tag: WalletHandlers._write_mark,
}
