"""EdDSA JWTs: encoding, verification and the claims class of every act (protocol.md §1, §3c, §5)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, JSON_TEXT
from wcnotify.protocol.crypto import Ed25519KeyPair, b64decode_lenient, b64url_encode
from wcnotify.protocol.did import encode_did_key
from wcnotify.protocol.jwt import (
    CLAIMS_BY_ACT,
    Claims,
    DecodedJwt,
    JwtClaimError,
    JwtError,
    JwtExpiredError,
    JwtFormatError,
    JwtNotYetValidError,
    JwtSignatureError,
    NotifyDeleteClaims,
    NotifyDeleteResponseClaims,
    NotifyGetNotificationsClaims,
    NotifyGetNotificationsResponseClaims,
    NotifyMarkNotificationsAsReadClaims,
    NotifyMarkNotificationsAsReadResponseClaims,
    NotifyMessageClaims,
    NotifyMessageResponseClaims,
    NotifyReceiptClaims,
    NotifySubscriptionClaims,
    NotifySubscriptionResponseClaims,
    NotifySubscriptionsChangedClaims,
    NotifySubscriptionsChangedResponseClaims,
    NotifyUpdateClaims,
    NotifyUpdateResponseClaims,
    NotifyWatchSubscriptionsClaims,
    NotifyWatchSubscriptionsResponseClaims,
    PushMessageClaims,
    PushSubscriptionClaims,
    RelayAuthClaims,
    UnregisterIdentityClaims,
    WatchEventClaims,
    WatchRegisterClaims,
    WatchUnregisterClaims,
    decode_jwt,
    encode_jwt,
    parse_claims,
    verify_jwt,
)
from wcnotify.spec import JWT_LEEWAY, JWT_MAX_LENGTH, JWT_MS_THRESHOLD, NOTIFY_MJV, Act

NOW = 1_700_000_000
KEY = Ed25519KeyPair.from_seed(bytes(range(32)))
OTHER_KEY = Ed25519KeyPair.from_seed(bytes(range(1, 33)))
ISS = encode_did_key(KEY.public_key)
OTHER_ISS = encode_did_key(OTHER_KEY.public_key)
DAPP = encode_did_key(Ed25519KeyPair.from_seed(b"\x07" * 32).public_key)
SUB = "did:pkh:eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
APP = "did:web:app.example.com"
KSU = "https://keys.walletconnect.com"
TYPE_ID = "f173f231-a45c-4dc0-aa5d-956eb04f7360"
SBS = [
    {
        "appDomain": "app.example.com",
        "appAuthenticationKey": DAPP,
        "symKey": "ab" * 32,
        "account": "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
        "scope": [TYPE_ID],
        "expiry": NOW + 30 * 86400,
        "unreadNotificationCount": 2,
    }
]
MSG = {
    "id": "8d4c1b5e-9a61-4a0e-b7f2-3c1d2e0f9a11",
    "sent_at": NOW * 1000,
    "type": TYPE_ID,
    "title": "Hello",
    "body": "A notification",
    "icon": "",
    "url": "",
    "is_read": False,
}

# a realistic instance of every claims class (iss, iat and exp are added by _instance)
SAMPLES: dict[type[Claims], dict[str, Any]] = {
    RelayAuthClaims: {"sub": "c0ffee" * 10 + "0000", "aud": "wss://relay.walletconnect.com"},
    WatchRegisterClaims: {
        "aud": "wss://relay.walletconnect.com",
        "sub": ISS,
        "typ": "subscriber",
        "whu": "https://notify.example.com/v1/relay-webhook",
        "tag": [4000, 4004, 4008, 4010, 4014, 4016],
        "sts": ["accepted", "queued", "delivered"],
    },
    WatchUnregisterClaims: {
        "aud": "wss://relay.walletconnect.com",
        "sub": ISS,
        "typ": "publisher",
        "whu": "https://notify.example.com/v1/relay-webhook",
    },
    WatchEventClaims: {
        "aud": "https://notify.example.com/v1/relay-webhook",
        "sub": ISS,
        "typ": "subscriber",
        "whu": "https://notify.example.com/v1/relay-webhook",
        "evt": {"status": "accepted", "topic": "ab" * 32, "message": "AAAA", "publishedAt": NOW, "tag": 4000},
    },
    UnregisterIdentityClaims: {"aud": KSU, "pkh": SUB, "sub": "identity_keys"},
    NotifySubscriptionClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "app": APP, "scp": f"{TYPE_ID} {TYPE_ID[::-1]}"},
    NotifySubscriptionResponseClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "app": APP, "sbs": SBS},
    NotifyMessageClaims: {"sub": SUB, "app": APP, "msg": MSG},
    NotifyMessageResponseClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "app": APP},
    NotifyUpdateClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "app": APP, "scp": TYPE_ID},
    NotifyUpdateResponseClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "app": APP, "sbs": SBS},
    NotifyDeleteClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "app": APP},
    NotifyDeleteResponseClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "app": APP, "sbs": []},
    NotifyWatchSubscriptionsClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "app": None},
    NotifyWatchSubscriptionsResponseClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "sbs": SBS},
    NotifySubscriptionsChangedClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "sbs": SBS + SBS},
    NotifySubscriptionsChangedResponseClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU},
    NotifyGetNotificationsClaims: {
        "aud": DAPP,
        "sub": SUB,
        "ksu": KSU,
        "app": APP,
        "lmt": 50,
        "aft": "8d4c1b5e-9a61-4a0e-b7f2-3c1d2e0f9a11",
        "urf": True,
    },
    NotifyGetNotificationsResponseClaims: {
        "aud": ISS,
        "sub": SUB,
        "mjv": "1",
        "app": APP,
        "nfs": [{**MSG, "icon": None, "url": None}],
        "mre": True,
        "mur": True,
    },
    NotifyMarkNotificationsAsReadClaims: {
        "aud": DAPP,
        "sub": SUB,
        "ksu": KSU,
        "app": APP,
        "all": False,
        "ids": [MSG["id"]],
    },
    NotifyMarkNotificationsAsReadResponseClaims: {"aud": ISS, "sub": SUB, "mjv": "1", "app": APP},
    NotifyReceiptClaims: {"aud": DAPP, "sub": SUB, "app": APP, "ksu": KSU},
    PushSubscriptionClaims: {"aud": DAPP, "sub": SUB, "ksu": KSU, "scp": "promotional transactional"},
    PushMessageClaims: {"sub": SUB, "msg": MSG, "aud": ISS, "app": APP},
}


def _instance(cls: type[Claims], **overrides: Any) -> Claims:
    values: dict[str, Any] = {"iat": NOW, "exp": NOW + 300, "iss": ISS, **SAMPLES[cls], **overrides}
    return cls(**values)


def _aud(instance: Claims) -> str | None:
    aud = getattr(instance, "aud", None)
    return aud if isinstance(aud, str) else None


def _b64(value: Any) -> str:
    return b64url_encode(orjson.dumps(value))


def _token(header: Any, claims: Any, key: Ed25519KeyPair = KEY) -> str:
    """A token with any header and claims, correctly signed by ``key``."""
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


_DROP = object()


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iat": NOW, "exp": NOW + 300, "iss": ISS, "act": "notify_delete", "aud": DAPP}
    for name, value in overrides.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def test_samples_cover_every_claims_class() -> None:
    assert set(CLAIMS_BY_ACT.values()) <= set(SAMPLES)


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_sign_verify_round_trip(cls: type[Claims]) -> None:
    instance = _instance(cls)
    token = instance.sign(KEY)
    verified = cls.verify(token, now=NOW, aud=_aud(instance))
    assert verified == instance
    assert type(verified) is cls
    assert verified.extra == {}
    assert verified.to_claims() == instance.to_claims()
    assert verify_jwt(token, now=NOW) == instance.to_claims()
    # the act claim, when there is one, sits right after iss
    claims = instance.to_claims()
    if cls.ACT is not None:
        keys = list(claims)
        assert claims["act"] == cls.ACT.value
        assert keys[keys.index("iss") + 1] == "act"
        assert verify_jwt(token, now=NOW, act=cls.ACT.value) == claims
    else:
        assert "act" not in claims


@pytest.mark.parametrize("act", sorted(CLAIMS_BY_ACT))
def test_parse_claims_dispatches_on_act(act: str) -> None:
    cls = CLAIMS_BY_ACT[act]
    claims = {**_instance(cls).to_claims(), "act": act}
    token = encode_jwt(claims, KEY)
    parsed = parse_claims(verify_jwt(token, now=NOW, act=act))
    assert type(parsed) is cls
    assert parsed == _instance(cls)


def test_acts_map_to_their_classes() -> None:
    for act, cls in CLAIMS_BY_ACT.items():
        assert act in cls.accepted_acts()
    assert CLAIMS_BY_ACT[Act.NOTIFY_READ_NOTIFICATIONS_RESPONSE] is NotifyMarkNotificationsAsReadResponseClaims
    assert CLAIMS_BY_ACT[Act.NOTIFY_MARK_NOTIFICATIONS_AS_READ_RESPONSE] is NotifyMarkNotificationsAsReadResponseClaims
    # the spec's name is accepted but never emitted
    emitted = _instance(NotifyMarkNotificationsAsReadResponseClaims).to_claims()
    assert emitted["act"] == "notify_mark_notifications_as_read_response"
    assert RelayAuthClaims.ACT is None
    assert RelayAuthClaims.accepted_acts() == ()


@pytest.mark.parametrize("act", [None, "", "notify_unknown", "NOTIFY_DELETE", 5, ["notify_delete"], {"a": 1}])
def test_parse_claims_unknown_act_refused(act: Any) -> None:
    claims = _instance(NotifyDeleteClaims).to_claims()
    if act is None:
        del claims["act"]
    else:
        claims["act"] = act
    with pytest.raises(JwtClaimError):
        parse_claims(claims)


def test_verify_as_another_act_refused() -> None:
    token = _instance(NotifySubscriptionClaims).sign(KEY)
    with pytest.raises(JwtClaimError):
        NotifyUpdateClaims.verify(token, now=NOW)  # same fields, other act
    with pytest.raises(JwtClaimError):
        NotifyDeleteClaims.verify(token, now=NOW)


def test_relay_auth_writes_the_reference_key_order() -> None:
    claims = _instance(RelayAuthClaims).to_claims()
    assert list(claims) == ["iss", "sub", "aud", "iat", "exp"]


def test_relay_auth_ignores_an_act_claim() -> None:
    claims = {**_instance(RelayAuthClaims).to_claims(), "act": "client_auth"}
    parsed = RelayAuthClaims.verify(encode_jwt(claims, KEY), now=NOW)
    assert parsed == _instance(RelayAuthClaims)
    assert "act" not in parsed.to_claims()


def test_unknown_claims_survive_a_round_trip() -> None:
    sdk = {"packageManager": "npm", "packages": {"@walletconnect/notify-client": "1.4.1"}}
    claims = {**_instance(NotifySubscriptionClaims).to_claims(), "sdk": sdk, "zzz": [1, None]}
    parsed = NotifySubscriptionClaims.verify(encode_jwt(claims, KEY), now=NOW)
    assert parsed.extra == {"sdk": sdk, "zzz": [1, None]}
    assert parsed.to_claims() == claims
    assert NotifySubscriptionClaims.verify(parsed.sign(KEY), now=NOW).extra == parsed.extra


def test_watch_subscriptions_app_null_is_kept() -> None:
    instance = _instance(NotifyWatchSubscriptionsClaims)
    claims = instance.to_claims()
    assert "app" in claims
    assert claims["app"] is None
    assert NotifyWatchSubscriptionsClaims.verify(instance.sign(KEY), now=NOW).app is None
    one_app = _instance(NotifyWatchSubscriptionsClaims, app=APP)
    assert NotifyWatchSubscriptionsClaims.verify(one_app.sign(KEY), now=NOW).app == APP


def test_optional_none_claims_are_omitted() -> None:
    instance = _instance(UnregisterIdentityClaims, sub=None)
    assert "sub" not in instance.to_claims()
    assert UnregisterIdentityClaims.verify(instance.sign(KEY), now=NOW).sub is None
    get = _instance(NotifyGetNotificationsClaims, aft=None)
    assert get.to_claims()["aft"] is None  # aft: null means "from the newest"
    mark = _instance(NotifyMarkNotificationsAsReadClaims, all=True, ids=None)
    assert "ids" not in mark.to_claims()


def test_defaults_when_optional_claims_are_missing() -> None:
    claims = _instance(NotifyGetNotificationsClaims).to_claims()
    for name in ("aft", "urf"):
        del claims[name]
    parsed = NotifyGetNotificationsClaims.verify(encode_jwt(claims, KEY), now=NOW)
    assert parsed.aft is None
    assert parsed.urf is False


@pytest.mark.parametrize(
    "cls",
    [
        NotifySubscriptionClaims,
        NotifyWatchSubscriptionsClaims,
        NotifyDeleteClaims,
        NotifySubscriptionResponseClaims,
        NotifySubscriptionsChangedClaims,
    ],
    ids=lambda c: c.__name__,
)
def test_missing_mjv_means_version_0(cls: type[Claims]) -> None:
    """notify-server ``SharedClaims``: ``#[serde(default = "default_mjv")]`` with ``default_mjv() == "0"``."""
    claims = _instance(cls).to_claims()
    del claims["mjv"]
    parsed = cls.verify(encode_jwt(claims, KEY), now=NOW)
    assert parsed.mjv == "0"  # type: ignore[attr-defined]
    # what we emit ourselves from a client class carries the current version
    if issubclass(cls, NotifySubscriptionClaims | NotifyWatchSubscriptionsClaims | NotifyDeleteClaims):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert fields["mjv"].default == NOTIFY_MJV
        assert _instance(cls, **{"mjv": NOTIFY_MJV}).to_claims()["mjv"] == NOTIFY_MJV


