"""EdDSA JWTs as WalletConnect writes them, and one claims class per ``act``.

Encoding (utils ``did-jwt`` / ``relay-auth``): header ``{"alg":"EdDSA","typ":"JWT"}``, segments base64url
without padding, Ed25519 over ``header.payload``; the issuer is always an Ed25519 did:key, which is also the
verification key. Decoding is lenient about the alphabet and padding (the reference server decodes with the
standard alphabet, some clients pad) and strict about everything else.

Verification checks, in order: shape and size, ``alg``, the signature against ``iss``, ``exp`` (with
``JWT_LEEWAY`` of skew), ``iat`` not in the future (the reference compares milliseconds with seconds so its
check never fires; ours does), then the expected ``act`` and ``aud``. ``now`` is always a parameter.
Time claims written in milliseconds (the JS identity client does that for ``unregister_identity``) are
recognised by size and read as seconds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import orjson

from wcnotify.protocol.crypto import (
    Ed25519KeyPair,
    EnvelopeError,
    b64decode_lenient,
    b64url_encode,
    ed25519_verify,
)
from wcnotify.protocol.did import DidError, decode_did_key, encode_did_key
from wcnotify.spec import (
    DID_KEY_PREFIX,
    JWT_ALG,
    JWT_LEEWAY,
    JWT_MAX_LENGTH,
    JWT_MS_THRESHOLD,
    JWT_TYP,
    NOTIFY_MJV,
    Act,
)

_HEADER = b64url_encode(orjson.dumps({"alg": JWT_ALG, "typ": JWT_TYP}))


class JwtError(ValueError):
    """A JWT that cannot be accepted. Subclasses say why, so callers can answer precisely."""


class JwtFormatError(JwtError):
    """Not three base64url segments of JSON objects, too large, or a claim of the wrong type."""


class JwtSignatureError(JwtError):
    """``iss`` is not an Ed25519 did:key, or the signature does not verify against it."""


class JwtExpiredError(JwtError):
    """``exp`` has passed."""


class JwtNotYetValidError(JwtError):
    """``iat`` (or ``nbf``) is in the future."""


class JwtClaimError(JwtError):
    """A claim is missing or has a value the verifier did not expect (``act``, ``aud``, …)."""


@dataclass(frozen=True)
class DecodedJwt:
    """A JWT split and parsed but not yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


# ------------------------------------------------------------------------------------ encode/decode


def encode_jwt(claims: Mapping[str, Any], key: Ed25519KeyPair) -> str:
    """Sign ``claims`` (key order kept, compact JSON, as ``JSON.stringify``) with ``key``."""
    signing_input = f"{_HEADER}.{b64url_encode(orjson.dumps(dict(claims)))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


