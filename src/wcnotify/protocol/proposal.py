"""The push proposal flow: a dapp asks a wallet, over a pairing, to subscribe to its notifications.

Rules (protocol.md §7; specs-push ``push-proposal.md``; notify-js @dc0eaeb ``engine.ts``)::

    dapp                                   pairing topic (type 0, pairing key)             wallet
      X = new X25519 key
      -- wc_pushPropose {publicKey: hex X, account, metadata, scope: [names]}  tag 4010 -->
      listens on responseTopic = sha256(X)
                                                          subscribes (gets P), Z = new X25519 key
      <-- result {subscriptionAuth, subscriptionSymKey: hex P}  tag 4011, type 1 from Z on sha256(X),
          key = HKDF(X25519(Z, X))
      <-- or error 5000 "User rejected. Reason: <r>." / 6001 on the pairing topic, tag 4011, type 0
      listens on the notify topic sha256(P): the wallet's wc_notifyUpdate / wc_notifyDelete arrive there

* Answers carry the proposal's JSON-RPC id. Refusals are JSON-RPC errors with ``spec.SdkError`` codes:
  5000 (message ``spec.SDK_USER_REJECTED_REASON_FORMAT``), 6001 (``User has existing notify subscription with
  dapp.``, sent at once when the wallet already has a subscription with the same ``metadata.url``); any other
  code is a refusal without a more specific meaning. An error found on the response topic is read the same way.
* Parsing is strict: each field has a JSON type, a size limit (``spec.PUSH_PROPOSE_*``) and an error that
  names it; unknown members are ignored, so a newer peer's additions do not break an older one. URLs
  (``metadata.url``, ``icons``, ``redirect.universal``) must be http(s): a wallet shows and opens them, and
  ``javascript:`` or ``data:`` has no business there. ``metadata.url``'s host is the app domain: the
  subscriptionAuth must be for it (``app`` = its did:web for notify_subscription, ``aud``'s host for the
  Push-era push_subscription), so an answer minted for another app is refused.
* The dapp accepts an approval only if the JWT verifies (signature by ``iss``, time, act), its ``sub`` is the
  proposed account (chain-agnostic, as the notify server compares accounts) and its app is the proposer's.
  On the notify topic it reads only ``wc_notifyUpdate`` and ``wc_notifyDelete`` (verified the same way);
  notifications, responses and the empty noop are not its business and read as ``None``.

The pushProposal Sync store (``spec.SYNC_STORE_PUSH_PROPOSAL``, key = responseTopic). The draft's value was
``{publicKey, privateKey?, responseTopic, metadata, account, scope}`` with the proposer's private key, which
a wallet never has. :class:`ProposalRecord` holds instead what a wallet's other devices need to show the
request and to answer it, and to see it answered:

* ``publicKey`` (the dapp's X), ``responseTopic`` (= sha256(X), checked), ``requestId`` and ``pairingTopic``
  (an approval goes to responseTopic and a refusal to the pairing topic, both under ``requestId``; the pairing
  key itself comes from the pairing, which the device must hold to answer a refusal), ``metadata``,
  ``account``, ``scope``, and ``expiry`` (unix s, when the request's TTL runs out; show nothing after it).
* ``status``: ``pending`` when a device receives the proposal, then ``approved`` (with ``subscriptionTopic``
  = sha256(P), so a device can find the subscription that the pushSubscription store brings it) or
  ``rejected`` (with the ``reason`` sent, the 6001 message for an existing subscription). The resolution is a
  new ``wc_syncSet`` of the same key, not a ``wc_syncDel``: a deletion would tell a device that was offline
  only that the request is gone, not whether it was approved, and it could not tell it from one it never
  saw. Resolved is final (:data:`TRANSITIONS`): a device writes ``pending`` only for a key it does not hold,
  and never answers a proposal whose record is resolved. Records may be deleted once past ``expiry``.
  Two devices approving at the same moment would both subscribe; Sync cannot prevent that race.

Pure: no clock (``now`` is a parameter), randomness through a ``random`` parameter defaulting to
``os.urandom`` as in :mod:`~wcnotify.protocol.crypto`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import (
    CryptoError,
    Random,
    X25519KeyPair,
    decrypt,
    decrypt_type1,
    derive_sym_key,
    encode_type0,
    encode_type1,
    topic_of,
)
from wcnotify.protocol.did import Account, DidError, did_web, did_web_domain, normalize_domain
from wcnotify.protocol.jwt import (
    JwtError,
    NotifyClientClaims,
    NotifyDeleteClaims,
    NotifyUpdateClaims,
    decode_jwt,
    verify_jwt,
)
from wcnotify.protocol.sync import SyncSet
from wcnotify.spec import (
    JWT_MAX_LENGTH,
    KEY_LENGTH,
    NOTIFY_DELETE,
    NOTIFY_UPDATE,
    PUSH_PROPOSE,
    PUSH_PROPOSE_AUTH_ACTS,
    PUSH_PROPOSE_DESCRIPTION_MAX,
    PUSH_PROPOSE_ICONS_MAX,
    PUSH_PROPOSE_MAX_PARAMS_BYTES,
    PUSH_PROPOSE_NAME_MAX,
    PUSH_PROPOSE_REASON_MAX,
    PUSH_PROPOSE_SCOPE_MAX,
    PUSH_PROPOSE_SCOPE_NAME_MAX,
    PUSH_PROPOSE_URL_MAX,
    SDK_ERROR_MESSAGES,
    SDK_USER_REJECTED_REASON_FORMAT,
    SYNC_STORE_PUSH_PROPOSAL,
    Act,
    ProposalStatus,
    RpcSpec,
    SdkError,
)

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_TOPIC = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BLANK = re.compile(r"\s")
_HTTP_SCHEMES = ("http", "https")
_REJECTED_PREFIX, _, _REJECTED_SUFFIX = SDK_USER_REJECTED_REASON_FORMAT.partition("{reason}")
_MESSAGE_MAX = len(_REJECTED_PREFIX) + PUSH_PROPOSE_REASON_MAX + len(_REJECTED_SUFFIX)


class ProposalError(ValueError):
    """A proposal, answer, event or Sync record that is malformed or cannot be accepted; the message says which
    field and why."""


# ------------------------------------------------------------------------------------------- refusals


class ProposalDeclined(Exception):
    """The wallet answered the proposal with a JSON-RPC error. ``code`` and ``message`` are the wallet's."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"the wallet declined the proposal: {message} (code {code})")
        self.code = code
        self.message = message


