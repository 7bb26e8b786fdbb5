"""Sync API stores: a user's devices share subscriptions (and proposals) through the relay, end to end encrypted.

The seed's "Usage of Sync API", as a wallet runs it:

* The user signs :func:`~wcnotify.protocol.sync.sync_message` once per account. Every store's key and topic
  derive from that signature (protocol/sync.py), so any device holding it reaches the same stores, with no
  server involved and nothing the relay can read.
* ``com.walletconnect.notify.pushSubscription``: key = subscription topic, value = the subscription
  (protocol/notify_sync.py). After this device subscribes it publishes ``wc_syncSet``; after it deletes,
  ``wc_syncDel``. Another device that reads a set stores the subscription and listens on its topic, so it
  receives every later notification even with no identity key of its own; a del makes it stop.
* ``com.walletconnect.notify.pushProposal``: key = a proposal's response topic; written by the proposal flow.
* Records are ``wc_syncSet``/``wc_syncDel`` on the store topic (type 0 under the store key, tag 5000/5002,
  30 days). Last writer wins by JSON-RPC id with tombstones (protocol/sync.py); each record is written to
  the wallet file inside the relay callback, before the relay's ack, so none is lost.
* A device added later recovers the stores from the relay's mailbox: its relay client id is new, so the relay
  sends it every record still within its 30-day TTL, and last-writer-wins makes the order irrelevant.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wcnotify import spec
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.cacao import CacaoError, recover_eip191, sign_eip191
from wcnotify.protocol.crypto import encode_type0
from wcnotify.protocol.did import Account
from wcnotify.protocol.notify_sync import (
    NotifySyncError,
    PushSubscriptionValue,
    ScopeEntry,
    parse_push_subscription,
)
from wcnotify.protocol.sync import (
    SyncDel,
    SyncError,
    SyncRecord,
    SyncSet,
    derive_store,
    record_from_request,
    record_request,
    store_topic,
    sync_message,
)
from wcnotify.relay.client import RelayMessage
from wcnotify.wallet.models import Subscription, SubscriptionsChanged, WalletError, canonical_account

if TYPE_CHECKING:
    from wcnotify.wallet.client import NotifyClient

log = logging.getLogger("wcnotify.wallet.sync")

STORES = (spec.SYNC_STORE_PUSH_SUBSCRIPTION, spec.SYNC_STORE_PUSH_PROPOSAL)

# called with (account, record) after a record from another device won in a store
StoreListener = Callable[[str, SyncRecord], Awaitable[None]]


class SyncNotEnabledError(WalletError):
    """Sync is not enabled for that account on this device: call ``enable_sync`` with the user's signature."""