def test_notify_message_has_no_aud_and_no_mjv() -> None:
    claims = _instance(NotifyMessageClaims).to_claims()
    assert "aud" not in claims
    assert "mjv" not in claims
    token = _instance(NotifyMessageClaims).sign(KEY)
    # a verifier that expects an audience refuses a token that has none
    with pytest.raises(JwtClaimError):
        NotifyMessageClaims.verify(token, now=NOW, aud=ISS)


def test_sign_refuses_an_iss_that_is_not_the_key() -> None:
    instance = _instance(NotifyDeleteClaims, iss=OTHER_ISS)
    with pytest.raises(JwtClaimError):
        instance.sign(KEY)
    assert NotifyDeleteClaims.verify(instance.sign(OTHER_KEY), now=NOW) == instance


def test_encode_jwt_layout() -> None:
    claims = {"iss": ISS, "exp": NOW}
    token = encode_jwt(claims, KEY)
    header, payload, signature = token.split(".")
    assert header == "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"  # {"alg":"EdDSA","typ":"JWT"}
    assert orjson.loads(b64decode_lenient(header)) == {"alg": "EdDSA", "typ": "JWT"}
    assert b64decode_lenient(payload) == b'{"iss":"' + ISS.encode() + b'","exp":1700000000}'
    assert "=" not in token
    assert "+" not in token
    assert "/" not in token
    assert KEY.sign(f"{header}.{payload}".encode()) == b64decode_lenient(signature)


