"""``wc:`` pairing URIs: how a dapp hands a wallet a topic and its sym key out of band.

Rules (specs ``clients/core/pairing/pairing-uri.md``; monorepo ``packages/utils/src/uri.ts`` and
``packages/core/src/controllers/pairing.ts``)::

    wc:{topic}@{version}?expiryTimestamp={s}&methods={m1,m2}&relay-protocol=irn&symKey={hex}

* ``topic`` is 64 lowercase hex characters (a relay topic). It is NOT required to equal sha256(symKey):
  the JS client happens to create it that way, but Swift draws a random topic and every client that pairs
  stores the key under the topic written in the URI. :func:`new_pairing` follows the JS client.
* ``version`` must be 2; ``symKey`` (64 hex) and ``relay-protocol`` are required; ``relay-data``,
  ``expiryTimestamp`` (unix seconds) and ``methods`` (comma-separated) are optional. Unknown parameters are
  ignored, a known one given twice is refused. ``wc://`` (Android deep links) is read like ``wc:``.
* :meth:`PairingUri.format` writes what JS ``formatUri`` writes: parameters sorted by name (query-string's
  default), values percent-encoded except ``A-Z a-z 0-9 - . _ ~``, empty optional values left out.
* Older SDKs grouped methods as ``[a],[b,c]``; the brackets are dropped when reading.

Whether a URI has expired is a separate question, answered by :meth:`PairingUri.expired` with ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

from wcnotify.protocol.crypto import Random, topic_of
from wcnotify.spec import (
    JS_MAX_SAFE_INTEGER,
    KEY_LENGTH,
    PAIRING_PARAM_EXPIRY,
    PAIRING_PARAM_METHODS,
    PAIRING_PARAM_RELAY_DATA,
    PAIRING_PARAM_RELAY_PROTOCOL,
    PAIRING_PARAM_SYM_KEY,
    PAIRING_RELAY_PROTOCOL,
    PAIRING_TTL,
    PAIRING_URI_SCHEME,
    PAIRING_VERSION,
)

_TOPIC = re.compile(r"[0-9a-f]{64}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,16}")
_METHOD_STRIP = " \t[]"
_KNOWN = (
    PAIRING_PARAM_SYM_KEY,
    PAIRING_PARAM_RELAY_PROTOCOL,
    PAIRING_PARAM_RELAY_DATA,
    PAIRING_PARAM_EXPIRY,
    PAIRING_PARAM_METHODS,
)


class PairingError(ValueError):
    """A ``wc:`` URI that is malformed or lacks what pairing needs."""


@dataclass(frozen=True, repr=False)
class PairingUri:
    """A parsed pairing URI. Construction validates every field; ``repr`` never shows the sym key."""

    topic: str
    version: int
    sym_key: bytes
    relay_protocol: str
    expiry_timestamp: int | None = None
    methods: tuple[str, ...] = ()
    relay_data: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str) or not _TOPIC.fullmatch(self.topic):
            raise PairingError("topic must be 64 lowercase hex characters")
        if self.version != PAIRING_VERSION or isinstance(self.version, bool):
            raise PairingError(f"unsupported pairing version {self.version!r}; only {PAIRING_VERSION} is")
        if not isinstance(self.sym_key, bytes) or len(self.sym_key) != KEY_LENGTH:
            raise PairingError(f"symKey must be {KEY_LENGTH} bytes")
        if not isinstance(self.relay_protocol, str) or not self.relay_protocol:
            raise PairingError("relay-protocol must be a non-empty string")
        if self.relay_data is not None and (not isinstance(self.relay_data, str) or not self.relay_data):
            raise PairingError("relay-data must be a non-empty string or absent")
        if self.expiry_timestamp is not None and (
            isinstance(self.expiry_timestamp, bool)
            or not isinstance(self.expiry_timestamp, int)
            or not 0 <= self.expiry_timestamp <= JS_MAX_SAFE_INTEGER
        ):
            raise PairingError("expiryTimestamp must be unix seconds between 0 and 2**53 - 1")
        if not isinstance(self.methods, tuple):
            raise PairingError("methods must be a tuple of strings")
        for method in self.methods:
            if not _is_method_name(method):
                raise PairingError(f"invalid method name {method!r} in methods")

    def format(self) -> str:
        """The URI text, byte for byte what the JS client's ``formatUri`` produces."""
        params: dict[str, str] = {
            PAIRING_PARAM_SYM_KEY: self.sym_key.hex(),
            PAIRING_PARAM_RELAY_PROTOCOL: self.relay_protocol,
        }
        if self.relay_data is not None:
            params[PAIRING_PARAM_RELAY_DATA] = self.relay_data
        if self.expiry_timestamp is not None:
            params[PAIRING_PARAM_EXPIRY] = str(self.expiry_timestamp)
        if self.methods:
            params[PAIRING_PARAM_METHODS] = ",".join(self.methods)
        query = "&".join(f"{name}={quote(params[name], safe='')}" for name in sorted(params))
        return f"{PAIRING_URI_SCHEME}:{self.topic}@{self.version}?{query}"

    def expired(self, now: int) -> bool:
        """True once ``now`` (unix seconds) is past the expiry; a URI without one never expires here."""
        return self.expiry_timestamp is not None and self.expiry_timestamp < now

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return (
            f"PairingUri(topic={self.topic}, expiry_timestamp={self.expiry_timestamp}, "
            f"relay_protocol={self.relay_protocol!r}, methods={self.methods})"
        )