class SyncStores:
    """The Sync stores of every account that enabled Sync on this device (``NotifyClient.sync``)."""

    def __init__(self, client: NotifyClient) -> None:
        self.client = client
        self._keys: dict[tuple[str, str], bytes] = {}  # (account, store) -> store key
        self.listeners: dict[str, list[StoreListener]] = {}  # store -> listeners (the proposal flow uses one)
        client.after_subscribe.append(self._subscribed)
        client.after_delete.append(self._deleted)

    @staticmethod
    def message(account: str) -> str:
        """What the user signs (EIP-191) to enable Sync for ``account``; the same text on every device."""
        return sync_message(str(Account.parse(account).checksummed()))

    async def resume(self) -> None:
        """On start: listen on every enabled store again (the relay sends what arrived meanwhile)."""
        for _name, key, info in await self.client.store.keys_with_prefix("sync:"):
            account, store = info["account"], info["store"]
            self._keys[(account, store)] = key
            await self._route(account, store, key)

    def enabled(self, account: str) -> bool:
        return (account, spec.SYNC_STORE_PUSH_SUBSCRIPTION) in self._keys

    async def enable(self, account: str, signature: str) -> None:
        """Derive the stores from the user's signature of :meth:`message`, listen on them, and publish this
        device's subscriptions of ``account`` that the store does not hold yet."""
        account = canonical_account(account)
        try:
            signer = recover_eip191(self.message(account), signature)
        except (CacaoError, ValueError) as exc:
            raise WalletError(f"the Sync signature is not a valid EIP-191 signature: {exc}") from exc
        if signer.lower() != Account.parse(account).address.lower():
            raise WalletError(f"the Sync signature was made by {signer}, not by {account}")
        for store in STORES:
            keys = derive_store(signature, store)
            await self.client.store.put_key(f"sync:{account}:{store}", keys.key, {"account": account, "store": store})
            self._keys[(account, store)] = keys.key
            await self._route(account, store, keys.key)
        held = await self.client.store.sync_records(account, spec.SYNC_STORE_PUSH_SUBSCRIPTION)
        for sub in await self.client.store.subscriptions(account):
            if sub.topic not in held:
                await self._subscribed(sub)

    async def enable_with_key(self, account: str, private_key: bytes | str) -> None:
        await self.enable(account, sign_eip191(self.message(account), private_key))

    async def items(self, account: str, store: str) -> dict[str, str]:
        """The store's live keys and values as this device knows them."""
        records = await self.client.store.sync_records(account, store)
        return {key: value for key, (value, _) in records.items() if value is not None}

    async def set(self, account: str, store: str, key: str, value: str) -> None:
        await self._write(account, SyncSet(store, key, value, self.client.next_id()))

    async def delete(self, account: str, store: str, key: str) -> None:
        await self._write(account, SyncDel(store, key, self.client.next_id()))

    async def _write(self, account: str, record: SyncRecord) -> None:
        key = self._keys.get((account, record.store))
        if key is None:
            raise SyncNotEnabledError(f"Sync is not enabled for {account} on this device: call enable_sync first")
        value = record.value if isinstance(record, SyncSet) else None
        await self.client.store.put_sync_record(account, record.store, record.key, value, record.id)
        await self.client.relay.publish(
            store_topic(key), encode_type0(key, jsonrpc.encode(record_request(record))),
            ttl=record.rpc.request_ttl, tag=record.rpc.request_tag,
        )

    # -------------------------------------------------------------------------------- receiving

    async def _route(self, account: str, store: str, key: bytes) -> None:
        async def on_record(message: RelayMessage, request: jsonrpc.Request) -> None:
            try:
                record = record_from_request(store, request)
            except SyncError as exc:
                log.warning("ignored a malformed record in %s: %s", store, exc)
                return
            value = record.value if isinstance(record, SyncSet) else None
            if not await self.client.store.put_sync_record(account, store, record.key, value, record.id):
                return  # an older write, or one this device already has
            if store == spec.SYNC_STORE_PUSH_SUBSCRIPTION:
                await self._apply_subscription(account, record)
            for listener in self.listeners.get(store, []):
                await listener(account, record)

        await self.client.route(store_topic(key), key, on_record)

    async def _apply_subscription(self, account: str, record: SyncRecord) -> None:
        """A subscription set or deleted on another device: store it (inside the relay callback, before the
        ack) and listen on its topic, or forget it."""
        client = self.client
        if isinstance(record, SyncDel):
            gone = await client.store.delete_subscription(record.key)
            if gone is not None:
                client.defer(lambda: self._after_change(account, removed=gone.topic))
            return
        try:
            value = parse_push_subscription(record.key, record.value)
        except NotifySyncError as exc:
            log.warning("ignored a pushSubscription record: %s", exc)
            return
        if not Account.parse(value.account).same_address(Account.parse(account)):
            log.warning("ignored a pushSubscription record for another account")
            return
        if value.app_authentication_key is None:
            client.defer(lambda: self._resolve_and_store(account, value))
            return
        await client.store.put_subscription(_subscription(account, value, value.app_authentication_key))
        client.defer(lambda: self._after_change(account, added=value))

    async def _resolve_and_store(self, account: str, value: PushSubscriptionValue) -> None:
        """An older peer's value has no appAuthenticationKey: the app's did.json says which key signs."""
        keys = await self.client.resolver.resolve(value.app_domain)
        await self.client.store.put_subscription(_subscription(account, value, keys.authentication_did_key))
        await self._after_change(account, added=value)

    async def _after_change(self, account: str, *, added: PushSubscriptionValue | None = None,
                            removed: str | None = None) -> None:
        if added is not None:
            sub = await self.client.store.subscription(added.topic)
            if sub is not None:
                await self.client.listen(sub)
        if removed is not None:
            await self.client.unroute(removed)
        self.client.emit(SubscriptionsChanged(account, tuple(await self.client.store.subscriptions(account)), "sync"))

    # ------------------------------------------------------------------------ this device's changes

    async def _subscribed(self, sub: Subscription) -> None:
        if not self.enabled(sub.account):
            return
        try:
            types = await self.client.app_types(sub.app_domain)
        except WalletError:
            types = ()
        names = {t.id: t for t in types}
        scope = tuple(
            ScopeEntry(names[i].name if i in names else i, names[i].description if i in names else "", True, i)
            for i in sub.scope
        ) + tuple(ScopeEntry(t.name, t.description, False, t.id) for t in types if t.id not in sub.scope)
        value = PushSubscriptionValue(
            topic=sub.topic, account=sub.account, app_domain=sub.app_domain, sym_key=sub.sym_key, expiry=sub.expiry,
            scope=scope, app_authentication_key=sub.app_authentication_key,
        )
        await self.set(sub.account, spec.SYNC_STORE_PUSH_SUBSCRIPTION, sub.topic, value.encode())

    async def _deleted(self, sub: Subscription) -> None:
        if self.enabled(sub.account):
            await self.delete(sub.account, spec.SYNC_STORE_PUSH_SUBSCRIPTION, sub.topic)


def _subscription(account: str, value: PushSubscriptionValue, auth_key: str) -> Subscription:
    return Subscription(
        topic=value.topic, account=account, app_domain=value.app_domain, app_authentication_key=auth_key,
        sym_key=value.sym_key, scope=value.enabled_ids, expiry=value.expiry,
    )