def test_decode_jwt() -> None:
    claims = _claims()
    token = encode_jwt(claims, KEY)
    decoded = decode_jwt(token)
    assert decoded == DecodedJwt(
        {"alg": "EdDSA", "typ": "JWT"},
        claims,
        token.rsplit(".", 1)[0].encode(),
        b64decode_lenient(token.rsplit(".", 1)[1]),
    )
    assert len(decoded.signature) == 64


# ------------------------------------------------------------------------------------------ refusals


def test_forged_signature_refused() -> None:
    # claims that name KEY as issuer, signed by another key
    token = encode_jwt(_claims(), OTHER_KEY)
    with pytest.raises(JwtSignatureError):
        verify_jwt(token, now=NOW)
    with pytest.raises(JwtSignatureError):
        NotifyDeleteClaims.verify(token, now=NOW)


def test_tampered_payload_refused() -> None:
    token = encode_jwt(_claims(), KEY)
    header, _, signature = token.split(".")
    tampered = f"{header}.{_b64(_claims(aud=OTHER_ISS))}.{signature}"
    with pytest.raises(JwtSignatureError):
        verify_jwt(tampered, now=NOW)


def test_tampered_header_refused() -> None:
    token = encode_jwt(_claims(), KEY)
    _, payload, signature = token.split(".")
    tampered = f"{_b64({'alg': 'EdDSA', 'typ': 'JWT', 'kid': 'x'})}.{payload}.{signature}"
    with pytest.raises(JwtSignatureError):
        verify_jwt(tampered, now=NOW)


