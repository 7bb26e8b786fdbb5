"""The SIWE (EIP-4361) text a wallet signs to register an identity key, against the official packages.

The JS side is ``NotifyClient.prepareRegistration`` of notify-client 1.4.1, constructed but never
initialised (no relay, no network), which calls ``IdentityKeys.prepareRegistration`` of identity-keys 2.1.0,
which formats the payload with ``formatMessage`` of @walletconnect/utils 2.12.2. The peer returns the
message and the payload (``cacao.p``) JS built; Python rebuilds the text from that payload and must match
byte for byte, or no signature made over one verifies over the other.

Accounts are random secp256k1 keys (addresses checksummed by ethers, as the JS wallet does), on random
chains, with random app domains, keys-server URLs and identity keys, on every run.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from eth_account import Account as EthAccount

from wcnotify.protocol.cacao import (
    Cacao,
    CacaoPayload,
    authorization,
    prepare_registration,
    recover_eip191,
    sign_eip191,
    siwe_message,
    verify_cacao,
)
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import Account, encode_did_key

pytestmark = pytest.mark.interop

RunJs = Callable[..., list[Any]]
CASES = 8
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
STATEMENT_THIS_DOMAIN = (
    "I further authorize this app to send me notifications. Read more at https://walletconnect.com/notifications"
)
STATEMENT_ALL_DOMAINS = (
    "I further authorize this app to view and manage my notifications for ALL apps. "
    "Read more at https://walletconnect.com/notifications-all-apps"
)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(os.urandom(16))


def _eth_key() -> tuple[str, str]:
    """A random secp256k1 private key (hex) and its EIP-55 address."""
    while True:
        raw = os.urandom(32)
        if 0 < int.from_bytes(raw, "big") < SECP256K1_N:
            key = "0x" + raw.hex()
            return key, EthAccount.from_key(key).address


def _domain(rng: random.Random) -> str:
    tag = secrets.token_hex(rng.randrange(2, 9))
    return rng.choice(
        [
            f"localhost:{rng.randrange(1024, 65536)}",
            f"app-{tag}.example.com",
            f"{tag}.xyz",
            f"notify.{tag}.co.uk",
            f"127.0.0.1:{rng.randrange(1024, 65536)}",
            f"{tag}.localhost",
        ]
    )


def _keyserver(rng: random.Random) -> str:
    return rng.choice(
        [
            f"http://127.0.0.1:{rng.randrange(1024, 65536)}",
            f"http://localhost:{rng.randrange(1024, 65536)}",
            f"https://keys.{secrets.token_hex(4)}.org",
            "https://keys.walletconnect.com",
            f"https://id.example.com/keys-{secrets.token_hex(3)}",
        ]
    )


def _cases(rng: random.Random) -> list[dict[str, Any]]:
    cases = []
    for i in range(CASES):
        key, address = _eth_key()
        chain = rng.choice(["1", "10", "137", "42161", "8453", str(rng.randrange(1, 10**12))])
        # one in four: the account as a wallet may pass it un-checksummed
        account_address = address.lower() if i % 4 == 3 else address
        cases.append(
            {
                "key": key,
                "address": address,
                "account": f"eip155:{chain}:{account_address}",
                "domain": _domain(rng),
                "keyserverUrl": _keyserver(rng),
                "allApps": rng.random() < 0.5,
                # most with a pinned identity key, some with identity-keys' own random one
                "identitySeed": secrets.token_hex(32) if i % 3 else None,
            }
        )
    return cases


def _siwe_op(case: dict[str, Any], op: str = "siwe") -> dict[str, Any]:
    request = {k: case[k] for k in ("account", "domain", "keyserverUrl", "allApps")}
    if case["identitySeed"] is not None:
        request["identitySeed"] = case["identitySeed"]
    return {"op": op, **request}


def test_identity_keys_siwe_text_equals_python(run_js: RunJs, rng: random.Random) -> None:
    cases = _cases(rng)
    ops: list[dict[str, Any]] = []
    for case in cases:
        ops += [{"op": "ethAddress", "privateKey": case["key"]}, _siwe_op(case)]
    results = run_js(ops)
    for case, js_address, js in zip(cases, results[0::2], results[1::2], strict=True):
        assert js_address == case["address"]  # ethers and eth-account checksum alike
        payload = js["payload"]
        # the three formatters in notify-client's tree agree with each other
        assert js["message"] == js["utilsFormatMessage"] == js["cacaoFormatMessage"]
        # what identity-keys built, field by field
        assert payload["iss"] == "did:pkh:" + case["account"]
        assert payload["domain"] == case["domain"]
        assert payload["resources"] == [case["keyserverUrl"]]
        assert payload["version"] == "1"
        assert payload["statement"] == (STATEMENT_ALL_DOMAINS if case["allApps"] else STATEMENT_THIS_DOMAIN)
        assert payload["aud"] == encode_did_key(bytes.fromhex(js["identityPublicKey"]))
        if case["identitySeed"] is not None:
            assert (
                js["identityPublicKey"]
                == Ed25519KeyPair.from_seed(bytes.fromhex(case["identitySeed"])).public_key.hex()
            )
        # the point of it all: Python's text from JS's payload is byte-identical
        assert siwe_message(CacaoPayload.from_dict(payload)) == js["message"]


def test_python_prepare_registration_builds_identity_keys_payload(run_js: RunJs, rng: random.Random) -> None:
    """``prepare_registration`` with identity-keys' nonce and time gives the same payload, key order included."""
    cases = [c for c in _cases(rng) if c["identitySeed"] is not None]
    for case, js in zip(cases, run_js([_siwe_op(c) for c in cases]), strict=True):
        p = js["payload"]
        issued = datetime.fromisoformat(p["iat"].replace("Z", "+00:00")).timestamp()
        ours = prepare_registration(
            account=Account.parse(case["account"]),
            domain=case["domain"],
            identity_public_key=bytes.fromhex(js["identityPublicKey"]),
            keys_server_url=case["keyserverUrl"],
            all_apps=case["allApps"],
            nonce=p["nonce"],
            now=issued,
        )
        assert list(ours.to_dict().items()) == list(p.items())
        assert siwe_message(ours) == js["message"]


