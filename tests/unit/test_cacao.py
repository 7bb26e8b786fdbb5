"""CACAOs: SIWE text, EIP-191 signatures, identity keys, authorization (protocol.md §5)."""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, apply_edits
from wcnotify.protocol.cacao import (
    Authorization,
    Cacao,
    CacaoAuthorizationError,
    CacaoError,
    CacaoExpiredError,
    CacaoFormatError,
    CacaoPayload,
    CacaoSignatureError,
    authorization,
    decode_recap,
    encode_recap,
    full_statement,
    identity_key,
    iso_timestamp,
    prepare_registration,
    recap_statement,
    recover_eip191,
    sign_eip191,
    siwe_message,
    verify_cacao,
)
from wcnotify.protocol.crypto import Ed25519KeyPair, X25519KeyPair
from wcnotify.protocol.did import Account, encode_did_key
from wcnotify.spec import (
    RECAP_ABILITY_ALL_APPS,
    RECAP_NOTIFY_RESOURCE,
    RECAP_STATEMENT_PREFIX,
    STATEMENT_ALL_DOMAINS,
    STATEMENT_AUTHORIZES_ALL_APPS,
    STATEMENT_THIS_DOMAIN,
)

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "walletconnect-js.json").read_text())["cacao_siwe"]

NOW = 1_700_000_000
IAT = "2023-11-14T22:13:20.000Z"  # NOW
KSU = "https://keys.walletconnect.com"
DOMAIN = "app.example.com"
ETH = EthAccount.create()
OTHER_ETH = EthAccount.create()
ACCOUNT = Account("eip155", "1", ETH.address)
IDENTITY = Ed25519KeyPair.from_seed(bytes(range(32)))
IDENTITY_DID = encode_did_key(IDENTITY.public_key)
NONCE = "ab" * 32
ALL_APPS_SENTENCE = (
    "I further authorize the stated URI to perform the following actions on my behalf: "
    "(1) 'manage': 'all-apps-notifications' for 'https://notify.walletconnect.com'."
)


def _payload(*, all_apps: bool = False, recaps: bool = False, **changes: Any) -> CacaoPayload:
    """A registration payload; with ``recaps`` the statement is filled in with the ReCap sentence, as
    wallets do for notify-client (identity-keys itself leaves it empty; see the test below)."""
    payload = prepare_registration(
        recaps=recaps,
        account=ACCOUNT,
        domain=DOMAIN,
        identity_public_key=IDENTITY.public_key,
        keys_server_url=KSU,
        all_apps=all_apps,
        nonce=NONCE,
        now=NOW,
    )
    if recaps:
        payload = dataclasses.replace(payload, statement=full_statement(payload))
    return dataclasses.replace(payload, **changes)


def _sign(payload: CacaoPayload, key: Any = None, **cacao: Any) -> Cacao:
    signature = sign_eip191(siwe_message(payload), ETH.key if key is None else key)
    return Cacao(payload, signature, **cacao)


def _lines(payload: CacaoPayload) -> list[str]:
    return siwe_message(payload).split("\n")


# ------------------------------------------------------------------------------------- dict round trip


def test_js_cacao_round_trips_and_verifies() -> None:
    body = VECTOR["keyserver_post_body"]["cacao"]
    cacao = Cacao.from_dict(body)
    assert cacao.to_dict() == body
    assert list(cacao.to_dict()["p"]) == list(body["p"])  # identity-keys' key order
    assert siwe_message(cacao.payload) == VECTOR["message"]
    verify_cacao(cacao, now=NOW)
    assert identity_key(cacao.payload) == VECTOR["payload"]["aud"]
    assert authorization(cacao.payload) == Authorization(
        Account.parse(VECTOR["caip10"]), False, VECTOR["payload"]["domain"]
    )


def test_from_dict_to_dict_with_every_field() -> None:
    data = {
        "h": {"t": "eip4361"},
        "p": {
            "aud": IDENTITY_DID,
            "statement": STATEMENT_THIS_DOMAIN,
            "domain": DOMAIN,
            "iss": ACCOUNT.did_pkh,
            "nonce": NONCE,
            "iat": IAT,
            "version": "1",
            "exp": "2023-11-15T22:13:20.000Z",
            "nbf": "2023-11-14T22:13:20.000Z",
            "requestId": "req-1",
            "resources": [KSU, "https://example.com/x"],
        },
        "s": {"t": "eip191", "s": "0x" + "11" * 65},
    }
    cacao = Cacao.from_dict(data)
    assert cacao.payload.request_id == "req-1"
    assert cacao.payload.resources == (KSU, "https://example.com/x")
    assert cacao.header_type == "eip4361"
    assert cacao.signature_type == "eip191"
    assert cacao.signature == "0x" + "11" * 65
    assert cacao.to_dict() == data
    assert Cacao.from_dict(copy.deepcopy(cacao.to_dict())) == cacao


def test_to_dict_omits_absent_fields() -> None:
    payload = _payload(statement=None, resources=None)
    p = Cacao(payload, "0x").to_dict()["p"]
    assert list(p) == ["aud", "domain", "iss", "nonce", "iat", "version"]
    assert CacaoPayload.from_dict(p) == payload


