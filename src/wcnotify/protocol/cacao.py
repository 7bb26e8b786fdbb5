"""CACAOs: the account-signed delegation that binds an identity key to a blockchain account.

A wallet registers an Ed25519 identity key with a keys server by signing a SIWE (EIP-4361) message with the
account's key (EIP-191). What matters for compatibility is the exact text: it is rebuilt from the payload on
every check, so one byte of difference and no signature verifies. ``siwe_message`` follows
``formatMessage`` of @walletconnect/utils 2.12.2 (what identity-keys 2.1.0 and notify-client 1.4.1 use),
plus the optional EIP-4361 lines (Expiration Time, Not Before, Request ID) the Rust verifier writes.

From a verified CACAO the notify server needs two things: the identity key (``identity_key``) and what the
account authorized (``authorization``): one app domain or all apps, from the ReCap (ERC-5573) when the last
resource is one, else from the statement (protocol.md §5). The reference server treats every ReCap as
"all apps"; we read the ability.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from eth_account import Account as EthAccount
from eth_account.messages import encode_defunct

from wcnotify.protocol.did import Account, DidError, decode_did_key, encode_did_key
from wcnotify.spec import (
    CACAO_HEADER_EIP4361,
    CACAO_SIG_EIP191,
    CACAO_SIG_EIP1271,
    CACAO_SIG_EIP6492,
    CACAO_VERSION,
    DID_KEY_PREFIX,
    IDENTITY_KEY_URL_PARAM,
    RECAP_ABILITY_ALL_APPS,
    RECAP_ABILITY_DOMAIN_SUFFIX,
    RECAP_NOTIFY_RESOURCE,
    RECAP_PREFIX,
    RECAP_STATEMENT_PREFIX,
    STATEMENT_ALL_DOMAINS,
    STATEMENT_AUTHORIZES_ALL_APPS,
    STATEMENT_THIS_DOMAIN,
)

_MAX_FIELD = 4096
_MAX_RESOURCES = 32
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{130}\Z")


class CacaoError(ValueError):
    """A CACAO that cannot be accepted; subclasses say why."""


class CacaoFormatError(CacaoError):
    """Missing fields, wrong types, or values no signer could have produced."""


class CacaoSignatureError(CacaoError):
    """The signature does not recover to the ``iss`` account, or its type is not supported here."""


class CacaoExpiredError(CacaoError):
    """``exp`` has passed or ``nbf`` is still ahead."""


class CacaoAuthorizationError(CacaoError):
    """The statement or ReCap grants nothing Notify understands, or they disagree."""


# ------------------------------------------------------------------------------------------ payload


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        raise CacaoFormatError(f"CACAO p.{key} must be a string of at most {_MAX_FIELD} characters")
    return value


def _req_str(data: dict[str, Any], key: str) -> str:
    value = _opt_str(data, key)
    if value is None or value == "":
        raise CacaoFormatError(f"CACAO p.{key} is required")
    return value


@dataclass(frozen=True)
class CacaoPayload:
    """The ``p`` of a CACAO; field names are the wire's (``requestId`` becomes ``request_id``)."""

    domain: str
    iss: str
    aud: str
    version: str
    nonce: str
    iat: str
    statement: str | None = None
    exp: str | None = None
    nbf: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: object) -> CacaoPayload:
        if not isinstance(data, dict):
            raise CacaoFormatError("CACAO p must be an object")
        resources = data.get("resources")
        if resources is not None:
            if not isinstance(resources, list) or len(resources) > _MAX_RESOURCES:
                raise CacaoFormatError(f"CACAO p.resources must be a list of at most {_MAX_RESOURCES}")
            if not all(isinstance(r, str) and len(r) <= _MAX_FIELD for r in resources):
                raise CacaoFormatError("CACAO p.resources must hold strings")
        payload = cls(
            domain=_req_str(data, "domain"),
            iss=_req_str(data, "iss"),
            aud=_req_str(data, "aud") if data.get("aud") is not None else _req_str(data, "uri"),
            version=_req_str(data, "version"),
            nonce=_req_str(data, "nonce"),
            iat=_req_str(data, "iat"),
            statement=_opt_str(data, "statement"),
            exp=_opt_str(data, "exp"),
            nbf=_opt_str(data, "nbf"),
            request_id=_opt_str(data, "requestId"),
            resources=None if resources is None else tuple(resources),
        )
        texts = (payload.domain, payload.iss, payload.aud, payload.version, payload.nonce, payload.iat,
                 payload.statement, payload.exp, payload.nbf, payload.request_id, *(payload.resources or ()))
        if any(v is not None and ("\n" in v or "\r" in v) for v in texts):
            # EIP-4361 is line-based: a line break in any field could make two payloads share one text
            raise CacaoFormatError("CACAO fields may not contain line breaks")
        try:
            payload.account  # noqa: B018 - validates iss
        except DidError as exc:
            raise CacaoFormatError(f"CACAO p.iss is not a did:pkh account: {exc}") from exc
        return payload

    def to_dict(self) -> dict[str, Any]:
        """Wire form, in the key order identity-keys writes, optional fields only when present."""
        out: dict[str, Any] = {"aud": self.aud}
        if self.statement is not None:
            out["statement"] = self.statement
        out |= {"domain": self.domain, "iss": self.iss, "nonce": self.nonce, "iat": self.iat}
        out["version"] = self.version
        for key, value in (("exp", self.exp), ("nbf", self.nbf), ("requestId", self.request_id)):
            if value is not None:
                out[key] = value
        if self.resources is not None:
            out["resources"] = list(self.resources)
        return out

    @property
    def account(self) -> Account:
        return Account.from_did_pkh(self.iss)


