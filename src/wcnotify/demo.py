"""The story of one notification, told with the protocol core alone (no servers yet).

Each step is what a real party does on the wire: the dapp publishes a did:web document, the wallet registers
an identity key with a CACAO, subscribes with a type-1 envelope, both sides derive the notify key, the dapp
signs and seals a notification, the wallet opens and verifies it, and a second device derives the same Sync
store. Every step checks its own result, so the demo fails loudly if the core is broken. When the servers
exist, ``wcnotify demo`` plays the same story over real sockets.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from eth_account import Account as EthAccount

from wcnotify import spec
from wcnotify.protocol import crypto
from wcnotify.protocol.cacao import (
    Cacao,
    authorization,
    identity_key,
    prepare_registration,
    sign_eip191,
    siwe_message,
    verify_cacao,
)
from wcnotify.protocol.did import Account, build_did_document, encode_did_key, parse_did_document
from wcnotify.protocol.jwt import NotifyMessageClaims, NotifySubscriptionClaims
from wcnotify.protocol.sync import derive_store, sync_message


@dataclass(frozen=True)
class Step:
    title: str
    detail: str


def story(now: Callable[[], float] = time.time) -> Iterator[Step]:
    """Run the steps, yielding each as it succeeds; an AssertionError names the step that failed."""
    t = int(now())
    domain = "localhost:3000"
    dapp_x = crypto.X25519KeyPair.generate()
    dapp_auth = crypto.Ed25519KeyPair.generate()
    doc = build_did_document(domain, dapp_x.public_key, dapp_auth.public_key)
    keys = parse_did_document(orjson.loads(orjson.dumps(doc)))
    assert keys.key_agreement == dapp_x.public_key
    yield Step("dapp publishes did:web", f"{keys.did}, subscribe topic {keys.subscribe_topic[:16]}…")

    eth = EthAccount.create()
    account = Account("eip155", "1", eth.address)
    identity = crypto.Ed25519KeyPair.generate()
    payload = prepare_registration(
        account=account, domain=domain, identity_public_key=identity.public_key,
        keys_server_url="http://127.0.0.1:8556", all_apps=False, nonce=secrets.token_hex(32), now=t,
    )
    cacao = Cacao(payload, sign_eip191(siwe_message(payload), eth.key))
    verify_cacao(Cacao.from_dict(cacao.to_dict()), now=t)
    grant = authorization(payload)
    assert identity_key(payload) == encode_did_key(identity.public_key) and grant.allows(domain)
    yield Step("wallet registers its identity key", f"{account} signed a CACAO for {identity_key(payload)[:24]}…")

    y = crypto.X25519KeyPair.generate()
    s_key = crypto.derive_sym_key(y.private_key, keys.key_agreement)
    request = NotifySubscriptionClaims(
        iat=t, exp=t + spec.NOTIFY_SUBSCRIBE.request_ttl, iss=encode_did_key(identity.public_key),
        aud=keys.authentication_did_key, sub=account.did_pkh, ksu="http://127.0.0.1:8556",
        app=f"did:web:{domain}", scp=str(uuid.uuid4()),
    )
    body = {"id": t * 1000, "jsonrpc": "2.0", "method": spec.NOTIFY_SUBSCRIBE.method,
            "params": {"subscriptionAuth": request.sign(identity)}}
    envelope = crypto.encode_type1(s_key, y.public_key, orjson.dumps(body))
    sender, server_s, plain = crypto.decrypt_type1(envelope, dapp_x.private_key)
    received = NotifySubscriptionClaims.verify(
        orjson.loads(plain)["params"]["subscriptionAuth"], now=t, aud=keys.authentication_did_key
    )
    assert server_s == s_key and received.sub == account.did_pkh
    yield Step("wallet subscribes (type-1 envelope)", f"response topic {crypto.topic_of(s_key)[:16]}…")

    z = crypto.X25519KeyPair.generate()
    p_server = crypto.derive_sym_key(z.private_key, sender)
    p_wallet = crypto.derive_sym_key(y.private_key, z.public_key)
    assert p_server == p_wallet
    yield Step("both derive the notify key P", f"notify topic {crypto.topic_of(p_wallet)[:16]}…")

    msg = {"id": str(uuid.uuid4()), "sent_at": t * 1000, "type": request.scp, "title": "gm",
           "body": "Your first notification", "icon": "", "url": "", "is_read": False}
    note = NotifyMessageClaims(
        iat=t, exp=t + spec.NOTIFY_MESSAGE.request_ttl, iss=encode_did_key(dapp_auth.public_key),
        sub=account.did_pkh, app=f"did:web:{domain}", msg=msg,
    )
    sealed = crypto.encode_type0(p_server, orjson.dumps({"id": t, "jsonrpc": "2.0", "method":
                                 spec.NOTIFY_MESSAGE.method, "params": {"messageAuth": note.sign(dapp_auth)}}))
    opened = orjson.loads(crypto.decrypt(sealed, p_wallet))
    shown = NotifyMessageClaims.verify(opened["params"]["messageAuth"], now=t)
    assert shown.iss == keys.authentication_did_key and shown.msg["title"] == "gm"
    yield Step("dapp's notification opened and verified", f"“{shown.msg['title']}: {shown.msg['body']}”")

    signature = sign_eip191(sync_message(str(account)), eth.key)
    device1 = derive_store(signature, spec.SYNC_STORE_PUSH_SUBSCRIPTION)
    device2 = derive_store(signature, spec.SYNC_STORE_PUSH_SUBSCRIPTION)
    assert device1 == device2
    yield Step("a second device derives the same Sync store", f"store topic {device1.topic[:16]}…")