def test_signature_of_other_token_refused() -> None:
    first = encode_jwt(_claims(), KEY)
    second = encode_jwt(_claims(aud=OTHER_ISS), KEY)
    spliced = first.rsplit(".", 1)[0] + "." + second.rsplit(".", 1)[1]
    with pytest.raises(JwtSignatureError):
        verify_jwt(spliced, now=NOW)


@pytest.mark.parametrize(
    "signature",
    ["", "AAAA", b64url_encode(bytes(64)), b64url_encode(bytes(63)), b64url_encode(bytes(65))],
)
def test_bad_signature_bytes_refused(signature: str) -> None:
    token = encode_jwt(_claims(), KEY).rsplit(".", 1)[0] + "." + signature
    with pytest.raises(JwtSignatureError):
        verify_jwt(token, now=NOW)


def test_expiry() -> None:
    token = encode_jwt(_claims(exp=NOW, iat=NOW - 300), KEY)
    verify_jwt(token, now=NOW + JWT_LEEWAY - 1)  # within the leeway
    with pytest.raises(JwtExpiredError):
        verify_jwt(token, now=NOW + JWT_LEEWAY)  # exp + leeway <= now
    with pytest.raises(JwtExpiredError):
        verify_jwt(token, now=NOW + 10 * JWT_LEEWAY)
    with pytest.raises(JwtExpiredError):
        verify_jwt(token, now=NOW, leeway=0)
    verify_jwt(token, now=NOW - 1, leeway=0)  # iat - 300 is in the past either way
    with pytest.raises(JwtExpiredError):
        NotifyDeleteClaims.verify(encode_jwt(_instance(NotifyDeleteClaims).to_claims(), KEY), now=NOW + 600)


@pytest.mark.parametrize("name", ["iat", "nbf"])
def test_not_yet_valid(name: str) -> None:
    token = encode_jwt(_claims(**{name: NOW + JWT_LEEWAY}, exp=NOW + 3600), KEY)
    verify_jwt(token, now=NOW)  # at the edge of the leeway
    token = encode_jwt(_claims(**{name: NOW + JWT_LEEWAY + 1}, exp=NOW + 3600), KEY)
    with pytest.raises(JwtNotYetValidError):
        verify_jwt(token, now=NOW)
    verify_jwt(token, now=NOW + 1)
    with pytest.raises(JwtNotYetValidError):
        verify_jwt(encode_jwt(_claims(**{name: NOW + 1}), KEY), now=NOW, leeway=0)


def test_iat_is_optional_for_verify_jwt_but_not_for_claims_classes() -> None:
    claims = _claims(iat=_DROP)
    token = encode_jwt(claims, KEY)
    assert verify_jwt(token, now=NOW) == claims
    with pytest.raises(JwtClaimError):
        NotifyDeleteClaims.verify(token, now=NOW)


def test_wrong_act_refused() -> None:
    token = encode_jwt(_claims(), KEY)
    assert verify_jwt(token, now=NOW, act="notify_delete")["act"] == "notify_delete"
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, act="notify_update")
    with pytest.raises(JwtClaimError):
        verify_jwt(encode_jwt(_claims(act=_DROP), KEY), now=NOW, act="notify_delete")


def test_aud() -> None:
    token = encode_jwt(_claims(), KEY)
    assert verify_jwt(token, now=NOW, aud=DAPP)["aud"] == DAPP
    assert verify_jwt(token, now=NOW, aud=[OTHER_ISS, DAPP])["aud"] == DAPP
    assert verify_jwt(token, now=NOW, aud=frozenset({DAPP}))["aud"] == DAPP
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, aud=OTHER_ISS)
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, aud=[OTHER_ISS, ISS])
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, aud=[])
    with pytest.raises(JwtClaimError):
        verify_jwt(encode_jwt(_claims(aud=_DROP), KEY), now=NOW, aud=DAPP)
    with pytest.raises(JwtClaimError):
        NotifyDeleteClaims.verify(_instance(NotifyDeleteClaims).sign(KEY), now=NOW, aud=ISS)