def _segment_json(segment: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64decode_lenient(segment))
    except EnvelopeError as exc:
        raise JwtFormatError(f"JWT {what} is not base64url") from exc
    except orjson.JSONDecodeError as exc:
        raise JwtFormatError(f"JWT {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise JwtFormatError(f"JWT {what} is not a JSON object")
    return value


def decode_jwt(token: str) -> DecodedJwt:
    """Split and parse a JWT without verifying it (use ``verify_jwt`` for anything you trust)."""
    if not isinstance(token, str):
        raise JwtFormatError("JWT must be a string")
    if len(token) > JWT_MAX_LENGTH:
        raise JwtFormatError(f"JWT is longer than {JWT_MAX_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtFormatError(f"JWT must have 3 segments, got {len(parts)}")
    header = _segment_json(parts[0], "header")
    claims = _segment_json(parts[1], "payload")
    try:
        signature = b64decode_lenient(parts[2])
    except EnvelopeError as exc:
        raise JwtFormatError("JWT signature is not base64url") from exc
    return DecodedJwt(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _seconds(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwtFormatError(f"JWT claim {name} must be a number")
    number = int(value)
    return number // 1000 if number > JWT_MS_THRESHOLD else number


def verify_jwt(
    token: str,
    *,
    now: int,
    act: str | None = None,
    aud: str | Collection[str] | None = None,
    leeway: int = JWT_LEEWAY,
) -> dict[str, Any]:
    """Verify signature and time, and ``act``/``aud`` when given; return the claims.

    ``aud`` may be one value or a collection of accepted values (a relay reachable at several URLs).
    """
    decoded = decode_jwt(token)
    if decoded.header.get("alg") != JWT_ALG:
        raise JwtFormatError(f"JWT alg must be {JWT_ALG}, got {str(decoded.header.get('alg'))[:20]!r}")
    claims = decoded.claims
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss.startswith(DID_KEY_PREFIX):  # decode_did_key also takes bare z6Mk…
        raise JwtSignatureError("JWT has no iss did:key")
    try:
        public_key = decode_did_key(iss)
    except DidError as exc:
        raise JwtSignatureError(f"JWT iss is not an Ed25519 did:key: {exc}") from exc
    if not ed25519_verify(public_key, decoded.signature, decoded.signing_input):
        raise JwtSignatureError("JWT signature does not verify against its iss")
    if "exp" not in claims:
        raise JwtClaimError("JWT has no exp")
    if _seconds(claims["exp"], "exp") + leeway <= now:
        raise JwtExpiredError("JWT has expired")
    for name in ("iat", "nbf"):
        if name in claims and _seconds(claims[name], name) > now + leeway:
            raise JwtNotYetValidError(f"JWT {name} is in the future")
    if act is not None and claims.get("act") != act:
        raise JwtClaimError(f"JWT act must be {act!r}, got {str(claims.get('act'))[:60]!r}")
    if aud is not None:
        accepted = {aud} if isinstance(aud, str) else set(aud)
        if not isinstance(claims.get("aud"), str) or claims["aud"] not in accepted:
            raise JwtClaimError(f"JWT aud {str(claims.get('aud'))[:100]!r} is not the expected audience")
    return claims


# ---------------------------------------------------------------------------------------- claims

def _check_type(value: object, hint: Any, name: str) -> None:
    """Check a JSON value against a claims field annotation (str, int, bool, None, list[...], dict)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in typing.get_args(hint):
            try:
                _check_type(value, arm, name)
            except JwtFormatError as exc:
                errors.append(exc)
            else:
                return
        raise errors[0]
    if hint is type(None):
        if value is not None:
            raise JwtFormatError(f"JWT claim {name} must be null")
        return
    if origin is list:
        if not isinstance(value, list):
            raise JwtFormatError(f"JWT claim {name} must be a list")
        (item,) = typing.get_args(hint)
        for element in value:
            _check_type(element, item, name)
        return
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise JwtFormatError(f"JWT claim {name} must be an object")
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JwtFormatError(f"JWT claim {name} must be an integer")
        return
    if hint is str or hint is bool:
        if not isinstance(value, hint):
            raise JwtFormatError(f"JWT claim {name} must be a {hint.__name__}")
        return
    raise TypeError(f"unsupported claims annotation {hint!r}")  # a programming error, not input


@dataclass(frozen=True, kw_only=True)
class Claims:
    """Claims every WalletConnect JWT carries. Subclasses add the claims of one ``act``.

    Unknown claims are kept in ``extra`` (and re-emitted) so newer peers' additions survive a round trip.
    """

    ACT: ClassVar[Act | None] = None
    # claims emitted even when None (``app: null`` means "all apps" for watch)
    KEEP_NULL: ClassVar[frozenset[str]] = frozenset()
    # claims written first, in this order (to be byte-identical with what the JS clients sign)
    ORDER: ClassVar[tuple[str, ...]] = ()

    iat: int
    exp: int
    iss: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Self:
        """Build from verified claims, checking every field's JSON type; missing required ones raise."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            if f.name in ("iat", "exp") and f.name in claims:
                values[f.name] = _seconds(claims[f.name], f.name)
                continue
            if f.name == "act":
                continue
            if f.name not in claims:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise JwtClaimError(f"JWT has no {f.name} claim")
                continue
            _check_type(claims[f.name], hints[f.name], f.name)
            values[f.name] = claims[f.name]
        if cls.ACT is not None and claims.get("act") not in cls.accepted_acts():
            raise JwtClaimError(f"JWT act must be {cls.ACT.value!r}, got {str(claims.get('act'))[:60]!r}")
        known = {f.name for f in dataclasses.fields(cls)} | {"act"}
        values["extra"] = {k: v for k, v in claims.items() if k not in known}
        return cls(**values)

    @classmethod
    def accepted_acts(cls) -> tuple[str, ...]:
        return () if cls.ACT is None else (cls.ACT.value,)

    @classmethod
    def verify(
        cls, token: str, *, now: int, aud: str | Collection[str] | None = None, leeway: int = JWT_LEEWAY
    ) -> Self:
        """Verify ``token`` (signature, time, ``aud``) and parse it as this act's claims."""
        return cls.from_claims(verify_jwt(token, now=now, aud=aud, leeway=leeway))

    def to_claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = [f.name for f in dataclasses.fields(self) if f.name != "extra"]
        for name in sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else len(self.ORDER)):
            value = getattr(self, name)
            if value is None and name not in self.KEEP_NULL:
                continue
            out[name] = value
            if name == "iss" and self.ACT is not None:
                out["act"] = self.ACT.value
        out.update(self.extra)
        return out

    def sign(self, key: Ed25519KeyPair) -> str:
        """Encode and sign; ``iss`` must be ``key``'s did:key, so a mismatch is caught here, not by a peer."""
        if self.iss != encode_did_key(key.public_key):
            raise JwtClaimError("iss does not match the signing key")
        return encode_jwt(self.to_claims(), key)


# Relay -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RelayAuthClaims(Claims):
    """relay-auth: the client's connection JWT. No ``act`` (the spec lists one, the real clients don't)."""

    ORDER = ("iss", "sub", "aud", "iat", "exp")
    sub: str
    aud: str


@dataclass(frozen=True, kw_only=True)
class WatchRegisterClaims(Claims):
    ACT = Act.IRN_WATCH_REGISTER
    aud: str
    sub: str
    typ: str
    whu: str
    tag: list[int]
    sts: list[str]


@dataclass(frozen=True, kw_only=True)
class WatchUnregisterClaims(Claims):
    ACT = Act.IRN_WATCH_UNREGISTER
    aud: str
    sub: str
    typ: str
    whu: str


@dataclass(frozen=True, kw_only=True)
class WatchEventClaims(Claims):
    ACT = Act.IRN_WATCH_EVENT
    aud: str
    sub: str
    typ: str
    whu: str
    evt: dict[str, Any]


# Keys server -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UnregisterIdentityClaims(Claims):
    """``DELETE /identity`` idAuth. The JS client writes ``iat``/``exp`` in milliseconds (read as seconds)."""

    ACT = Act.UNREGISTER_IDENTITY
    aud: str
    pkh: str
    sub: str | None = None


# Final Notify ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NotifyClaims(Claims):
    """Shared claims of final Notify (notify-server ``SharedClaims``): a missing ``mjv`` means "0"."""

    aud: str
    sub: str
    mjv: str = NOTIFY_MJV

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Self:
        # we emit mjv "1"; what a peer omits means "0" (the watcher also gets its own changes)
        if "mjv" not in claims:
            claims = {**claims, "mjv": "0"}
        return super().from_claims(claims)


@dataclass(frozen=True, kw_only=True)
class NotifyClientClaims(NotifyClaims):
    """Client → server requests carry the keys server URL the identity is registered at."""

    ksu: str


@dataclass(frozen=True, kw_only=True)
class NotifySubscriptionClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_SUBSCRIPTION
    app: str
    scp: str


@dataclass(frozen=True, kw_only=True)
class NotifySubscriptionResponseClaims(NotifyClaims):
    ACT = Act.NOTIFY_SUBSCRIPTION_RESPONSE
    app: str
    sbs: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NotifyMessageClaims(Claims):
    """The notification itself: signed by the dapp's authentication key, no ``aud`` and no ``mjv``."""

    ACT = Act.NOTIFY_MESSAGE
    sub: str
    app: str
    msg: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class NotifyMessageResponseClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_MESSAGE_RESPONSE
    app: str


@dataclass(frozen=True, kw_only=True)
class NotifyUpdateClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_UPDATE
    app: str
    scp: str


@dataclass(frozen=True, kw_only=True)
class NotifyUpdateResponseClaims(NotifyClaims):
    ACT = Act.NOTIFY_UPDATE_RESPONSE
    app: str
    sbs: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NotifyDeleteClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_DELETE
    app: str


@dataclass(frozen=True, kw_only=True)
class NotifyDeleteResponseClaims(NotifyClaims):
    ACT = Act.NOTIFY_DELETE_RESPONSE
    app: str
    sbs: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NotifyWatchSubscriptionsClaims(NotifyClientClaims):
    """``app`` is a did:web to watch one app, or null for all apps (needs an all-apps CACAO)."""

    ACT = Act.NOTIFY_WATCH_SUBSCRIPTIONS
    KEEP_NULL = frozenset({"app"})
    app: str | None = None


@dataclass(frozen=True, kw_only=True)
class NotifyWatchSubscriptionsResponseClaims(NotifyClaims):
    ACT = Act.NOTIFY_WATCH_SUBSCRIPTIONS_RESPONSE
    sbs: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NotifySubscriptionsChangedClaims(NotifyClaims):
    ACT = Act.NOTIFY_SUBSCRIPTIONS_CHANGED
    sbs: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NotifySubscriptionsChangedResponseClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_SUBSCRIPTIONS_CHANGED_RESPONSE


@dataclass(frozen=True, kw_only=True)
class NotifyGetNotificationsClaims(NotifyClientClaims):
    ACT = Act.NOTIFY_GET_NOTIFICATIONS
    KEEP_NULL = frozenset({"aft"})
    app: str
    lmt: int
    aft: str | None = None
    urf: bool = False


@dataclass(frozen=True, kw_only=True)
class NotifyGetNotificationsResponseClaims(NotifyClaims):
    ACT = Act.NOTIFY_GET_NOTIFICATIONS_RESPONSE
    app: str
    nfs: list[dict[str, Any]]
    mre: bool
    mur: bool = False


@dataclass(frozen=True, kw_only=True)
class NotifyMarkNotificationsAsReadClaims(NotifyClientClaims):
    """``all`` marks everything read; otherwise ``ids`` lists the notifications (absent when ``all``)."""

    ACT = Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ
    app: str
    all: bool = False
    ids: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class NotifyMarkNotificationsAsReadResponseClaims(NotifyClaims):
    """The server sends ``notify_mark_notifications_as_read_response``; the spec text says
    ``notify_read_notifications_response``. Both are accepted."""

    ACT = Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ_RESPONSE
    app: str

    @classmethod
    def accepted_acts(cls) -> tuple[str, ...]:
        return (cls.ACT.value, Act.NOTIFY_READ_NOTIFICATIONS_RESPONSE.value)


# Notify with Sync (Aug 2023) and Push era --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NotifyReceiptClaims(Claims):
    ACT = Act.NOTIFY_RECEIPT
    aud: str
    sub: str
    app: str | None = None
    ksu: str | None = None


@dataclass(frozen=True, kw_only=True)
class PushSubscriptionClaims(Claims):
    """Push-era ``subscriptionAuth`` (also used for ``wc_pushUpdate``): ``scp`` holds type *names*, and the
    JS client's ``exp`` is ``iat`` plus 86,400,000 (milliseconds added to seconds): just far in the future."""

    ACT = Act.PUSH_SUBSCRIPTION
    aud: str
    sub: str
    ksu: str
    scp: str


@dataclass(frozen=True, kw_only=True)
class PushMessageClaims(Claims):
    """April 2023 docs: ``wc_pushMessage`` briefly carried ``{messageAuth}``."""

    ACT = Act.PUSH_MESSAGE
    sub: str
    msg: dict[str, Any]
    aud: str | None = None
    app: str | None = None


CLAIMS_BY_ACT: dict[str, type[Claims]] = {}
for _cls in (
    WatchRegisterClaims, WatchUnregisterClaims, WatchEventClaims, UnregisterIdentityClaims,
    NotifySubscriptionClaims, NotifySubscriptionResponseClaims, NotifyMessageClaims,
    NotifyMessageResponseClaims, NotifyUpdateClaims, NotifyUpdateResponseClaims, NotifyDeleteClaims,
    NotifyDeleteResponseClaims, NotifyWatchSubscriptionsClaims, NotifyWatchSubscriptionsResponseClaims,
    NotifySubscriptionsChangedClaims, NotifySubscriptionsChangedResponseClaims, NotifyGetNotificationsClaims,
    NotifyGetNotificationsResponseClaims, NotifyMarkNotificationsAsReadClaims,
    NotifyMarkNotificationsAsReadResponseClaims, NotifyReceiptClaims, PushSubscriptionClaims, PushMessageClaims,
):
    for _act in _cls.accepted_acts():
        CLAIMS_BY_ACT[_act] = _cls


def parse_claims(claims: Mapping[str, Any]) -> Claims:
    """The claims class of ``claims['act']`` (a table lookup, for dispatch by act)."""
    act = claims.get("act")
    cls = CLAIMS_BY_ACT.get(act) if isinstance(act, str) else None
    if cls is None:
        raise JwtClaimError(f"unknown JWT act {str(act)[:60]!r}")
    return cls.from_claims(claims)
