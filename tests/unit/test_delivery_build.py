"""``build_message`` (the delivery workers' hot loop, tuned for the fan-out bench) writes exactly the message the
plain construction writes: ``NotifyMessageClaims(...).sign(key)`` in a ``wc_notifyMessage`` request, sealed
under the subscriber's key. Ed25519 signatures are deterministic, so the JWTs must be equal byte for byte."""

from __future__ import annotations

import os

import orjson
import pytest

from wcnotify import spec
from wcnotify.notify.delivery import DELIVERY_COLUMNS, Delivery, ProjectSigner, build_message
from wcnotify.protocol import jsonrpc
from wcnotify.protocol.crypto import decrypt
from wcnotify.protocol.did import Account, did_web, encode_did_key
from wcnotify.protocol.jwt import NotifyMessageClaims


def delivery(seed: bytes, sym_key: bytes, icon: str | None, url: str | None) -> Delivery:
    return Delivery(
        id="5f0c7c52-35c5-4a8e-9d44-0c4a3c1b6f10", attempts=1, created_at=1_700_000_000_123,
        type="0b7e4c1e-8a51-4bb4-8f5e-6a1f3f2b9c11", title="Tit\u00e9 \"q\"", body="line\nbreak \\ \U0001f600",
        icon=icon, url=url, account="eip155:10:0xAbC0000000000000000000000000000000000001", sym_key=sym_key.hex(),
        topic="ab" * 32, project="p", app_domain="Example.com:8080", authentication_private=seed.hex(),
    )


def expected_plaintext(d: Delivery, signer: ProjectSigner, now: int, rpc_id: int) -> bytes:
    rpc = spec.NOTIFY_MESSAGE
    msg = {"id": d.id, "sent_at": d.created_at, "type": d.type, "title": d.title, "body": d.body,
           "icon": d.icon or "", "url": d.url or "", "is_read": False}
    jwt = NotifyMessageClaims(
        iat=now, exp=now + rpc.request_ttl, iss=encode_did_key(signer.key.public_key),
        sub=Account.parse(d.account).did_pkh, app=did_web(d.app_domain), msg=msg,
    ).sign(signer.key)
    return jsonrpc.encode(jsonrpc.Request(rpc_id, rpc.method, {rpc.params_key: jwt}))


@pytest.mark.parametrize(("icon", "url"), [(None, None), ("https://x.test/i.png", "https://x.test/a")])
def test_build_message_equals_the_plain_construction(icon: str | None, url: str | None) -> None:
    seed, sym_key = os.urandom(32), os.urandom(32)
    d = delivery(seed, sym_key, icon, url)
    signer = ProjectSigner(d.authentication_private, d.app_domain)
    for now in (1_700_000_000, 1_700_000_000, 1_700_000_007):  # the same signer across batches
        params = build_message(d, signer, now, 1_700_000_000_000_042)
        assert decrypt(params["message"], sym_key) == expected_plaintext(d, signer, now, 1_700_000_000_000_042)
        rpc = spec.NOTIFY_MESSAGE
        assert {k: v for k, v in params.items() if k != "message"} == {
            "topic": d.topic, "ttl": rpc.request_ttl, "tag": rpc.request_tag, "prompt": rpc.prompt,
        }
    # the per-batch claims template is not changed by the messages built from it
    assert signer.claims(1_700_000_007)["sub"] == "" and signer.claims(1_700_000_007)["msg"] == {}
    verified = NotifyMessageClaims.verify(
        orjson.loads(decrypt(params["message"], sym_key))["params"]["messageAuth"], now=1_700_000_007
    )
    assert verified.msg["title"] == d.title and verified.iss == signer.iss


def test_claim_columns_are_in_the_delivery_field_order() -> None:
    """A claimed row makes its Delivery positionally: the select's columns must follow the fields."""
    assert [c.name for c in DELIVERY_COLUMNS] == list(Delivery._fields)