class ProposalRejected(ProposalDeclined):
    """The user rejected the proposal (5000); ``reason`` is what the wallet gave (may be empty)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(SdkError.USER_REJECTED, message or rejection_text(reason))
        self.reason = reason


class AlreadySubscribed(ProposalDeclined):
    """The account already has a subscription to this dapp (6001): nothing to do, it receives notifications."""

    def __init__(self, message: str | None = None) -> None:
        code = SdkError.USER_HAS_EXISTING_SUBSCRIPTION
        super().__init__(code, message or SDK_ERROR_MESSAGES[code])


def rejection_text(reason: str) -> str:
    """``User rejected. Reason: <reason>.``, the 5000 message of protocol.md §7."""
    return SDK_USER_REJECTED_REASON_FORMAT.format(reason=reason)


def rejection_error(request_id: jsonrpc.JsonRpcId, reason: str) -> jsonrpc.Error:
    """The wallet's 5000 answer to the proposal ``request_id``."""
    _text(reason, "reason", PUSH_PROPOSE_REASON_MAX, allow_empty=True, multiline=True)
    return jsonrpc.Error(request_id, int(SdkError.USER_REJECTED), rejection_text(reason))


def already_subscribed_error(request_id: jsonrpc.JsonRpcId) -> jsonrpc.Error:
    """The wallet's 6001 answer: a subscription with the same ``metadata.url`` exists."""
    code = SdkError.USER_HAS_EXISTING_SUBSCRIPTION
    return jsonrpc.Error(request_id, int(code), SDK_ERROR_MESSAGES[code])


def declined_from_error(error: jsonrpc.Error) -> ProposalDeclined:
    """The exception a dapp raises for the wallet's error answer: 5000 and 6001 get their own class.

    The reason is read back from ``User rejected. Reason: <r>.``; a 5000 with another message (``User
    rejected.`` alone, as some wallets send) keeps its whole message and an empty reason."""
    message = error.message[:_MESSAGE_MAX]  # a wallet's text ends up in exceptions and logs: bounded
    if error.code == SdkError.USER_REJECTED:
        reason = ""
        if message.startswith(_REJECTED_PREFIX) and message.endswith(_REJECTED_SUFFIX):
            reason = message[len(_REJECTED_PREFIX) : len(message) - len(_REJECTED_SUFFIX)]
        return ProposalRejected(reason, message)
    if error.code == SdkError.USER_HAS_EXISTING_SUBSCRIPTION:
        return AlreadySubscribed(message)
    return ProposalDeclined(error.code, message)


# ------------------------------------------------------------------------------------ field checking


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string" if isinstance(value, str) else type(value).__name__


def _text(
    value: object, where: str, max_len: int, *, allow_empty: bool = False, multiline: bool = False
) -> str:
    """A string of at most ``max_len`` characters, valid Unicode, without control characters."""
    if not isinstance(value, str):
        raise ProposalError(f"{where} must be a string, not {_kind(value)}")
    if len(value) > max_len:
        raise ProposalError(f"{where} is {len(value)} characters long; at most {max_len} are allowed")
    if not allow_empty and not value.strip():
        raise ProposalError(f"{where} must not be empty")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ProposalError(f"{where} is not valid Unicode text (lone surrogate)") from None
    if (_CONTROL_EXCEPT_LINES if multiline else _CONTROL).search(value):
        raise ProposalError(f"{where} must not contain control characters")
    return value