@dataclass(frozen=True)
class Cacao:
    """A whole CACAO: header type, payload, signature type and signature (hex)."""

    payload: CacaoPayload
    signature: str
    header_type: str = CACAO_HEADER_EIP4361
    signature_type: str = CACAO_SIG_EIP191

    @classmethod
    def from_dict(cls, data: object) -> Cacao:
        if not isinstance(data, dict):
            raise CacaoFormatError("CACAO must be an object")
        h, s = data.get("h"), data.get("s")
        if not isinstance(h, dict) or not isinstance(h.get("t"), str):
            raise CacaoFormatError("CACAO h.t is required")
        if not isinstance(s, dict) or not isinstance(s.get("t"), str) or not isinstance(s.get("s"), str):
            raise CacaoFormatError("CACAO s.t and s.s are required")
        if len(s["s"]) > _MAX_FIELD:
            raise CacaoFormatError("CACAO signature is too long")
        return cls(CacaoPayload.from_dict(data.get("p")), s["s"], h["t"], s["t"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "h": {"t": self.header_type},
            "p": self.payload.to_dict(),
            "s": {"t": self.signature_type, "s": self.signature},
        }


# -------------------------------------------------------------------------------------- SIWE text


def decode_recap(resource: str) -> dict[str, Any]:
    """Decode and validate ``urn:recap:<base64url json>`` (ERC-5573)."""
    if not resource.startswith(RECAP_PREFIX):
        raise CacaoFormatError("not a ReCap resource")
    body = resource[len(RECAP_PREFIX) :].replace("-", "+").replace("_", "/").rstrip("=")
    try:
        recap = orjson.loads(base64.b64decode(body + "=" * (-len(body) % 4), validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise CacaoFormatError("ReCap is not base64url JSON") from exc
    if not isinstance(recap, dict):
        raise CacaoFormatError("ReCap must be a JSON object")
    att = recap.get("att")
    if not isinstance(att, dict) or not att:
        raise CacaoFormatError("ReCap has no att")
    for target, abilities in att.items():
        if not isinstance(abilities, dict) or not abilities:
            raise CacaoFormatError(f"ReCap att[{target!r}] must be a non-empty object")
        for ability, limits in abilities.items():
            if "/" not in ability:
                raise CacaoFormatError(f"ReCap ability {ability!r} is not namespace/name")
            if not isinstance(limits, list) or not limits or not all(isinstance(x, dict) for x in limits):
                raise CacaoFormatError(f"ReCap ability {ability!r} needs a non-empty list of objects")
    result: dict[str, Any] = recap
    return result


def encode_recap(recap: dict[str, Any]) -> str:
    """``urn:recap:`` + unpadded base64 of the compact JSON (what utils ``encodeRecap`` writes)."""
    return RECAP_PREFIX + base64.b64encode(orjson.dumps(recap)).decode().rstrip("=")


def recap_statement(recap: dict[str, Any]) -> str:
    """The ERC-5573 sentence a ReCap adds to the statement, worded exactly as utils 2.12.2 words it."""
    counter = 0
    parts: list[str] = []
    for target, abilities in recap["att"].items():
        pairs = [tuple(name.split("/", 1)) for name in abilities]
        pairs.sort(key=lambda pair: pair[1])
        grouped: dict[str, list[str]] = {}
        for namespace, action in pairs:
            grouped.setdefault(namespace, []).append(action)
        sentences = []
        for namespace, actions in grouped.items():
            counter += 1
            listed = "', '".join(actions)
            sentences.append(f"({counter}) '{namespace}': '{listed}' for '{target}'.")
        parts.append(", ".join(sentences).replace(".,", ".", 1))
    return f"{RECAP_STATEMENT_PREFIX} {' '.join(parts)}"


def _last_recap(payload: CacaoPayload) -> dict[str, Any] | None:
    if not payload.resources or RECAP_PREFIX not in payload.resources[-1]:
        return None
    return decode_recap(payload.resources[-1])


def full_statement(payload: CacaoPayload) -> str | None:
    """The statement as signed: with a trailing ReCap, its sentence is appended unless already there."""
    recap = _last_recap(payload)
    if recap is None or (payload.statement and RECAP_STATEMENT_PREFIX in payload.statement):
        return payload.statement or None
    sentence = recap_statement(recap)
    return f"{payload.statement} {sentence}" if payload.statement else sentence


def siwe_message(payload: CacaoPayload) -> str:
    """The EIP-4361 text the account signs, byte-for-byte as identity-keys 2.1.0 builds it."""
    account = payload.account
    lines: list[str] = [
        f"{payload.domain} wants you to sign in with your Ethereum account:",
        account.address,
        "",
    ]
    statement = full_statement(payload)
    if statement is not None:
        lines.append(statement)
    lines += [
        "",
        f"URI: {payload.aud}",
        f"Version: {payload.version}",
        f"Chain ID: {account.reference}",
        f"Nonce: {payload.nonce}",
        f"Issued At: {payload.iat}",
    ]
    if payload.exp is not None:
        lines.append(f"Expiration Time: {payload.exp}")
    if payload.nbf is not None:
        lines.append(f"Not Before: {payload.nbf}")
    if payload.request_id is not None:
        lines.append(f"Request ID: {payload.request_id}")
    if payload.resources is not None:
        lines.append("Resources:" + "".join(f"\n- {r}" for r in payload.resources))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- EIP-191


def sign_eip191(message: str, private_key: bytes | str) -> str:
    """EIP-191 personal_sign of ``message``: ``0x`` + r || s || v (v = 27/28), as wallets return it."""
    signed = EthAccount.sign_message(encode_defunct(text=message), private_key=private_key)
    return "0x" + bytes(signed.signature).hex()


def recover_eip191(message: str, signature: str) -> str:
    """The checksummed address that signed ``message``; ``0x`` is optional and v may be 0/1 or 27/28."""
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise CacaoSignatureError("EIP-191 signature must be 65 bytes of hex")
    raw = bytearray(bytes.fromhex(signature.removeprefix("0x")))
    if raw[64] not in (0, 1, 27, 28):
        raise CacaoSignatureError("EIP-191 signature recovery id must be 0, 1, 27 or 28")
    raw[64] = raw[64] % 27 + 27
    try:
        return str(EthAccount.recover_message(encode_defunct(text=message), signature=bytes(raw)))
    except Exception as exc:  # eth-keys raises several unrelated types for bad curve points
        raise CacaoSignatureError(f"EIP-191 signature does not recover: {exc}") from exc


def _parse_time(value: str, what: str) -> int:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CacaoFormatError(f"CACAO {what} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise CacaoFormatError(f"CACAO {what} has no time zone")
    return int(parsed.timestamp())


def verify_cacao(cacao: Cacao, *, now: int) -> None:
    """Check the header, version, times and that the signature recovers to the ``iss`` account.

    Only EIP-191 signatures are verified here: EIP-1271 and EIP-6492 need a chain RPC endpoint, which a
    self-hosted server does not have by default, so they are refused with a message that says so.
    """
    if cacao.header_type != CACAO_HEADER_EIP4361:
        raise CacaoFormatError(f"CACAO header type must be {CACAO_HEADER_EIP4361!r}")
    if cacao.payload.version != CACAO_VERSION:
        raise CacaoFormatError(f"CACAO version must be {CACAO_VERSION!r}")
    if cacao.signature_type in (CACAO_SIG_EIP1271, CACAO_SIG_EIP6492):
        raise CacaoSignatureError(f"{cacao.signature_type} (smart contract) signatures need a chain RPC")
    if cacao.signature_type != CACAO_SIG_EIP191:
        raise CacaoSignatureError(f"unknown CACAO signature type {cacao.signature_type[:20]!r}")
    account = cacao.payload.account
    if account.namespace != "eip155":
        raise CacaoSignatureError("only eip155 accounts can sign EIP-191 CACAOs")
    _parse_time(cacao.payload.iat, "iat")
    if cacao.payload.exp is not None and _parse_time(cacao.payload.exp, "exp") <= now:
        raise CacaoExpiredError("CACAO has expired")
    if cacao.payload.nbf is not None and _parse_time(cacao.payload.nbf, "nbf") > now:
        raise CacaoExpiredError("CACAO is not valid yet (nbf)")
    recovered = recover_eip191(siwe_message(cacao.payload), cacao.signature)
    if recovered.lower() != account.address.lower():
        raise CacaoSignatureError("CACAO signature was not made by the iss account")


# -------------------------------------------------------------------------------- identity and scope


def identity_key(payload: CacaoPayload) -> str:
    """The identity did:key the CACAO delegates to, found where the clients have put it over time:
    ``aud`` itself, a ``walletconnect_identity_key`` parameter of an ``aud`` URL, or the first resource."""
    candidates: list[str] = [payload.aud]
    if not payload.aud.startswith(DID_KEY_PREFIX):
        try:
            values = parse_qs(urlsplit(payload.aud).query).get(IDENTITY_KEY_URL_PARAM, [])
        except ValueError:  # urlsplit refuses e.g. an unclosed "[" (IPv6) host
            values = []
        candidates += [v if v.startswith(DID_KEY_PREFIX) else DID_KEY_PREFIX + v for v in values]
    if payload.resources:
        candidates.append(payload.resources[0])
    for candidate in candidates:
        if candidate.startswith(DID_KEY_PREFIX):
            try:
                return encode_did_key(decode_did_key(candidate))
            except DidError:
                continue
    raise CacaoFormatError("CACAO names no Ed25519 identity key (aud, aud parameter or first resource)")


@dataclass(frozen=True)
class Authorization:
    """What a CACAO lets its identity key do: manage every app, or only ``domain``."""

    account: Account
    all_apps: bool
    domain: str

    def allows(self, app_domain: str) -> bool:
        return self.all_apps or self.domain.lower() == app_domain.lower()


def authorization(payload: CacaoPayload) -> Authorization:
    """Read the grant from the ReCap when the last resource is one, else from the statement."""
    # the statement as signed: identity-keys leaves ``statement`` empty in ReCap registrations, and the
    # ReCap sentence that the signed text carries is then the whole statement
    statement = full_statement(payload)
    if not statement:
        raise CacaoAuthorizationError("CACAO has no statement")
    recap = _last_recap(payload)
    if recap is not None:
        if not statement.endswith(recap_statement(recap)):
            raise CacaoAuthorizationError("CACAO statement does not match its ReCap")
        abilities = recap["att"].get(RECAP_NOTIFY_RESOURCE)
        if not isinstance(abilities, dict):
            raise CacaoAuthorizationError(f"ReCap grants nothing for {RECAP_NOTIFY_RESOURCE}")
        if RECAP_ABILITY_ALL_APPS in abilities:
            return Authorization(payload.account, True, payload.domain)
        for ability in abilities:
            if ability.startswith("manage/") and ability.endswith(RECAP_ABILITY_DOMAIN_SUFFIX):
                domain = ability[len("manage/") : -len(RECAP_ABILITY_DOMAIN_SUFFIX)]
                if domain.lower() != payload.domain.lower():
                    # a page at one domain must not obtain a grant for another
                    raise CacaoAuthorizationError(f"ReCap grants {domain!r} but the CACAO is for {payload.domain!r}")
                return Authorization(payload.account, False, domain)
        raise CacaoAuthorizationError("ReCap has no Notify manage ability")
    all_apps = STATEMENT_AUTHORIZES_ALL_APPS.get(statement)
    if all_apps is None:
        if "DAPP" in statement:
            all_apps = False
        elif "WALLET" in statement:
            all_apps = True
        else:
            raise CacaoAuthorizationError("CACAO statement is not one Notify understands")
    return Authorization(payload.account, all_apps, payload.domain)


# ----------------------------------------------------------------------------------- registration


def iso_timestamp(now: float) -> str:
    """``Date.prototype.toISOString`` of a Unix time: millisecond precision and a ``Z``."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def prepare_registration(
    *,
    account: Account,
    domain: str,
    identity_public_key: bytes,
    keys_server_url: str,
    all_apps: bool,
    nonce: str,
    now: float,
    recaps: bool = False,
) -> CacaoPayload:
    """The payload identity-keys builds; the wallet signs ``siwe_message`` of it.

    Plain (``prepareRegistration``): identity key in ``aud``, grant in the statement. With ``recaps``
    (``prepareRegistrationWithRecaps``, 2024): identity key in an ``aud`` URL parameter, grant in a trailing
    ReCap resource and no statement of its own (the signed text carries the ReCap sentence).
    """
    did_key = encode_did_key(identity_public_key)
    if not recaps:
        statement: str | None = STATEMENT_ALL_DOMAINS if all_apps else STATEMENT_THIS_DOMAIN
        aud, resources = did_key, [keys_server_url]
    else:
        ability = RECAP_ABILITY_ALL_APPS if all_apps else f"manage/{domain}{RECAP_ABILITY_DOMAIN_SUFFIX}"
        recap: dict[str, Any] = {"att": {RECAP_NOTIFY_RESOURCE: {ability: [{}]}}}
        statement = None
        aud = f"https://{domain}?{IDENTITY_KEY_URL_PARAM}={did_key}"
        resources = [keys_server_url, encode_recap(recap)]
    return CacaoPayload(
        domain=domain,
        iss=account.did_pkh,
        aud=aud,
        version=CACAO_VERSION,
        nonce=nonce,
        iat=iso_timestamp(now),
        statement=statement,
        resources=tuple(resources),
    )