def test_eip191_signatures_cross_verify(run_js: RunJs, rng: random.Random) -> None:
    """JS (ethers, as the wallet) signs the identity-keys text -> Python recovers the account and accepts the
    CACAO; Python signs -> @walletconnect/cacao ``verifySignature`` (what registerIdentity uses) accepts it."""
    cases = _cases(rng)[:4]
    prepared = run_js([_siwe_op(c) for c in cases])
    _, stranger = _eth_key()
    ops: list[dict[str, Any]] = []
    python_sigs = []
    for case, js in zip(cases, prepared, strict=True):
        python_sig = sign_eip191(js["message"], case["key"])
        python_sigs.append(python_sig)
        chain = case["account"].rsplit(":", 1)[0]
        ops += [
            {"op": "eip191Sign", "privateKey": case["key"], "message": js["message"]},
            {
                "op": "cacaoVerifySignature",
                "address": case["address"],
                "message": js["message"],
                "signature": python_sig,
                "chainId": chain,
            },
            {
                "op": "cacaoVerifySignature",
                "address": stranger,
                "message": js["message"],
                "signature": python_sig,
                "chainId": chain,
            },
        ]
    results = run_js(ops)
    now = int(time.time())
    for case, js, python_sig, (js_sig, js_ok, js_stranger_ok) in zip(
        cases, prepared, python_sigs, zip(results[0::3], results[1::3], results[2::3], strict=True), strict=True
    ):
        assert js_sig == python_sig  # RFC 6979: both sides sign deterministically
        assert recover_eip191(js["message"], js_sig) == case["address"]
        verify_cacao(Cacao(CacaoPayload.from_dict(js["payload"]), js_sig), now=now)
        assert js_ok is True
        assert js_stranger_ok is False


