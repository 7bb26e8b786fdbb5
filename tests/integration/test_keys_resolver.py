"""IdentityResolver (what the notify server calls for every wallet request) against a real keys server:
allowlist before any request, verification of what is served, a short cache driven by an injected clock,
and the server's own faults kept apart from the wallet's."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.test_keys import Wallet, post_cacao, running_keys
from wcnotify.keys import (
    IdentityNotAuthorizedError,
    IdentityNotRegisteredError,
    IdentityResolver,
    InvalidIdentityError,
    KeysClient,
    KeysServer,
    KeysServerNotAllowedError,
    KeysServerUnavailableError,
)
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import encode_did_key
from wcnotify.spec import IDENTITY_CACHE_TTL


class Clock:
    """A settable clock for the resolver's cache (verification takes ``now`` separately)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Counting:
    """An httpx client on real sockets that records every request it sends."""

    http: httpx.AsyncClient
    urls: list[str]


@pytest.fixture
async def keys(database_url: str) -> AsyncIterator[KeysServer]:
    async with running_keys(database_url) as server:
        yield server


@pytest.fixture
async def counting() -> AsyncIterator[Counting]:
    urls: list[str] = []

    async def record(request: httpx.Request) -> None:
        urls.append(str(request.url))

    async with httpx.AsyncClient(trust_env=False, timeout=5, event_hooks={"request": [record]}) as http:
        yield Counting(http, urls)


async def register(keys: KeysServer, http: httpx.AsyncClient, **kwargs: Any) -> tuple[Wallet, Ed25519KeyPair, str]:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    response = await post_cacao(http, keys, wallet.registration(identity, keys.url, **kwargs))
    assert response.status_code == 200, response.text
    return wallet, identity, encode_did_key(identity.public_key)


async def test_resolves_and_authorizes_a_registered_identity(keys: KeysServer, counting: Counting) -> None:
    wallet, _, iss = await register(keys, counting.http, all_apps=False, domain="dapp.example.com")
    _, _, iss_all = await register(keys, counting.http, all_apps=True, recaps=True)
    resolver = IdentityResolver([keys.url], http=counting.http)
    now = int(time.time())
    resolved = await resolver.resolve(keys.url, iss, now=now)
    assert resolved.account == wallet.account
    assert resolved.authorization.domain == "dapp.example.com" and not resolved.authorization.all_apps
    assert resolved.authorization.allows("DAPP.example.com") and not resolved.authorization.allows("other.com")
    assert resolved.cacao.payload.aud == iss
    assert (await resolver.resolve(keys.url + "/", iss_all, now=now)).authorization.all_apps
    # the bare multibase form of iss is the same key
    assert await resolver.resolve(keys.url, iss.removeprefix("did:key:"), now=now) == resolved


REFUSED_KSUS = (
    "http://127.0.0.1:{other}",  # a second keys server that would answer
    "https://127.0.0.1:{port}",
    "http://127.0.0.1:{port}@127.0.0.1:{other}",  # user info that makes the host the other server
    "http://127.0.0.1:{port}/../",
    "http://127.0.0.1:{port}?x=1",
    "http://127.0.0.1:{port}#frag",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data",
    "",
    "127.0.0.1:{port}",
)


async def test_ksu_outside_the_allowlist_is_refused_before_any_request(
    keys: KeysServer, database_url: str, counting: Counting
) -> None:
    _, _, iss = await register(keys, counting.http)
    async with running_keys(database_url) as other:
        await register(other, counting.http)  # the other server knows identities too
        counting.urls.clear()
        resolver = IdentityResolver([keys.url], http=counting.http)
        for ksu in REFUSED_KSUS:
            with pytest.raises(KeysServerNotAllowedError) as excinfo:
                await resolver.resolve(ksu.format(port=keys.port, other=other.port), iss, now=int(time.time()))
            assert keys.url in excinfo.value.message and not excinfo.value.server_fault
        assert counting.urls == []


async def test_allowlist_matches_normalized_urls(keys: KeysServer, counting: Counting) -> None:
    _, _, iss = await register(keys, counting.http)
    resolver = IdentityResolver([f"HTTP://127.0.0.1:{keys.port}/"], http=counting.http)
    counting.urls.clear()
    for ksu in (keys.url, keys.url + "/", f"http://127.0.0.1:{keys.port}"):
        resolver.invalidate()
        await resolver.resolve(ksu, iss, now=int(time.time()))
    assert counting.urls == [f"{keys.url}/identity?publicKey={iss.removeprefix('did:key:')}"] * 3