@pytest.mark.parametrize("aud", [[DAPP], {"aud": DAPP}, None, 5, True])
def test_aud_of_another_type_refused(aud: Any) -> None:
    token = encode_jwt(_claims(aud=aud), KEY)
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, aud=DAPP)
    with pytest.raises(JwtClaimError):
        verify_jwt(token, now=NOW, aud=[DAPP, OTHER_ISS])


def test_missing_exp_refused() -> None:
    with pytest.raises(JwtClaimError):
        verify_jwt(encode_jwt(_claims(exp=_DROP), KEY), now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "JWT"},
        {"alg": "HS256", "typ": "JWT"},
        {"alg": "ES256K", "typ": "JWT"},
        {"alg": "eddsa", "typ": "JWT"},
        {"alg": "Ed25519", "typ": "JWT"},
        {"typ": "JWT"},
        {"alg": None},
        {"alg": ["EdDSA"]},
    ],
)
def test_other_alg_refused(header: dict[str, Any]) -> None:
    with pytest.raises(JwtFormatError):
        verify_jwt(_token(header, _claims()), now=NOW)


def test_alg_none_with_empty_signature_refused() -> None:
    token = f"{_b64({'alg': 'none'})}.{_b64(_claims())}."
    with pytest.raises(JwtFormatError):
        verify_jwt(token, now=NOW)


def test_header_order_and_typ_are_not_checked() -> None:
    # Rust writes {"typ":"JWT","alg":"EdDSA"}; the signature covers the literal bytes either way
    claims = _claims()
    assert verify_jwt(_token({"typ": "JWT", "alg": "EdDSA"}, claims), now=NOW) == claims
    assert verify_jwt(_token({"alg": "EdDSA"}, claims), now=NOW) == claims


@pytest.mark.parametrize(
    "iss",
    [
        "did:pkh:eip155:1:0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
        "did:web:app.example.com",
        ISS.removeprefix("did:key:"),  # bare multibase names a key, but an issuer must be a did:key
        encode_did_key(KEY.public_key, "X25519"),  # right bytes, wrong codec
        ISS + " ",
        "",
        None,
        5,
        [ISS],
    ],
)
def test_iss_not_an_ed25519_did_key_refused(iss: Any) -> None:
    token = _token({"alg": "EdDSA", "typ": "JWT"}, _claims(iss=iss))
    with pytest.raises(JwtSignatureError):
        verify_jwt(token, now=NOW)


def test_missing_iss_refused() -> None:
    with pytest.raises(JwtSignatureError):
        verify_jwt(encode_jwt(_claims(iss=_DROP), KEY), now=NOW)


@pytest.mark.parametrize("parts", [1, 2, 4, 5])
def test_wrong_segment_count_refused(parts: int) -> None:
    segments = encode_jwt(_claims(), KEY).split(".")
    token = ".".join((segments * 2)[:parts])
    with pytest.raises(JwtFormatError):
        decode_jwt(token)
    with pytest.raises(JwtFormatError):
        verify_jwt(token, now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "..",
        "...",
        "a.b.c",
        f"{b64url_encode(b'not json')}.{_b64(_claims())}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{b64url_encode(b'not json')}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{b64url_encode(b'')}.AAAA",
        f"{_b64(['alg', 'EdDSA'])}.{_b64(_claims())}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{_b64([1, 2])}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{_b64('claims')}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{_b64(None)}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{_b64(_claims())}.!!!!",
        f"{_b64({'alg': 'EdDSA'})}.{_b64(_claims())}.A",
        f"{_b64({'alg': 'EdDSA'})}.{_b64(_claims())[:-3]}x.AAAA",
        f"{_b64({'alg': 'EdDSA'})}!.{_b64(_claims())}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{_b64(_claims())}.AA AA",
        f"{_b64({'alg': 'EdDSA'})}.{b64url_encode(b'{}' + bytes([0xFF]))}.AAAA",
        f"{_b64({'alg': 'EdDSA'})}.{b64url_encode(bytes([0xFF, 0xFE]))}.AAAA",
    ],
)
def test_malformed_tokens_refused(token: str) -> None:
    with pytest.raises(JwtFormatError):
        decode_jwt(token)
    with pytest.raises(JwtFormatError):
        verify_jwt(token, now=NOW)


@pytest.mark.parametrize("token", [None, 5, b"a.b.c", ["a", "b", "c"]])
def test_non_string_token_refused(token: Any) -> None:
    with pytest.raises(JwtFormatError):
        decode_jwt(token)
    with pytest.raises(JwtFormatError):
        verify_jwt(token, now=NOW)