def test_identity_keys_recaps_siwe_text_equals_python(run_js: RunJs, rng: random.Random) -> None:
    """``prepareRegistrationWithRecaps`` (the 2024 form): the text registerIdentity verifies against.

    identity-keys leaves ``statement`` undefined there; utils 2.12.2 ``formatMessage`` prints the ReCap
    sentence as the statement anyway. notify-client's ``register`` then refuses a payload without a statement,
    so the wallet has to put one in: with the printed sentence as ``statement`` the text is unchanged (utils
    does not append the sentence twice), and that is the payload the grant is read from."""
    cases = _cases(rng)
    for case in cases:
        case["identitySeed"] = case["identitySeed"] or secrets.token_hex(32)
    results = run_js([_siwe_op(c, "siweRecaps") for c in cases])
    filled = []
    for case, js in zip(cases, results, strict=True):
        p = js["payload"]
        assert "statement" not in p
        assert siwe_message(CacaoPayload.from_dict(p)) == js["message"]
        ours = prepare_registration(
            recaps=True,
            account=Account.parse(case["account"]),
            domain=case["domain"],
            identity_public_key=bytes.fromhex(js["identityPublicKey"]),
            keys_server_url=case["keyserverUrl"],
            all_apps=case["allApps"],
            nonce=p["nonce"],
            now=datetime.fromisoformat(p["iat"].replace("Z", "+00:00")).timestamp(),
        )
        assert ours.aud == p["aud"]
        assert ours.statement is None
        assert list(ours.resources or ()) == p["resources"]
        assert siwe_message(ours) == js["message"]
        filled.append({**p, "statement": js["message"].split("\n")[3]})
    refilled = run_js([{"op": "formatMessage", "payload": p} for p in filled])
    for case, js, p, js_message in zip(cases, results, filled, refilled, strict=True):
        assert js_message == js["message"]
        payload = CacaoPayload.from_dict(p)
        assert siwe_message(payload) == js["message"]
        grant = authorization(payload)
        assert grant.all_apps == case["allApps"]
        assert grant.allows(case["domain"])


def test_utils_format_message_on_varied_payloads(run_js: RunJs, rng: random.Random) -> None:
    """utils 2.12.2 ``formatMessage`` (identity-keys' formatter) on payload shapes identity-keys does not
    produce itself but a keys server may receive: no statement, empty statement, no/empty/many resources,
    ``uri`` instead of ``aud``. (Not covered: exp/nbf/requestId; utils 2.12.2 does not print them.)"""
    payloads = []
    for i in range(12):
        _, address = _eth_key()
        p: dict[str, Any] = {
            "aud": encode_did_key(Ed25519KeyPair.generate().public_key),
            "domain": _domain(rng),
            "iss": f"did:pkh:eip155:{rng.randrange(1, 10**6)}:{address}",
            "nonce": secrets.token_hex(rng.choice([8, 16, 32])),
            "iat": datetime.fromtimestamp(rng.randrange(10**9, 2 * 10**9)).astimezone().isoformat(),
            "version": "1",
        }
        shape = i % 6
        if shape == 0:
            p["statement"] = rng.choice([STATEMENT_THIS_DOMAIN, STATEMENT_ALL_DOMAINS])
            p["resources"] = [_keyserver(rng)]
        elif shape == 1:
            p["statement"] = ""
            p["resources"] = [_keyserver(rng), "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq"]
        elif shape == 2:
            p["resources"] = []
        elif shape == 3:
            p["statement"] = "Sign in ✓ — ünïcödé"
        elif shape == 4:
            p["uri"] = p.pop("aud")
            p["resources"] = [_keyserver(rng)]
        else:
            p["statement"] = rng.choice([STATEMENT_THIS_DOMAIN, "x"])
            p["resources"] = [_keyserver(rng) for _ in range(rng.randrange(2, 5))]
        payloads.append(p)
    results = run_js([{"op": "formatMessage", "payload": p} for p in payloads])
    for p, js_message in zip(payloads, results, strict=True):
        assert siwe_message(CacaoPayload.from_dict(p)) == js_message, p
