"""The installed JS peers are the pinned versions and still reproduce tests/vectors/walletconnect-js.json.

If this fails, the other interop tests are comparing Python with something else than the packages the
vectors came from (a lockfile drifted, or npm resolved differently).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

RunJs = Callable[..., list[Any]]
VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "walletconnect-js.json").read_text(encoding="utf-8")
)

PINNED = {
    "current:@walletconnect/utils": "2.25.0",
    "current:@walletconnect/relay-auth": "1.1.0",
    "current:@walletconnect/core": "2.25.0",
    "notify:@walletconnect/notify-client": "1.4.1",
    "notify:@walletconnect/core": "2.12.2",
    "notify:@walletconnect/utils": "2.12.2",
    "notify:@walletconnect/identity-keys": "2.1.0",
    "notify:@walletconnect/did-jwt": "2.0.1",
    "notify:identity-keys/@walletconnect/did-jwt": "2.1.0",
    "notify:@walletconnect/cacao": "1.0.2",
}


def test_pinned_versions_reproduce_the_vectors(run_js: RunJs) -> None:
    x, env, relay, ident, siwe = (
        VECTORS[k] for k in ("x25519", "envelopes", "relay_auth", "identity_jwt", "cacao_siwe")
    )
    ops: list[dict[str, Any]] = [
        {"op": "versions"},
        {"op": "deriveSymKey", "privateKey": x["privA"], "publicKey": x["pubB"]},
        {"op": "hashKey", "key": x["symKey"]},
        {"op": "hashKey", "key": x["pubB"]},
        {"op": "encrypt0", "symKey": env["symKey"], "message": env["plaintext"], "iv": env["iv"]},
        {
            "op": "encrypt1",
            "symKey": env["symKey"],
            "senderPublicKey": env["type1_senderPublicKey"],
            "message": env["plaintext"],
            "iv": env["iv"],
        },
        {
            "op": "relayAuthSign",
            "seed": relay["seed"],
            "sub": relay["sub"],
            "aud": relay["aud"],
            "ttl": relay["ttl"],
            "iat": relay["iat"],
        },
        {"op": "didJwtSign", "seed": ident["identitySeed"], "claims": ident["claims"], "version": "2.0.1"},
        {"op": "didJwtSign", "seed": ident["identitySeed"], "claims": ident["claims"], "version": "2.1.0"},
        {"op": "formatMessage", "payload": siwe["payload"]},
        {"op": "eip191Sign", "privateKey": siwe["ethPrivateKey"], "message": siwe["message"]},
    ]
    versions, *values = run_js(ops)
    assert {k: versions[k] for k in PINNED} == PINNED
    assert values == [
        x["symKey"],
        x["topic_sha256_of_symKey"],
        x["hashKey_of_pubB"],
        env["type0_base64"],
        env["type1_base64"],
        relay["jwt"],
        ident["jwt"],
        ident["jwt"],
        siwe["message"],
        siwe["eip191_signature"],
    ]


def test_failed_ops_are_reported_not_fatal(run_js: RunJs) -> None:
    results = run_js(
        [
            {"op": "no-such-op"},
            {"op": "decrypt", "symKey": "00" * 32, "encoded": "AA=="},
            {"op": "hashKey", "key": "00"},
        ],
        check=False,
    )
    assert [r["ok"] for r in results] == [False, False, True]
    assert "unknown op" in results[0]["error"]