def test_oversized_token_refused() -> None:
    with pytest.raises(JwtFormatError):
        decode_jwt("a" * (JWT_MAX_LENGTH + 1))
    # a correctly signed token just over the limit
    padding = "x" * (JWT_MAX_LENGTH * 3 // 4)
    token = encode_jwt(_claims(pad=padding), KEY)
    assert len(token) > JWT_MAX_LENGTH
    with pytest.raises(JwtFormatError):
        verify_jwt(token, now=NOW)
    # and one under it is fine
    small = encode_jwt(_claims(pad=padding[: JWT_MAX_LENGTH * 3 // 4 - 1000]), KEY)
    assert len(small) <= JWT_MAX_LENGTH
    assert verify_jwt(small, now=NOW)["pad"]


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (NotifyGetNotificationsClaims, "lmt", "50"),
        (NotifyGetNotificationsClaims, "lmt", True),  # bool is not an int
        (NotifyGetNotificationsClaims, "lmt", 50.0),
        (NotifyGetNotificationsClaims, "lmt", None),
        (NotifyGetNotificationsClaims, "urf", 1),  # int is not a bool
        (NotifyGetNotificationsClaims, "urf", "true"),
        (NotifyGetNotificationsClaims, "aft", 5),
        (NotifyGetNotificationsClaims, "app", None),
        (NotifySubscriptionClaims, "scp", ["a", "b"]),
        (NotifySubscriptionClaims, "app", None),
        (NotifySubscriptionClaims, "ksu", {"url": KSU}),
        (NotifySubscriptionClaims, "sub", 1),
        (NotifySubscriptionClaims, "mjv", 1),
        (NotifySubscriptionResponseClaims, "sbs", {}),
        (NotifySubscriptionResponseClaims, "sbs", ["x"]),
        (NotifySubscriptionResponseClaims, "sbs", [None]),
        (NotifyMessageClaims, "msg", "hello"),
        (NotifyMessageClaims, "msg", [MSG]),
        (NotifyGetNotificationsResponseClaims, "mre", "false"),
        (NotifyGetNotificationsResponseClaims, "nfs", MSG),
        (NotifyMarkNotificationsAsReadClaims, "ids", "id"),
        (NotifyMarkNotificationsAsReadClaims, "ids", [1]),
        (NotifyMarkNotificationsAsReadClaims, "all", "yes"),
        (WatchRegisterClaims, "tag", [True]),
        (WatchRegisterClaims, "tag", ["4000"]),
        (WatchRegisterClaims, "tag", 4000),
        (WatchRegisterClaims, "sts", [1]),
        (WatchEventClaims, "evt", []),
        (NotifyWatchSubscriptionsClaims, "app", 0),
        (NotifyDeleteClaims, "iat", "1700000000"),
        (NotifyDeleteClaims, "iat", True),
        (NotifyDeleteClaims, "iat", None),
    ],
)
def test_claims_of_the_wrong_json_type_refused(cls: type[Claims], name: str, value: Any) -> None:
    claims = {**_instance(cls).to_claims(), name: value}
    token = encode_jwt(claims, KEY)
    with pytest.raises(JwtFormatError):
        cls.verify(token, now=NOW)
    with pytest.raises(JwtFormatError):
        parse_claims(claims)


@pytest.mark.parametrize("value", ["1700000300", True, False, None, [NOW], {"t": NOW}])
def test_exp_of_the_wrong_type_refused(value: Any) -> None:
    with pytest.raises(JwtFormatError):
        verify_jwt(encode_jwt(_claims(exp=value), KEY), now=NOW)


@pytest.mark.parametrize("name", ["iat", "nbf"])
@pytest.mark.parametrize("value", ["1700000000", True, None, []])
def test_iat_nbf_of_the_wrong_type_refused(name: str, value: Any) -> None:
    with pytest.raises(JwtFormatError):
        verify_jwt(encode_jwt(_claims(**{name: value}), KEY), now=NOW)


def test_float_times_are_read_as_seconds() -> None:
    claims = _claims(iat=NOW + 0.5, exp=NOW + 300.9)
    assert verify_jwt(encode_jwt(claims, KEY), now=NOW) == claims
    token = encode_jwt({**_instance(NotifyDeleteClaims).to_claims(), **claims}, KEY)
    parsed = NotifyDeleteClaims.verify(token, now=NOW)
    assert (parsed.iat, parsed.exp) == (NOW, NOW + 300)


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, f.name) for cls in SAMPLES for f in dataclasses.fields(cls) if f.name != "extra"
     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_missing_required_claim_refused(cls: type[Claims], name: str) -> None:
    claims = _instance(cls).to_claims()
    del claims[name]
    if name == "exp":
        with pytest.raises(JwtClaimError):
            cls.verify(encode_jwt(claims, KEY), now=NOW)
    elif name == "iss":
        with pytest.raises(JwtSignatureError):
            cls.verify(encode_jwt(claims, KEY), now=NOW)
    else:
        with pytest.raises(JwtClaimError):
            cls.verify(encode_jwt(claims, KEY), now=NOW)
    with pytest.raises(JwtClaimError):
        cls.from_claims(claims)


def test_error_classes() -> None:
    for cls in (JwtFormatError, JwtSignatureError, JwtExpiredError, JwtNotYetValidError, JwtClaimError):
        assert issubclass(cls, JwtError)
    assert issubclass(JwtError, ValueError)
    assert len({JwtFormatError, JwtSignatureError, JwtExpiredError, JwtNotYetValidError, JwtClaimError}) == 5


# ---------------------------------------------------------------------------------------- time quirks


def test_millisecond_times_of_unregister_identity() -> None:
    """identity-keys ``unregisterIdentity``: iat = Date.now(), exp = iat + 86,400,000 (both milliseconds)."""
    iat_ms = NOW * 1000 + 123
    claims = {
        "iat": iat_ms,
        "exp": iat_ms + 86_400_000,
        "iss": ISS,
        "aud": KSU,
        "pkh": SUB,
        "act": "unregister_identity",
        "sub": "identity_keys",
    }
    token = encode_jwt(claims, KEY)
    assert verify_jwt(token, now=NOW, act="unregister_identity", aud=KSU) == claims
    parsed = UnregisterIdentityClaims.verify(token, now=NOW, aud=KSU)
    assert parsed.iat == NOW
    assert parsed.exp == NOW + 86_400
    assert parsed.pkh == SUB
    with pytest.raises(JwtExpiredError):
        UnregisterIdentityClaims.verify(token, now=NOW + 86_400 + JWT_LEEWAY, aud=KSU)
    # an iat in milliseconds is not mistaken for a far-future second count
    future = {**claims, "iat": (NOW + JWT_LEEWAY + 10) * 1000}
    with pytest.raises(JwtNotYetValidError):
        verify_jwt(encode_jwt(future, KEY), now=NOW)


def test_millisecond_threshold() -> None:
    # exactly at the threshold: seconds (year 2286); one above: milliseconds
    at = encode_jwt(_claims(exp=JWT_MS_THRESHOLD, iat=_DROP), KEY)
    assert verify_jwt(at, now=JWT_MS_THRESHOLD - 1)
    above = encode_jwt(_claims(exp=JWT_MS_THRESHOLD + 1, iat=_DROP), KEY)
    with pytest.raises(JwtExpiredError):
        verify_jwt(above, now=JWT_MS_THRESHOLD - 1)
    assert verify_jwt(above, now=JWT_MS_THRESHOLD // 1000 - JWT_LEEWAY)


def test_push_era_exp_is_just_far_in_the_future() -> None:
    """Push-era JS: exp = iat (seconds) + 86,400,000: read as seconds it is ~2.7 years ahead."""
    instance = _instance(PushSubscriptionClaims, exp=NOW + 86_400_000)
    parsed = PushSubscriptionClaims.verify(instance.sign(KEY), now=NOW + 86_400 * 365)
    assert parsed.exp == NOW + 86_400_000


# -------------------------------------------------------------------------------------- lenient base64


def _standard_padded(segment: str) -> str:
    raw = b64decode_lenient(segment)
    return base64.b64encode(raw).decode()


def test_standard_alphabet_and_padded_segments_decode() -> None:
    # claims chosen so that every segment needs '-' or '_' in base64url and padding
    for extra in range(12):
        claims = _claims(note="~~~???>>>" * (extra + 1))
        token = encode_jwt(claims, KEY)
        header, payload, signature = token.split(".")
        variant = ".".join(_standard_padded(s) for s in (header, payload, signature))
        original, decoded = decode_jwt(token), decode_jwt(variant)
        assert decoded.header == original.header
        assert decoded.claims == original.claims
        assert decoded.signature == original.signature
    assert any(c in _b64(_claims(note="~~~???>>>")) for c in "-_")


def test_standard_alphabet_signature_verifies() -> None:
    claims = _claims(note="??>>~~")
    token = encode_jwt(claims, KEY)
    signing_input, signature = token.rsplit(".", 1)
    assert verify_jwt(f"{signing_input}.{_standard_padded(signature)}", now=NOW) == claims


def test_token_signed_over_standard_padded_segments_verifies() -> None:
    # a signer that wrote standard base64 with padding (notify-server decodes STANDARD_NO_PAD)
    claims = _claims(note="??>>~~")
    header = base64.b64encode(orjson.dumps({"alg": "EdDSA", "typ": "JWT"})).decode()
    payload = base64.b64encode(orjson.dumps(claims)).decode()
    assert payload.endswith("=") or "+" in payload or "/" in payload
    signing_input = f"{header}.{payload}"
    token = f"{signing_input}.{base64.b64encode(KEY.sign(signing_input.encode())).decode()}"
    assert verify_jwt(token, now=NOW) == claims
    # the signature covers the literal text: re-encoding the payload breaks it
    with pytest.raises(JwtSignatureError):
        verify_jwt(f"{header}.{b64url_encode(orjson.dumps(claims))}.{token.rsplit('.', 1)[1]}", now=NOW)


# ------------------------------------------------------------------------------------ property tests


FLIP_TOKENS = [
    _instance(NotifySubscriptionClaims).sign(KEY),
    _instance(NotifyMessageClaims).sign(KEY),
    _instance(RelayAuthClaims).sign(KEY),
]


def _segments(token: str) -> list[bytes] | None:
    parts = token.split(".")
    try:
        return [b64decode_lenient(p) for p in parts]
    except Exception:
        return None


@given(which=st.sampled_from(range(len(FLIP_TOKENS))), data=st.data())
def test_property_no_bit_flip_forges_a_token(which: int, data: st.DataObject) -> None:
    token = FLIP_TOKENS[which]
    raw = bytearray(token.encode())
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    mutant = raw.decode("latin-1")  # every byte is one character; high bytes are non-ASCII text
    assert mutant != token
    try:
        claims = verify_jwt(mutant, now=NOW)
    except JwtError:
        return
    # only a flip that leaves every decoded segment byte-identical may pass (e.g. base64 padding bits)
    assert _segments(mutant) == _segments(token)
    assert claims == verify_jwt(token, now=NOW)


B64_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=", max_size=40)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(max_size=200)
    | st.lists(B64_TEXT, min_size=1, max_size=5).map(".".join)
    | st.tuples(JSON, JSON, st.binary(max_size=70)).map(
        lambda t: f"{_b64(t[0])}.{_b64(t[1])}.{b64url_encode(t[2])}"
    )
    | st.tuples(JSON, st.binary(max_size=70)).map(
        lambda t: f"{_b64({'alg': 'EdDSA', 'typ': 'JWT'})}.{_b64(t[0])}.{b64url_encode(t[1])}"
    )
)
def test_property_random_text_only_raises_jwt_error(text: str) -> None:
    with contextlib.suppress(JwtError):
        decode_jwt(text)
    with pytest.raises(JwtError):  # nothing here is signed by the key its iss names
        verify_jwt(text, now=NOW, act="notify_delete", aud=DAPP)


RESERVED = {"iss", "exp", "iat", "nbf", "act", "aud"}
CLAIM_NAMES = JSON_TEXT.filter(lambda k: k not in RESERVED)


@given(extra=st.dictionaries(CLAIM_NAMES, JSON, max_size=4), exp_offset=st.integers(min_value=-JWT_LEEWAY + 1))
def test_property_random_claims_round_trip(extra: dict[str, Any], exp_offset: int) -> None:
    claims = {"iss": ISS, **extra, "exp": min(NOW + exp_offset, JWT_MS_THRESHOLD)}
    token = encode_jwt(claims, KEY)
    verified = verify_jwt(token, now=NOW)
    assert verified == claims
    assert list(verified) == list(claims)  # key order is kept
    assert decode_jwt(token).claims == claims


# one value of every JSON type and the edge cases that matter, cheap to draw (random JSON is slow to generate)
ODD = st.sampled_from(
    [
        None, True, False, 0, -1, 1, 50, 2**63 - 1, -(2**63), 2**64 - 1, 0.5, -0.0, 1e300, -1e300,
        "", "x", "50", str(NOW), DAPP, ISS, OTHER_ISS, SUB, APP, "did:key:z6Mk", [], [None], [1, "a"], [ISS],
        [DAPP, ISS], {}, {"a": 1}, {"aud": DAPP}, NOW, NOW * 1000, JWT_MS_THRESHOLD + 1,
    ]
)
TIME = (
    ODD
    | st.integers(min_value=NOW - 1000, max_value=NOW + 1000)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
)
STANDARD = st.fixed_dictionaries(
    {},
    optional={
        "iat": TIME,
        "exp": TIME,
        "nbf": TIME,
        "act": ODD | st.sampled_from(sorted(CLAIMS_BY_ACT)),
        "aud": ODD,
        "iss": ODD,
    },
)
FIELD_NAMES = sorted({f.name for cls in SAMPLES for f in dataclasses.fields(cls)} - {"extra"})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    standard=STANDARD,
    fields=st.dictionaries(st.sampled_from(FIELD_NAMES), ODD | JSON, max_size=4),
    base=st.sampled_from(list(SAMPLES)),
    act=st.none() | st.sampled_from(sorted(CLAIMS_BY_ACT)),
)
def test_property_signed_claims_of_any_type_only_raise_jwt_error(
    standard: dict[str, Any], fields: dict[str, Any], base: type[Claims], act: str | None
) -> None:
    """Correctly signed tokens whose claims have arbitrary JSON types: only JwtError, at every layer."""
    claims = {**_instance(base).to_claims(), **fields, **standard}
    token = encode_jwt(claims, KEY)
    for aud in (None, DAPP, [DAPP, ISS]):
        with contextlib.suppress(JwtError):
            verify_jwt(token, now=NOW, act=act, aud=aud)
    for cls in {base, CLAIMS_BY_ACT.get(act or "", base)}:
        try:
            parsed = cls.verify(token, now=NOW)
        except JwtError:
            continue
        assert type(parsed) is cls
    with contextlib.suppress(JwtError):
        parse_claims(claims)


@pytest.mark.parametrize("cls", [NotifyDeleteResponseClaims, NotifyUpdateResponseClaims, NotifyReceiptClaims])
def test_responses_from_other_signers(cls: type[Claims]) -> None:
    # an instance signed by the dapp's key verifies with that key as iss
    dapp_key = Ed25519KeyPair.from_seed(b"\x07" * 32)
    instance = _instance(cls, iss=DAPP, **({"aud": ISS} if cls is not NotifyReceiptClaims else {}))
    assert cls.verify(instance.sign(dapp_key), now=NOW) == instance
    with pytest.raises(JwtClaimError):
        instance.sign(KEY)


def test_subscriptions_changed_response_and_message_response_classes() -> None:
    for cls in (NotifySubscriptionsChangedResponseClaims, NotifyMessageResponseClaims):
        instance = _instance(cls)
        assert cls.verify(instance.sign(KEY), now=NOW, aud=DAPP) == instance
        assert instance.to_claims()["ksu"] == KSU