def test_empty_resources_are_kept() -> None:
    payload = _payload(resources=())
    assert payload.to_dict()["resources"] == []
    assert CacaoPayload.from_dict(payload.to_dict()) == payload


def test_uri_is_accepted_for_aud() -> None:
    """identity-keys ``prepareRegistrationWithRecaps`` writes both ``aud`` and ``uri``; Sign writes ``aud``."""
    p = _payload(recaps=True).to_dict()
    with_uri = {**p, "uri": p["aud"]}
    assert CacaoPayload.from_dict(with_uri).aud == p["aud"]
    only_uri = {k: v for k, v in with_uri.items() if k != "aud"}
    assert CacaoPayload.from_dict(only_uri) == CacaoPayload.from_dict(p)
    assert CacaoPayload.from_dict({**p, "uri": "https://elsewhere.example"}).aud == p["aud"]  # aud wins


def _without(key: str) -> Any:
    return lambda p: {k: v for k, v in p.items() if k != key}


def _with(key: str, value: Any) -> Any:
    return lambda p: {**p, key: value}


@pytest.mark.parametrize(
    "mutate",
    [
        *[pytest.param(_without(k), id=f"no-{k}") for k in ("domain", "iss", "aud", "version", "nonce", "iat")],
        *[pytest.param(_with(k, ""), id=f"empty-{k}") for k in ("domain", "iss", "aud", "version", "nonce", "iat")],
        *[pytest.param(_with(k, 5), id=f"int-{k}") for k in ("domain", "iss", "aud", "version", "nonce", "iat")],
        *[pytest.param(_with(k, [IAT]), id=f"list-{k}") for k in ("statement", "exp", "nbf", "requestId")],
        *[pytest.param(_with(k, "x" * 4097), id=f"long-{k}") for k in ("domain", "statement", "nonce", "exp")],
        *[pytest.param(_with(k, "a\nb"), id=f"newline-{k}") for k in ("domain", "iss", "aud", "nonce", "iat")],
        pytest.param(_with("aud", None), id="null-aud-no-uri"),
        pytest.param(_with("resources", KSU), id="resources-str"),
        pytest.param(_with("resources", {"0": KSU}), id="resources-object"),
        pytest.param(_with("resources", [KSU, 5]), id="resources-int"),
        pytest.param(_with("resources", [None]), id="resources-null"),
        pytest.param(_with("resources", ["x" * 4097]), id="resources-long"),
        pytest.param(_with("resources", [KSU] * 33), id="resources-too-many"),
        pytest.param(_with("iss", ACCOUNT.did_pkh.removeprefix("did:pkh:")), id="iss-caip10"),
        pytest.param(_with("iss", IDENTITY_DID), id="iss-did-key"),
        pytest.param(_with("iss", "did:pkh:eip155:1:0x1234"), id="iss-short-address"),
        pytest.param(_with("iss", ACCOUNT.did_pkh + " "), id="iss-trailing-space"),
    ],
)
def test_malformed_payload_refused(mutate: Any) -> None:
    p = _payload().to_dict()
    CacaoPayload.from_dict(p)
    with pytest.raises(CacaoFormatError):
        CacaoPayload.from_dict(mutate(p))
    with pytest.raises(CacaoFormatError):
        Cacao.from_dict({"h": {"t": "eip4361"}, "p": mutate(p), "s": {"t": "eip191", "s": "0x"}})


def test_resources_limit() -> None:
    p = _payload().to_dict()
    assert len(CacaoPayload.from_dict({**p, "resources": [KSU] * 32}).resources or ()) == 32


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: None, id="null"),
        pytest.param(lambda c: [c], id="list"),
        pytest.param(lambda c: {k: v for k, v in c.items() if k != "h"}, id="no-h"),
        pytest.param(lambda c: {**c, "h": "eip4361"}, id="h-str"),
        pytest.param(lambda c: {**c, "h": {}}, id="no-h-t"),
        pytest.param(lambda c: {**c, "h": {"t": 4361}}, id="h-t-int"),
        pytest.param(lambda c: {k: v for k, v in c.items() if k != "s"}, id="no-s"),
        pytest.param(lambda c: {**c, "s": "0x"}, id="s-str"),
        pytest.param(lambda c: {**c, "s": {"s": "0x"}}, id="no-s-t"),
        pytest.param(lambda c: {**c, "s": {"t": "eip191"}}, id="no-s-s"),
        pytest.param(lambda c: {**c, "s": {"t": "eip191", "s": 5}}, id="s-s-int"),
        pytest.param(lambda c: {**c, "s": {"t": "eip191", "s": "0" * 4097}}, id="s-s-long"),
        pytest.param(lambda c: {k: v for k, v in c.items() if k != "p"}, id="no-p"),
        pytest.param(lambda c: {**c, "p": []}, id="p-list"),
    ],
)
def test_malformed_cacao_refused(mutate: Any) -> None:
    data = _sign(_payload()).to_dict()
    Cacao.from_dict(data)
    with pytest.raises(CacaoFormatError):
        Cacao.from_dict(mutate(data))


