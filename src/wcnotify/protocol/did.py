"""Identifiers: did:key, did:pkh and CAIP-10 accounts, and did:web documents.

* did:key = ``"did:key:z" + base58btc(multicodec || raw public key)``; Ed25519 keys start ``z6Mk``, X25519
  keys ``z6LS`` (crypto-authentication.md).
* did:pkh = ``"did:pkh:" + CAIP-10``. Accounts are compared chain-agnostically by address, case-insensitively
  (notify-server compares addresses that way for update, delete, history and read).
* did:web ``did:web:<domain>`` resolves to ``https://<domain>/.well-known/did.json``; the host ``localhost``
  (any port) uses http, as the JS client does (it also does for look-alikes such as ``localhost.x``; we do not).
  A ``:`` inside the domain may be raw (JS) or ``%3A``.
* did.json: two JsonWebKey2020 entries, found through ``keyAgreement[0]`` and ``authentication[0]``; the
  JWK ``x`` is base64url, padded (the reference server) or not (the spec): both are accepted.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import base58
from eth_utils.crypto import keccak

from wcnotify.protocol.crypto import topic_of
from wcnotify.spec import (
    DID_FRAGMENT_AUTHENTICATION_KEY,
    DID_FRAGMENT_SUBSCRIBE_KEY,
    DID_JSON_CONTEXT,
    DID_JSON_PATH,
    DID_KEY_PREFIX,
    DID_PKH_PREFIX,
    DID_WEB_PREFIX,
    KEY_LENGTH,
    MULTICODEC_ED25519_PUB,
    MULTICODEC_X25519_PUB,
)


class DidError(ValueError):
    """A DID, CAIP-10 account or did:web document that cannot be parsed."""


# ------------------------------------------------------------------------------------------ did:key

_CODECS = {"Ed25519": MULTICODEC_ED25519_PUB, "X25519": MULTICODEC_X25519_PUB}
_MAX_DID_LENGTH = 256


def encode_did_key(public_key: bytes, kind: str = "Ed25519") -> str:
    """``did:key:z…`` for a raw 32-byte public key; ``kind`` is "Ed25519" (z6Mk…) or "X25519" (z6LS…)."""
    if len(public_key) != KEY_LENGTH:
        raise DidError(f"a did:key public key must be {KEY_LENGTH} bytes")
    try:
        codec = _CODECS[kind]
    except KeyError:
        raise DidError(f"unsupported did:key kind {kind!r}") from None
    return DID_KEY_PREFIX + "z" + base58.b58encode(codec + public_key).decode()


def decode_did_key(did: str, kind: str = "Ed25519") -> bytes:
    """The raw public key of a did:key, which must be of ``kind``.

    The bare multibase form (``z6Mk…`` without ``did:key:``) is accepted too: the keys server's
    ``GET /identity?publicKey=`` uses it.
    """
    if not isinstance(did, str) or len(did) > _MAX_DID_LENGTH:
        raise DidError("did:key must be a string of reasonable length")
    multibase = did.removeprefix(DID_KEY_PREFIX)
    if not multibase.startswith("z"):
        raise DidError(f"not a base58btc did:key: {did[:80]!r}")
    try:
        raw = base58.b58decode(multibase[1:])
    except ValueError as exc:
        raise DidError(f"did:key is not base58: {did[:80]!r}") from exc
    codec = _CODECS.get(kind)
    if codec is None:
        raise DidError(f"unsupported did:key kind {kind!r}")
    if len(raw) != len(codec) + KEY_LENGTH or not raw.startswith(codec):
        raise DidError(f"did:key is not an {kind} key: {did[:80]!r}")
    if base58.b58encode(raw).decode() != multibase[1:]:  # b58decode ignores trailing whitespace
        raise DidError(f"did:key is not in canonical form: {did[:80]!r}")
    return raw[len(codec) :]


# ----------------------------------------------------------------------------------- CAIP-10 / pkh

_CAIP10 = re.compile(r"^([-a-z0-9]{3,8}):([-_a-zA-Z0-9]{1,32}):([-.%a-zA-Z0-9]{1,128})\Z")
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}\Z")


def to_checksum_address(address: str) -> str:
    """ERC-55 mixed-case checksum of a 20-byte hex address."""
    if not _EVM_ADDRESS.match(address):
        raise DidError(f"not a 20-byte hex address: {address[:64]!r}")
    lower = address[2:].lower()
    digest = keccak(text=lower).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(lower))


def is_checksum_address(address: str) -> bool:
    """True when ``address`` carries a valid ERC-55 checksum (all-lower or all-upper is no checksum)."""
    try:
        return to_checksum_address(address) == address
    except DidError:
        return False


@dataclass(frozen=True)
class Account:
    """A CAIP-10 account ``namespace:reference:address``."""

    namespace: str
    reference: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Account:
        if not isinstance(value, str):
            raise DidError("CAIP-10 account must be a string")
        match = _CAIP10.match(value)
        if match is None:
            raise DidError(f"not a CAIP-10 account: {value[:160]!r}")
        namespace, reference, address = match.groups()
        if namespace == "eip155" and not _EVM_ADDRESS.match(address):
            raise DidError(f"eip155 account needs a 0x-prefixed 20-byte hex address: {value[:160]!r}")
        return cls(namespace, reference, address)

    @classmethod
    def from_did_pkh(cls, did: str) -> Account:
        if not isinstance(did, str) or not did.startswith(DID_PKH_PREFIX):
            raise DidError(f"not a did:pkh: {str(did)[:80]!r}")
        return cls.parse(did[len(DID_PKH_PREFIX) :])

    def __str__(self) -> str:
        return f"{self.namespace}:{self.reference}:{self.address}"

    @property
    def did_pkh(self) -> str:
        return DID_PKH_PREFIX + str(self)

    @property
    def chain_id(self) -> str:
        """CAIP-2 chain id, e.g. ``eip155:1``."""
        return f"{self.namespace}:{self.reference}"

    def checksummed(self) -> Account:
        """The same account with an ERC-55 address (what the JS client writes) for eip155."""
        if self.namespace != "eip155":
            return self
        return Account(self.namespace, self.reference, to_checksum_address(self.address))

    @property
    def address_key(self) -> str:
        """What identifies the account across chains: lowercase address for eip155, else the address."""
        return self.address.lower() if self.namespace == "eip155" else self.address

    def same_address(self, other: Account) -> bool:
        """Chain-agnostic equality: same namespace and address, any chain reference."""
        return self.namespace == other.namespace and self.address_key == other.address_key


# ------------------------------------------------------------------------------------------ did:web

_DOMAIN = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?\Z")


def normalize_domain(domain: str) -> str:
    """An app domain (host with an optional port); ``%3A`` is unescaped, and nothing else is allowed."""
    if not isinstance(domain, str):
        raise DidError("domain must be a string")
    value = re.sub("%3a", ":", domain, flags=re.IGNORECASE)
    if not _DOMAIN.match(value):
        raise DidError(f"not a domain: {domain[:260]!r}")
    return value.lower()


def did_web(domain: str) -> str:
    """``did:web:<domain>`` with a raw colon before a port, as the JS client writes it."""
    return DID_WEB_PREFIX + normalize_domain(domain)


def did_web_domain(did: str) -> str:
    """The domain of a did:web (paths are not used by Notify and are refused)."""
    if not isinstance(did, str) or not did.startswith(DID_WEB_PREFIX):
        raise DidError(f"not a did:web: {str(did)[:80]!r}")
    return normalize_domain(did[len(DID_WEB_PREFIX) :])


def domain_scheme(domain: str) -> str:
    """http for the host ``localhost`` (any port), https otherwise.

    The JS client takes http for any domain that merely starts with ``localhost``, so ``localhost.evil.example``
    would be fetched in the clear and a network attacker could swap the dapp's keys; only the loopback name
    itself gets http here (docs/protocol-notes.md).
    """
    host = normalize_domain(domain).partition(":")[0]
    return "http" if host == "localhost" else "https"


def did_web_url(did_or_domain: str) -> str:
    """The URL of the did.json a did:web (or a bare domain) resolves to."""
    text = did_or_domain
    domain = did_web_domain(text) if text.startswith(DID_WEB_PREFIX) else normalize_domain(text)
    return f"{domain_scheme(domain)}://{domain}{DID_JSON_PATH}"


def url_did_web(url: str) -> str:
    """The did:web of an ``http(s)://domain[/.well-known/did.json]`` URL."""
    if not isinstance(url, str):
        raise DidError("did:web URL must be a string")
    match = re.match(r"^https?://([^/?#]+)(/\.well-known/did\.json)?/?\Z", url)
    if match is None:
        raise DidError(f"not a did:web URL: {url[:260]!r}")
    return did_web(match.group(1))