def parse(uri: str) -> PairingUri:
    """Read a ``wc:`` URI, refusing anything malformed with a :class:`PairingError` that says what."""
    if not isinstance(uri, str):
        raise PairingError("a pairing URI must be a string")
    text = uri.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or scheme != PAIRING_URI_SCHEME:
        raise PairingError(f"not a pairing URI: it must start with '{PAIRING_URI_SCHEME}:'")
    rest = rest.removeprefix("//")
    path, _, query = rest.partition("?")
    topic, at, version = path.partition("@")
    if not at:
        raise PairingError("missing @version after the topic")
    if not _TOPIC.fullmatch(topic):
        raise PairingError("topic must be 64 lowercase hex characters")
    if not _DIGITS.fullmatch(version):
        raise PairingError(f"version must be a number, got {version!r}")
    params = _parse_query(query)

    sym_key_hex = params.get(PAIRING_PARAM_SYM_KEY)
    if sym_key_hex is None:
        raise PairingError(f"missing {PAIRING_PARAM_SYM_KEY}")
    if not _HEX_KEY.fullmatch(sym_key_hex):
        raise PairingError(f"{PAIRING_PARAM_SYM_KEY} must be {2 * KEY_LENGTH} hex characters")
    relay_protocol = params.get(PAIRING_PARAM_RELAY_PROTOCOL)
    if not relay_protocol:
        raise PairingError(f"missing {PAIRING_PARAM_RELAY_PROTOCOL}")
    expiry = params.get(PAIRING_PARAM_EXPIRY)
    if expiry is not None and not _DIGITS.fullmatch(expiry):
        raise PairingError(f"{PAIRING_PARAM_EXPIRY} must be unix seconds, got {expiry!r}")
    return PairingUri(
        topic=topic,
        version=int(version),
        sym_key=bytes.fromhex(sym_key_hex),
        relay_protocol=relay_protocol,
        expiry_timestamp=None if expiry is None else int(expiry),
        methods=_parse_methods(params.get(PAIRING_PARAM_METHODS, "")),
        relay_data=params.get(PAIRING_PARAM_RELAY_DATA) or None,
    )


def _parse_query(query: str) -> dict[str, str]:
    """The known parameters, percent- and ``+``-decoded as query-string does; duplicates refused."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        try:
            name, value = unquote_plus(raw_name, errors="strict"), unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError as exc:
            raise PairingError("query parameter is not valid percent-encoded UTF-8") from exc
        if name not in _KNOWN:
            continue
        if name in params:
            raise PairingError(f"parameter {name} given more than once")
        params[name] = value
    return params


def _is_method_name(value: object) -> bool:
    """Non-empty, no comma, no outer brackets or blanks: exactly what survives a format/parse round trip."""
    return isinstance(value, str) and bool(value) and "," not in value and value == value.strip(_METHOD_STRIP)


def _parse_methods(value: str) -> tuple[str, ...]:
    return tuple(m for m in (item.strip(_METHOD_STRIP) for item in value.split(",")) if m)


def new_pairing(random: Random, now: int, ttl: int = PAIRING_TTL, methods: Iterable[str] = ()) -> PairingUri:
    """A fresh pairing as the JS client makes one: random sym key, topic = sha256(key), expiry now + ttl."""
    sym_key = random(KEY_LENGTH)
    return PairingUri(
        topic=topic_of(sym_key),
        version=PAIRING_VERSION,
        sym_key=sym_key,
        relay_protocol=PAIRING_RELAY_PROTOCOL,
        expiry_timestamp=now + ttl,
        methods=tuple(methods),
    )