# ----------------------------------------------------------------------------------------- SIWE text


def test_siwe_message_with_statement() -> None:
    payload = _payload()
    assert _lines(payload) == [
        f"{DOMAIN} wants you to sign in with your Ethereum account:",
        ETH.address,
        "",
        STATEMENT_THIS_DOMAIN,
        "",
        f"URI: {IDENTITY_DID}",
        "Version: 1",
        "Chain ID: 1",
        f"Nonce: {NONCE}",
        f"Issued At: {IAT}",
        "Resources:",
        f"- {KSU}",
    ]


@pytest.mark.parametrize("statement", [None, ""])
def test_siwe_message_without_statement_leaves_two_empty_lines(statement: str | None) -> None:
    payload = _payload(statement=statement)
    lines = _lines(payload)
    assert lines[:5] == [
        f"{DOMAIN} wants you to sign in with your Ethereum account:",
        ETH.address,
        "",
        "",
        f"URI: {IDENTITY_DID}",
    ]
    assert f"{ETH.address}\n\n\nURI: " in siwe_message(payload)
    assert full_statement(payload) is None


def test_siwe_message_optional_lines_in_order() -> None:
    payload = _payload(exp="2023-11-15T00:00:00Z", nbf="2023-11-14T00:00:00Z", request_id="42")
    assert _lines(payload)[9:] == [
        f"Issued At: {IAT}",
        "Expiration Time: 2023-11-15T00:00:00Z",
        "Not Before: 2023-11-14T00:00:00Z",
        "Request ID: 42",
        "Resources:",
        f"- {KSU}",
    ]
    only_request = _payload(request_id="r")
    assert _lines(only_request)[9:11] == [f"Issued At: {IAT}", "Request ID: r"]


def test_siwe_message_resources() -> None:
    assert _lines(_payload(resources=None))[-1] == f"Issued At: {IAT}"
    assert "Resources:" not in siwe_message(_payload(resources=None))
    assert _lines(_payload(resources=()))[-2:] == [f"Issued At: {IAT}", "Resources:"]
    assert siwe_message(_payload(resources=())).endswith("\nResources:")
    assert _lines(_payload(resources=("a", "b", "c")))[-4:] == ["Resources:", "- a", "- b", "- c"]


def test_siwe_message_chain_and_address_come_from_iss() -> None:
    lower = Account("eip155", "137", ETH.address.lower())
    lines = _lines(_payload(iss=lower.did_pkh))
    assert lines[1] == ETH.address.lower()  # written as given, not re-checksummed
    assert lines[7] == "Chain ID: 137"


def test_siwe_message_with_recap_in_statement() -> None:
    payload = _payload(recaps=True, all_apps=True)
    assert payload.statement == ALL_APPS_SENTENCE
    lines = _lines(payload)
    assert lines[3] == ALL_APPS_SENTENCE  # already there: not appended twice
    assert lines[5] == f"URI: https://{DOMAIN}?walletconnect_identity_key={IDENTITY_DID}"
    assert lines[-3] == "Resources:"
    assert lines[-2] == f"- {KSU}"
    assert lines[-1].startswith("- urn:recap:")


def test_siwe_message_appends_the_recap_sentence() -> None:
    recap_payload = _payload(recaps=True, all_apps=True)
    # no statement: the sentence alone, as utils formatMessage writes it
    assert _lines(dataclasses.replace(recap_payload, statement=None))[3] == ALL_APPS_SENTENCE
    assert _lines(dataclasses.replace(recap_payload, statement=""))[3] == ALL_APPS_SENTENCE
    # a statement without it: the sentence follows after one space
    custom = dataclasses.replace(recap_payload, statement="Sign in to Example.")
    assert _lines(custom)[3] == f"Sign in to Example. {ALL_APPS_SENTENCE}"
    assert full_statement(custom) == f"Sign in to Example. {ALL_APPS_SENTENCE}"
    # a statement that already has it is kept verbatim
    already = dataclasses.replace(recap_payload, statement=f"Hello. {ALL_APPS_SENTENCE}")
    assert _lines(already)[3] == f"Hello. {ALL_APPS_SENTENCE}"


def test_recap_only_counts_as_last_resource() -> None:
    recap_payload = _payload(recaps=True, all_apps=True)
    assert recap_payload.resources is not None
    moved = dataclasses.replace(recap_payload, statement="S", resources=tuple(reversed(recap_payload.resources)))
    assert _lines(moved)[3] == "S"
    assert full_statement(moved) == "S"


def test_recap_statement_wording() -> None:
    assert recap_statement({"att": {RECAP_NOTIFY_RESOURCE: {RECAP_ABILITY_ALL_APPS: [{}]}}}) == ALL_APPS_SENTENCE
    recap = {
        "att": {
            "https://a.example": {"crud/x": [{}], "crud/a": [{}], "msg/send": [{}]},
            "https://b.example": {"manage/y": [{}]},
        }
    }
    assert recap_statement(recap) == (
        f"{RECAP_STATEMENT_PREFIX} (1) 'crud': 'a', 'x' for 'https://a.example'. "
        "(2) 'msg': 'send' for 'https://a.example'. (3) 'manage': 'y' for 'https://b.example'."
    )
    # utils replaces only the first ".," of a target: with three namespaces the second one stays
    three = {"att": {"https://a.example": {"a/1": [{}], "b/2": [{}], "c/3": [{}]}}}
    assert recap_statement(three) == (
        f"{RECAP_STATEMENT_PREFIX} (1) 'a': '1' for 'https://a.example'. "
        "(2) 'b': '2' for 'https://a.example'., (3) 'c': '3' for 'https://a.example'."
    )


