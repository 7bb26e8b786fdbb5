"""Push proposals from a dapp: pair with a wallet, propose a subscription, get its key, follow what the wallet does.

The wire rules are in :mod:`wcnotify.protocol.proposal`; this module runs them over a relay connection::

    async with ProposalClient("wss://relay.example") as dapp:
        uri = await dapp.create_pairing()                  # show it to the user (QR code, deep link)
        approved = await dapp.propose(pairing.parse(uri).topic, "eip155:1:0x…", metadata, ["gm"])
        async for change in dapp.subscription_events(approved):
            ...                                            # SubscriptionUpdated, then SubscriptionDeleted

1. :meth:`ProposalClient.create_pairing` makes a ``wc:`` URI (random key, topic sha256(key), expiry, method
   ``wc_pushPropose``) and subscribes to its topic before returning it; :meth:`~ProposalClient.use_pairing`
   takes a URI made elsewhere and refuses an expired one.
2. :meth:`~ProposalClient.propose` makes a fresh X25519 key X, subscribes to sha256(X) *before* it publishes
   the proposal, then waits for the first acceptable answer: a type 1 approval whose subscriptionAuth verifies
   (-> :class:`ProposalApproved`; the notify topic is subscribed before it returns, so no later change is
   missed), or a JSON-RPC error for the proposal on the pairing topic (-> :class:`ProposalRejected`,
   :class:`AlreadySubscribed`, :class:`ProposalDeclined`), or nothing acceptable in time
   (-> :class:`ProposalTimeoutError`). Anything else on those topics (garbage, envelopes under another key,
   answers to other ids, JWTs that do not verify or are for another account or app) is logged and ignored:
   whoever can write there cannot end the wait, only a valid answer can. The timeout error says how many
   answers were ignored and why the last one was, so a broken wallet is not a silent timeout.
3. :meth:`~ProposalClient.subscription_events` yields the wallet's verified ``wc_notifyUpdate`` /
   ``wc_notifyDelete`` from the notify topic, each once (the relay may redeliver after a reconnect), skipping
   the server's notifications and answers; it ends after the deletion and leaves the topic.

The relay callback only files messages: it runs inside the relay client's read loop, which must not wait for
a relay answer, so every relay request is made by the caller's own task.

A :class:`~wcnotify.relay.client.RelayClient` passed in is shared: it must be connected by its owner, and
messages on topics this client does not own go to its previous ``on_message`` callback (dropped when it had
none, so use a callback rather than ``next_message`` for the rest of your traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import Random, X25519KeyPair
from wcnotify.protocol.did import Account
from wcnotify.protocol.pairing import PairingError, PairingUri, new_pairing
from wcnotify.protocol.pairing import parse as parse_pairing
from wcnotify.protocol.proposal import (
    AlreadySubscribed,
    AppMetadata,
    ProposalApproved,
    ProposalDeclined,
    ProposalError,
    ProposalRejected,
    PushProposal,
    SubscriptionChange,
    SubscriptionDeleted,
    SubscriptionUpdated,
    accept_approval,
    open_approval,
    open_pairing_answer,
    proposal_message,
)
from wcnotify.relay.client import MessageCallback, RelayClient, RelayClientError, RelayMessage

__all__ = [
    "AlreadySubscribed",
    "AppMetadata",
    "PairingError",
    "PairingExpiredError",
    "ProposalApproved",
    "ProposalClient",
    "ProposalDeclined",
    "ProposalError",
    "ProposalRejected",
    "ProposalTimeoutError",
    "SubscriptionChange",
    "SubscriptionDeleted",
    "SubscriptionUpdated",
    "UnknownPairingError",
]

log = logging.getLogger("wcnotify.dapp.proposal")


class PairingExpiredError(ValueError):
    """The pairing URI has expired: a wallet would refuse it. Make a new one with ``create_pairing()``."""


class UnknownPairingError(KeyError):
    """``propose()`` on a pairing topic this client does not hold: call ``create_pairing()`` or
    ``use_pairing(uri)`` first (pairings are kept in memory, not across restarts)."""


class ProposalTimeoutError(TimeoutError):
    """No acceptable answer in time: the user did not answer, or the wallet's answers were invalid
    (``ignored`` counts those, ``last_ignored`` says why the last one was refused)."""

    def __init__(self, timeout: float, ignored: int, last_ignored: str | None) -> None:
        detail = f"; {ignored} invalid answer(s) ignored, the last because: {last_ignored}" if ignored else ""
        super().__init__(f"no answer to the push proposal within {timeout:g} s{detail}")
        self.timeout = timeout
        self.ignored = ignored
        self.last_ignored = last_ignored


@dataclass
class _Waiter:
    """One proposal in flight."""

    proposal: PushProposal
    key: X25519KeyPair
    request_id: jsonrpc.JsonRpcId
    pairing_topic: str
    future: asyncio.Future[ProposalApproved]
    ignored: int = 0
    last_ignored: str | None = None

    def ignore(self, why: str) -> None:
        self.ignored += 1
        self.last_ignored = why
        log.warning("ignored an answer to push proposal %s: %s", self.request_id, why)


@dataclass
class _Stream:
    """Messages on one approved subscription's notify topic, until its deletion."""

    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    seen: set[jsonrpc.JsonRpcId] = field(default_factory=set)


