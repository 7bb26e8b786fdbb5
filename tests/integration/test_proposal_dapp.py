"""The dapp side of the push proposal flow (dapp/proposal.py) against a real relay on loopback.

The wallet here is written from protocol.md §7 alone: a plain RelayClient, the crypto primitives and
hand-built JSON, not protocol/proposal.py, so a mistake shared by the dapp and that module still shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from wcnotify.dapp.proposal import (
    AlreadySubscribed,
    PairingExpiredError,
    ProposalClient,
    ProposalDeclined,
    ProposalError,
    ProposalRejected,
    ProposalTimeoutError,
    SubscriptionDeleted,
    SubscriptionUpdated,
    UnknownPairingError,
)
from wcnotify.protocol.crypto import (
    Ed25519KeyPair,
    X25519KeyPair,
    decrypt,
    derive_sym_key,
    encode_type0,
    encode_type1,
)
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import encode_jwt
from wcnotify.protocol.pairing import PairingUri, new_pairing
from wcnotify.protocol.pairing import parse as parse_pairing
from wcnotify.relay.client import RelayClient, RelayMessage
from wcnotify.relay.server import RelayConfig, RelayServer

ACCOUNT = "eip155:1:0x2c7536e3605d9c16a7a3d7b1898e5293d45542ec"
METADATA = {
    "name": "GM Dapp",
    "description": "Good morning, every morning.",
    "url": "https://gm.example.com",
    "icons": ["https://gm.example.com/icon.png"],
}
SCOPE = ["gm", "promotions"]
WAIT = 10.0


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    async with RelayServer(RelayConfig(port=0)) as server:
        yield server


@pytest.fixture
async def dapp(relay: RelayServer) -> AsyncIterator[ProposalClient]:
    async with ProposalClient(relay.ws_url) as client:
        yield client


@pytest.fixture
async def wallet(relay: RelayServer) -> AsyncIterator[WalletPeer]:
    async with RelayClient(relay.ws_url) as client:
        yield WalletPeer(client)


class WalletPeer:
    """A wallet from protocol.md §7: reads the URI, opens wc_pushPropose, answers approve / reject / 6001."""

    def __init__(self, relay: RelayClient) -> None:
        self.relay = relay
        self.identity = Ed25519KeyPair.generate()
        self.pairing_topic = ""
        self.pairing_key = b""

    async def pair(self, uri: str) -> None:
        pairing = parse_pairing(uri)
        if pairing.expired(int(time.time())):
            raise AssertionError("the wallet would refuse an expired pairing")
        self.pairing_topic, self.pairing_key = pairing.topic, pairing.sym_key
        await self.relay.subscribe(pairing.topic)

    async def next_on(self, topic: str, timeout: float = WAIT) -> RelayMessage:
        while True:
            message = await self.relay.next_message(timeout)
            if message.topic == topic:
                return message

    async def receive_proposal(self) -> tuple[int, dict[str, Any]]:
        message = await self.next_on(self.pairing_topic)
        assert message.tag == 4010
        payload = orjson.loads(decrypt(message.message, self.pairing_key))
        assert payload["jsonrpc"] == "2.0" and payload["method"] == "wc_pushPropose"
        assert isinstance(payload["id"], int)
        return payload["id"], payload["params"]

    def subscription_auth(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iat": now, "exp": now + 300, "iss": encode_did_key(self.identity.public_key),
            "act": "notify_subscription", "aud": "did:key:z6MkDappAuthenticationKey", "sub": "did:pkh:" + ACCOUNT,
            "ksu": "https://keys.example.com", "app": "did:web:gm.example.com", "scp": "type-id-1 type-id-2",
            "mjv": "1",
        }
        claims.update(overrides)
        return encode_jwt(claims, self.identity)

    async def approve(
        self, request_id: int, params: dict[str, Any], sym_key: bytes, auth: str | None = None,
        wallet_key: X25519KeyPair | None = None,
    ) -> X25519KeyPair:
        """Type 1 from Z on sha256(X), key HKDF(X25519(Z, X)), tag 4011."""
        z = wallet_key or X25519KeyPair.generate()
        x_pub = bytes.fromhex(params["publicKey"])
        result = {"subscriptionAuth": auth or self.subscription_auth(), "subscriptionSymKey": sym_key.hex()}
        body = orjson.dumps({"id": request_id, "jsonrpc": "2.0", "result": result})
        message = encode_type1(derive_sym_key(z.private_key, x_pub), z.public_key, body)
        await self.relay.publish(hashlib.sha256(x_pub).hexdigest(), message, ttl=86400, tag=4011)
        return z

    async def answer_error(self, request_id: int, code: int, message: str) -> None:
        """A JSON-RPC error, type 0 under the pairing key, on the pairing topic, tag 4011."""
        body = orjson.dumps({"id": request_id, "jsonrpc": "2.0", "error": {"code": code, "message": message}})
        await self.relay.publish(self.pairing_topic, encode_type0(self.pairing_key, body), ttl=86400, tag=4011)

    def wallet_jwt(self, act: str, **extra: Any) -> str:
        now = int(time.time())
        return encode_jwt({
            "iat": now, "exp": now + 300, "iss": encode_did_key(self.identity.public_key), "act": act,
            "aud": "did:key:z6MkDappAuthenticationKey", "sub": "did:pkh:" + ACCOUNT, "ksu": "https://keys.example.com",
            "app": "did:web:gm.example.com", "mjv": "1", **extra,
        }, self.identity)

    async def on_notify_topic(self, sym_key: bytes, payload: dict[str, Any], tag: int) -> None:
        await self.relay.publish(
            hashlib.sha256(sym_key).hexdigest(), encode_type0(sym_key, orjson.dumps(payload)), ttl=300, tag=tag
        )


async def start_proposal(dapp: ProposalClient, wallet: WalletPeer, timeout: float = WAIT, **kwargs: Any) -> tuple[
    asyncio.Task[Any], int, dict[str, Any]
]:
    uri = await dapp.create_pairing()
    task = asyncio.create_task(
        dapp.propose(parse_pairing(uri).topic, kwargs.pop("account", ACCOUNT), METADATA, SCOPE, timeout=timeout)
    )
    await wallet.pair(uri)  # after the publish or before it: the relay keeps the proposal for a late subscriber
    request_id, params = await wallet.receive_proposal()
    return task, request_id, params


# ----------------------------------------------------------------------------------------------- approve


async def test_approval_gives_the_key_and_then_the_wallets_changes(dapp: ProposalClient, wallet: WalletPeer):
    uri = await dapp.create_pairing()
    pairing = parse_pairing(uri)
    assert pairing.methods == ("wc_pushPropose",) and pairing.expiry_timestamp is not None
    assert pairing.topic in dapp.relay.topics
    task = asyncio.create_task(dapp.propose(pairing.topic, ACCOUNT, METADATA, SCOPE, timeout=WAIT))
    await wallet.pair(uri)
    request_id, params = await wallet.receive_proposal()
    assert params == {"publicKey": params["publicKey"], "metadata": METADATA, "account": ACCOUNT, "scope": SCOPE}
    assert len(bytes.fromhex(params["publicKey"])) == 32
    response_topic = hashlib.sha256(bytes.fromhex(params["publicKey"])).hexdigest()

    p = os.urandom(32)
    auth = wallet.subscription_auth()
    z = await wallet.approve(request_id, params, p, auth)
    approved = await asyncio.wait_for(task, WAIT)
    assert approved.sym_key == p and approved.topic == hashlib.sha256(p).hexdigest()
    assert approved.subscription_auth == auth and approved.claims["sub"] == "did:pkh:" + ACCOUNT
    assert approved.wallet_public_key == z.public_key and approved.request_id == request_id
    assert approved.scope == ("type-id-1", "type-id-2")
    assert approved.topic in dapp.relay.topics and response_topic not in dapp.relay.topics

    # what the notify server and the wallet put on the notify topic; the dapp yields only the wallet's changes
    message_auth = wallet.wallet_jwt("notify_message", msg={"title": "gm"})
    update = {"id": 11, "jsonrpc": "2.0", "method": "wc_notifyUpdate",
              "params": {"updateAuth": wallet.wallet_jwt("notify_update", scp="type-id-1")}}
    await wallet.on_notify_topic(p, {"id": 10, "jsonrpc": "2.0", "method": "wc_notifyMessage",
                                     "params": {"messageAuth": message_auth}}, 4002)
    await wallet.relay.publish(approved.topic, "AAAA garbage", ttl=300, tag=4008)
    await wallet.on_notify_topic(p, update, 4008)
    await wallet.on_notify_topic(p, {"id": 11, "jsonrpc": "2.0", "result": {"responseAuth": message_auth}}, 4009)
    await wallet.on_notify_topic(p, update, 4008)  # a redelivery: yielded once
    await wallet.on_notify_topic(p, {"id": 12, "jsonrpc": "2.0", "method": "wc_notifyDelete",
                                     "params": {"deleteAuth": wallet.wallet_jwt("notify_delete")}}, 4004)

    async def collect() -> list[Any]:
        return [change async for change in dapp.subscription_events(approved)]

    changes = await asyncio.wait_for(collect(), WAIT)
    assert [type(c) for c in changes] == [SubscriptionUpdated, SubscriptionDeleted]
    assert changes[0].scope == ("type-id-1",) and changes[0].request_id == 11
    assert changes[1].request_id == 12 and changes[1].claims.sub == "did:pkh:" + ACCOUNT
    assert approved.topic not in dapp.relay.topics
    with pytest.raises(ValueError, match="does not follow"):
        await anext(dapp.subscription_events(approved))


async def test_changes_signed_for_another_account_are_not_yielded(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, params = await start_proposal(dapp, wallet)
    p = os.urandom(32)
    await wallet.approve(request_id, params, p)
    approved = await asyncio.wait_for(task, WAIT)
    other = "did:pkh:eip155:1:0x" + "11" * 20
    await wallet.on_notify_topic(p, {"id": 1, "jsonrpc": "2.0", "method": "wc_notifyDelete",
                                     "params": {"deleteAuth": wallet.wallet_jwt("notify_delete", sub=other)}}, 4004)
    await wallet.on_notify_topic(p, {"id": 2, "jsonrpc": "2.0", "method": "wc_notifyUpdate",
                                     "params": {"updateAuth": wallet.wallet_jwt("notify_update", scp="a b")}}, 4008)
    events = dapp.subscription_events(approved)
    change = await asyncio.wait_for(anext(events), WAIT)
    assert isinstance(change, SubscriptionUpdated) and change.request_id == 2 and change.scope == ("a", "b")
    await events.aclose()


# -------------------------------------------------------------------------------------------- refusals


async def test_rejection_with_a_reason(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, _ = await start_proposal(dapp, wallet)
    await wallet.answer_error(request_id, 5000, "User rejected. Reason: too many emails.")
    with pytest.raises(ProposalRejected) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.reason == "too many emails" and info.value.code == 5000


async def test_already_subscribed(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, _ = await start_proposal(dapp, wallet)
    await wallet.answer_error(request_id, 6001, "User has existing notify subscription with dapp.")
    with pytest.raises(AlreadySubscribed) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.code == 6001
    assert not isinstance(info.value, ProposalRejected)


async def test_other_error_codes_are_a_generic_refusal(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, _ = await start_proposal(dapp, wallet)
    await wallet.answer_error(request_id, 1000, "Invalid proposal.")
    with pytest.raises(ProposalDeclined) as info:
        await asyncio.wait_for(task, WAIT)
    assert type(info.value) is ProposalDeclined and info.value.code == 1000


# -------------------------------------------------------------------------------------------- forgeries


async def forge(wallet: WalletPeer, request_id: int, params: dict[str, Any]) -> None:
    """Everything a party on the relay (or holding the pairing key) could send that must not end the wait."""
    x_pub = bytes.fromhex(params["publicKey"])
    response_topic = hashlib.sha256(x_pub).hexdigest()
    # a type 1 envelope under a key not derived from X
    body = orjson.dumps({"id": request_id, "jsonrpc": "2.0",
                         "result": {"subscriptionAuth": wallet.subscription_auth(), "subscriptionSymKey": "00" * 32}})
    z = X25519KeyPair.generate()
    await wallet.relay.publish(response_topic, encode_type1(os.urandom(32), z.public_key, body), ttl=300, tag=4011)
    # garbage, and a type 0 envelope
    await wallet.relay.publish(response_topic, "bm90IGFuIGVudmVsb3Bl", ttl=300, tag=4011)
    await wallet.relay.publish(response_topic, encode_type0(os.urandom(32), body), ttl=300, tag=4011)
    # correctly sealed to X, but the subscriptionAuth is for another account, another app, or badly signed
    other_account = "did:pkh:eip155:1:0x" + "22" * 20
    await wallet.approve(request_id, params, os.urandom(32), wallet.subscription_auth(sub=other_account))
    await wallet.approve(request_id, params, os.urandom(32), wallet.subscription_auth(app="did:web:evil.example"))
    await wallet.approve(request_id, params, os.urandom(32), wallet.subscription_auth()[:-8] + "AAAAAAAA")
    # a refusal for another request, and garbage on the pairing topic
    await wallet.answer_error(request_id + 1, 5000, "User rejected. Reason: not you.")
    await wallet.relay.publish(wallet.pairing_topic, encode_type0(os.urandom(32), b"{}"), ttl=300, tag=4011)


async def test_forged_answers_are_ignored_and_the_real_one_counts(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, params = await start_proposal(dapp, wallet)
    await forge(wallet, request_id, params)
    p = os.urandom(32)
    await wallet.approve(request_id, params, p)
    approved = await asyncio.wait_for(task, WAIT)
    assert approved.sym_key == p


async def test_only_forgeries_end_in_a_timeout_that_says_why(dapp: ProposalClient, wallet: WalletPeer):
    task, request_id, params = await start_proposal(dapp, wallet, timeout=2.0)
    await forge(wallet, request_id, params)
    with pytest.raises(ProposalTimeoutError) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.timeout == 2.0
    assert info.value.ignored == 6  # the six on the response topic; the pairing ones are not answers to it
    assert info.value.last_ignored is not None and "signature" in info.value.last_ignored
    assert "6 invalid answer(s) ignored" in str(info.value)
    assert hashlib.sha256(bytes.fromhex(params["publicKey"])).hexdigest() not in dapp.relay.topics


# ------------------------------------------------------------------------------------- pairings, input


async def test_expired_pairing_uri_is_refused(relay: RelayServer, wallet: WalletPeer):
    now = [time.time()]
    async with RelayClient(relay.ws_url) as shared:
        dapp = ProposalClient(relay.ws_url, shared, clock=lambda: now[0])
        await dapp.start()
        stale = new_pairing(os.urandom, int(now[0]) - 600, ttl=300)
        with pytest.raises(PairingExpiredError, match="create a new one"):
            await dapp.use_pairing(stale.format())
        assert stale.topic not in shared.topics
        uri = await dapp.create_pairing(ttl=60)
        now[0] += 61  # the dapp's clock only: the relay client keeps its own
        with pytest.raises(PairingExpiredError):
            await dapp.propose(parse_pairing(uri).topic, ACCOUNT, METADATA, SCOPE, timeout=1)
        with pytest.raises(AssertionError, match="expired"):
            await wallet.pair(stale.format())
        await dapp.close()


async def test_unknown_pairing_and_malformed_proposals_send_nothing(dapp: ProposalClient, wallet: WalletPeer):
    with pytest.raises(UnknownPairingError):
        await dapp.propose("ab" * 32, ACCOUNT, METADATA, SCOPE)
    uri = await dapp.create_pairing()
    await wallet.pair(uri)
    topic = parse_pairing(uri).topic
    with pytest.raises(ProposalError, match=r"metadata\.url must be an http"):
        await dapp.propose(topic, ACCOUNT, {**METADATA, "url": "javascript:alert(1)"}, SCOPE)
    with pytest.raises(ProposalError, match="CAIP-10"):
        await dapp.propose(topic, "0x2c7536e3605d9c16a7a3d7b1898e5293d45542ec", METADATA, SCOPE)
    with pytest.raises(ProposalError, match="at least one"):
        await dapp.propose(topic, ACCOUNT, METADATA, [])
    with pytest.raises(TimeoutError):
        await wallet.next_on(topic, timeout=0.5)


async def test_a_shared_relay_client_keeps_its_other_traffic(relay: RelayServer, wallet: WalletPeer):
    received: list[RelayMessage] = []
    async with RelayClient(relay.ws_url, on_message=received.append) as shared:
        dapp = ProposalClient(relay.ws_url, shared)
        await dapp.start()
        uri = await dapp.create_pairing()
        pairing: PairingUri = await dapp.use_pairing(uri)  # taking the same URI again is harmless
        other_topic = os.urandom(32).hex()
        await shared.subscribe(other_topic)
        await wallet.relay.publish(other_topic, "for the app itself", ttl=300, tag=1)
        task = asyncio.create_task(dapp.propose(pairing.topic, ACCOUNT, METADATA, SCOPE, timeout=WAIT))
        await wallet.pair(uri)
        request_id, _ = await wallet.receive_proposal()
        await wallet.answer_error(request_id, 6001, "User has existing notify subscription with dapp.")
        with pytest.raises(AlreadySubscribed):
            await asyncio.wait_for(task, WAIT)
        await dapp.close()
        assert shared.on_message == received.append and shared.connected
    assert [(m.topic, m.message) for m in received] == [(other_topic, "for the app itself")]
