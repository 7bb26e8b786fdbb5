"""EdDSA JWTs against @walletconnect/relay-auth 1.1.0 and @walletconnect/did-jwt 2.0.1 / 2.1.0.

did-jwt 2.0.1 is notify-client 1.4.1's own dependency; identity-keys 2.1.0 (which signs every JWT the
notify client sends, through ``IdentityKeys.generateIdAuth``) carries a nested did-jwt 2.1.0. Both are
exercised. did-jwt has no verifier: the peer's ``didJwtVerify`` uses did-jwt's ``decodeEd25519Key`` and the
@noble/ed25519 1.7.3 it signs with. relay-auth's ``verifyJWT`` checks the header and signature only.

Fresh random keys and claims on every run.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

from wcnotify.protocol.crypto import Ed25519KeyPair, b64url_encode
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import JwtError, encode_jwt, verify_jwt

pytestmark = pytest.mark.interop

RunJs = Callable[..., list[Any]]
DID_JWT_VERSIONS = ("2.0.1", "2.1.0")
CASES = 4


@pytest.fixture
def rng() -> random.Random:
    return random.Random(os.urandom(16))


def _address(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(40))


def _claim_sets(rng: random.Random, key: Ed25519KeyPair, now: int) -> list[dict[str, Any]]:
    """Claims shaped like the ones the JS clients and notify-server sign, with random values."""
    iss = encode_did_key(key.public_key)
    peer = encode_did_key(Ed25519KeyPair.generate().public_key)
    account = f"did:pkh:eip155:{rng.choice([1, 10, 137, 8453, rng.randrange(1, 10**9)])}:{_address(rng)}"
    port = rng.randrange(1024, 65535)
    app = f"did:web:{rng.choice(['localhost:' + str(port), f'app{rng.randrange(10**6)}.example.org'])}"
    return [
        # relay-auth connection JWT, in relay-auth's key order
        {"iss": iss, "sub": secrets.token_hex(32), "aud": f"ws://127.0.0.1:{port}", "iat": now, "exp": now + 86400},
        # wc_notifySubscribe subscriptionAuth, in notify-client's key order
        {
            "iat": now,
            "exp": now + 300,
            "iss": iss,
            "sub": account,
            "aud": peer,
            "ksu": f"http://127.0.0.1:{port}",
            "scp": " ".join(rng.sample(["promotional", "transactional", "alerts", "a-b_c"], k=2)),
            "act": "notify_subscription",
            "app": app,
            "mjv": "1",
        },
        # watch subscriptions with app: null ("all apps")
        {
            "iat": now,
            "exp": now + 300,
            "iss": iss,
            "sub": account,
            "aud": peer,
            "ksu": "https://keys.walletconnect.com",
            "act": "notify_watch_subscriptions",
            "app": None,
            "mjv": "1",
        },
        # notify_message: nested object, non-ASCII text, escapes, numbers, booleans, lists
        {
            "iat": now,
            "exp": now + 2_592_000,
            "iss": iss,
            "act": "notify_message",
            "sub": account,
            "app": app,
            "msg": {
                "id": secrets.token_hex(16),
                "type": secrets.token_hex(16),
                "title": rng.choice(["gm ☀️", "Trade filled — 100 €", "日本語の通知 🔔", "naïve café"]),
                "body": 'line one\nline "two"\ttabbed \\ back',
                "icon": "",
                "url": f"https://app.example/{rng.randrange(10**6)}?a=1&b=2",
                "count": rng.randrange(-(10**12), 10**12),
                "ok": rng.random() < 0.5,
                "tags": ["x", "y", {"z": [1, 2, 3]}],
            },
        },
    ]


def _tamper(token: str) -> str:
    """Same header and signature, payload with one claim changed."""
    header, payload, signature = token.split(".")
    forged = b64url_encode(b'{"iss":"did:key:z6MkfakefakefakefakefakefakefakefakefakefakefakefakeX","x":1}')
    return f"{header}.{forged if forged != payload else payload[::-1]}.{signature}"


def test_python_jwts_verify_in_js(run_js: RunJs, rng: random.Random) -> None:
    now = int(time.time())
    ops: list[dict[str, Any]] = []
    expectations: list[tuple[str, Any]] = []
    for _ in range(CASES):
        key = Ed25519KeyPair.generate()
        ops += [
            {"op": "relayAuthIss", "publicKey": key.public_key.hex()},
            *({"op": "didKeyEd25519", "publicKey": key.public_key.hex(), "version": v} for v in DID_JWT_VERSIONS),
        ]
        expectations += [("eq", encode_did_key(key.public_key))] * (1 + len(DID_JWT_VERSIONS))
        for claims in _claim_sets(rng, key, now):
            token = encode_jwt(claims, key)
            ops += [
                {"op": "relayAuthVerify", "jwt": token},
                *({"op": "didJwtVerify", "jwt": token, "version": v} for v in DID_JWT_VERSIONS),
                {"op": "jwtDecode", "jwt": token},  # notify-client's decoder (jwt-decode 3.1.2)
                {"op": "jwtDecode", "jwt": token, "header": True},
                {"op": "relayAuthDecode", "jwt": token},
                {"op": "relayAuthVerify", "jwt": _tamper(token)},
                *({"op": "didJwtVerify", "jwt": _tamper(token), "version": v} for v in DID_JWT_VERSIONS),
            ]
            expectations += [("eq", True)] * (1 + len(DID_JWT_VERSIONS))
            expectations += [
                ("eq", claims),
                ("eq", {"alg": "EdDSA", "typ": "JWT"}),
                ("relay", claims),
            ]
            expectations += [("eq", False)] * (1 + len(DID_JWT_VERSIONS))
    results = run_js(ops)
    for op, (kind, want), got in zip(ops, expectations, results, strict=True):
        if kind == "relay":
            assert got["header"] == {"alg": "EdDSA", "typ": "JWT"}, op
            assert got["payload"] == want, op
        else:
            assert got == want, op


def test_python_jwt_bytes_equal_js(run_js: RunJs, rng: random.Random) -> None:
    """Same key, same claims (same order): Python writes the very token the JS packages write."""
    now = int(time.time())
    ops: list[dict[str, Any]] = []
    expected: list[str] = []
    for _ in range(CASES):
        key = Ed25519KeyPair.generate()
        relay_claims, *others = _claim_sets(rng, key, now)
        ops.append(
            {
                "op": "relayAuthSign",
                "seed": key.seed.hex(),
                "sub": relay_claims["sub"],
                "aud": relay_claims["aud"],
                "ttl": 86400,
                "iat": now,
            }
        )
        expected.append(encode_jwt(relay_claims, key))
        for claims in [relay_claims, *others]:
            for version in DID_JWT_VERSIONS:
                ops.append({"op": "didJwtSign", "seed": key.seed.hex(), "claims": claims, "version": version})
                expected.append(encode_jwt(claims, key))
    for op, want, got in zip(ops, expected, run_js(ops), strict=True):
        assert got == want, op


def test_js_jwts_verify_in_python(run_js: RunJs, rng: random.Random) -> None:
    now = int(time.time())
    ops: list[dict[str, Any]] = []
    checks: list[tuple[dict[str, Any], str | None, str | None]] = []  # (claims, act, aud)
    for _ in range(CASES):
        key = Ed25519KeyPair.generate()
        sub, aud = secrets.token_hex(32), f"wss://relay.example{rng.randrange(100)}.org"
        ops.append(
            {"op": "relayAuthSign", "seed": key.seed.hex(), "sub": sub, "aud": aud, "ttl": 86400, "iat": now - 5}
        )
        claims = {"iss": encode_did_key(key.public_key), "sub": sub, "aud": aud, "iat": now - 5, "exp": now - 5 + 86400}
        checks.append((claims, None, aud))
        for claims in _claim_sets(rng, key, now)[1:]:
            for version in DID_JWT_VERSIONS:
                ops.append({"op": "didJwtSign", "seed": key.seed.hex(), "claims": claims, "version": version})
                checks.append((claims, claims["act"], claims.get("aud")))
    for (claims, act, aud), token in zip(checks, run_js(ops), strict=True):
        assert verify_jwt(token, now=now, act=act, aud=aud) == claims
        assert verify_jwt(token, now=now) == claims
        with pytest.raises(JwtError):  # long expired
            verify_jwt(token, now=claims["exp"] + 10 * 86400)
        with pytest.raises(JwtError):
            verify_jwt(token, now=now, act="notify_some_other_act")
        with pytest.raises(JwtError):
            verify_jwt(token, now=now, aud="did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        with pytest.raises(JwtError):
            verify_jwt(_tamper(token), now=now)


def test_js_jwt_signed_by_another_key_than_iss_fails_in_python(run_js: RunJs, rng: random.Random) -> None:
    """did-jwt signs whatever ``iss`` it is given; the verifier must bind the signature to ``iss``."""
    now = int(time.time())
    key, other = Ed25519KeyPair.generate(), Ed25519KeyPair.generate()
    claims = _claim_sets(rng, other, now)[1]  # iss = other's did:key
    tokens = run_js(
        [{"op": "didJwtSign", "seed": key.seed.hex(), "claims": claims, "version": v} for v in DID_JWT_VERSIONS]
    )
    for token in tokens:
        with pytest.raises(JwtError):
            verify_jwt(token, now=now)


def test_identity_keys_millisecond_times_verify_in_python(run_js: RunJs, rng: random.Random) -> None:
    """identity-keys ``unregisterIdentity`` writes ``iat: Date.now()`` and ``exp: jwtExp(iat)`` (iat + one day
    in milliseconds), signed with its did-jwt 2.1.0; Python must read those times as seconds."""
    now = int(time.time())
    key = Ed25519KeyPair.generate()
    iat_ms = now * 1000 + rng.randrange(1000)
    claims = {
        "iat": iat_ms,
        "exp": iat_ms + 86_400_000,
        "iss": encode_did_key(key.public_key),
        "aud": f"http://127.0.0.1:{rng.randrange(1024, 65535)}",
        "pkh": f"did:pkh:eip155:1:{_address(rng)}",
        "act": "unregister_identity",
        "sub": "identity_keys",
    }
    (token,) = run_js([{"op": "didJwtSign", "seed": key.seed.hex(), "claims": claims, "version": "2.1.0"}])
    assert verify_jwt(token, now=now, act="unregister_identity", aud=claims["aud"]) == claims
    with pytest.raises(JwtError):
        verify_jwt(token, now=now + 3 * 86400)