# ---------------------------------------------------------------------------------- did.json


def _jwk_x(public_key: bytes) -> str:
    # padded base64url, as notify-server's data_encoding::BASE64URL writes it
    return base64.urlsafe_b64encode(public_key).decode()


def _decode_jwk_x(value: object) -> bytes:
    if not isinstance(value, str) or len(value) > 64:
        raise DidError("JWK x must be a base64url string")
    body = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DidError("JWK x is not base64url") from exc
    if len(raw) != KEY_LENGTH:
        raise DidError(f"JWK x must encode {KEY_LENGTH} bytes")
    return raw


@dataclass(frozen=True)
class DidWebKeys:
    """The two keys a Notify did.json publishes: X25519 key agreement and Ed25519 authentication."""

    did: str
    key_agreement: bytes
    authentication: bytes

    @property
    def authentication_did_key(self) -> str:
        return encode_did_key(self.authentication)

    @property
    def subscribe_topic(self) -> str:
        """Where wallets send type-1 requests: sha256 of the key-agreement key."""
        return topic_of(self.key_agreement)


def build_did_document(domain: str, key_agreement: bytes, authentication: bytes) -> dict[str, Any]:
    """The did.json a dapp (or the notify server itself) publishes at ``/.well-known/did.json``."""
    did = did_web(domain)
    sub_id = f"{did}#{DID_FRAGMENT_SUBSCRIBE_KEY}"
    auth_id = f"{did}#{DID_FRAGMENT_AUTHENTICATION_KEY}"

    def method(vm_id: str, crv: str, key: bytes) -> dict[str, Any]:
        if len(key) != KEY_LENGTH:
            raise DidError(f"{crv} key must be {KEY_LENGTH} bytes")
        jwk = {"kty": "OKP", "crv": crv, "x": _jwk_x(key)}
        return {"id": vm_id, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk}

    return {
        "@context": list(DID_JSON_CONTEXT),
        "id": did,
        "verificationMethod": [
            method(sub_id, "X25519", key_agreement),
            method(auth_id, "Ed25519", authentication),
        ],
        "keyAgreement": [sub_id],
        "authentication": [auth_id],
    }


