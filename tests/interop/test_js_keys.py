"""The OFFICIAL identity client (@walletconnect/identity-keys 2.1.0, as notify-client 1.4.1 pins it) against
our keys server on loopback: it registers an identity (its own SIWE text, signed by ethers, POSTed by
axios), resolves it, and unregisters it with its millisecond-time idAuth; Python checks each step through
its own client and through the notify server's IdentityResolver.

The keys server runs in this test's event loop, so each Node batch runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount

from wcnotify.keys import IdentityResolver, KeysClient, KeysConfig, KeysServer
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import Account, encode_did_key

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

RunJs = Callable[..., list[Any]]


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[KeysServer]:
    async with KeysServer(KeysConfig(port=0, database_url=f"sqlite:///{tmp_path / 'keys.db'}")) as server:
        yield server


def _wallet(chain: str = "1") -> tuple[str, Account]:
    key = "0x" + os.urandom(32).hex()
    return key, Account("eip155", chain, EthAccount.from_key(key).address)


async def test_identity_keys_registers_resolves_and_unregisters(run_js: RunJs, keys: KeysServer) -> None:
    eth_key, account = _wallet("10")
    seed = secrets.token_hex(32)
    identity = Ed25519KeyPair.from_seed(bytes.fromhex(seed))
    register = {"op": "identityKeysRegister", "keyserverUrl": keys.url, "account": str(account),
                "domain": "app.example.com", "allApps": True, "privateKey": eth_key, "identitySeed": seed}
    registered, served = await asyncio.to_thread(run_js, [
        register,
        {"op": "identityKeysResolve", "keyserverUrl": keys.url, "publicKey": "did:key:" + _multibase(identity)},
    ])
    assert registered["identityPublicKey"] == identity.public_key.hex()
    assert registered["identityKey"] == "did:key:" + _multibase(identity)

    # what the server stored is what JS sent, and what JS resolves
    async with KeysClient(keys.url) as client:
        cacao = await client.resolve(registered["identityKey"])
    assert cacao is not None and cacao.to_dict() == served
    assert served["p"]["iss"] == account.did_pkh and served["s"]["t"] == "eip191"
    resolver = IdentityResolver([keys.url])
    try:
        resolved = await resolver.resolve(keys.url, registered["identityKey"], now=_now())
    finally:
        await resolver.aclose()
    assert resolved.account == account and resolved.authorization.all_apps

    # another account cannot take the key over: identity-keys surfaces our 409
    other_key, other = _wallet()
    taken = {**register, "account": str(other), "privateKey": other_key}
    unregister = {"op": "identityKeysUnregister", "keyserverUrl": keys.url, "account": str(account),
                  "identitySeed": seed}
    resolve = {"op": "identityKeysResolve", "keyserverUrl": keys.url, "publicKey": registered["identityKey"]}
    conflict, unregistered, after = await asyncio.to_thread(run_js, [taken, unregister, resolve], check=False)
    assert not conflict["ok"] and "409" in conflict["error"], conflict
    assert unregistered == {"ok": True, "value": {"registered": False}}, unregistered
    assert not after["ok"] and "Failed to resolve identity key" in after["error"]
    assert await keys.keys.store.count() == 0


async def test_identity_keys_with_a_trailing_slash_url_and_a_domain_grant(run_js: RunJs, keys: KeysServer) -> None:
    """keyserverUrl configured as ``http://…/`` (identity-keys then asks for ``//identity``), a lowercase
    account, and the one-domain statement: registered, and limited to that domain."""
    eth_key, account = _wallet()
    (registered,) = await asyncio.to_thread(run_js, [
        {"op": "identityKeysRegister", "keyserverUrl": keys.url + "/", "account": f"eip155:1:{account.address_key}",
         "domain": "dapp.example.org", "allApps": False, "privateKey": eth_key, "identitySeed": secrets.token_hex(32)},
    ])
    resolver = IdentityResolver([keys.url])
    try:
        resolved = await resolver.resolve(keys.url + "/", registered["identityKey"], now=_now())
    finally:
        await resolver.aclose()
    assert not resolved.authorization.all_apps and resolved.authorization.domain == "dapp.example.org"
    assert resolved.account.same_address(account)


def _multibase(identity: Ed25519KeyPair) -> str:
    return encode_did_key(identity.public_key).removeprefix("did:key:")


def _now() -> int:
    return int(time.time())
