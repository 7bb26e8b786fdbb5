"""X25519 key agreement, the HKDF sym key, topics and the type 0/1/2 envelopes.

Rules (protocol.md §1, from walletconnect-monorepo ``packages/utils/src/crypto.ts``):

* sym key = HKDF-SHA256(ikm = X25519(priv, peer), salt = none, info = b"", L = 32); an all-zero shared
  secret is refused, as the JS client does (``rejectZero``).
* topic = hex(sha256(raw key bytes)), for sym keys and X25519 public keys alike.
* envelope type 0 = ``0x00 || iv(12) || ct || tag(16)``; type 1 = ``0x01 || sender_pub(32) || iv || ct || tag``;
  type 2 = ``0x02 || plaintext``. ChaCha20-Poly1305, no AAD. Standard base64 with padding on the wire;
  decoding also takes URL-safe and unpadded input.

Randomness (private keys, IVs) is a parameter with ``os.urandom`` as default, so tests can pin it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wcnotify.spec import IV_LENGTH, KEY_LENGTH, TAG_LENGTH, EnvelopeType

Random = Callable[[int], bytes]

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()
_X25519_P = 2**255 - 19
_B64_ALPHABET = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


class CryptoError(ValueError):
    """A key, shared secret or ciphertext that cannot be used."""


class EnvelopeError(CryptoError):
    """An envelope that is malformed (bad base64, truncated, unknown type) or fails authentication."""


# ---------------------------------------------------------------------------------------------- keys


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_LENGTH:
        raise CryptoError(f"{what} must be {KEY_LENGTH} bytes")
    return bytes(key)


def key_from_hex(value: str, what: str = "key") -> bytes:
    """Parse a 32-byte key written as hex (the protocol's form inside JSON), with a specific error."""
    if not isinstance(value, str) or len(value) != 2 * KEY_LENGTH:
        raise CryptoError(f"{what} must be {2 * KEY_LENGTH} hex characters")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise CryptoError(f"{what} is not hex") from exc


@dataclass(frozen=True, repr=False)
class X25519KeyPair:
    """An X25519 key pair kept as raw bytes. ``repr`` never shows the private half."""

    private_key: bytes
    public_key: bytes

    @classmethod
    def from_private(cls, private_key: bytes) -> X25519KeyPair:
        priv = X25519PrivateKey.from_private_bytes(_check_key(private_key, "X25519 private key"))
        return cls(bytes(private_key), priv.public_key().public_bytes(_RAW, _RAW_PUB))

    @classmethod
    def generate(cls, random: Random = os.urandom) -> X25519KeyPair:
        return cls.from_private(random(KEY_LENGTH))

    def __repr__(self) -> str:
        return f"X25519KeyPair(public_key={self.public_key.hex()})"


@dataclass(frozen=True, repr=False)
class Ed25519KeyPair:
    """An Ed25519 key pair from its 32-byte seed. ``repr`` never shows the seed.

    The private key object is built once per pair and kept: building it from the seed derives the public key
    (a scalar multiplication), which cost as much as the signature itself when it was done on every sign."""

    seed: bytes
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519KeyPair:
        priv = Ed25519PrivateKey.from_private_bytes(_check_key(seed, "Ed25519 seed"))
        pair = cls(bytes(seed), priv.public_key().public_bytes(_RAW, _RAW_PUB))
        pair.__dict__["_private"] = priv  # the cached_property below, filled in advance
        return pair

    @classmethod
    def generate(cls, random: Random = os.urandom) -> Ed25519KeyPair:
        return cls.from_seed(random(KEY_LENGTH))

    @functools.cached_property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __getstate__(self) -> dict[str, object]:
        """Pickle without the private key object (it cannot be pickled; it is rebuilt from the seed)."""
        return {k: v for k, v in self.__dict__.items() if k != "_private"}

    def __repr__(self) -> str:
        return f"Ed25519KeyPair(public_key={self.public_key.hex()})"


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(_check_key(public_key, "Ed25519 public key")).verify(
            signature, message
        )
    except (InvalidSignature, ValueError):
        return False
    return True

# ------------------------------------------------------------------------------------ key agreement


def x25519_shared_secret(private_key: bytes, peer_public_key: bytes) -> bytes:
    """Raw X25519 output. An all-zero result (a low-order peer key) is refused, as the JS client does."""
    priv = X25519PrivateKey.from_private_bytes(_check_key(private_key, "X25519 private key"))
    peer = X25519PublicKey.from_public_bytes(_check_key(peer_public_key, "X25519 public key"))
    try:
        shared = priv.exchange(peer)
    except ValueError as exc:  # cryptography refuses an all-zero output itself
        raise CryptoError("X25519 shared secret is all zeros (low-order public key)") from exc
    if shared == bytes(KEY_LENGTH):
        raise CryptoError("X25519 shared secret is all zeros (low-order public key)")
    return shared


def hkdf_sym_key(shared_secret: bytes) -> bytes:
    """HKDF-SHA256 with no salt and empty info, 32 bytes: the sym key of every WalletConnect topic."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LENGTH, salt=None, info=b"").derive(shared_secret)


def derive_sym_key(private_key: bytes, peer_public_key: bytes) -> bytes:
    """sym key = HKDF(X25519(private, peer)). Both sides of an exchange get the same key."""
    return hkdf_sym_key(x25519_shared_secret(private_key, peer_public_key))


def topic_of(key: bytes) -> str:
    """hex(sha256(raw key)): the topic of a sym key or of an X25519 public key."""
    return hashlib.sha256(key).hexdigest()


def message_id(message: str) -> str:
    """The relay's message id: hex(sha256(utf8(message)))."""
    return hashlib.sha256(message.encode()).hexdigest()


# --------------------------------------------------------------------------------------- base64


def b64decode_lenient(value: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; anything else raises EnvelopeError."""
    if not isinstance(value, str):
        raise EnvelopeError("base64 input must be a string")
    stripped = value.strip()
    if not _B64_ALPHABET.match(stripped):
        raise EnvelopeError("not base64: unexpected characters")
    body = stripped.rstrip("=").replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        raise EnvelopeError("not base64: impossible length")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"not base64: {exc}") from exc


def b64encode(data: bytes) -> str:
    """Standard base64 with padding: what the relay carries in ``irn_publish.message``."""
    return base64.b64encode(data).decode()


def b64url_encode(data: bytes) -> str:
    """URL-safe base64 without padding: what JWT segments use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -------------------------------------------------------------------------------------- envelopes


@dataclass(frozen=True)
class Envelope:
    """A decoded (not yet decrypted) envelope.

    ``sealed`` is ciphertext || tag for types 0 and 1, the plaintext itself for type 2.
    """

    type: EnvelopeType
    sealed: bytes
    iv: bytes = b""
    sender_public_key: bytes | None = None


def seal(sym_key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 without AAD: ciphertext || tag."""
    if len(iv) != IV_LENGTH:
        raise CryptoError(f"IV must be {IV_LENGTH} bytes")
    return ChaCha20Poly1305(_check_key(sym_key, "sym key")).encrypt(iv, plaintext, None)


def unseal(sym_key: bytes, iv: bytes, sealed: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(_check_key(sym_key, "sym key")).decrypt(iv, sealed, None)
    except InvalidTag as exc:
        raise EnvelopeError("envelope authentication failed (wrong key or tampered message)") from exc


def encode_type0(sym_key: bytes, plaintext: bytes, iv: bytes | None = None, random: Random = os.urandom) -> str:
    iv = random(IV_LENGTH) if iv is None else iv
    return b64encode(bytes([EnvelopeType.TYPE_0]) + iv + seal(sym_key, iv, plaintext))


def encode_type1(
    sym_key: bytes,
    sender_public_key: bytes,
    plaintext: bytes,
    iv: bytes | None = None,
    random: Random = os.urandom,
) -> str:
    """Type 1: the receiver derives ``sym_key`` itself from its private key and ``sender_public_key``."""
    iv = random(IV_LENGTH) if iv is None else iv
    sender = _check_key(sender_public_key, "sender public key")
    return b64encode(bytes([EnvelopeType.TYPE_1]) + sender + iv + seal(sym_key, iv, plaintext))


def encode_type2(plaintext: bytes) -> str:
    return b64encode(bytes([EnvelopeType.TYPE_2]) + plaintext)


def decode_envelope(message: str) -> Envelope:
    """Split an envelope into its parts, refusing unknown types and truncated input."""
    raw = b64decode_lenient(message)
    if not raw:
        raise EnvelopeError("empty envelope")
    kind = raw[0]
    if kind == EnvelopeType.TYPE_2:
        return Envelope(EnvelopeType.TYPE_2, raw[1:])
    if kind == EnvelopeType.TYPE_0:
        offset, sender = 1, None
    elif kind == EnvelopeType.TYPE_1:
        offset, sender = 1 + KEY_LENGTH, raw[1 : 1 + KEY_LENGTH]
    else:
        raise EnvelopeError(f"unknown envelope type {kind}")
    if len(raw) < offset + IV_LENGTH + TAG_LENGTH:
        raise EnvelopeError(f"truncated type {kind} envelope ({len(raw)} bytes)")
    if sender is not None and int.from_bytes(sender, "little") >= _X25519_P:
        # X25519 ignores the top bit, so a flipped bit 255 would still decrypt: honest keys are always
        # reduced mod p, so refusing the others removes that malleability
        raise EnvelopeError("type 1 sender public key is not canonical")
    return Envelope(
        EnvelopeType(kind), raw[offset + IV_LENGTH :], raw[offset : offset + IV_LENGTH], sender
    )


def decrypt(message: str, sym_key: bytes) -> bytes:
    """Open a type 0 or type 1 envelope whose sym key the caller already has."""
    env = decode_envelope(message)
    if env.type == EnvelopeType.TYPE_2:
        raise EnvelopeError("type 2 envelopes are not encrypted; refusing where encryption is required")
    return unseal(sym_key, env.iv, env.sealed)


def decrypt_type1(message: str, receiver_private_key: bytes) -> tuple[bytes, bytes, bytes]:
    """Open a type 1 envelope: returns (sender public key, derived sym key, plaintext)."""
    env = decode_envelope(message)
    if env.type != EnvelopeType.TYPE_1 or env.sender_public_key is None:
        raise EnvelopeError(f"expected a type 1 envelope, got type {int(env.type)}")
    sym_key = derive_sym_key(receiver_private_key, env.sender_public_key)
    return env.sender_public_key, sym_key, unseal(sym_key, env.iv, env.sealed)
