"""Keys server pieces without sockets: URL normalization, the envelope, audiences, and the resolver's
handling of whatever a keys server might answer (through an httpx MockTransport)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from eth_account import Account as EthAccount

from wcnotify.keys.app import keys_audiences
from wcnotify.keys.client import (
    IdentityResolver,
    InvalidIdentityError,
    KeysClient,
    KeysClientError,
    KeysServerUnavailableError,
    normalize_keys_server_url,
)
from wcnotify.keys.envelope import KeysApiError, failure_body, parse_envelope, success_body
from wcnotify.protocol.cacao import Cacao, prepare_registration, sign_eip191, siwe_message
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import Account, encode_did_key

KEYS = "https://keys.example.com"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://keys.example.com", KEYS),
        ("https://keys.example.com/", KEYS),
        ("HTTPS://Keys.Example.COM:443/", KEYS),
        ("http://keys.example.com:80", "http://keys.example.com"),
        ("http://127.0.0.1:8081/", "http://127.0.0.1:8081"),
        ("https://id.example.com/keys/", "https://id.example.com/keys"),
        ("http://[::1]:8081", "http://[::1]:8081"),
        ("http://[::1]", "http://[::1]"),
        ("https://user@keys.example.com", None),
        ("https://keys.example.com:443@evil.example", None),
        ("https://keys.example.com?x=1", None),
        ("https://keys.example.com#x", None),
        ("ftp://keys.example.com", None),
        ("keys.example.com", None),
        ("https://", None),
        ("http://keys.example.com:99999", None),
        ("http://[::1", None),
    ],
)
def test_normalize_keys_server_url(url: str, expected: str | None) -> None:
    assert normalize_keys_server_url(url) == expected


def test_resolver_refuses_a_bad_allowlist_entry() -> None:
    with pytest.raises(ValueError, match="keys server URL"):
        IdentityResolver(["keys.example.com"], http=httpx.AsyncClient())


def test_envelope_round_trip_and_failures() -> None:
    assert parse_envelope(200, success_body({"a": 1})) == {"a": 1}
    assert parse_envelope(200, success_body()) is None
    with pytest.raises(KeysApiError) as excinfo:
        parse_envelope(404, failure_body("Identity key not found", "Cannot find it"))
    assert (excinfo.value.status, excinfo.value.name, excinfo.value.message) == (404, "Identity key not found",
                                                                                   "Cannot find it")
    for status, body in ((200, b"<html>"), (502, b""), (200, b"[]"), (200, b'{"status": "MAYBE"}')):
        with pytest.raises(KeysApiError, match="not a keys server answer"):
            parse_envelope(status, body)
    # SUCCESS with an error status, and FAILURE without an error object, are still failures
    with pytest.raises(KeysApiError):
        parse_envelope(500, success_body())
    with pytest.raises(KeysApiError, match="without an error message"):
        parse_envelope(400, b'{"status": "FAILURE", "error": null, "value": null}')


def test_audiences_cover_local_names_and_public_urls() -> None:
    audiences = keys_audiences("0.0.0.0", 8081, ["https://keys.example.com/"])
    for url in ("http://127.0.0.1:8081", "http://localhost:8081/", "https://keys.example.com",
                "https://keys.example.com/"):
        assert url in audiences
    assert "http://0.0.0.0:8081" not in audiences
    assert "http://[::1]:8081" in keys_audiences("::1", 8081)


# ------------------------------------------------------------------------------- resolver via mocks


def _registration(identity: Ed25519KeyPair, *, eth_key: str | None = None) -> Cacao:
    eth_key = eth_key or "0x" + os.urandom(32).hex()
    account = Account("eip155", "1", EthAccount.from_key(eth_key).address)
    payload = prepare_registration(account=account, domain="app.example.com", identity_public_key=identity.public_key,
                                   keys_server_url=KEYS, all_apps=True, nonce="ab" * 32, now=time.time())
    return Cacao(payload, sign_eip191(siwe_message(payload), eth_key))


def _resolver(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> IdentityResolver:
    # a shared client set to follow redirects: the resolver must not follow them anyway
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    return IdentityResolver([KEYS], http=http, **kwargs)


def _serving(cacaos: dict[str, Cacao], seen: list[str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.params["publicKey"]
        if seen is not None:
            seen.append(key)
        if key not in cacaos:
            return httpx.Response(404, content=failure_body("Identity key not found", "no"))
        return httpx.Response(200, content=success_body({"cacao": cacaos[key].to_dict()}))

    return handler


def _mb(identity: Ed25519KeyPair) -> str:
    return encode_did_key(identity.public_key).removeprefix("did:key:")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, content=b"oops"),
        httpx.Response(503, content=failure_body("unknown_error", "db")),
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, content=success_body(None)),
        httpx.Response(200, content=success_body([1])),
        httpx.Response(400, content=failure_body("did", "bad key")),
        httpx.Response(302, headers={"location": "http://169.254.169.254/"}, content=b""),
    ],
)
async def test_nonsense_answers_are_the_keys_servers_fault(response: httpx.Response) -> None:
    resolver = _resolver(lambda _request: response)
    with pytest.raises(KeysServerUnavailableError) as excinfo:
        await resolver.resolve(KEYS, encode_did_key(Ed25519KeyPair.generate().public_key), now=int(time.time()))
    assert excinfo.value.server_fault and KEYS in excinfo.value.message


async def test_transport_errors_are_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(KeysServerUnavailableError, match="could not be reached"):
        await _resolver(refuse).resolve(KEYS, encode_did_key(Ed25519KeyPair.generate().public_key), now=0)


async def test_served_cacao_for_another_key_is_invalid() -> None:
    asked, other = Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    resolver = _resolver(_serving({_mb(asked): _registration(other)}))
    with pytest.raises(InvalidIdentityError, match="delegates to"):
        await resolver.resolve(KEYS, encode_did_key(asked.public_key), now=int(time.time()))


async def test_served_cacao_that_does_not_verify_is_invalid() -> None:
    identity = Ed25519KeyPair.generate()
    good = _registration(identity)
    forged = Cacao(good.payload, sign_eip191(siwe_message(good.payload), "0x" + os.urandom(32).hex()))
    resolver = _resolver(_serving({_mb(identity): forged}))
    with pytest.raises(InvalidIdentityError, match="does not verify"):
        await resolver.resolve(KEYS, encode_did_key(identity.public_key), now=int(time.time()))
    malformed = _resolver(lambda _r: httpx.Response(200, content=orjson.dumps(
        {"status": "SUCCESS", "error": None, "value": {"cacao": {"h": {"t": "eip4361"}}}})))
    with pytest.raises(InvalidIdentityError, match="malformed"):
        await malformed.resolve(KEYS, encode_did_key(identity.public_key), now=int(time.time()))


async def test_failures_are_not_cached() -> None:
    identity = Ed25519KeyPair.generate()
    seen: list[str] = []
    resolver = _resolver(_serving({_mb(identity): Cacao(_registration(identity).payload, "0x" + "00" * 65)}, seen))
    for _ in range(3):
        with pytest.raises(InvalidIdentityError):
            await resolver.resolve(KEYS, encode_did_key(identity.public_key), now=int(time.time()))
    assert len(seen) == 3


async def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    identities = [Ed25519KeyPair.generate() for _ in range(3)]
    seen: list[str] = []
    resolver = _resolver(_serving({_mb(i): _registration(i) for i in identities}, seen), cache_size=2)
    now = int(time.time())
    a, b, c = (encode_did_key(i.public_key) for i in identities)
    for iss in (a, b, a, c):  # c evicts b (a was used more recently)
        await resolver.resolve(KEYS, iss, now=now)
    assert len(seen) == 3
    await resolver.resolve(KEYS, a, now=now)
    await resolver.resolve(KEYS, c, now=now)
    assert len(seen) == 3
    await resolver.resolve(KEYS, b, now=now)
    assert len(seen) == 4
    resolver.invalidate(KEYS + "/", a)
    await resolver.resolve(KEYS, a, now=now)
    assert len(seen) == 5


async def test_keys_client_reports_the_servers_error_and_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(400, content=failure_body("jwt_verification", "JWT has expired"))
        raise httpx.ConnectError("connection refused", request=request)

    client = KeysClient(KEYS + "/", httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(KeysClientError) as excinfo:
        await client.unregister("a.b.c")
    assert (excinfo.value.status, excinfo.value.name, excinfo.value.message) == (400, "jwt_verification",
                                                                                   "JWT has expired")
    with pytest.raises(KeysClientError) as excinfo:
        await client.resolve("z6Mk")
    assert excinfo.value.status is None and excinfo.value.name == "unavailable"