def test_encode_decode_recap() -> None:
    recap = {"att": {RECAP_NOTIFY_RESOURCE: {f"manage/{DOMAIN}-notifications": [{}]}}}
    encoded = encode_recap(recap)
    assert encoded.startswith("urn:recap:")
    assert "=" not in encoded
    assert decode_recap(encoded) == recap
    # base64url, padded or not, decodes too (ERC-5573 and identity-keys' objectToHex write base64url)
    body = encoded.removeprefix("urn:recap:")
    assert decode_recap("urn:recap:" + body.replace("+", "-").replace("/", "_")) == recap
    assert decode_recap("urn:recap:" + body + "=" * (-len(body) % 4)) == recap


def _recap_resource(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return "urn:recap:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "resource",
    [
        "https://example.com",
        "urn:recap",
        "urn:recap:!!!!",
        "urn:recap:e",
        _recap_resource(b"not json"),
        _recap_resource([1, 2]),
        _recap_resource({}),
        _recap_resource({"att": {}}),
        _recap_resource({"att": []}),
        _recap_resource({"att": {"https://a": {}}}),
        _recap_resource({"att": {"https://a": []}}),
        _recap_resource({"att": {"https://a": {"manage": [{}]}}}),
        _recap_resource({"att": {"https://a": {"manage/x": []}}}),
        _recap_resource({"att": {"https://a": {"manage/x": {}}}}),
        _recap_resource({"att": {"https://a": {"manage/x": [1]}}}),
        _recap_resource({"att": {"https://a": {"manage/x": [{}, "x"]}}}),
    ],
)
def test_invalid_recaps_refused(resource: str) -> None:
    with pytest.raises(CacaoFormatError):
        decode_recap(resource)
    if "urn:recap:" in resource:
        payload = _payload(resources=(KSU, resource))
        with pytest.raises(CacaoFormatError):
            siwe_message(payload)
        with pytest.raises(CacaoFormatError):
            verify_cacao(Cacao(payload, "0x" + "11" * 65), now=NOW)


# ------------------------------------------------------------------------------------- verification


def test_sign_and_verify() -> None:
    cacao = _sign(_payload())
    assert cacao.signature.startswith("0x")
    assert len(cacao.signature) == 132
    verify_cacao(cacao, now=NOW)
    assert recover_eip191(siwe_message(cacao.payload), cacao.signature) == ETH.address
    verify_cacao(Cacao.from_dict(cacao.to_dict()), now=NOW)


def test_verify_recaps_registration() -> None:
    for all_apps in (False, True):
        verify_cacao(_sign(_payload(recaps=True, all_apps=all_apps)), now=NOW)


def test_signature_by_another_key_refused() -> None:
    cacao = _sign(_payload(), key=OTHER_ETH.key)
    with pytest.raises(CacaoSignatureError):
        verify_cacao(cacao, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"domain": "evil.example.com"},
        {"statement": STATEMENT_ALL_DOMAINS},
        {"statement": None},
        {"nonce": "cd" * 32},
        {"aud": encode_did_key(X25519KeyPair.generate().public_key)},
        {"iat": "2023-11-14T22:13:21.000Z"},
        {"resources": (KSU, "https://more.example")},
        {"resources": None},
        {"exp": "2030-01-01T00:00:00Z"},
        {"request_id": "1"},
        {"iss": Account("eip155", "137", ETH.address).did_pkh},  # the chain id is part of the text
    ],
    ids=lambda c: "-".join(f"{k}" for k in c),
)
def test_tampered_payload_refused(changes: dict[str, Any]) -> None:
    cacao = _sign(_payload())
    tampered = dataclasses.replace(cacao, payload=dataclasses.replace(cacao.payload, **changes))
    with pytest.raises(CacaoSignatureError):
        verify_cacao(tampered, now=NOW)


def test_iss_of_another_account_refused() -> None:
    cacao = _sign(_payload())
    other = dataclasses.replace(cacao.payload, iss=Account("eip155", "1", OTHER_ETH.address).did_pkh)
    with pytest.raises(CacaoSignatureError):
        verify_cacao(dataclasses.replace(cacao, payload=other), now=NOW)


def test_lowercase_iss_address_verifies() -> None:
    payload = _payload(iss=Account("eip155", "1", ETH.address.lower()).did_pkh)
    verify_cacao(_sign(payload), now=NOW)


@pytest.mark.parametrize("kind", ["eip1271", "eip6492", "EIP191", "", "solana:ed25519"])
def test_other_signature_types_refused(kind: str) -> None:
    with pytest.raises(CacaoSignatureError):
        verify_cacao(_sign(_payload(), signature_type=kind), now=NOW)