def parse_did_document(document: object, expected_did: str | None = None) -> DidWebKeys:
    """Find the key-agreement and authentication keys as the current JS client does.

    The entry whose ``id`` equals ``keyAgreement[0]`` must be an X25519 JWK, the one for
    ``authentication[0]`` an Ed25519 JWK. ``expected_did``, when given, must equal the document's ``id``.
    """
    if not isinstance(document, dict):
        raise DidError("did.json must be a JSON object")
    did = document.get("id")
    if not isinstance(did, str):
        raise DidError("did.json has no id")
    if expected_did is not None and did_web_domain(did) != did_web_domain(expected_did):
        raise DidError(f"did.json id {did[:80]!r} does not match {expected_did[:80]!r}")
    methods = document.get("verificationMethod")
    if not isinstance(methods, list):
        raise DidError("did.json has no verificationMethod list")
    by_id = {m["id"]: m for m in methods if isinstance(m, dict) and isinstance(m.get("id"), str)}

    def key(relation: str, crv: str) -> bytes:
        refs = document.get(relation)
        if not isinstance(refs, list) or not refs:
            raise DidError(f"did.json has no {relation}")
        ref = refs[0]
        entry = ref if isinstance(ref, dict) else by_id.get(ref) if isinstance(ref, str) else None
        if not isinstance(entry, dict):
            raise DidError(f"did.json {relation}[0] names no verification method")
        jwk = entry.get("publicKeyJwk")
        if not isinstance(jwk, dict) or jwk.get("crv") != crv:
            raise DidError(f"did.json {relation}[0] is not an {crv} JWK")
        return _decode_jwk_x(jwk.get("x"))

    return DidWebKeys(did, key("keyAgreement", "X25519"), key("authentication", "Ed25519"))