async def test_cache_hit_within_ttl_and_refetch_after(keys: KeysServer, counting: Counting) -> None:
    wallet, identity, iss = await register(keys, counting.http)
    clock = Clock()
    resolver = IdentityResolver([keys.url], http=counting.http, clock=clock)
    now = int(time.time())
    counting.urls.clear()
    first = await resolver.resolve(keys.url, iss, now=now)
    async with KeysClient(keys.url, counting.http) as client:
        await client.unregister_key(identity, wallet.account, now=now)
    counting.urls.clear()
    clock.now += IDENTITY_CACHE_TTL - 1
    assert await resolver.resolve(keys.url, iss, now=now) is first  # still cached: no request
    assert counting.urls == []
    clock.now += 2  # past the TTL: asked again, and the key is gone
    with pytest.raises(IdentityNotRegisteredError) as excinfo:
        await resolver.resolve(keys.url, iss, now=now)
    assert len(counting.urls) == 1
    assert "not registered" in excinfo.value.message and iss in excinfo.value.message


async def test_not_registered_is_not_cached(keys: KeysServer, counting: Counting) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    iss = encode_did_key(identity.public_key)
    resolver = IdentityResolver([keys.url], http=counting.http, clock=Clock())
    with pytest.raises(IdentityNotRegisteredError):
        await resolver.resolve(keys.url, iss, now=int(time.time()))
    await post_cacao(counting.http, keys, wallet.registration(identity, keys.url))
    assert (await resolver.resolve(keys.url, iss, now=int(time.time()))).account == wallet.account


async def test_cacao_expiry_beats_the_cache(keys: KeysServer, counting: Counting) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    now = int(time.time())
    payload = dataclasses.replace(
        wallet.payload(identity, keys.url), exp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600))
    )
    assert (await post_cacao(counting.http, keys, wallet.sign(payload))).status_code == 200
    resolver = IdentityResolver([keys.url], http=counting.http, clock=Clock())
    iss = encode_did_key(identity.public_key)
    await resolver.resolve(keys.url, iss, now=now)
    with pytest.raises(InvalidIdentityError, match="expired"):
        await resolver.resolve(keys.url, iss, now=now + 601)


async def test_cacao_without_a_notify_grant_is_not_authorized(keys: KeysServer, counting: Counting) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    payload = dataclasses.replace(wallet.payload(identity, keys.url), statement="Sign in to Example.")
    assert (await post_cacao(counting.http, keys, wallet.sign(payload))).status_code == 200
    resolver = IdentityResolver([keys.url], http=counting.http)
    with pytest.raises(IdentityNotAuthorizedError, match="does not authorize Notify"):
        await resolver.resolve(keys.url, encode_did_key(identity.public_key), now=int(time.time()))


async def test_bad_iss_is_invalid_without_a_request(keys: KeysServer, counting: Counting) -> None:
    resolver = IdentityResolver([keys.url], http=counting.http)
    for iss in ("did:key:zNope", "did:pkh:eip155:1:0x" + "0" * 40, encode_did_key(b"\x01" * 32, "X25519")):
        with pytest.raises(InvalidIdentityError, match="Ed25519 did:key"):
            await resolver.resolve(keys.url, iss, now=int(time.time()))
    assert counting.urls == []


async def test_keys_server_down_is_unavailable_and_a_server_fault(database_url: str, counting: Counting) -> None:
    async with running_keys(database_url) as keys:
        _, _, iss = await register(keys, counting.http)
        url = keys.url
    resolver = IdentityResolver([url], http=counting.http)
    with pytest.raises(KeysServerUnavailableError) as excinfo:
        await resolver.resolve(url, iss, now=int(time.time()))
    assert excinfo.value.server_fault and url in excinfo.value.message


async def test_own_http_client_is_created_and_closed(keys: KeysServer, counting: Counting) -> None:
    _, _, iss = await register(keys, counting.http)
    resolver = IdentityResolver([keys.url])
    try:
        assert (await resolver.resolve(keys.url, iss, now=int(time.time()))).cacao.payload.aud == iss
    finally:
        await resolver.aclose()
    assert resolver.http.is_closed