@pytest.mark.parametrize("kind", ["caip122", "eip4361 ", "EIP4361", ""])
def test_other_header_types_refused(kind: str) -> None:
    with pytest.raises(CacaoFormatError):
        verify_cacao(_sign(_payload(), header_type=kind), now=NOW)


@pytest.mark.parametrize("version", ["2", "1.0", " 1", "v1"])
def test_other_versions_refused(version: str) -> None:
    with pytest.raises(CacaoFormatError):
        verify_cacao(_sign(_payload(version=version)), now=NOW)


def test_non_eip155_account_refused() -> None:
    solana = Account("solana", "4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ", "7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv")
    payload = _payload(iss=solana.did_pkh)
    with pytest.raises(CacaoSignatureError):
        verify_cacao(Cacao(payload, sign_eip191(siwe_message(payload), ETH.key)), now=NOW)


def test_expiry() -> None:
    cacao = _sign(_payload(exp="2023-11-14T22:13:30Z"))
    verify_cacao(cacao, now=NOW + 9)
    with pytest.raises(CacaoExpiredError):
        verify_cacao(cacao, now=NOW + 10)  # exp <= now
    with pytest.raises(CacaoExpiredError):
        verify_cacao(cacao, now=NOW + 86400)


def test_not_before() -> None:
    cacao = _sign(_payload(nbf="2023-11-14T22:13:30+00:00"))
    with pytest.raises(CacaoExpiredError):
        verify_cacao(cacao, now=NOW + 9)
    verify_cacao(cacao, now=NOW + 10)
    verify_cacao(cacao, now=NOW + 10**6)


def test_time_zones_are_honoured() -> None:
    # 22:13:30Z written as 23:13:30+01:00
    cacao = _sign(_payload(exp="2023-11-14T23:13:30+01:00"))
    verify_cacao(cacao, now=NOW + 9)
    with pytest.raises(CacaoExpiredError):
        verify_cacao(cacao, now=NOW + 10)


@pytest.mark.parametrize("field", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", ["yesterday", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "1700000000"])
def test_bad_times_refused(field: str, value: str) -> None:
    changes = {field: value}
    with pytest.raises(CacaoFormatError):
        verify_cacao(_sign(_payload(**changes)), now=NOW)


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda s: s[:-2] + ("00" if s.endswith("1b") else "01"), id="v-0-1"),
        pytest.param(lambda s: s.removeprefix("0x"), id="no-0x"),
        pytest.param(lambda s: "0x" + s[2:].upper(), id="upper-hex"),
    ],
)
def test_signature_variants_accepted(transform: Any) -> None:
    cacao = _sign(_payload())
    assert cacao.signature[-2:] in ("1b", "1c")
    verify_cacao(dataclasses.replace(cacao, signature=transform(cacao.signature)), now=NOW)


def test_v_as_0_and_1() -> None:
    message = "hello"
    signature = sign_eip191(message, ETH.key)
    v = int(signature[-2:], 16)
    assert v in (27, 28)
    assert recover_eip191(message, signature[:-2] + f"{v - 27:02x}") == ETH.address


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda s: s[:-2], id="64-bytes"),
        pytest.param(lambda s: s + "00", id="66-bytes"),
        pytest.param(lambda s: s[:-1], id="odd-length"),
        pytest.param(lambda s: s[:10] + "zz" + s[12:], id="not-hex"),
        pytest.param(lambda s: "0x", id="empty"),
        pytest.param(lambda s: "", id="nothing"),
        pytest.param(lambda s: s + "\n", id="trailing-newline"),
        pytest.param(lambda s: " " + s, id="leading-space"),
        pytest.param(lambda s: "0X" + s[2:], id="0X"),
        pytest.param(lambda s: "0x" + "00" * 65, id="zeros"),
        pytest.param(lambda s: "0x" + "ff" * 65, id="ones"),
        pytest.param(lambda s: s[:-2] + "1d", id="v-29"),
        pytest.param(lambda s: s[:2] + "00" * 32 + s[66:], id="r-zero"),
    ],
)
def test_malformed_signature_refused(transform: Any) -> None:
    cacao = _sign(_payload())
    with pytest.raises(CacaoSignatureError):
        verify_cacao(dataclasses.replace(cacao, signature=transform(cacao.signature)), now=NOW)


def test_error_classes() -> None:
    for cls in (CacaoFormatError, CacaoSignatureError, CacaoExpiredError, CacaoAuthorizationError):
        assert issubclass(cls, CacaoError)
    assert issubclass(CacaoError, ValueError)


# ------------------------------------------------------------------------------------- identity key


def test_identity_key_from_aud() -> None:
    assert identity_key(_payload()) == IDENTITY_DID


def test_identity_key_from_aud_url_parameter() -> None:
    payload = _payload(recaps=True)
    assert payload.aud == f"https://{DOMAIN}?walletconnect_identity_key={IDENTITY_DID}"
    assert identity_key(payload) == IDENTITY_DID
    bare = dataclasses.replace(payload, aud=f"https://{DOMAIN}/?a=1&walletconnect_identity_key={IDENTITY_DID[8:]}")
    assert identity_key(bare) == IDENTITY_DID


