"""Every value in tests/vectors/*.json, asserted against the protocol core.

The vectors were produced by the official WalletConnect libraries (walletconnect-js.json) and by the public
test files (spec-kat.json). A failure here means a byte-level incompatibility with the real clients.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wcnotify.protocol import crypto
from wcnotify.protocol.cacao import (
    Cacao,
    CacaoPayload,
    identity_key,
    recover_eip191,
    sign_eip191,
    siwe_message,
    verify_cacao,
)
from wcnotify.protocol.did import Account, build_did_document, encode_did_key, parse_did_document
from wcnotify.protocol.jwt import NotifySubscriptionClaims, RelayAuthClaims, decode_jwt, encode_jwt, verify_jwt
from wcnotify.protocol.sync import derive_store, store_path, sync_entropy, sync_message, sync_mnemonic

VECTORS = Path(__file__).parent.parent / "vectors"
JS: dict[str, Any] = json.loads((VECTORS / "walletconnect-js.json").read_text())
KAT: dict[str, Any] = json.loads((VECTORS / "spec-kat.json").read_text())


def h(value: str) -> bytes:
    return bytes.fromhex(value)


@pytest.mark.parametrize("x", [KAT["x25519"], JS["x25519"]], ids=["kat", "js"])
def test_x25519_keys_shared_secret_sym_key_topic(x: dict[str, str]) -> None:
    a = crypto.X25519KeyPair.from_private(h(x["privA"]))
    b = crypto.X25519KeyPair.from_private(h(x["privB"]))
    assert a.public_key.hex() == x["pubA"]
    assert b.public_key.hex() == x["pubB"]
    shared = crypto.x25519_shared_secret(a.private_key, b.public_key)
    assert shared == crypto.x25519_shared_secret(b.private_key, a.public_key)
    assert shared.hex() == x.get("sharedSecret", x.get("rawSharedSecret"))
    sym = crypto.derive_sym_key(a.private_key, b.public_key)
    assert sym.hex() == x["symKey"]
    assert crypto.topic_of(sym) == x.get("topic_of_symKey", x.get("topic_sha256_of_symKey"))


def test_kat_hashed_shared_secret() -> None:
    x = KAT["x25519"]
    assert crypto.topic_of(h(x["sharedSecret"])) == x["sha256_of_sharedSecret"]


def test_js_hash_key_of_public_key() -> None:
    assert crypto.topic_of(h(JS["x25519"]["pubB"])) == JS["x25519"]["hashKey_of_pubB"]


def test_kat_envelopes() -> None:
    x, e = KAT["x25519"], KAT["envelope"]
    sym, iv, message = h(x["symKey"]), h(e["iv"]), e["message"].encode()
    assert crypto.seal(sym, iv, message).hex() == e["sealed_hex"]
    assert crypto.encode_type0(sym, message, iv) == e["type0"]
    assert crypto.encode_type1(sym, h(x["pubA"]), message, iv) == e["type1_sender_A"]
    assert crypto.encode_type2(message) == e["type2"]
    assert crypto.decrypt(e["type0"], sym) == message
    sender, derived, plain = crypto.decrypt_type1(e["type1_sender_A"], h(x["privB"]))
    assert (sender.hex(), derived, plain) == (x["pubA"], sym, message)
    assert crypto.decode_envelope(e["type2"]).sealed == message
    assert crypto.message_id(e["message"]) == "15112289b5b794e68d1ea3cd91330db55582a37d0596f7b99ea8becdf9d10496"


def test_js_envelopes() -> None:
    e, x = JS["envelopes"], JS["x25519"]
    sym, iv, message = h(e["symKey"]), h(e["iv"]), e["plaintext"].encode()
    assert crypto.encode_type0(sym, message, iv) == e["type0_base64"]
    assert crypto.decrypt(e["type0_base64url"], sym) == message  # URL-safe, unpadded input
    assert crypto.encode_type1(sym, h(e["type1_senderPublicKey"]), message, iv) == e["type1_base64"]
    parsed = crypto.decode_envelope(e["type1_base64"])
    hexes = e["type1_parsed_hex"]
    assert (int(parsed.type), parsed.iv.hex(), parsed.sealed.hex()) == (
        int(hexes["type"], 16), hexes["iv"], hexes["sealed"]
    )
    assert parsed.sender_public_key is not None
    assert parsed.sender_public_key.hex() == hexes["senderPublicKey"]
    _, derived, plain = crypto.decrypt_type1(e["type1_base64"], h(x["privB"]))
    assert (derived, plain) == (sym, message)
    assert crypto.encode_type2(message) == e["type2_base64_unencrypted"]


def test_js_relay_auth_jwt() -> None:
    r = JS["relay_auth"]
    key = crypto.Ed25519KeyPair.from_seed(h(r["seed"]))
    assert key.public_key.hex() == r["publicKey"]
    assert encode_did_key(key.public_key) == r["clientId_did_key"]
    assert encode_jwt(r["decoded"]["payload"], key) == r["jwt"]
    decoded = decode_jwt(r["jwt"])
    assert (decoded.header, decoded.claims) == (r["decoded"]["header"], r["decoded"]["payload"])
    claims = RelayAuthClaims.verify(r["jwt"], now=r["iat"] + 10, aud=r["aud"])
    assert (claims.sub, claims.aud, claims.exp - claims.iat) == (r["sub"], r["aud"], r["ttl"])
    assert claims.sign(key) == r["jwt"]
    sub = r["subscription_id_example"]
    assert crypto.topic_of((sub["topic"] + r["clientId_did_key"]).encode()) == sub["value"]


def test_kat_relay_auth_jwt() -> None:
    r = KAT["relay_auth_jwt"]
    key = crypto.Ed25519KeyPair.from_seed(h(r["seed"]))
    assert key.public_key.hex() == r["publicKey"]
    assert encode_did_key(key.public_key) == r["iss"]
    token = encode_jwt(r["payload_in_order"], key)
    assert token.rsplit(".", 1)[1] == r["signature_b64url"]
    assert verify_jwt(token, now=r["payload_in_order"]["iat"], aud=r["payload_in_order"]["aud"]) == r[
        "payload_in_order"
    ]
    doc = build_did_document("example.com", key.public_key, key.public_key)
    assert doc["verificationMethod"][0]["publicKeyJwk"]["x"] == r["did_json_x_of_publicKey_padded"]


def test_js_identity_jwt() -> None:
    i = JS["identity_jwt"]
    key = crypto.Ed25519KeyPair.from_seed(h(i["identitySeed"]))
    assert key.public_key.hex() == i["identityPublicKey"]
    assert encode_did_key(key.public_key) == i["identity_did_key"]
    assert encode_did_key(h(JS["x25519"]["pubB"]), "X25519") == i["x25519_did_key_of_pubB"]
    assert encode_jwt(i["claims"], key) == i["jwt"]
    claims = NotifySubscriptionClaims.verify(i["jwt"], now=i["claims"]["iat"], aud=i["claims"]["aud"])
    assert claims.to_claims() == i["claims"]


def test_js_cacao_siwe() -> None:
    c = JS["cacao_siwe"]
    account = Account.parse(c["caip10"])
    assert account.did_pkh == c["did_pkh"]
    assert account.address == c["address"]
    assert Account.parse(c["caip10"].lower()).checksummed() == account
    payload = CacaoPayload.from_dict(c["payload"])
    assert siwe_message(payload) == c["message"]
    assert sign_eip191(c["message"], c["ethPrivateKey"]) == c["eip191_signature"]
    assert recover_eip191(c["message"], c["eip191_signature"]) == c["address"]
    cacao = Cacao.from_dict(c["keyserver_post_body"]["cacao"])
    assert cacao.to_dict() == c["keyserver_post_body"]["cacao"]
    assert cacao.payload.to_dict() == c["payload"]
    verify_cacao(cacao, now=1_700_000_000)
    assert identity_key(payload) == c["payload"]["aud"]


def test_js_did_json_jwk() -> None:
    d = JS["did_json_jwk"]
    keys = parse_did_document(
        {
            "id": "did:web:localhost:8557",
            "verificationMethod": [
                {"id": "ka", "publicKeyJwk": {"kty": "OKP", "crv": "X25519", "x": d["keyAgreement_x"]}},
                {"id": "au", "publicKeyJwk": {"kty": "OKP", "crv": "Ed25519", "x": d["authentication_x"]}},
            ],
            "keyAgreement": ["ka"],
            "authentication": ["au"],
        }
    )
    assert keys.key_agreement.hex() == d["keyAgreement_hex"]
    assert keys.authentication.hex() == d["authentication_hex"]
    assert keys.subscribe_topic == JS["x25519"]["hashKey_of_pubB"]
    rebuilt = parse_did_document(build_did_document("localhost:8557", keys.key_agreement, keys.authentication))
    assert rebuilt == keys


def test_kat_sync_derivation() -> None:
    s = KAT["sync"]
    assert sync_message("{caip10}") == s["message_template"]
    assert sync_entropy(s["signature"]).hex() == s["entropy_sha256_of_signature_string"]
    assert sync_mnemonic(s["signature"]) == s["mnemonic"]
    assert store_path(s["store"]) == s["path"]
    keys = derive_store(s["signature"], s["store"])
    assert keys.key.hex() == s["store_key"]
    assert keys.topic == s["store_topic"]
    assert store_path("com.walletconnect.notify.pushSubscription") == s["path_pushSubscription"]
