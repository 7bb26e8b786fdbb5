"""The wallet's side of the push proposal flow: a dapp asks, over a pairing, for a subscription.

protocol.md §7, with the wire format in protocol/proposal.py. What the wallet does:

* ``pair(uri)`` stores the pairing (topic and sym key, in the wallet file) and listens on its topic.
* A ``wc_pushPropose`` arriving there is read strictly. If the account already has a subscription to the
  proposing app, the wallet answers 6001 at once, as the seed says. Otherwise the proposal is stored as
  *pending* (inside the relay callback, before the ack), shown to the application as a
  :class:`ProposalReceived` event, and shared with the account's other devices through the
  ``pushProposal`` Sync store when Sync is enabled.
* ``approve(key)`` subscribes through the notify server like any subscribe (did:web, Y/Z, the key checked),
  within ``PUSH_PROPOSE_SUBSCRIBE_TIMEOUT``, then answers on sha256(X) with a type-1 envelope from a fresh Z
  carrying ``subscriptionAuth`` and the subscription's sym key. ``reject(key, reason)`` answers 5000 on the
  pairing topic. Either way the record becomes approved / rejected, which is final: a proposal is answered
  once, whichever device answers it, and a replay of the request changes nothing.
* A device that learns of a proposal through Sync can approve it (the approval needs only the dapp's public
  key); rejecting needs the pairing's key, which only a device that paired holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.pairing import PairingError, PairingUri
from wcnotify.protocol.pairing import parse as parse_pairing
from wcnotify.protocol.proposal import (
    ProposalError,
    ProposalRecord,
    PushProposal,
    PushProposalResult,
    already_subscribed_error,
    approval_message,
    pending_record,
    refusal_message,
    rejection_error,
)
from wcnotify.protocol.sync import SyncRecord, SyncSet
from wcnotify.relay.client import RelayMessage
from wcnotify.spec import ProposalStatus
from wcnotify.wallet.models import (
    ProposalReceived,
    ProposalResolved,
    Subscription,
    WalletError,
    canonical_account,
)

if TYPE_CHECKING:
    from wcnotify.wallet.client import NotifyClient

log = logging.getLogger("wcnotify.wallet.proposals")


class ProposalStateError(WalletError):
    """No pending proposal with that key on this device (unknown, expired, or already answered)."""


class Proposals:
    """``NotifyClient.proposals``: pairings and the proposals that arrive on them."""

    def __init__(self, client: NotifyClient) -> None:
        self.client = client
        client.sync.listeners.setdefault(spec.SYNC_STORE_PUSH_PROPOSAL, []).append(self._on_sync_record)

    async def resume(self) -> None:
        """On start: listen again on every pairing that has not expired."""
        now = int(self.client.clock())
        for topic, (key, expiry) in (await self.client.store.pairings()).items():
            if not expiry or expiry > now:
                await self.client.route(topic, key, self._on_pairing_request)

    async def pair(self, uri: str) -> PairingUri:
        """Pair from a dapp's ``wc:`` URI and listen for its proposals."""
        try:
            pairing = parse_pairing(uri)
        except PairingError as exc:
            raise WalletError(f"not a pairing URI: {exc}") from exc
        if pairing.expired(int(self.client.clock())):
            raise WalletError("the pairing URI has expired: ask the dapp for a new one")
        await self.client.store.put_pairing(pairing.topic, pairing.sym_key, pairing.expiry_timestamp or 0)
        await self.client.route(pairing.topic, pairing.sym_key, self._on_pairing_request)
        return pairing

    async def pending(self, account: str | None = None) -> list[ProposalRecord]:
        """Proposals waiting for an answer, oldest first."""
        now = int(self.client.clock())
        records = [r for r in await self._records(account) if r.status == ProposalStatus.PENDING and not r.expired(now)]
        return sorted(records, key=lambda r: r.expiry)

    async def _records(self, account: str | None = None) -> list[ProposalRecord]:
        acct = None if account is None else canonical_account(account)
        out = []
        for key, value in (await self.client.store.proposals(acct)).items():
            try:
                out.append(ProposalRecord.from_json(value, key))
            except ProposalError as exc:  # written by this code; only a damaged file gets here
                log.warning("ignoring an unreadable stored proposal %s…: %s", key[:12], exc)
        return out

    async def _record(self, key: str) -> ProposalRecord | None:
        value = (await self.client.store.proposals()).get(key)
        return None if value is None else ProposalRecord.from_json(value, key)

    async def _save(self, record: ProposalRecord) -> None:
        account = canonical_account(str(record.proposal.account))
        await self.client.store.put_proposal(record.key, account, record.to_json())

    async def _share(self, record: ProposalRecord) -> None:
        account = canonical_account(str(record.proposal.account))
        if self.client.sync.enabled(account):
            await self.client.sync.set(account, spec.SYNC_STORE_PUSH_PROPOSAL, record.key, record.to_json())

    # ---------------------------------------------------------------------------------- receiving

    async def _on_pairing_request(self, message: RelayMessage, request: jsonrpc.Request) -> None:
        if request.method != spec.PUSH_PROPOSE.method:
            return
        client = self.client
        try:
            proposal = PushProposal.from_request(request)
        except ProposalError as exc:
            log.warning("refused a malformed proposal on pairing %s…: %s", message.topic[:12], exc)
            error = jsonrpc.Error(request.id, spec.SdkError.INVALID_PROPOSAL,
                                  spec.SDK_ERROR_MESSAGES[spec.SdkError.INVALID_PROPOSAL])
            client.defer(lambda: self._publish_refusal(message.topic, error))
            return
        if await self._record(proposal.response_topic) is not None:
            return  # seen before (a replay, or it came through Sync first): answered once, if at all
        account = canonical_account(str(proposal.account))
        record = pending_record(request.id, message.topic, proposal, int(client.clock()))
        existing = [s for s in await client.store.subscriptions(account) if s.app_domain == proposal.metadata.domain]
        if existing:
            error = already_subscribed_error(request.id)
            record = record.as_rejected(error.message)
            await self._save(record)

            async def refuse() -> None:
                await self._publish_refusal(message.topic, error)
                await self._share(record)

            client.defer(refuse)
            client.emit(ProposalResolved(record))
            return
        await self._save(record)
        client.emit(ProposalReceived(record, "pairing"))
        client.defer(lambda: self._share(record))

    async def _publish_refusal(self, pairing_topic: str, error: jsonrpc.Error) -> None:
        pairing = (await self.client.store.pairings()).get(pairing_topic)
        if pairing is None:
            raise ProposalStateError("this device does not hold that pairing: reject from the device that paired")
        out = refusal_message(pairing_topic, pairing[0], error)
        await self.client.relay.publish(out.topic, out.message, ttl=out.ttl, tag=out.tag)

    async def _on_sync_record(self, account: str, record: SyncRecord) -> None:
        """Another device received or answered a proposal (inside the relay callback: file writes only)."""
        if not isinstance(record, SyncSet):
            return
        try:
            shared = ProposalRecord.from_json(record.value, record.key)
        except ProposalError as exc:
            log.warning("ignored a pushProposal record: %s", exc)
            return
        local = await self._record(shared.key)
        if local is not None and local.status != ProposalStatus.PENDING:
            return  # resolved is final
        if local is not None and shared.status == ProposalStatus.PENDING:
            return
        await self._save(shared)
        if shared.status == ProposalStatus.PENDING:
            if not shared.expired(int(self.client.clock())):
                self.client.emit(ProposalReceived(shared, "sync"))
        else:
            self.client.emit(ProposalResolved(shared))

    # ---------------------------------------------------------------------------------- answering

    async def _pending(self, key: str) -> ProposalRecord:
        record = await self._record(key)
        if record is None:
            raise ProposalStateError(f"no proposal {key[:16]}… on this device")
        if record.status != ProposalStatus.PENDING:
            raise ProposalStateError(f"the proposal was already {record.status.value}")
        if record.expired(int(self.client.clock())):
            raise ProposalStateError("the proposal has expired: the dapp is no longer waiting")
        return record

    async def approve(self, key: str) -> Subscription:
        """Subscribe as proposed and send the dapp the subscription's key; returns the subscription."""
        record = await self._pending(key)
        proposal = record.proposal
        try:
            subscription, auth = await asyncio.wait_for(
                self.client.subscribe_with_auth(str(proposal.account), proposal.metadata.domain, proposal.scope),
                spec.PUSH_PROPOSE_SUBSCRIBE_TIMEOUT,
            )
        except TimeoutError:
            raise WalletError(
                f"subscribing took longer than {spec.PUSH_PROPOSE_SUBSCRIBE_TIMEOUT} s; the proposal is still pending"
            ) from None
        out = approval_message(proposal, record.request_id, PushProposalResult(auth, subscription.sym_key))
        await self.client.relay.publish(out.topic, out.message, ttl=out.ttl, tag=out.tag)
        resolved = record.as_approved(subscription.topic)
        await self._save(resolved)
        await self._share(resolved)
        self.client.emit(ProposalResolved(resolved))
        return subscription

    async def reject(self, key: str, reason: str = "") -> None:
        """Decline: the dapp gets error 5000 with ``reason``."""
        record = await self._pending(key)
        error = rejection_error(record.request_id, reason)
        await self._publish_refusal(record.pairing_topic, error)
        resolved = record.as_rejected(reason)
        await self._save(resolved)
        await self._share(resolved)
        self.client.emit(ProposalResolved(resolved))