def test_identity_key_from_first_resource() -> None:
    """The oldest (Push-era) format: URI is the keys server, the identity did:key the first resource."""
    payload = _payload(statement=None, domain="keys.walletconnect.com", aud=KSU, resources=(IDENTITY_DID,))
    assert identity_key(payload) == IDENTITY_DID
    verify_cacao(_sign(payload), now=NOW)


def test_identity_key_priority() -> None:
    other = encode_did_key(Ed25519KeyPair.generate().public_key)
    assert identity_key(_payload(resources=(other,))) == IDENTITY_DID  # aud first
    url = _payload(recaps=True)
    assert identity_key(dataclasses.replace(url, resources=(other,))) == IDENTITY_DID  # then the aud parameter


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": KSU, "resources": (KSU,)},
        {"aud": KSU, "resources": None},
        {"aud": KSU, "resources": ()},
        {"aud": f"https://{DOMAIN}?walletconnect_identity_key=nonsense", "resources": (KSU,)},
        {"aud": f"https://{DOMAIN}?other_key={IDENTITY_DID}", "resources": (KSU,)},
        {"aud": encode_did_key(bytes(32), "X25519"), "resources": (KSU,)},  # an X25519 did:key is no identity
        {"aud": "did:key:z6Mkgarbage", "resources": ("did:key:z6Mkgarbage",)},
        {"aud": f"https://[{DOMAIN}?walletconnect_identity_key={IDENTITY_DID}", "resources": None},  # bad URL
        {"aud": KSU, "resources": (KSU, IDENTITY_DID)},  # only the first resource counts
    ],
)
def test_no_identity_key_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(CacaoFormatError):
        identity_key(_payload(**changes))


def test_identity_key_is_normalised() -> None:
    # a bare z6Mk… in the aud parameter comes back as a full did:key
    payload = _payload(aud=f"https://{DOMAIN}?walletconnect_identity_key={IDENTITY_DID.removeprefix('did:key:')}")
    assert identity_key(payload) == IDENTITY_DID


# ------------------------------------------------------------------------------------- authorization


@pytest.mark.parametrize("statement", sorted(STATEMENT_AUTHORIZES_ALL_APPS))
def test_authorization_from_statement(statement: str) -> None:
    payload = _payload(statement=statement)
    grant = authorization(payload)
    assert grant == Authorization(ACCOUNT, STATEMENT_AUTHORIZES_ALL_APPS[statement], DOMAIN)
    verify_cacao(_sign(payload), now=NOW)


def test_current_statements() -> None:
    assert authorization(_payload(all_apps=False)).all_apps is False
    assert authorization(_payload(all_apps=True)).all_apps is True
    assert _payload(all_apps=True).statement == STATEMENT_ALL_DOMAINS


@pytest.mark.parametrize(
    ("statement", "all_apps"),
    [
        ("I further authorize this DAPP to send and receive messages on my behalf.", False),
        ("I further authorize this WALLET to send and receive messages on my behalf.", True),
        ("Manage notifications for this DAPP and my WALLET", False),  # DAPP is checked first
        ("xDAPPx", False),
        ("WALLET", True),
    ],
)
def test_legacy_dapp_and_wallet_statements(statement: str, all_apps: bool) -> None:
    assert authorization(_payload(statement=statement)).all_apps is all_apps


@pytest.mark.parametrize(
    "statement",
    [
        None,
        "",
        "Sign in to Example",
        "dapp",  # case-sensitive
        "wallet",
        STATEMENT_THIS_DOMAIN + " ",
        STATEMENT_THIS_DOMAIN.lower(),
        STATEMENT_ALL_DOMAINS[:-1],
        ALL_APPS_SENTENCE,  # the ReCap sentence without a ReCap
    ],
)
def test_unknown_statement_refused(statement: str | None) -> None:
    with pytest.raises(CacaoAuthorizationError):
        authorization(_payload(statement=statement))


def test_authorization_from_recap() -> None:
    all_apps = authorization(_payload(recaps=True, all_apps=True))
    assert all_apps == Authorization(ACCOUNT, True, DOMAIN)
    one = authorization(_payload(recaps=True, all_apps=False))
    assert one == Authorization(ACCOUNT, False, DOMAIN)
    assert one.allows(DOMAIN)
    assert not one.allows("other.example.com")


def test_recap_overrides_the_statement() -> None:
    # an all-apps statement with a one-domain ReCap grants one domain
    base = _payload(recaps=True, all_apps=False)
    assert base.statement is not None
    payload = dataclasses.replace(base, statement=f"{STATEMENT_ALL_DOMAINS} {base.statement}")
    assert authorization(payload).all_apps is False
    verify_cacao(_sign(payload), now=NOW)


def test_recap_sentence_is_read_from_the_signed_text() -> None:
    base = _payload(recaps=True, all_apps=True)
    # a statement without the ReCap sentence gets it appended in the signed text (utils formatMessage),
    # and identity-keys leaves the statement empty: both grant what the ReCap says
    for statement in (STATEMENT_THIS_DOMAIN, STATEMENT_ALL_DOMAINS, None):
        payload = dataclasses.replace(base, statement=statement)
        assert siwe_message(payload).count(ALL_APPS_SENTENCE) == 1
        assert authorization(payload).all_apps is True
    # a statement that has a ReCap sentence, but not as its ending, is refused
    with pytest.raises(CacaoAuthorizationError):
        authorization(dataclasses.replace(base, statement=f"{ALL_APPS_SENTENCE} trailing"))


