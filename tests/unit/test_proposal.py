"""The push proposal flow, pure part (protocol/proposal.py): wire shapes, answers, verification, Sync records.

Wire expectations are written out from protocol.md §7 and checked with the crypto primitives directly, so a
mistake shared by a builder and its reader in proposal.py still fails here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, apply_edits
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import (
    Ed25519KeyPair,
    X25519KeyPair,
    decode_envelope,
    decrypt,
    derive_sym_key,
    encode_type0,
    encode_type1,
    unseal,
)
from wcnotify.protocol.did import Account, encode_did_key
from wcnotify.protocol.jwt import (
    NotifyDeleteClaims,
    NotifyMessageClaims,
    NotifySubscriptionClaims,
    NotifyUpdateClaims,
    PushSubscriptionClaims,
    encode_jwt,
)
from wcnotify.protocol.proposal import (
    TRANSITIONS,
    AlreadySubscribed,
    AppMetadata,
    ProposalApproved,
    ProposalDeclined,
    ProposalError,
    ProposalRecord,
    ProposalRejected,
    PushProposal,
    PushProposalResult,
    Redirect,
    SubscriptionDeleted,
    SubscriptionUpdated,
    accept_approval,
    already_subscribed_error,
    approval_message,
    check_transition,
    declined_from_error,
    open_approval,
    open_pairing_answer,
    open_proposal,
    pending_record,
    proposal_message,
    refusal_message,
    rejection_error,
    verify_subscription_auth,
)
from wcnotify.protocol.sync import SyncState
from wcnotify.spec import (
    PUSH_PROPOSE_MAX_PARAMS_BYTES,
    PUSH_PROPOSE_SCOPE_MAX,
    SYNC_STORE_PUSH_PROPOSAL,
    EnvelopeType,
    ProposalStatus,
)

NOW = 1_700_000_000
KSU = "https://keys.walletconnect.com"
ACCOUNT = "eip155:1:0x2c7536e3605d9c16a7a3d7b1898e5293d45542ec"
ACCOUNT_CHECKSUMMED = "eip155:1:0x2c7536E3605D9C16a7a3D7b1898e5293d45542eC"
OTHER_ACCOUNT = "eip155:1:0x" + "11" * 20
PAIRING_TOPIC = "aa" * 32
PAIRING_KEY = bytes(range(32))
X = X25519KeyPair.from_private(bytes.fromhex("1fb63fca5c6ac731246f2f069d3bc2454345d5208254aa8ea7bffc6d110c8862"))
Z = X25519KeyPair.from_private(bytes.fromhex("36bf507903537de91f5e573666eaa69b1fa313974f23b2b59645f20fea505854"))
IDENTITY = Ed25519KeyPair.from_seed(bytes.fromhex("58e0254c211b858ef7896b00e3f36beeb13d568d47c6031c4218b87718061295"))
P = bytes.fromhex("0653ca620c7b4990392e1c53c4a51c14a2840cd20f0f1524cf435b17b6fe988c")
METADATA = {
    "name": "GM Dapp",
    "description": "Good morning, every morning.\nTwice on Sundays.",
    "url": "https://gm.walletconnect.com",
    "icons": ["https://gm.walletconnect.com/icon.png"],
    "redirect": {"native": "gm://", "universal": "https://gm.walletconnect.com/app"},
}
PARAMS = {"publicKey": X.public_key.hex(), "metadata": METADATA, "account": ACCOUNT, "scope": ["gm", "promotions"]}
REQUEST_ID = 1_700_000_000_000_123


def proposal() -> PushProposal:
    return PushProposal.from_params(PARAMS)


def subscription_jwt(**overrides: Any) -> str:
    claims: dict[str, Any] = {
        "iat": NOW, "exp": NOW + 300, "iss": encode_did_key(IDENTITY.public_key), "aud": "did:key:z6MkDapp",
        "sub": "did:pkh:" + ACCOUNT_CHECKSUMMED, "ksu": KSU, "app": "did:web:gm.walletconnect.com",
        "scp": "0b1e7a9c-0000-4000-8000-000000000001",
    }
    claims.update(overrides)
    return NotifySubscriptionClaims.from_claims({**claims, "act": "notify_subscription"}).sign(IDENTITY)


# -------------------------------------------------------------------------------------- wire shapes


def test_request_is_exactly_the_documented_json():
    encoded = jsonrpc.encode(proposal().to_request(REQUEST_ID))
    assert orjson.loads(encoded) == {"id": REQUEST_ID, "jsonrpc": "2.0", "method": "wc_pushPropose", "params": PARAMS}
    assert list(orjson.loads(encoded)["params"]) == ["publicKey", "metadata", "account", "scope"]
    assert encoded.startswith(b'{"id":1700000000000123,"jsonrpc":"2.0","method":"wc_pushPropose","params":{"pub')


def test_proposal_goes_on_the_pairing_topic_as_type0_tag_4010():
    request = proposal().to_request(REQUEST_ID)
    out = proposal_message(PAIRING_TOPIC, PAIRING_KEY, request, random=lambda n: b"\x07" * n)
    assert (out.topic, out.tag, out.ttl) == (PAIRING_TOPIC, 4010, 86400)
    env = decode_envelope(out.message)
    assert env.type == EnvelopeType.TYPE_0 and env.iv == b"\x07" * 12
    assert unseal(PAIRING_KEY, env.iv, env.sealed) == jsonrpc.encode(request)
    assert open_proposal(out.message, PAIRING_KEY) == (REQUEST_ID, proposal())


def test_response_topic_is_sha256_of_x_public_key():
    assert proposal().response_topic == hashlib.sha256(X.public_key).hexdigest()


def test_approval_is_type1_from_z_on_sha256_x_tag_4011():
    result = PushProposalResult(subscription_jwt(), P)
    out = approval_message(proposal(), REQUEST_ID, result, Z)
    assert (out.topic, out.tag, out.ttl) == (hashlib.sha256(X.public_key).hexdigest(), 4011, 86400)
    env = decode_envelope(out.message)
    assert env.type == EnvelopeType.TYPE_1 and env.sender_public_key == Z.public_key
    # the dapp's side of the key agreement opens it: HKDF(X25519(X, Z))
    plaintext = unseal(derive_sym_key(X.private_key, Z.public_key), env.iv, env.sealed)
    assert orjson.loads(plaintext) == {
        "id": REQUEST_ID, "jsonrpc": "2.0",
        "result": {"subscriptionAuth": subscription_jwt(), "subscriptionSymKey": P.hex()},
    }
    sender, opened = open_approval(out.message, X, REQUEST_ID)
    assert sender == Z.public_key and opened == result and opened.notify_topic == hashlib.sha256(P).hexdigest()


def test_rejection_and_existing_subscription_messages_are_exact():
    reject = rejection_error(REQUEST_ID, "not interested")
    assert jsonrpc.to_object(reject) == {
        "id": REQUEST_ID, "jsonrpc": "2.0", "error": {"code": 5000, "message": "User rejected. Reason: not interested."}
    }
    existing = already_subscribed_error(REQUEST_ID)
    assert jsonrpc.to_object(existing)["error"] == {
        "code": 6001, "message": "User has existing notify subscription with dapp."
    }
    out = refusal_message(PAIRING_TOPIC, PAIRING_KEY, reject)
    assert (out.topic, out.tag, out.ttl) == (PAIRING_TOPIC, 4011, 86400)
    assert decode_envelope(out.message).type == EnvelopeType.TYPE_0
    assert orjson.loads(decrypt(out.message, PAIRING_KEY)) == jsonrpc.to_object(reject)


# ----------------------------------------------------------------------------------------- refusals


def test_declined_errors_map_to_their_classes():
    rejected = declined_from_error(rejection_error(1, "too many emails"))
    assert type(rejected) is ProposalRejected and rejected.reason == "too many emails" and rejected.code == 5000
    bare = declined_from_error(jsonrpc.Error(1, 5000, "User rejected."))
    assert type(bare) is ProposalRejected and bare.reason == "" and bare.message == "User rejected."
    existing = declined_from_error(already_subscribed_error(1))
    assert type(existing) is AlreadySubscribed and existing.code == 6001
    other = declined_from_error(jsonrpc.Error(1, 1000, "Invalid proposal."))
    assert type(other) is ProposalDeclined and (other.code, other.message) == (1000, "Invalid proposal.")
    huge = declined_from_error(jsonrpc.Error(1, 7002, "x" * 100_000))
    assert len(huge.message) < 1000


@given(st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.just("\n"), max_size=80))
def test_rejection_reason_round_trips(reason: str):
    declined = declined_from_error(rejection_error(7, reason))
    assert isinstance(declined, ProposalRejected) and declined.reason == reason


def test_rejection_reason_is_bounded_and_printable():
    with pytest.raises(ProposalError, match="at most 512"):
        rejection_error(1, "r" * 513)
    with pytest.raises(ProposalError, match="control characters"):
        rejection_error(1, "bell\x07")


def test_pairing_answers_other_than_our_refusals_read_as_none():
    own_request = proposal_message(PAIRING_TOPIC, PAIRING_KEY, proposal().to_request(REQUEST_ID))
    assert open_pairing_answer(own_request.message, PAIRING_KEY, {REQUEST_ID}) is None
    someone_elses = refusal_message(PAIRING_TOPIC, PAIRING_KEY, rejection_error(99, "no"))
    assert open_pairing_answer(someone_elses.message, PAIRING_KEY, {REQUEST_ID}) is None
    ours = refusal_message(PAIRING_TOPIC, PAIRING_KEY, already_subscribed_error(REQUEST_ID))
    answer = open_pairing_answer(ours.message, PAIRING_KEY, {REQUEST_ID})
    assert answer is not None and answer[0] == REQUEST_ID and isinstance(answer[1], AlreadySubscribed)
    with pytest.raises(ProposalError, match="cannot open"):
        open_pairing_answer(ours.message, bytes(32), {REQUEST_ID})


# ------------------------------------------------------------------------------------ opening answers


def test_answers_that_are_not_the_approval_are_refused():
    result = PushProposalResult(subscription_jwt(), P)
    good = approval_message(proposal(), REQUEST_ID, result, Z)
    with pytest.raises(ProposalError, match="not 1"):
        open_approval(good.message, X, 1)
    with pytest.raises(ProposalError, match=r"not .1700000000000123."):
        open_approval(good.message, X, str(REQUEST_ID))  # an id keeps its JSON type
    with pytest.raises(ProposalError, match="cannot open"):
        open_approval(good.message, X25519KeyPair.generate(), REQUEST_ID)
    with pytest.raises(ProposalError, match="type 1"):
        open_approval(encode_type0(P, b"{}"), X, REQUEST_ID)
    with pytest.raises(ProposalError, match=r"cannot open the answer: not base64"):
        open_approval("%%%garbage", X, REQUEST_ID)

    def type1(payload: dict[str, Any]) -> str:
        return encode_type1(derive_sym_key(Z.private_key, X.public_key), Z.public_key, orjson.dumps(payload))

    with pytest.raises(ProposalError, match="request"):
        open_approval(type1({"id": REQUEST_ID, "jsonrpc": "2.0", "method": "wc_pushPropose", "params": {}}), X,
                      REQUEST_ID)
    with pytest.raises(ProposalError, match="JSON-RPC"):
        open_approval(type1({"id": REQUEST_ID}), X, REQUEST_ID)
    with pytest.raises(ProposalError, match="subscriptionSymKey"):
        open_approval(type1({"id": REQUEST_ID, "jsonrpc": "2.0", "result": {"subscriptionAuth": subscription_jwt(),
                                                                             "subscriptionSymKey": "00"}}),
                      X, REQUEST_ID)
    with pytest.raises(ProposalError, match="not a JWT"):
        open_approval(type1({"id": REQUEST_ID, "jsonrpc": "2.0", "result": {"subscriptionAuth": "nope",
                                                                             "subscriptionSymKey": P.hex()}}),
                      X, REQUEST_ID)
    _, declined = open_approval(type1(jsonrpc.to_object(rejection_error(REQUEST_ID, "later"))), X, REQUEST_ID)
    assert isinstance(declined, ProposalRejected) and declined.reason == "later"


def test_result_repr_hides_the_key():
    assert P.hex() not in repr(PushProposalResult(subscription_jwt(), P))


# ------------------------------------------------------------------------------ subscriptionAuth checks


def test_subscription_auth_is_verified_for_account_and_app():
    claims = verify_subscription_auth(subscription_jwt(), proposal(), NOW)
    assert claims["act"] == "notify_subscription"
    # the same address on another chain is the same account (the notify server compares chain-agnostically)
    verify_subscription_auth(subscription_jwt(sub="did:pkh:eip155:137:" + ACCOUNT.split(":")[2]), proposal(), NOW)
    cases = {
        "other account": (subscription_jwt(sub="did:pkh:" + OTHER_ACCOUNT), "not the proposed account"),
        "not a did:pkh": (subscription_jwt(sub=ACCOUNT), "did:pkh"),
        "other app": (subscription_jwt(app="did:web:evil.example"), "evil.example, not the proposing app"),
        "app missing": (subscription_jwt(app="https://gm.walletconnect.com"), "did:web"),
        "expired": (subscription_jwt(exp=NOW - 301), "expired"),
    }
    for token, message in cases.values():
        with pytest.raises(ProposalError, match=message):
            verify_subscription_auth(token, proposal(), NOW)


def test_subscription_auth_signature_and_act_are_checked():
    token = subscription_jwt()
    head, body, sig = token.split(".")
    other_key = Ed25519KeyPair.generate()
    resigned = encode_jwt({**orjson.loads(_b64(body)), "iss": encode_did_key(IDENTITY.public_key)}, other_key)
    with pytest.raises(ProposalError, match="signature"):
        verify_subscription_auth(resigned, proposal(), NOW)
    with pytest.raises(ProposalError, match="signature"):
        verify_subscription_auth(f"{head}.{body}.{sig[:-4]}AAAA", proposal(), NOW)
    update = NotifyUpdateClaims(
        iat=NOW, exp=NOW + 300, iss=encode_did_key(IDENTITY.public_key), aud="did:key:z6MkDapp",
        sub="did:pkh:" + ACCOUNT, ksu=KSU, app="did:web:gm.walletconnect.com", scp="x",
    ).sign(IDENTITY)
    with pytest.raises(ProposalError, match="act must be one of push_subscription, notify_subscription"):
        verify_subscription_auth(update, proposal(), NOW)


def test_push_era_subscription_auth_binds_through_aud():
    def push_jwt(aud: str) -> str:
        # the JS Push client's exp: iat plus 86,400,000 (milliseconds added to seconds)
        return PushSubscriptionClaims(
            iat=NOW, exp=NOW + 86_400_000, iss=encode_did_key(IDENTITY.public_key), aud=aud,
            sub="did:pkh:" + ACCOUNT, ksu=KSU, scp="gm promotions",
        ).sign(IDENTITY)

    assert verify_subscription_auth(push_jwt("https://gm.walletconnect.com"), proposal(), NOW)["scp"] == "gm promotions"
    assert verify_subscription_auth(push_jwt("https://GM.walletconnect.com/"), proposal(), NOW)
    with pytest.raises(ProposalError, match=r"other\.example, not the proposing app"):
        verify_subscription_auth(push_jwt("https://other.example"), proposal(), NOW)
    with pytest.raises(ProposalError, match="http"):
        verify_subscription_auth(push_jwt("did:web:gm.walletconnect.com"), proposal(), NOW)


def test_accept_approval_keeps_what_the_dapp_needs():
    result = PushProposalResult(subscription_jwt(), P)
    approved = accept_approval(
        proposal(), REQUEST_ID, pairing_topic=PAIRING_TOPIC, wallet_public_key=Z.public_key, result=result, now=NOW
    )
    assert approved.sym_key == P and approved.topic == hashlib.sha256(P).hexdigest()
    assert approved.account == Account.parse(ACCOUNT_CHECKSUMMED)
    assert approved.scope == ("0b1e7a9c-0000-4000-8000-000000000001",)
    assert P.hex() not in repr(approved)
    with pytest.raises(ProposalError, match="not the proposed account"):
        accept_approval(
            proposal(), REQUEST_ID, pairing_topic=PAIRING_TOPIC, wallet_public_key=Z.public_key,
            result=PushProposalResult(subscription_jwt(sub="did:pkh:" + OTHER_ACCOUNT), P), now=NOW,
        )


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# ---------------------------------------------------------------------------- notify topic events


def approved() -> ProposalApproved:
    return accept_approval(
        proposal(), REQUEST_ID, pairing_topic=PAIRING_TOPIC, wallet_public_key=Z.public_key,
        result=PushProposalResult(subscription_jwt(), P), now=NOW,
    )


def on_topic(payload: dict[str, Any], key: bytes = P) -> str:
    return encode_type0(key, orjson.dumps(payload))


def wallet_jwt(cls: type, key: Ed25519KeyPair = IDENTITY, **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "iat": NOW, "exp": NOW + 300, "iss": encode_did_key(key.public_key), "aud": "did:key:z6MkDapp",
        "sub": "did:pkh:" + ACCOUNT, "ksu": KSU, "app": "did:web:gm.walletconnect.com",
    }
    if cls is NotifyUpdateClaims:
        claims["scp"] = "id-1 id-2"
    claims.update(overrides)
    return cls(**claims).sign(key)


def test_update_and_delete_are_read_and_verified():
    update = wallet_jwt(NotifyUpdateClaims)
    event = approved().read_event(
        on_topic({"id": 5, "jsonrpc": "2.0", "method": "wc_notifyUpdate", "params": {"updateAuth": update}}), NOW
    )
    assert isinstance(event, SubscriptionUpdated) and event.scope == ("id-1", "id-2") and event.request_id == 5
    assert event.jwt == update and event.claims.sub == "did:pkh:" + ACCOUNT
    # another device of the same wallet signs with its own identity key: still the account's update
    delete = wallet_jwt(NotifyDeleteClaims, Ed25519KeyPair.generate())
    event = approved().read_event(
        on_topic({"id": 6, "jsonrpc": "2.0", "method": "wc_notifyDelete", "params": {"deleteAuth": delete}}), NOW
    )
    assert isinstance(event, SubscriptionDeleted) and event.request_id == 6


def test_what_is_not_for_the_dapp_reads_as_none():
    message = NotifyMessageClaims(
        iat=NOW, exp=NOW + 300, iss=encode_did_key(IDENTITY.public_key), sub="did:pkh:" + ACCOUNT,
        app="did:web:gm.walletconnect.com", msg={"title": "gm"},
    ).sign(IDENTITY)
    ignored = [
        {"id": 1, "jsonrpc": "2.0", "method": "wc_notifyMessage", "params": {"messageAuth": message}},
        {"id": 2, "jsonrpc": "2.0", "result": {"responseAuth": message}},
        {"id": 3, "jsonrpc": "2.0", "error": {"code": -1, "message": "nope"}},
        {"id": 4, "jsonrpc": "2.0", "method": "wc_notifyGetNotifications", "params": {"auth": message}},
    ]
    for payload in ignored:
        assert approved().read_event(on_topic(payload), NOW) is None
    assert approved().read_event("", NOW) is None  # the noop


def test_forged_or_foreign_events_are_refused():
    def update(**params: Any) -> str:
        return on_topic({"id": 9, "jsonrpc": "2.0", "method": "wc_notifyUpdate", "params": params})

    cases = [
        (update(updateAuth=wallet_jwt(NotifyUpdateClaims, sub="did:pkh:" + OTHER_ACCOUNT)), "not the proposed"),
        (update(updateAuth=wallet_jwt(NotifyUpdateClaims, app="did:web:other.example")), "not the proposing app"),
        (update(updateAuth=wallet_jwt(NotifyUpdateClaims, exp=NOW - 1000)), "expired"),
        (update(updateAuth=wallet_jwt(NotifyDeleteClaims, extra={"scp": "id-1"})), "act must be .notify_update"),
        (update(updateAuth=wallet_jwt(NotifyUpdateClaims)[:-6] + "AAAAAA"), "signature"),
        (update(subscriptionAuth=wallet_jwt(NotifyUpdateClaims)), "params.updateAuth"),
        (on_topic({"id": 1, "jsonrpc": "2.0", "method": "wc_notifyUpdate", "params": {}}, key=bytes(32)),
         "cannot open"),
        (encode_type0(P, b"not json"), "JSON-RPC"),
    ]
    for message, error in cases:
        with pytest.raises(ProposalError, match=error):
            approved().read_event(message, NOW)


# --------------------------------------------------------------------------------------- malformed


def mutate(path: tuple[Any, ...], value: Any = None, delete: bool = False) -> dict[str, Any]:
    return apply_edits(PARAMS, [(path, value, delete)])


MALFORMED = [
    (mutate(("publicKey",), delete=True), "params.publicKey is missing"),
    (mutate(("publicKey",), "ab" * 31), "params.publicKey must be 64 hex"),
    (mutate(("publicKey",), "zz" * 32), "params.publicKey must be 64 hex"),
    (mutate(("publicKey",), 7), "params.publicKey must be 64 hex"),
    (mutate(("account",), delete=True), "params.account is missing"),
    (mutate(("account",), "0x2c7536e3605d9c16a7a3d7b1898e5293d45542ec"), "CAIP-10"),
    (mutate(("account",), "eip155:1:0x1234"), "CAIP-10"),
    (mutate(("account",), ["eip155:1:0x"]), "CAIP-10 account string, not array"),
    (mutate(("metadata",), "GM"), "metadata must be an object, not string"),
    (mutate(("metadata", "name"), delete=True), "metadata.name is missing"),
    (mutate(("metadata", "name"), "   "), "metadata.name must not be empty"),
    (mutate(("metadata", "name"), "n" * 257), "metadata.name is 257 characters long; at most 256"),
    (mutate(("metadata", "name"), "tab\tname"), "metadata.name must not contain control characters"),
    (mutate(("metadata", "name"), None), "metadata.name must be a string, not null"),
    (mutate(("metadata", "description"), "d" * 2049), "metadata.description is 2049 characters"),
    (mutate(("metadata", "description"), 5), "metadata.description must be a string, not number"),
    (mutate(("metadata", "description"), "nul\x00"), "metadata.description must not contain control"),
    (mutate(("metadata", "url"), delete=True), "metadata.url is missing"),
    (mutate(("metadata", "url"), "javascript:alert(1)"), "metadata.url must be an http"),
    (mutate(("metadata", "url"), "gm.walletconnect.com"), "metadata.url must be an http"),
    (mutate(("metadata", "url"), "https://user@gm.walletconnect.com"), "metadata.url has no usable host"),
    (mutate(("metadata", "url"), "https://gm.walletconnect.com/a b"), "whitespace"),
    (mutate(("metadata", "url"), "https://" + "a" * 2050), "metadata.url is 2058 characters"),
    (mutate(("metadata", "icons"), "https://gm.walletconnect.com/i.png"), "metadata.icons must be an array"),
    (mutate(("metadata", "icons"), ["data:image/png;base64,AAAA"]), r"metadata.icons\[0\] must be an http"),
    (mutate(("metadata", "icons"), [1]), r"metadata.icons\[0\] must be a string"),
    (mutate(("metadata", "icons"), ["https://a.b/i.png"] * 17), "17 icons; at most 16"),
    (mutate(("metadata", "redirect"), "gm://"), "metadata.redirect must be an object"),
    (mutate(("metadata", "redirect", "universal"), "ftp://gm.walletconnect.com"), "redirect.universal must be"),
    (mutate(("metadata", "redirect", "native"), ""), "metadata.redirect.native must not be empty"),
    (mutate(("metadata", "redirect", "native"), "gm:// x"), "redirect.native must not contain whitespace"),
    (mutate(("scope",), delete=True), "params.scope is missing"),
    (mutate(("scope",), "gm promotions"), "params.scope must be an array of type names, not string"),
    (mutate(("scope",), []), "params.scope must name at least one"),
    (mutate(("scope",), ["gm", "gm"]), "params.scope names 'gm' twice"),
    (mutate(("scope",), ["gm", 3]), r"params.scope\[1\] must be a string, not number"),
    (mutate(("scope",), [" gm"]), r"params.scope\[0\] must not start or end with whitespace"),
    (mutate(("scope",), ["t" * 65]), r"params.scope\[0\] is 65 characters"),
    (mutate(("scope",), [f"t{i}" for i in range(PUSH_PROPOSE_SCOPE_MAX + 1)]), "65 types; at most 64"),
    (mutate(("metadata", "icons"), [f"https://gm.walletconnect.com/{'i' * 1900}{n}" for n in range(10)]),
     f"bytes; at most {PUSH_PROPOSE_MAX_PARAMS_BYTES}"),
    ([PARAMS], "params must be an object, not array"),
]


@pytest.mark.parametrize(("params", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_params_are_refused_with_a_message_naming_the_field(params: Any, message: str):
    with pytest.raises(ProposalError, match=message):
        PushProposal.from_params(params)


def test_direct_construction_is_validated_too():
    with pytest.raises(ProposalError, match="lone surrogate"):
        AppMetadata("GM \ud800", "", "https://gm.walletconnect.com")
    with pytest.raises(ProposalError, match="publicKey must be 32 bytes"):
        PushProposal(b"x", Account.parse(ACCOUNT), AppMetadata.from_json(METADATA), ("gm",))
    with pytest.raises(ProposalError, match="scope must be a tuple"):
        PushProposal(X.public_key, Account.parse(ACCOUNT), AppMetadata.from_json(METADATA), ["gm"])  # type: ignore[arg-type]
    with pytest.raises(ProposalError, match="not valid Unicode"):
        PushProposal.create(X, ACCOUNT, METADATA, ["gm\udfff"])
    with pytest.raises(ProposalError, match=r"redirect\.universal"):
        Redirect(universal="gm://")
    created = PushProposal.create(X, ACCOUNT, METADATA, ["gm", "promotions"])
    assert created == proposal() and created.metadata.domain == "gm.walletconnect.com"
    assert created.metadata.did_web == "did:web:gm.walletconnect.com"


def test_unknown_members_are_ignored_and_optional_ones_default():
    params = copy.deepcopy(PARAMS)
    params["future"] = {"x": 1}
    params["metadata"] = {"name": "GM", "url": "http://localhost:3000", "verifyUrl": "https://verify"}
    read = PushProposal.from_params(params)
    assert read.metadata == AppMetadata("GM", "", "http://localhost:3000")
    assert read.metadata.domain == "localhost:3000"
    assert PushProposal.from_params(mutate(("metadata", "redirect"), None)).metadata.redirect is None


def test_wallet_refuses_a_request_that_is_not_a_proposal():
    other = jsonrpc.Request(1, "wc_sessionPropose", PARAMS)
    message = encode_type0(PAIRING_KEY, jsonrpc.encode(other))
    with pytest.raises(ProposalError, match="expected wc_pushPropose"):
        open_proposal(message, PAIRING_KEY)
    with pytest.raises(ProposalError, match="got a response"):
        open_proposal(encode_type0(PAIRING_KEY, jsonrpc.encode(jsonrpc.Result(1, True))), PAIRING_KEY)
    with pytest.raises(ProposalError, match="cannot open"):
        open_proposal(message, bytes(32))


def test_low_order_dapp_key_cannot_be_approved():
    low_order = PushProposal(bytes(32), Account.parse(ACCOUNT), AppMetadata.from_json(METADATA), ("gm",))
    with pytest.raises(ProposalError, match="publicKey cannot be used"):
        approval_message(low_order, 1, PushProposalResult(subscription_jwt(), P))


@given(edits=st.lists(st.tuples(
    st.lists(st.sampled_from(["publicKey", "metadata", "account", "scope", "name", "description", "url", "icons",
                              "redirect", "native", "universal", 0, 1]), min_size=1, max_size=3).map(tuple),
    JSON, st.booleans()), max_size=4))
def test_any_edit_of_valid_params_parses_or_raises_proposal_error(edits: list[Any]):
    try:
        read = PushProposal.from_params(apply_edits(PARAMS, edits))
    except ProposalError:
        return
    assert PushProposal.from_params(read.to_params()) == read


# --------------------------------------------------------------------------------- round trips

names = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() == s and s != ""
)
urls = st.from_regex(r"https?://[a-z0-9]{1,12}(\.[a-z]{2,5}){0,2}(:[0-9]{1,5})?(/[a-zA-Z0-9_.~-]{0,10}){0,3}",
                     fullmatch=True)
accounts = st.from_regex(r"eip155:[0-9]{1,6}:0x[0-9a-fA-F]{40}", fullmatch=True) | st.from_regex(
    r"(solana|cosmos|polkadot):[-_a-zA-Z0-9]{1,32}:[-.%a-zA-Z0-9]{1,64}", fullmatch=True
)
metadata = st.builds(
    AppMetadata,
    name=names.filter(str.strip),
    description=st.text(st.characters(exclude_categories=("Cs", "Cc")) | st.just("\n"), max_size=120),
    url=urls,
    icons=st.lists(urls, max_size=3).map(tuple),
    redirect=st.none() | st.builds(Redirect, st.none() | st.from_regex(r"[a-z]{1,10}://[a-z/]{0,10}", fullmatch=True),
                                   st.none() | urls),
)
proposals = st.builds(
    PushProposal,
    public_key=st.binary(min_size=32, max_size=32),
    account=accounts.map(Account.parse),
    metadata=metadata,
    scope=st.lists(names, min_size=1, max_size=6, unique=True).map(tuple),
)
request_ids = st.integers(0, 2**53) | st.text(min_size=1, max_size=20)


# Generating a proposal (an ERC-55 account, metadata with URLs and icons) costs about 17 ms, so the CI profile's
# 2,000 examples made each of these two properties 35 s, the slowest tests of the suite; 500 still cover the
# strategies' shapes many times over
PROPOSAL_EXAMPLES = settings(max_examples=min(500, settings().max_examples))


@PROPOSAL_EXAMPLES
@given(proposals, request_ids)
def test_proposal_round_trips_through_the_wire(p: PushProposal, request_id: Any):
    out = proposal_message(PAIRING_TOPIC, PAIRING_KEY, p.to_request(request_id))
    assert open_proposal(out.message, PAIRING_KEY) == (request_id, p)
    assert PushProposal.from_params(orjson.loads(orjson.dumps(p.to_params()))) == p


@given(st.binary(min_size=32, max_size=32), request_ids)
def test_approval_round_trips(sym_key: bytes, request_id: Any):
    result = PushProposalResult(subscription_jwt(), sym_key)
    out = approval_message(proposal(), request_id, result)
    sender, opened = open_approval(out.message, X, request_id)
    assert opened == result and len(sender) == 32 and sender != X.public_key


# ----------------------------------------------------------------------------------- Sync records


def test_record_value_shape():
    record = pending_record(REQUEST_ID, PAIRING_TOPIC, proposal(), received_at=NOW)
    value = orjson.loads(record.to_json())
    assert value == {
        "requestId": REQUEST_ID, "pairingTopic": PAIRING_TOPIC, "publicKey": X.public_key.hex(),
        "responseTopic": proposal().response_topic, "metadata": METADATA, "account": ACCOUNT,
        "scope": ["gm", "promotions"], "status": "pending", "expiry": NOW + 86400,
    }
    assert "privateKey" not in value
    assert record.key == proposal().response_topic
    assert record.expired(NOW + 86401) and not record.expired(NOW + 86400)
    sync = record.sync_set(42)
    assert (sync.store, sync.key, sync.value, sync.id) == (SYNC_STORE_PUSH_PROPOSAL, record.key, record.to_json(), 42)


def test_record_resolution_is_final():
    pending = pending_record(REQUEST_ID, PAIRING_TOPIC, proposal(), received_at=NOW)
    approved_record = pending.as_approved(hashlib.sha256(P).hexdigest())
    assert orjson.loads(approved_record.to_json())["subscriptionTopic"] == hashlib.sha256(P).hexdigest()
    rejected = pending.as_rejected("User has existing notify subscription with dapp.")
    assert orjson.loads(rejected.to_json())["reason"] == "User has existing notify subscription with dapp."
    for resolved in (approved_record, rejected):
        with pytest.raises(ProposalError, match="cannot become"):
            resolved.as_rejected("again")
        with pytest.raises(ProposalError, match="cannot become"):
            resolved.as_approved("bb" * 32)
        with pytest.raises(ProposalError, match="cannot become pending"):
            check_transition(resolved, ProposalStatus.PENDING)
    check_transition(None, ProposalStatus.PENDING)
    with pytest.raises(ProposalError, match="a new proposal record cannot become approved"):
        check_transition(None, ProposalStatus.APPROVED)
    assert all(not TRANSITIONS[s] for s in (ProposalStatus.APPROVED, ProposalStatus.REJECTED))


def test_a_second_device_sees_the_resolution_whatever_the_order():
    pending = pending_record(REQUEST_ID, PAIRING_TOPIC, proposal(), received_at=NOW)
    resolved = pending.as_rejected("not now")
    writes = [pending.sync_set(1_700_000_000_000_001), resolved.sync_set(1_700_000_000_005_002)]
    for order in (writes, writes[::-1]):
        state = SyncState(SYNC_STORE_PUSH_PROPOSAL).apply_all(order)
        seen = ProposalRecord.from_json(state.get(pending.key), key=pending.key)
        assert seen.status == ProposalStatus.REJECTED and seen.reason == "not now" and seen == resolved


def test_malformed_records_are_refused():
    good = orjson.loads(pending_record(REQUEST_ID, PAIRING_TOPIC, proposal(), received_at=NOW).to_json())

    def edited(**changes: Any) -> str:
        return orjson.dumps({**good, **changes}).decode()

    cases = [
        (edited(responseTopic="bb" * 32), "responseTopic is not sha256"),
        (edited(status="done"), "status must be one of pending, approved, rejected"),
        (edited(status=["pending"]), "status must be one of"),
        (edited(requestId=1.5), "requestId must be a JSON-RPC id"),
        (edited(pairingTopic="AA" * 32), "pairingTopic must be a topic"),
        (edited(expiry="tomorrow"), "expiry must be unix seconds"),
        (edited(reason="why"), "reason is only for a rejected"),
        (edited(status="approved"), "subscriptionTopic must be a topic"),
        (edited(subscriptionTopic="cc" * 32), "subscriptionTopic is only for an approved"),
        (edited(scope=[]), "value.scope must name at least one"),
        ("not json", "must be JSON"),
        ("[1]", "must be an object"),
    ]
    for value, message in cases:
        with pytest.raises(ProposalError, match=message):
            ProposalRecord.from_json(value)
    with pytest.raises(ProposalError, match="under its responseTopic"):
        ProposalRecord.from_json(edited(), key="dd" * 32)
    with pytest.raises(ProposalError, match="JSON string"):
        ProposalRecord.from_json(good)


statuses = st.sampled_from([
    (ProposalStatus.PENDING, None, None),
    (ProposalStatus.APPROVED, None, "ab" * 32),
    (ProposalStatus.REJECTED, "no thanks", None),
])


@PROPOSAL_EXAMPLES
@given(proposals, request_ids, st.integers(0, 2**40), statuses)
def test_record_round_trips(p: PushProposal, request_id: Any, expiry: int, status: tuple[Any, ...]):
    record = ProposalRecord(request_id, PAIRING_TOPIC, p, expiry, *status)
    assert ProposalRecord.from_json(record.to_json(), key=p.response_topic) == record
