"""Behaviour of protocol.crypto beyond the vectors: round trips, tampering, and garbage input."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wcnotify.protocol import crypto

keys32 = st.binary(min_size=32, max_size=32)
ivs = st.binary(min_size=12, max_size=12)
plaintexts = st.binary(max_size=2048)


def test_key_pairs_hide_private_halves() -> None:
    x = crypto.X25519KeyPair.generate()
    e = crypto.Ed25519KeyPair.generate()
    assert x.private_key.hex() not in repr(x)
    assert e.seed.hex() not in repr(e)


def test_generation_uses_injected_randomness() -> None:
    fixed = crypto.X25519KeyPair.generate(lambda n: b"\x07" * n)
    assert fixed == crypto.X25519KeyPair.from_private(b"\x07" * 32)
    token = crypto.encode_type0(b"\x01" * 32, b"hi", random=lambda n: b"\x02" * n)
    assert crypto.decode_envelope(token).iv == b"\x02" * 12


def test_zero_shared_secret_is_refused() -> None:
    # the all-zero point and a known low-order point both give an all-zero X25519 output
    priv = crypto.X25519KeyPair.generate().private_key
    for low_order in (bytes(32), bytes([1]) + bytes(31)):
        with pytest.raises(crypto.CryptoError, match="all zeros"):
            crypto.derive_sym_key(priv, low_order)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_wrong_key_lengths(bad: bytes) -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.derive_sym_key(bad, bytes(32))
    with pytest.raises(crypto.CryptoError):
        crypto.encode_type0(bad, b"x")


def test_key_from_hex() -> None:
    assert crypto.key_from_hex("ab" * 32) == b"\xab" * 32
    for bad in ("ab" * 31, "zz" * 32, 5):
        with pytest.raises(crypto.CryptoError):
            crypto.key_from_hex(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("", "empty"),
        ("AA==", "truncated"),
        (base64.b64encode(b"\x01" + bytes(40)).decode(), "truncated"),
        (base64.b64encode(b"\x03" + bytes(40)).decode(), "unknown envelope type 3"),
        ("not base64!", "not base64"),
        ("A", "not base64"),
    ],
)
def test_malformed_envelopes(message: str, error: str) -> None:
    with pytest.raises(crypto.EnvelopeError, match=error):
        crypto.decrypt(message, bytes(32))


def test_type2_is_not_accepted_where_encryption_is_required() -> None:
    with pytest.raises(crypto.EnvelopeError, match="type 2"):
        crypto.decrypt(crypto.encode_type2(b"{}"), bytes(32))
    with pytest.raises(crypto.EnvelopeError, match="type 1"):
        crypto.decrypt_type1(crypto.encode_type0(bytes(32), b"{}"), bytes(32))


def test_b64_lenient_forms() -> None:
    data = bytes(range(256))
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    for form in (std, std.rstrip("="), url, url.rstrip("=")):
        assert crypto.b64decode_lenient(form) == data


@given(keys32, ivs, plaintexts)
def test_type0_round_trip(key: bytes, iv: bytes, plaintext: bytes) -> None:
    token = crypto.encode_type0(key, plaintext, iv)
    assert crypto.decrypt(token, key) == plaintext
    url_form = token.replace("+", "-").replace("/", "_").rstrip("=")
    assert crypto.decrypt(url_form, key) == plaintext


@given(keys32, keys32, ivs, plaintexts)
def test_type1_round_trip(sender_priv: bytes, receiver_priv: bytes, iv: bytes, plaintext: bytes) -> None:
    sender = crypto.X25519KeyPair.from_private(sender_priv)
    receiver = crypto.X25519KeyPair.from_private(receiver_priv)
    sym = crypto.derive_sym_key(sender.private_key, receiver.public_key)
    token = crypto.encode_type1(sym, sender.public_key, plaintext, iv)
    got_sender, got_sym, got_plain = crypto.decrypt_type1(token, receiver.private_key)
    assert (got_sender, got_sym, got_plain) == (sender.public_key, sym, plaintext)


def _flip(token: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(token))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


@given(keys32, ivs, st.binary(min_size=1, max_size=256), st.data())
def test_any_flipped_bit_in_type0_is_rejected(key: bytes, iv: bytes, plaintext: bytes, data: st.DataObject) -> None:
    token = crypto.encode_type0(key, plaintext, iv)
    bits = len(base64.b64decode(token)) * 8
    tampered = _flip(token, data.draw(st.integers(0, bits - 1)))
    with pytest.raises(crypto.EnvelopeError):
        crypto.decrypt(tampered, key)


@given(keys32, keys32, ivs, st.binary(min_size=1, max_size=256), st.data())
def test_any_flipped_bit_in_type1_is_rejected(
    sender_priv: bytes, receiver_priv: bytes, iv: bytes, plaintext: bytes, data: st.DataObject
) -> None:
    sender = crypto.X25519KeyPair.from_private(sender_priv)
    receiver = crypto.X25519KeyPair.from_private(receiver_priv)
    sym = crypto.derive_sym_key(sender.private_key, receiver.public_key)
    token = crypto.encode_type1(sym, sender.public_key, plaintext, iv)
    assert crypto.decrypt_type1(token, receiver.private_key)[2] == plaintext
    bits = len(base64.b64decode(token)) * 8
    # a flip in the type byte, the embedded sender key, the IV, the ciphertext or the tag: a flipped
    # sender key makes the receiver derive another sym key, so the AEAD refuses that too
    tampered = _flip(token, data.draw(st.integers(0, bits - 1)))
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt_type1(tampered, receiver.private_key)


@given(st.binary(max_size=512), keys32)
def test_random_bytes_only_raise_envelope_errors(raw: bytes, key: bytes) -> None:
    for text in (base64.b64encode(raw).decode(), raw.decode("latin-1")):
        with contextlib.suppress(crypto.EnvelopeError):
            crypto.decrypt(text, key)
        with contextlib.suppress(crypto.CryptoError):
            crypto.decrypt_type1(text, key)


@given(st.text(max_size=300))
def test_random_text_only_raises_envelope_errors(text: str) -> None:
    with contextlib.suppress(crypto.EnvelopeError):
        crypto.decode_envelope(text)