def test_recap_for_another_domain_refused() -> None:
    base = _payload(recaps=True, all_apps=False)
    with pytest.raises(CacaoAuthorizationError, match="ReCap grants"):
        authorization(dataclasses.replace(base, domain="evil.example.com"))


def test_recap_sentence_of_another_recap_refused() -> None:
    one = _payload(recaps=True, all_apps=False)
    every = _payload(recaps=True, all_apps=True)
    with pytest.raises(CacaoAuthorizationError):
        authorization(dataclasses.replace(every, statement=one.statement))
    with pytest.raises(CacaoAuthorizationError):
        authorization(dataclasses.replace(one, statement=every.statement))


@pytest.mark.parametrize(
    "att",
    [
        {"https://other.example": {RECAP_ABILITY_ALL_APPS: [{}]}},  # not the notify resource
        {RECAP_NOTIFY_RESOURCE: {"read/all-apps-notifications": [{}]}},
        {RECAP_NOTIFY_RESOURCE: {"manage/everything": [{}]}},
    ],
)
def test_recap_without_notify_ability_refused(att: dict[str, Any]) -> None:
    recap = {"att": att}
    payload = _payload(recaps=True, statement=recap_statement(recap), resources=(KSU, encode_recap(recap)))
    with pytest.raises(CacaoAuthorizationError):
        authorization(payload)


def test_authorization_allows() -> None:
    limited = Authorization(ACCOUNT, False, "App.Example.com")
    assert limited.allows("app.example.com")
    assert limited.allows("APP.EXAMPLE.COM")
    assert not limited.allows("example.com")
    assert not limited.allows("app.example.com.evil")
    assert not limited.allows("")
    every = Authorization(ACCOUNT, True, DOMAIN)
    assert every.allows("anything.example")
    assert every.allows(DOMAIN)


# ------------------------------------------------------------------------------------- registration


@pytest.mark.parametrize("recaps", [False, True])
@pytest.mark.parametrize("all_apps", [False, True])
def test_prepare_registration_signs_and_verifies(recaps: bool, all_apps: bool) -> None:
    eth = EthAccount.create()
    account = Account("eip155", "10", eth.address)
    identity = Ed25519KeyPair.generate()
    payload = prepare_registration(
        recaps=recaps,
        account=account,
        domain="localhost:3000",
        identity_public_key=identity.public_key,
        keys_server_url="http://127.0.0.1:8556",
        all_apps=all_apps,
        nonce=NONCE,
        now=NOW + 0.25,
    )
    assert payload.iss == account.did_pkh
    assert payload.version == "1"
    assert payload.nonce == NONCE
    assert payload.iat == "2023-11-14T22:13:20.250Z"
    assert payload.resources is not None
    assert payload.resources[0] == "http://127.0.0.1:8556"
    assert len(payload.resources) == (2 if recaps else 1)
    cacao = Cacao(payload, sign_eip191(siwe_message(payload), eth.key))
    verify_cacao(Cacao.from_dict(cacao.to_dict()), now=NOW)
    assert identity_key(payload) == encode_did_key(identity.public_key)
    assert authorization(payload) == Authorization(account, all_apps, "localhost:3000")
    assert authorization(payload).allows("localhost:3000")
    assert authorization(payload).allows("other.example") is all_apps
    if not recaps:
        assert payload.aud == encode_did_key(identity.public_key)
        assert payload.statement == (STATEMENT_ALL_DOMAINS if all_apps else STATEMENT_THIS_DOMAIN)


def test_iso_timestamp() -> None:
    assert iso_timestamp(NOW) == IAT
    assert iso_timestamp(NOW + 0.1239) == "2023-11-14T22:13:20.123Z"
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------------------ property tests