def _http_url(value: object, where: str) -> str:
    text = _text(value, where, PUSH_PROPOSE_URL_MAX)
    if _BLANK.search(text):
        raise ProposalError(f"{where} must not contain whitespace")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ProposalError(f"{where} is not a URL: {exc}") from None
    if parts.scheme not in _HTTP_SCHEMES or not parts.netloc:
        raise ProposalError(f"{where} must be an http(s) URL, got {text[:80]!r}")
    return text


def _url_domain(url: str, where: str) -> str:
    """The app domain (host[:port], lowercase) of an http(s) URL."""
    try:
        return normalize_domain(urlsplit(url).netloc)
    except (DidError, ValueError):
        raise ProposalError(f"{where} has no usable host (a domain, optionally with a port): {url[:80]!r}") from None


def _member(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise ProposalError(f"{where}.{name} is missing")
    return obj[name]


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ProposalError(f"{where} must be an object, not {_kind(value)}")
    return value


def _key_hex(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
        raise ProposalError(f"{where} must be {2 * KEY_LENGTH} hex characters (a 32-byte key)")
    return bytes.fromhex(value)


def _topic(value: object, where: str) -> str:
    if not isinstance(value, str) or not _TOPIC.fullmatch(value):
        raise ProposalError(f"{where} must be a topic: 64 lowercase hex characters")
    return value


def _account(value: object, where: str) -> Account:
    if isinstance(value, Account):
        return value
    if not isinstance(value, str):
        raise ProposalError(f"{where} must be a CAIP-10 account string, not {_kind(value)}")
    try:
        return Account.parse(value)
    except DidError as exc:
        raise ProposalError(f"{where} must be a CAIP-10 account: {exc}") from None


def _request_id(value: object, where: str) -> jsonrpc.JsonRpcId:
    if not jsonrpc.is_rpc_id(value):
        raise ProposalError(f"{where} must be a JSON-RPC id (an integer or a string), not {_kind(value)}")
    assert isinstance(value, int | str)
    return value


def _check_key_bytes(value: object, where: str) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_LENGTH:
        raise ProposalError(f"{where} must be {KEY_LENGTH} bytes")


# ------------------------------------------------------------------------------------------ metadata


@dataclass(frozen=True)
class Redirect:
    """Where a wallet sends the user back: a native deep link (any scheme) and/or a universal http(s) link."""

    native: str | None = None
    universal: str | None = None

    def __post_init__(self) -> None:
        if self.native is not None:
            native = _text(self.native, "metadata.redirect.native", PUSH_PROPOSE_URL_MAX)
            if _BLANK.search(native):
                raise ProposalError("metadata.redirect.native must not contain whitespace")
        if self.universal is not None:
            _http_url(self.universal, "metadata.redirect.universal")

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.native is not None:
            out["native"] = self.native
        if self.universal is not None:
            out["universal"] = self.universal
        return out

    @classmethod
    def from_json(cls, value: object) -> Redirect:
        obj = _object(value, "metadata.redirect")
        return cls(obj.get("native"), obj.get("universal"))


@dataclass(frozen=True)
class AppMetadata:
    """The proposing dapp as a wallet shows it. ``url``'s host is the app domain (see :attr:`domain`)."""

    name: str
    description: str
    url: str
    icons: tuple[str, ...] = ()
    redirect: Redirect | None = None

    def __post_init__(self) -> None:
        _text(self.name, "metadata.name", PUSH_PROPOSE_NAME_MAX)
        _text(self.description, "metadata.description", PUSH_PROPOSE_DESCRIPTION_MAX, allow_empty=True,
              multiline=True)
        _url_domain(_http_url(self.url, "metadata.url"), "metadata.url")
        if not isinstance(self.icons, tuple):
            raise ProposalError("metadata.icons must be a tuple of URLs")
        if len(self.icons) > PUSH_PROPOSE_ICONS_MAX:
            raise ProposalError(f"metadata.icons lists {len(self.icons)} icons; at most {PUSH_PROPOSE_ICONS_MAX}")
        for i, icon in enumerate(self.icons):
            _http_url(icon, f"metadata.icons[{i}]")
        if self.redirect is not None and not isinstance(self.redirect, Redirect):
            raise ProposalError("metadata.redirect must be a Redirect or None")

    @property
    def domain(self) -> str:
        """The app domain: ``url``'s host (and port), lowercase, as in the app's ``did:web``."""
        return _url_domain(self.url, "metadata.url")

    @property
    def did_web(self) -> str:
        """``did:web:<domain>``: the ``app`` claim of the wallet's JWTs for this dapp."""
        return did_web(self.domain)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "description": self.description, "url": self.url, "icons": list(self.icons),
        }
        if self.redirect is not None:
            out["redirect"] = self.redirect.to_json()
        return out

    @classmethod
    def from_json(cls, value: object) -> AppMetadata:
        obj = _object(value, "metadata")
        icons = obj.get("icons", [])
        if not isinstance(icons, list):
            raise ProposalError(f"metadata.icons must be an array, not {_kind(icons)}")
        if len(icons) > PUSH_PROPOSE_ICONS_MAX:
            raise ProposalError(f"metadata.icons lists {len(icons)} icons; at most {PUSH_PROPOSE_ICONS_MAX}")
        redirect = obj.get("redirect")
        return cls(
            name=_member(obj, "name", "metadata"),
            description=obj.get("description", ""),
            url=_member(obj, "url", "metadata"),
            icons=tuple(icons),
            redirect=None if redirect is None else Redirect.from_json(redirect),
        )


def _scope(names: Iterable[object], where: str = "scope") -> tuple[str, ...]:
    items = tuple(names)
    if not items:
        raise ProposalError(f"{where} must name at least one notification type")
    if len(items) > PUSH_PROPOSE_SCOPE_MAX:
        raise ProposalError(f"{where} names {len(items)} types; at most {PUSH_PROPOSE_SCOPE_MAX}")
    names_seen: list[str] = []
    for i, name in enumerate(items):
        text = _text(name, f"{where}[{i}]", PUSH_PROPOSE_SCOPE_NAME_MAX)
        if text != text.strip():
            raise ProposalError(f"{where}[{i}] must not start or end with whitespace")
        if text in names_seen:
            raise ProposalError(f"{where} names {text!r} twice")
        names_seen.append(text)
    return tuple(names_seen)


def _scope_json(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ProposalError(f"{where} must be an array of type names, not {_kind(value)}")
    if len(value) > PUSH_PROPOSE_SCOPE_MAX:
        raise ProposalError(f"{where} names {len(value)} types; at most {PUSH_PROPOSE_SCOPE_MAX}")
    return _scope(value, where)


# ------------------------------------------------------------------------------------------ proposal


@dataclass(frozen=True)
class PushProposal:
    """``wc_pushPropose`` params: the dapp's X25519 public key X, the account asked, the dapp, type names."""

    rpc: ClassVar[RpcSpec] = PUSH_PROPOSE
    public_key: bytes
    account: Account
    metadata: AppMetadata
    scope: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_key_bytes(self.public_key, "publicKey")
        if not isinstance(self.account, Account):
            raise ProposalError("account must be an Account (use Account.parse for CAIP-10 text)")
        if not isinstance(self.metadata, AppMetadata):
            raise ProposalError("metadata must be an AppMetadata")
        if not isinstance(self.scope, tuple):
            raise ProposalError("scope must be a tuple of type names")
        _scope(self.scope)
        size = len(orjson.dumps(self.to_params()))
        if size > PUSH_PROPOSE_MAX_PARAMS_BYTES:
            raise ProposalError(f"the proposal is {size} bytes; at most {PUSH_PROPOSE_MAX_PARAMS_BYTES} are allowed")

    @classmethod
    def create(
        cls, key: X25519KeyPair, account: Account | str, metadata: AppMetadata | Mapping[str, Any],
        scope: Iterable[str],
    ) -> PushProposal:
        """A proposal for ``key`` (the dapp's X), taking CAIP-10 text and a metadata object as well."""
        meta = metadata if isinstance(metadata, AppMetadata) else AppMetadata.from_json(dict(metadata))
        return cls(key.public_key, _account(account, "account"), meta, _scope(scope))

    @property
    def response_topic(self) -> str:
        """sha256(X): where the approval arrives."""
        return topic_of(self.public_key)

    def to_params(self) -> dict[str, Any]:
        return {
            "publicKey": self.public_key.hex(),
            "metadata": self.metadata.to_json(),
            "account": str(self.account),
            "scope": list(self.scope),
        }

    @classmethod
    def from_params(cls, params: object) -> PushProposal:
        """Read ``wc_pushPropose`` params, refusing every malformed field with a :class:`ProposalError`."""
        obj = _object(params, "params")
        try:
            size = len(orjson.dumps(obj))
        except orjson.JSONEncodeError as exc:
            raise ProposalError(f"params cannot be written as JSON: {exc}") from None
        if size > PUSH_PROPOSE_MAX_PARAMS_BYTES:
            raise ProposalError(f"the proposal is {size} bytes; at most {PUSH_PROPOSE_MAX_PARAMS_BYTES} are allowed")
        return cls(
            public_key=_key_hex(_member(obj, "publicKey", "params"), "params.publicKey"),
            account=_account(_member(obj, "account", "params"), "params.account"),
            metadata=AppMetadata.from_json(_member(obj, "metadata", "params")),
            scope=_scope_json(_member(obj, "scope", "params"), "params.scope"),
        )

    def to_request(self, request_id: jsonrpc.JsonRpcId) -> jsonrpc.Request:
        """The ``wc_pushPropose`` request; ``request_id`` is a :func:`~wcnotify.protocol.jsonrpc.payload_id`."""
        return jsonrpc.Request(request_id, PUSH_PROPOSE.method, self.to_params())

    @classmethod
    def from_request(cls, request: jsonrpc.Request) -> PushProposal:
        if request.method != PUSH_PROPOSE.method:
            raise ProposalError(f"expected {PUSH_PROPOSE.method}, got {request.method[:60]!r}")
        return cls.from_params(request.params)


@dataclass(frozen=True)
class OutgoingMessage:
    """An envelope to publish as it is: ``relay.publish(m.topic, m.message, ttl=m.ttl, tag=m.tag)``."""

    topic: str
    message: str
    ttl: int
    tag: int


def proposal_message(
    pairing_topic: str, pairing_sym_key: bytes, request: jsonrpc.Request, random: Random = os.urandom
) -> OutgoingMessage:
    """Dapp: the proposal request, type 0 under the pairing key on the pairing topic (tag 4010)."""
    PushProposal.from_request(request)  # only a well-formed proposal goes out
    return OutgoingMessage(
        pairing_topic, encode_type0(pairing_sym_key, jsonrpc.encode(request), random=random),
        PUSH_PROPOSE.request_ttl, PUSH_PROPOSE.request_tag,
    )


def open_proposal(message: str, pairing_sym_key: bytes) -> tuple[jsonrpc.JsonRpcId, PushProposal]:
    """Wallet: read a ``wc_pushPropose`` that arrived on the pairing topic; returns its id and the proposal."""
    request = _open_message(message, pairing_sym_key, "the proposal")
    if not isinstance(request, jsonrpc.Request):
        raise ProposalError("expected a wc_pushPropose request on the pairing topic, got a response")
    return request.id, PushProposal.from_request(request)


def _open_message(message: str, sym_key: bytes, what: str) -> jsonrpc.Message:
    try:
        plaintext = decrypt(message, sym_key)
    except CryptoError as exc:
        raise ProposalError(f"cannot open {what}: {exc}") from None
    return _parse(plaintext, what)


def _parse(plaintext: bytes, what: str) -> jsonrpc.Message:
    try:
        return jsonrpc.parse_message(plaintext)
    except jsonrpc.JsonRpcError as exc:
        raise ProposalError(f"{what} is not a JSON-RPC message: {exc}") from None


# ------------------------------------------------------------------------------------------- answers


@dataclass(frozen=True, repr=False)
class PushProposalResult:
    """The approval's result: the subscription's JWT and its sym key P (the notify topic is sha256(P))."""

    subscription_auth: str
    subscription_sym_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.subscription_auth, str):
            raise ProposalError("subscriptionAuth must be a string")
        if len(self.subscription_auth) > JWT_MAX_LENGTH:
            raise ProposalError(f"subscriptionAuth is longer than {JWT_MAX_LENGTH} characters")
        try:
            decode_jwt(self.subscription_auth)
        except JwtError as exc:
            raise ProposalError(f"subscriptionAuth is not a JWT: {exc}") from None
        _check_key_bytes(self.subscription_sym_key, "subscriptionSymKey")

    @property
    def notify_topic(self) -> str:
        return topic_of(self.subscription_sym_key)

    def to_json(self) -> dict[str, str]:
        return {"subscriptionAuth": self.subscription_auth, "subscriptionSymKey": self.subscription_sym_key.hex()}

    @classmethod
    def from_json(cls, value: object) -> PushProposalResult:
        obj = _object(value, "result")
        return cls(
            _member(obj, "subscriptionAuth", "result"),
            _key_hex(_member(obj, "subscriptionSymKey", "result"), "result.subscriptionSymKey"),
        )

    def __repr__(self) -> str:
        return f"PushProposalResult(notify_topic={self.notify_topic})"


def approval_message(
    proposal: PushProposal,
    request_id: jsonrpc.JsonRpcId,
    result: PushProposalResult,
    wallet_key: X25519KeyPair | None = None,
    random: Random = os.urandom,
) -> OutgoingMessage:
    """Wallet: the approval, type 1 from a fresh Z (``wallet_key``) on sha256(X), key HKDF(X25519(Z, X))."""
    z = wallet_key or X25519KeyPair.generate(random)
    try:
        key = derive_sym_key(z.private_key, proposal.public_key)
    except CryptoError as exc:
        raise ProposalError(f"the proposal's publicKey cannot be used: {exc}") from None
    body = jsonrpc.encode(jsonrpc.Result(request_id, result.to_json()))
    assert PUSH_PROPOSE.response_tag is not None and PUSH_PROPOSE.response_ttl is not None
    return OutgoingMessage(
        proposal.response_topic, encode_type1(key, z.public_key, body, random=random),
        PUSH_PROPOSE.response_ttl, PUSH_PROPOSE.response_tag,
    )


def refusal_message(
    pairing_topic: str, pairing_sym_key: bytes, error: jsonrpc.Error, random: Random = os.urandom
) -> OutgoingMessage:
    """Wallet: a refusal (:func:`rejection_error`, :func:`already_subscribed_error`), type 0 on the pairing."""
    assert PUSH_PROPOSE.response_tag is not None and PUSH_PROPOSE.response_ttl is not None
    return OutgoingMessage(
        pairing_topic, encode_type0(pairing_sym_key, jsonrpc.encode(error), random=random),
        PUSH_PROPOSE.response_ttl, PUSH_PROPOSE.response_tag,
    )


def open_approval(
    message: str, dapp_key: X25519KeyPair, request_id: jsonrpc.JsonRpcId
) -> tuple[bytes, PushProposalResult | ProposalDeclined]:
    """Dapp: open what arrived on sha256(X) with X's private key. Returns the wallet's Z and the result (or
    the refusal, if a wallet put its error there). Anything else, or an answer to another request, raises."""
    try:
        sender, _key, plaintext = decrypt_type1(message, dapp_key.private_key)
    except CryptoError as exc:
        raise ProposalError(f"cannot open the answer: {exc}") from None
    answer = _parse(plaintext, "the answer")
    if isinstance(answer, jsonrpc.Request):
        raise ProposalError(f"expected an answer on the response topic, got a {answer.method[:60]!r} request")
    if answer.id != request_id or type(answer.id) is not type(request_id):
        raise ProposalError(f"the answer is for request {answer.id!r}, not {request_id!r}")
    if isinstance(answer, jsonrpc.Error):
        return sender, declined_from_error(answer)
    return sender, PushProposalResult.from_json(answer.result)


def open_pairing_answer(
    message: str, pairing_sym_key: bytes, request_ids: Container[jsonrpc.JsonRpcId]
) -> tuple[jsonrpc.JsonRpcId, ProposalDeclined] | None:
    """Dapp: a refusal on the pairing topic for one of ``request_ids``, or None for anything else there (the
    dapp's own requests come back to it; other protocols share the pairing). Undecryptable input raises."""
    answer = _open_message(message, pairing_sym_key, "the pairing message")
    if not isinstance(answer, jsonrpc.Error) or answer.id is None or answer.id not in request_ids:
        return None
    return answer.id, declined_from_error(answer)


def verify_subscription_auth(token: str, proposal: PushProposal, now: int) -> dict[str, Any]:
    """Dapp: the approval's JWT, verified (signature, time, act), for the proposed account and this app."""
    try:
        claims = verify_jwt(token, now=now)
    except JwtError as exc:
        raise ProposalError(f"subscriptionAuth does not verify: {exc}") from None
    act = claims.get("act")
    if act not in PUSH_PROPOSE_AUTH_ACTS:
        accepted = ", ".join(PUSH_PROPOSE_AUTH_ACTS)
        raise ProposalError(f"subscriptionAuth act must be one of {accepted}, got {str(act)[:60]!r}")
    _check_sub(claims.get("sub"), proposal.account, "subscriptionAuth")
    if act == Act.NOTIFY_SUBSCRIPTION:
        _check_app(claims.get("app"), proposal.metadata, "subscriptionAuth")
    else:  # Push era: aud is the dapp's URL
        aud_domain = _url_domain(_http_url(claims.get("aud"), "subscriptionAuth aud"), "subscriptionAuth aud")
        if aud_domain != proposal.metadata.domain:
            raise ProposalError(
                f"subscriptionAuth is for app {aud_domain}, not the proposing app {proposal.metadata.domain}"
            )
    return claims


def _check_sub(sub: object, account: Account, what: str) -> None:
    try:
        if not isinstance(sub, str):
            raise DidError("not a string")
        signed_for = Account.from_did_pkh(sub)
    except DidError:
        raise ProposalError(f"{what} sub must be a did:pkh, got {str(sub)[:80]!r}") from None
    if not signed_for.same_address(account):
        raise ProposalError(f"{what} is for {signed_for}, not the proposed account {account}")


def _check_app(app: object, metadata: AppMetadata, what: str) -> None:
    try:
        if not isinstance(app, str):
            raise DidError("not a string")
        domain = did_web_domain(app)
    except DidError:
        raise ProposalError(f"{what} app must be a did:web, got {str(app)[:80]!r}") from None
    if domain != metadata.domain:
        raise ProposalError(f"{what} is for app {domain}, not the proposing app {metadata.domain}")


# ---------------------------------------------------------------------------- approval and its events


@dataclass(frozen=True)
class SubscriptionUpdated:
    """The wallet changed the subscription's types: ``scope`` is the new full set (type ids on final Notify)."""

    request_id: jsonrpc.JsonRpcId
    scope: tuple[str, ...]
    claims: NotifyUpdateClaims
    jwt: str


@dataclass(frozen=True)
class SubscriptionDeleted:
    """The wallet deleted the subscription; nothing more arrives on its topic."""

    request_id: jsonrpc.JsonRpcId
    claims: NotifyDeleteClaims
    jwt: str


SubscriptionChange = SubscriptionUpdated | SubscriptionDeleted

# method -> (its RPC, the claims class of its JWT): the only requests a dapp reads on a notify topic
_EVENT_RPCS: dict[str, tuple[RpcSpec, type[NotifyClientClaims]]] = {
    NOTIFY_UPDATE.method: (NOTIFY_UPDATE, NotifyUpdateClaims),
    NOTIFY_DELETE.method: (NOTIFY_DELETE, NotifyDeleteClaims),
}


@dataclass(frozen=True, repr=False)
class ProposalApproved:
    """An accepted approval: the subscription key P, its notify topic, the verified subscriptionAuth."""

    request_id: jsonrpc.JsonRpcId
    pairing_topic: str
    proposal: PushProposal
    wallet_public_key: bytes
    sym_key: bytes
    subscription_auth: str
    claims: Mapping[str, Any] = field(compare=False)

    @property
    def topic(self) -> str:
        """The notify topic, sha256(P)."""
        return topic_of(self.sym_key)

    @property
    def account(self) -> Account:
        """The account as the wallet signed it (``sub``), e.g. with its ERC-55 address."""
        return Account.from_did_pkh(self.claims["sub"])

    @property
    def scope(self) -> tuple[str, ...]:
        """The subscribed types as the JWT's ``scp`` lists them (ids on final Notify, names in the Push era)."""
        scp = self.claims.get("scp")
        return tuple(scp.split()) if isinstance(scp, str) else ()

    def read_event(self, message: str, now: int) -> SubscriptionChange | None:
        """Read one message from the notify topic: an update or a deletion from the wallet, verified; None
        for what is not for the dapp (notifications, answers, the empty noop). Forgeries raise."""
        if message == "":
            return None
        answer = _open_message(message, self.sym_key, "the notify topic message")
        if not isinstance(answer, jsonrpc.Request) or answer.method not in _EVENT_RPCS:
            return None
        rpc, claims_class = _EVENT_RPCS[answer.method]
        params = answer.params
        assert rpc.params_key is not None
        token = params.get(rpc.params_key) if isinstance(params, dict) else None
        if not isinstance(token, str):
            raise ProposalError(f"{rpc.method} params.{rpc.params_key} must be a JWT string")
        try:
            claims = claims_class.verify(token, now=now)
        except JwtError as exc:
            raise ProposalError(f"{rpc.method} {rpc.params_key} does not verify: {exc}") from None
        _check_sub(claims.sub, self.proposal.account, rpc.params_key)
        _check_app(getattr(claims, "app", None), self.proposal.metadata, rpc.params_key)
        if isinstance(claims, NotifyUpdateClaims):
            return SubscriptionUpdated(answer.id, tuple(claims.scp.split()), claims, token)
        assert isinstance(claims, NotifyDeleteClaims)
        return SubscriptionDeleted(answer.id, claims, token)

    def __repr__(self) -> str:
        return f"ProposalApproved(request_id={self.request_id!r}, topic={self.topic}, account={self.proposal.account})"


def accept_approval(
    proposal: PushProposal,
    request_id: jsonrpc.JsonRpcId,
    *,
    pairing_topic: str,
    wallet_public_key: bytes,
    result: PushProposalResult,
    now: int,
) -> ProposalApproved:
    """Dapp: check the approval's JWT (:func:`verify_subscription_auth`) and keep what the dapp needs."""
    claims = verify_subscription_auth(result.subscription_auth, proposal, now)
    return ProposalApproved(
        request_id, pairing_topic, proposal, wallet_public_key, result.subscription_sym_key,
        result.subscription_auth, claims,
    )


# ----------------------------------------------------------------------------------- Sync record

# status -> the statuses that may follow it (None: no record for the key yet). Resolved is final.
TRANSITIONS: Mapping[ProposalStatus | None, frozenset[ProposalStatus]] = {
    None: frozenset({ProposalStatus.PENDING}),
    ProposalStatus.PENDING: frozenset({ProposalStatus.APPROVED, ProposalStatus.REJECTED}),
    ProposalStatus.APPROVED: frozenset(),
    ProposalStatus.REJECTED: frozenset(),
}


@dataclass(frozen=True)
class ProposalRecord:
    """A proposal as the wallet shares it with its other devices (pushProposal store; see the module rules)."""

    request_id: jsonrpc.JsonRpcId
    pairing_topic: str
    proposal: PushProposal
    expiry: int
    status: ProposalStatus = ProposalStatus.PENDING
    reason: str | None = None  # rejected only
    subscription_topic: str | None = None  # approved only: sha256(P)

    def __post_init__(self) -> None:
        _request_id(self.request_id, "requestId")
        if not isinstance(self.proposal, PushProposal):
            raise ProposalError("proposal must be a PushProposal")
        _topic(self.pairing_topic, "pairingTopic")
        if isinstance(self.expiry, bool) or not isinstance(self.expiry, int) or self.expiry < 0:
            raise ProposalError("expiry must be unix seconds (a non-negative integer)")
        if not isinstance(self.status, ProposalStatus):
            raise ProposalError(f"status must be one of {', '.join(ProposalStatus)}")
        rejected, approved = self.status == ProposalStatus.REJECTED, self.status == ProposalStatus.APPROVED
        if rejected:
            _text(self.reason, "reason", PUSH_PROPOSE_REASON_MAX, allow_empty=True, multiline=True)
        elif self.reason is not None:
            raise ProposalError("reason is only for a rejected proposal")
        if approved:
            _topic(self.subscription_topic, "subscriptionTopic")
        elif self.subscription_topic is not None:
            raise ProposalError("subscriptionTopic is only for an approved proposal")

    @property
    def key(self) -> str:
        """The store key: the proposal's response topic."""
        return self.proposal.response_topic

    def expired(self, now: int) -> bool:
        return self.expiry < now

    def as_approved(self, subscription_topic: str) -> ProposalRecord:
        """The record once this device approved: the same key, status approved, the notify topic."""
        return self._follow(ProposalStatus.APPROVED, subscription_topic=subscription_topic)

    def as_rejected(self, reason: str) -> ProposalRecord:
        """The record once this device refused (the reason sent, or the 6001 message)."""
        return self._follow(ProposalStatus.REJECTED, reason=reason)

    def _follow(self, status: ProposalStatus, **changes: Any) -> ProposalRecord:
        check_transition(self, status)
        return ProposalRecord(self.request_id, self.pairing_topic, self.proposal, self.expiry, status, **changes)

    def to_json(self) -> str:
        """The store value: a JSON string, as every Notify Sync store holds."""
        value: dict[str, Any] = {
            "requestId": self.request_id,
            "pairingTopic": self.pairing_topic,
            "publicKey": self.proposal.public_key.hex(),
            "responseTopic": self.key,
            "metadata": self.proposal.metadata.to_json(),
            "account": str(self.proposal.account),
            "scope": list(self.proposal.scope),
            "status": self.status.value,
            "expiry": self.expiry,
        }
        if self.reason is not None:
            value["reason"] = self.reason
        if self.subscription_topic is not None:
            value["subscriptionTopic"] = self.subscription_topic
        return orjson.dumps(value).decode()

    @classmethod
    def from_json(cls, value: object, key: str | None = None) -> ProposalRecord:
        """Read a store value; ``key`` (the record's store key), when given, must be its responseTopic."""
        if not isinstance(value, str):
            raise ProposalError(f"a pushProposal value must be a JSON string, not {_kind(value)}")
        try:
            obj = _object(orjson.loads(value), "pushProposal value")
        except orjson.JSONDecodeError as exc:
            raise ProposalError(f"a pushProposal value must be JSON: {exc}") from None
        proposal = PushProposal(
            _key_hex(_member(obj, "publicKey", "value"), "value.publicKey"),
            _account(_member(obj, "account", "value"), "value.account"),
            AppMetadata.from_json(_member(obj, "metadata", "value")),
            _scope_json(_member(obj, "scope", "value"), "value.scope"),
        )
        response_topic = _topic(_member(obj, "responseTopic", "value"), "value.responseTopic")
        if response_topic != proposal.response_topic:
            raise ProposalError("value.responseTopic is not sha256(publicKey)")
        if key is not None and key != response_topic:
            raise ProposalError("a pushProposal record must be stored under its responseTopic")
        status = _member(obj, "status", "value")
        if not isinstance(status, str) or status not in set(ProposalStatus):
            raise ProposalError(f"value.status must be one of {', '.join(ProposalStatus)}, got {str(status)[:40]!r}")
        return cls(
            request_id=_request_id(_member(obj, "requestId", "value"), "value.requestId"),
            pairing_topic=_member(obj, "pairingTopic", "value"),
            proposal=proposal,
            expiry=_member(obj, "expiry", "value"),
            status=ProposalStatus(status),
            reason=obj.get("reason"),
            subscription_topic=obj.get("subscriptionTopic"),
        )

    def sync_set(self, payload_id: int) -> SyncSet:
        """The ``wc_syncSet`` that shares this record (``payload_id`` orders it: last writer wins)."""
        return SyncSet(SYNC_STORE_PUSH_PROPOSAL, self.key, self.to_json(), payload_id)


def check_transition(current: ProposalRecord | None, status: ProposalStatus) -> None:
    """Refuse a write that :data:`TRANSITIONS` does not allow (e.g. answering a proposal already answered)."""
    now_status = None if current is None else current.status
    if status not in TRANSITIONS[now_status]:
        raise ProposalError(
            f"a {'new' if now_status is None else now_status.value} proposal record cannot become {status.value}"
        )


def pending_record(
    request_id: jsonrpc.JsonRpcId, pairing_topic: str, proposal: PushProposal, received_at: int
) -> ProposalRecord:
    """Wallet: the record of a proposal just received; it expires with the request's TTL."""
    return ProposalRecord(request_id, pairing_topic, proposal, received_at + PUSH_PROPOSE.request_ttl)
