"""Envelopes, sym keys and topics against @walletconnect/utils 2.25.0 (the current JS crypto).

Fresh random keys, IVs and messages on every run; each test is one Node process with several cases.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from typing import Any

import pytest

from wcnotify.protocol import crypto

pytestmark = pytest.mark.interop

CASES = 6
RunJs = Callable[..., list[Any]]


def _message(rng: random.Random, i: int) -> str:
    """A JSON-RPC payload as the JS clients write it (compact), with some non-ASCII and varied sizes."""
    params: dict[str, Any] = {
        "subscriptionAuth": "e30." + os.urandom(rng.randrange(0, 600)).hex(),
        "note": rng.choice(["", "gm ☀️", "naïve café — ünïcödé 日本語 🔔", '\\"quoted"\n\ttabs']),
    }
    if i % 3 == 0:
        params["big"] = "x" * rng.randrange(4000, 9000)
    payload = {"id": 1_700_000_000_000_000 + i, "jsonrpc": "2.0", "method": "wc_notifySubscribe", "params": params}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(os.urandom(16))


def test_generated_keys_sym_keys_and_topics_match(run_js: RunJs) -> None:
    pairs = [(crypto.X25519KeyPair.generate(), crypto.X25519KeyPair.generate()) for _ in range(CASES)]
    ops: list[dict[str, Any]] = [{"op": "generateKeyPair"} for _ in range(CASES)]
    for a, b in pairs:
        ops += [
            {"op": "deriveSymKey", "privateKey": a.private_key.hex(), "publicKey": b.public_key.hex()},
            {"op": "deriveSymKey", "privateKey": b.private_key.hex(), "publicKey": a.public_key.hex()},
            {"op": "hashKey", "key": crypto.derive_sym_key(a.private_key, b.public_key).hex()},
            {"op": "hashKey", "key": b.public_key.hex()},
        ]
    out = run_js(ops)
    js_pairs, rest = out[:CASES], out[CASES:]
    for pair in js_pairs:  # JS-generated X25519 keys: Python derives the same public key
        kp = crypto.X25519KeyPair.from_private(bytes.fromhex(pair["privateKey"]))
        assert kp.public_key.hex() == pair["publicKey"]
    for i, (a, b) in enumerate(pairs):
        sym_ab, sym_ba, topic_sym, topic_pub = rest[4 * i : 4 * i + 4]
        expected = crypto.derive_sym_key(a.private_key, b.public_key)
        assert sym_ab == sym_ba == expected.hex()
        assert topic_sym == crypto.topic_of(expected)
        assert topic_pub == crypto.topic_of(b.public_key)


def test_js_type0_decrypts_in_python(run_js: RunJs, rng: random.Random) -> None:
    cases = []
    for i in range(CASES):
        sym, msg = os.urandom(32), _message(rng, i)
        iv = os.urandom(12) if i % 2 else None  # JS picks the IV itself for half of them
        cases.append((sym, msg, iv))
    ops = [
        {"op": "encrypt0", "symKey": sym.hex(), "message": msg, **({"iv": iv.hex()} if iv else {})}
        for sym, msg, iv in cases
    ]
    for (sym, msg, iv), encoded in zip(cases, run_js(ops), strict=True):
        assert crypto.decrypt(encoded, sym) == msg.encode()
        env = crypto.decode_envelope(encoded)
        assert env.type == 0
        if iv is not None:  # same key, IV and plaintext: byte-identical envelope
            assert env.iv == iv
            assert crypto.encode_type0(sym, msg.encode(), iv=iv) == encoded
        with pytest.raises(crypto.EnvelopeError):
            crypto.decrypt(encoded, os.urandom(32))


def test_js_type1_decrypts_in_python(run_js: RunJs, rng: random.Random) -> None:
    cases = []
    for i in range(CASES):
        sender, receiver = crypto.X25519KeyPair.generate(), crypto.X25519KeyPair.generate()
        cases.append((sender, receiver, _message(rng, i), os.urandom(12) if i % 2 else None))
    ops: list[dict[str, Any]] = []
    for sender, receiver, _msg, _iv in cases:
        # The JS side derives the sym key itself (sender private, receiver public), as a wallet does.
        ops.append(
            {"op": "deriveSymKey", "privateKey": sender.private_key.hex(), "publicKey": receiver.public_key.hex()}
        )
    sym_keys = run_js(ops)
    ops = [
        {
            "op": "encrypt1",
            "symKey": sym,
            "senderPublicKey": sender.public_key.hex(),
            "message": msg,
            **({"iv": iv.hex()} if iv else {}),
        }
        for sym, (sender, _, msg, iv) in zip(sym_keys, cases, strict=True)
    ]
    for (sender, receiver, msg, iv), sym, encoded in zip(cases, sym_keys, run_js(ops), strict=True):
        sender_pub, derived, plaintext = crypto.decrypt_type1(encoded, receiver.private_key)
        assert sender_pub == sender.public_key
        assert derived.hex() == sym
        assert plaintext == msg.encode()
        assert crypto.decrypt(encoded, derived) == msg.encode()
        if iv is not None:
            assert crypto.encode_type1(derived, sender.public_key, msg.encode(), iv=iv) == encoded
        with pytest.raises(crypto.EnvelopeError):  # someone else's key cannot open it
            crypto.decrypt_type1(encoded, crypto.X25519KeyPair.generate().private_key)


def test_python_envelopes_decrypt_in_js(run_js: RunJs, rng: random.Random) -> None:
    ops: list[dict[str, Any]] = []
    expected: list[Any] = []
    for i in range(CASES):
        msg = _message(rng, i)
        sym = os.urandom(32)
        enc0 = crypto.encode_type0(sym, msg.encode())
        ops += [{"op": "decrypt", "symKey": sym.hex(), "encoded": enc0}, {"op": "deserialize", "encoded": enc0}]
        expected += [msg, {"type": 0, "senderPublicKey": None}]

        sender, receiver = crypto.X25519KeyPair.generate(), crypto.X25519KeyPair.generate()
        sym1 = crypto.derive_sym_key(sender.private_key, receiver.public_key)
        enc1 = crypto.encode_type1(sym1, sender.public_key, msg.encode())
        ops += [
            {"op": "decrypt1", "receiverPrivateKey": receiver.private_key.hex(), "encoded": enc1},
            {"op": "deserialize", "encoded": enc1},
        ]
        expected += [
            {"senderPublicKey": sender.public_key.hex(), "symKey": sym1.hex(), "message": msg},
            {"type": 1, "senderPublicKey": sender.public_key.hex()},
        ]

        enc2 = crypto.encode_type2(msg.encode())
        ops.append({"op": "deserialize", "encoded": enc2})
        expected.append({"type": 2, "senderPublicKey": None, "sealed": msg.encode().hex()})
    for got, want in zip(run_js(ops), expected, strict=True):
        if isinstance(want, dict):
            assert {k: got[k] for k in want} == want
        else:
            assert got == want


def test_js_type2_reads_in_python(run_js: RunJs, rng: random.Random) -> None:
    messages = [_message(rng, i) for i in range(3)]
    for msg, encoded in zip(messages, run_js([{"op": "encrypt2", "message": m} for m in messages]), strict=True):
        assert encoded == crypto.encode_type2(msg.encode())
        env = crypto.decode_envelope(encoded)
        assert env.type == 2
        assert env.sealed == msg.encode()
        with pytest.raises(crypto.EnvelopeError):  # never accepted where encryption is required
            crypto.decrypt(encoded, os.urandom(32))


def _flip(encoded: str, index: int) -> str:
    raw = bytearray(crypto.b64decode_lenient(encoded))
    raw[index] ^= 0x01
    return crypto.b64encode(bytes(raw))


def test_tampered_envelopes_are_refused_both_ways(run_js: RunJs, rng: random.Random) -> None:
    sym, msg = os.urandom(32), _message(rng, 1)
    js_encoded = run_js([{"op": "encrypt0", "symKey": sym.hex(), "message": msg}])[0]
    for index in (1, 13, -1):  # IV, ciphertext, tag
        with pytest.raises(crypto.EnvelopeError):
            crypto.decrypt(_flip(js_encoded, index), sym)

    py_encoded = crypto.encode_type0(sym, msg.encode())
    sender, receiver = crypto.X25519KeyPair.generate(), crypto.X25519KeyPair.generate()
    py_type1 = crypto.encode_type1(
        crypto.derive_sym_key(sender.private_key, receiver.public_key), sender.public_key, msg.encode()
    )
    ops = [{"op": "decrypt", "symKey": sym.hex(), "encoded": _flip(py_encoded, i)} for i in (1, 13, -1)]
    ops += [
        {"op": "decrypt", "symKey": os.urandom(32).hex(), "encoded": py_encoded},
        # a changed sender key makes the receiver derive another sym key
        {"op": "decrypt1", "receiverPrivateKey": receiver.private_key.hex(), "encoded": _flip(py_type1, 5)},
    ]
    results = run_js(ops, check=False)
    assert [r["ok"] for r in results] == [False] * len(ops), results