# one line of text: anything but a line feed (and lone surrogates, which cannot be UTF-8 encoded)
LINE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r"), max_size=60)
FIELD = LINE.filter(bool)
RESOURCE = LINE.filter(lambda r: "urn:recap:" not in r)
TIMESTAMP = st.integers(min_value=0, max_value=4_000_000_000).map(iso_timestamp)
KEYS = [EthAccount.create() for _ in range(4)]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    key_index=st.sampled_from(range(len(KEYS))),
    chain=st.integers(min_value=1, max_value=2**32),
    lower=st.booleans(),
    domain=FIELD,
    aud=FIELD,
    nonce=FIELD,
    statement=st.none() | LINE,
    iat=TIMESTAMP,
    exp_delta=st.none() | st.integers(min_value=1, max_value=10**8),
    nbf_delta=st.none() | st.integers(min_value=0, max_value=10**8),
    request_id=st.none() | LINE,
    resources=st.none() | st.lists(RESOURCE, max_size=4).map(tuple),
)
def test_property_random_payloads_round_trip_sign_and_verify(
    key_index: int,
    chain: int,
    lower: bool,
    domain: str,
    aud: str,
    nonce: str,
    statement: str | None,
    iat: str,
    exp_delta: int | None,
    nbf_delta: int | None,
    request_id: str | None,
    resources: tuple[str, ...] | None,
) -> None:
    eth = KEYS[key_index]
    address = eth.address.lower() if lower else eth.address
    payload = CacaoPayload(
        domain=domain,
        iss=f"did:pkh:eip155:{chain}:{address}",
        aud=aud,
        version="1",
        nonce=nonce,
        iat=iat,
        statement=statement,
        exp=None if exp_delta is None else iso_timestamp(NOW + exp_delta),
        nbf=None if nbf_delta is None else iso_timestamp(NOW - nbf_delta),
        request_id=request_id,
        resources=resources,
    )
    data = Cacao(payload, sign_eip191(siwe_message(payload), eth.key)).to_dict()
    cacao = Cacao.from_dict(json.loads(json.dumps(data)))
    assert cacao.payload == payload
    assert cacao.to_dict() == data
    verify_cacao(cacao, now=NOW)
    # and the message depends on every field: another nonce no longer verifies
    forged = dataclasses.replace(cacao, payload=dataclasses.replace(payload, nonce=nonce + "0"))
    with pytest.raises(CacaoSignatureError):
        verify_cacao(forged, now=NOW)



_VALID = _sign(_payload(exp="2030-01-01T00:00:00Z")).to_dict()
_VALID_RECAP = _sign(_payload(recaps=True)).to_dict()
# values worth trying in any field: each JSON type, times, did:keys, recaps, signatures, odd URLs
ODD = st.sampled_from(
    [
        None,
        True,
        0,
        1.5,
        "",
        "1",
        [],
        {},
        [KSU],
        IAT,
        "2023-11-14T22:13:20",
        "1999-01-01T00:00:00Z",
        "2999-01-01T00:00:00Z",
        "eip191",
        "eip1271",
        "eip4361",
        IDENTITY_DID,
        "did:key:z6Mk",
        ACCOUNT.did_pkh,
        "did:pkh:solana:1:abc",
        "https://[::1?walletconnect_identity_key=" + IDENTITY_DID,
        "https://x?walletconnect_identity_key=" + IDENTITY_DID,
        encode_recap({"att": {RECAP_NOTIFY_RESOURCE: {RECAP_ABILITY_ALL_APPS: [{}]}}}),
        "urn:recap:!!",
        "urn:recap:e30",
        "\ud800",  # a lone surrogate: stdlib json.loads lets "\\ud800" through, and it cannot be UTF-8 encoded
        ALL_APPS_SENTENCE,
        STATEMENT_THIS_DOMAIN,
        "0x" + "00" * 65,
        "0x" + "1b" * 65,
        [KSU, "urn:recap:e30"],
        [IDENTITY_DID],
    ]
)
PATHS = [("h",), ("h", "t"), ("s",), ("s", "t"), ("s", "s"), ("p",)] + [("p", k) for k in _VALID_RECAP["p"]] + [
    ("p", k) for k in ("uri", "exp", "nbf", "requestId", "resources", "statement")
]


def _mutated(base: dict[str, Any], edits: list[tuple[tuple[str, ...], Any, bool]]) -> dict[str, Any]:
    result: dict[str, Any] = apply_edits(base, edits)
    return result


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    data=JSON
    | st.dictionaries(st.sampled_from(["h", "p", "s"]), JSON, max_size=3)
    | st.tuples(
        st.sampled_from([_VALID, _VALID_RECAP]),
        st.lists(st.tuples(st.sampled_from(PATHS), ODD | JSON, st.booleans()), min_size=1, max_size=3),
    ).map(lambda t: _mutated(*t)),
)
def test_property_random_json_as_cacao_only_raises_cacao_error(data: Any) -> None:
    """Random JSON, and valid CACAOs with fields replaced: only CacaoError, from parsing to authorization."""
    try:
        cacao = Cacao.from_dict(data)
    except CacaoError:
        return
    for step in (
        lambda: verify_cacao(cacao, now=NOW),
        lambda: identity_key(cacao.payload),
        lambda: authorization(cacao.payload),
        lambda: siwe_message(cacao.payload),
    ):
        with contextlib.suppress(CacaoError):
            step()


URLISH = st.text(alphabet="htps:/[]?&=#%.@1az6MkwletcéIDENTY_" + IDENTITY_DID[8:20], max_size=40)


@given(
    aud=URLISH
    | URLISH.map(lambda t: "https://" + t)
    | URLISH.map(lambda t: f"https://{t}?walletconnect_identity_key={IDENTITY_DID}")
    | LINE,
    first=st.none() | URLISH | st.just(IDENTITY_DID),
)
def test_property_identity_key_only_raises_cacao_error(aud: str, first: str | None) -> None:
    payload = _payload(aud=aud or "x", resources=None if first is None else (first,))
    try:
        found = identity_key(payload)
    except CacaoFormatError:
        return
    assert found == IDENTITY_DID  # the only valid identity key anywhere in these strings