class ProposalClient:
    """Pairings, proposals and approved subscriptions of one dapp over one relay connection. ``async with``."""

    def __init__(
        self,
        relay_url: str,
        relay: RelayClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        random: Random = os.urandom,
        pairing_ttl: int = spec.PAIRING_TTL,
    ) -> None:
        self.clock = clock
        self.random = random
        self.pairing_ttl = pairing_ttl
        self._own_relay = relay is None
        self.relay = relay if relay is not None else RelayClient(relay_url, clock=clock)
        self._chained: MessageCallback | None = None if self._own_relay else self.relay.on_message
        self.relay.on_message = self._on_message
        self._pairings: dict[str, PairingUri] = {}
        self._waiters: dict[str, _Waiter] = {}  # response topic -> proposal in flight
        self._streams: dict[str, _Stream] = {}  # notify topic -> its messages
        self._ids = jsonrpc.PayloadIds(offset=int.from_bytes(random(2), "big") % 10**spec.PAYLOAD_ID_ENTROPY_DIGITS)

    # -- lifecycle

    async def start(self) -> None:
        """Connect the relay client this object made (a shared one is its owner's to connect)."""
        if self._own_relay:
            await self.relay.connect()

    async def close(self) -> None:
        """Stop: proposals still waiting fail, event iterators end, the relay client is closed or handed back."""
        for waiter in list(self._waiters.values()):
            if not waiter.future.done():
                waiter.future.set_exception(RelayClientError("the proposal client was closed"))
        for stream in self._streams.values():
            stream.queue.put_nowait(None)
        if self._own_relay:
            await self.relay.close()
        else:
            self.relay.on_message = self._chained

    async def __aenter__(self) -> ProposalClient:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- pairings

    async def create_pairing(self, ttl: int | None = None) -> str:
        """A new ``wc:`` URI for the wallet (its topic is ``parse(uri).topic``), already listened to."""
        uri = new_pairing(
            self.random, int(self.clock()), self.pairing_ttl if ttl is None else ttl, (spec.PUSH_PROPOSE.method,)
        )
        await self._listen_pairing(uri)
        return uri.format()

    async def use_pairing(self, uri: str | PairingUri) -> PairingUri:
        """Take a pairing made elsewhere (refused when malformed, :class:`PairingError`, or expired)."""
        pairing = uri if isinstance(uri, PairingUri) else parse_pairing(uri)
        self._check_not_expired(pairing)
        await self._listen_pairing(pairing)
        return pairing

    async def forget_pairing(self, topic: str) -> None:
        """Stop listening on a pairing (proposals made on it can still be approved on their response topic)."""
        if self._pairings.pop(topic, None) is not None:
            with contextlib.suppress(RelayClientError):
                await self.relay.unsubscribe(topic)

    async def _listen_pairing(self, pairing: PairingUri) -> None:
        self._pairings[pairing.topic] = pairing  # before subscribing: the relay may push its backlog at once
        try:
            await self.relay.subscribe(pairing.topic)
        except BaseException:
            self._pairings.pop(pairing.topic, None)
            raise

    def _check_not_expired(self, pairing: PairingUri) -> None:
        if pairing.expired(int(self.clock())):
            raise PairingExpiredError(
                f"the pairing {pairing.topic[:8]}… expired at {pairing.expiry_timestamp}; create a new one"
            )

    # -- proposing

    async def propose(
        self,
        pairing_topic: str,
        account: Account | str,
        metadata: AppMetadata | Mapping[str, Any],
        scope_names: Iterable[str],
        timeout: float = spec.PUSH_PROPOSE_APPROVAL_WAIT,
    ) -> ProposalApproved:
        """Ask the wallet on ``pairing_topic`` to subscribe ``account`` to ``scope_names`` (type names).

        ``metadata.url``'s host must be the app domain the wallet subscribes to (its ``did:web``). Raises
        :class:`ProposalError` for a malformed proposal before anything is sent."""
        pairing = self._pairings.get(pairing_topic)
        if pairing is None:
            raise UnknownPairingError(pairing_topic)
        self._check_not_expired(pairing)
        key = X25519KeyPair.generate(self.random)
        proposal = PushProposal.create(key, account, metadata, scope_names)
        request = proposal.to_request(self._ids.next(int(self.clock() * 1000)))
        out = proposal_message(pairing.topic, pairing.sym_key, request, self.random)
        future: asyncio.Future[ProposalApproved] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(proposal, key, request.id, pairing.topic, future)
        topic = proposal.response_topic
        self._waiters[topic] = waiter
        try:
            await self.relay.subscribe(topic)
            await self.relay.publish(out.topic, out.message, ttl=out.ttl, tag=out.tag)
            try:
                approved = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise ProposalTimeoutError(timeout, waiter.ignored, waiter.last_ignored) from None
        finally:
            self._waiters.pop(topic, None)
            with contextlib.suppress(RelayClientError):
                await self.relay.unsubscribe(topic)
        try:
            await self.relay.subscribe(approved.topic)  # the stream was opened when the approval arrived
        except BaseException:
            self._streams.pop(approved.topic, None)
            raise
        return approved

    # -- following an approved subscription

    async def subscription_events(self, approved: ProposalApproved) -> AsyncIterator[SubscriptionChange]:
        """The wallet's changes to an approved subscription, verified, each once; ends after its deletion.

        One consumer per subscription; breaking out and iterating again resumes where it stopped."""
        stream = self._streams.get(approved.topic)
        if stream is None:
            raise ValueError("this client does not follow that subscription (deleted, or approved elsewhere)")
        while True:
            message = await stream.queue.get()
            if message is None:
                return
            try:
                change = approved.read_event(message, int(self.clock()))
            except ProposalError as exc:
                log.warning("ignored a message on notify topic %s…: %s", approved.topic[:8], exc)
                continue
            if change is None or change.request_id in stream.seen:
                continue
            stream.seen.add(change.request_id)
            if isinstance(change, SubscriptionDeleted):
                self._streams.pop(approved.topic, None)
                with contextlib.suppress(RelayClientError):
                    await self.relay.unsubscribe(approved.topic)
                yield change
                return
            yield change

    # -- incoming (runs in the relay client's read loop: files messages, never waits for the relay)

    def _on_message(self, message: RelayMessage) -> Awaitable[None] | None:
        waiter = self._waiters.get(message.topic)
        if waiter is not None:
            self._on_response(waiter, message.message)
        elif message.topic in self._pairings:
            self._on_pairing(self._pairings[message.topic], message.message)
        elif message.topic in self._streams:
            self._streams[message.topic].queue.put_nowait(message.message)
        elif self._chained is not None:
            return self._chained(message)
        else:
            log.debug("dropped a message on topic %s… that nothing here follows", message.topic[:8])
        return None

    def _on_response(self, waiter: _Waiter, message: str) -> None:
        if waiter.future.done():
            return
        try:
            wallet_key, answer = open_approval(message, waiter.key, waiter.request_id)
        except ProposalError as exc:
            waiter.ignore(str(exc))
            return
        if isinstance(answer, ProposalDeclined):
            waiter.future.set_exception(answer)
            return
        try:
            approved = accept_approval(
                waiter.proposal, waiter.request_id, pairing_topic=waiter.pairing_topic,
                wallet_public_key=wallet_key, result=answer, now=int(self.clock()),
            )
        except ProposalError as exc:
            waiter.ignore(str(exc))
            return
        self._streams.setdefault(approved.topic, _Stream())
        waiter.future.set_result(approved)

    def _on_pairing(self, pairing: PairingUri, message: str) -> None:
        waiting = {w.request_id: w for w in self._waiters.values() if w.pairing_topic == pairing.topic}
        try:
            answer = open_pairing_answer(message, pairing.sym_key, waiting)
        except ProposalError as exc:
            log.info("ignored an unreadable message on pairing %s…: %s", pairing.topic[:8], exc)
            return
        if answer is None:
            return
        waiter = waiting[answer[0]]
        if not waiter.future.done():
            waiter.future.set_exception(answer[1])

