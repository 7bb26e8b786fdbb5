"""The keys server over real sockets, on SQLite and PostgreSQL: register, resolve, unregister, and every way
a request can be wrong (forged or tampered CACAOs, bad idAuth JWTs, malformed or oversized bodies).

Wallets here are real secp256k1 keys (eth-account) signing the SIWE text ``prepare_registration`` builds,
exactly as a wallet signs what identity-keys shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from eth_account import Account as EthAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import JSON, apply_edits
from wcnotify.keys import KeysClient, KeysClientError, KeysConfig, KeysServer
from wcnotify.protocol.cacao import Cacao, CacaoPayload, prepare_registration, sign_eip191, siwe_message
from wcnotify.protocol.crypto import Ed25519KeyPair
from wcnotify.protocol.did import Account, encode_did_key
from wcnotify.protocol.jwt import UnregisterIdentityClaims, encode_jwt
from wcnotify.spec import KEYS_MAX_BODY_BYTES

from .threaded import in_thread

# ------------------------------------------------------------------------------------------ helpers


@dataclasses.dataclass
class Wallet:
    """One account (a secp256k1 key) that signs registrations for identity keys."""

    eth_key: str
    account: Account

    @classmethod
    def new(cls, chain: str = "1") -> Wallet:
        key = "0x" + os.urandom(32).hex()
        return cls(key, Account("eip155", chain, EthAccount.from_key(key).address))

    def on_chain(self, chain: str) -> Wallet:
        return Wallet(self.eth_key, Account("eip155", chain, self.account.address))

    def payload(
        self, identity: Ed25519KeyPair, keys_url: str, *, all_apps: bool = False, recaps: bool = False,
        domain: str = "app.example.com",
    ) -> CacaoPayload:
        return prepare_registration(
            account=self.account, domain=domain, identity_public_key=identity.public_key, keys_server_url=keys_url,
            all_apps=all_apps, nonce=os.urandom(32).hex(), now=time.time(), recaps=recaps,
        )

    def sign(self, payload: CacaoPayload) -> Cacao:
        return Cacao(payload, sign_eip191(siwe_message(payload), self.eth_key))

    def registration(self, identity: Ed25519KeyPair, keys_url: str, **kwargs: Any) -> Cacao:
        return self.sign(self.payload(identity, keys_url, **kwargs))

    def unregister_jwt(
        self, identity: Ed25519KeyPair, aud: str, *, iat: int | None = None, exp: int | None = None, **extra: Any
    ) -> str:
        now = int(time.time())
        claims = {
            "iat": now if iat is None else iat, "exp": now + 3600 if exp is None else exp,
            "iss": encode_did_key(identity.public_key), "aud": aud, "pkh": self.account.did_pkh,
            "act": "unregister_identity", "sub": "identity_keys", **extra,
        }
        return encode_jwt(claims, identity)


def multibase(identity: Ed25519KeyPair) -> str:
    return encode_did_key(identity.public_key).removeprefix("did:key:")


@contextlib.asynccontextmanager
async def running_keys(database_url: str, **config: Any) -> AsyncIterator[KeysServer]:
    async with KeysServer(KeysConfig(port=0, database_url=database_url, **config)) as server:
        yield server


@pytest.fixture
async def keys(database_url: str) -> AsyncIterator[KeysServer]:
    async with running_keys(database_url) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


def failure(response: httpx.Response, status: int, name: str) -> str:
    """Assert the FAILURE envelope with ``status`` and ``name``; return the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "FAILURE" and body["value"] is None, body
    assert body["error"]["name"] == name, body
    return str(body["error"]["message"])


async def post_cacao(http: httpx.AsyncClient, keys: KeysServer, cacao: Cacao | dict[str, Any]) -> httpx.Response:
    data = cacao.to_dict() if isinstance(cacao, Cacao) else cacao
    return await http.post(f"{keys.url}/identity", json={"cacao": data})


async def delete_identity(http: httpx.AsyncClient, keys: KeysServer, body: Any) -> httpx.Response:
    return await http.request("DELETE", f"{keys.url}/identity", json=body)


# ------------------------------------------------------------------------------------- round trip


async def test_register_resolve_unregister_round_trip(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    cacao = wallet.registration(identity, keys.url, all_apps=True)
    async with KeysClient(keys.url, http) as client:
        await client.register(cacao)
        assert await keys.keys.store.count() == 1
        resolved = await client.resolve(encode_did_key(identity.public_key))
        assert resolved == cacao
        assert await client.resolve(multibase(identity)) == cacao  # bare multibase, as identity-keys asks

        raw = await http.get(f"{keys.url}/identity", params={"publicKey": multibase(identity)})
        assert raw.status_code == 200
        assert raw.json() == {"status": "SUCCESS", "error": None, "value": {"cacao": cacao.to_dict()}}

        await client.register(cacao)  # again: idempotent
        await client.register(wallet.registration(identity, keys.url))  # a new CACAO, same key and account
        assert await client.resolve(multibase(identity)) == cacao  # the first one is kept
        assert await keys.keys.store.count() == 1

        await client.unregister_key(identity, wallet.account, now=int(time.time()))
        assert await client.resolve(multibase(identity)) is None
        assert await keys.keys.store.count() == 0
        with pytest.raises(KeysClientError) as excinfo:
            await client.unregister_key(identity, wallet.account, now=int(time.time()))
        assert excinfo.value.status == 404

    gone = await http.get(f"{keys.url}/identity", params={"publicKey": multibase(identity)})
    message = failure(gone, 404, "Identity key not found")
    assert message == f"Cannot find Identity key with specified identifier {multibase(identity)}"


async def test_cacao_is_served_exactly_as_registered(keys: KeysServer, http: httpx.AsyncClient) -> None:
    """Extra fields and key order survive: the server stores what it was given, not its own re-encoding."""
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    data = wallet.registration(identity, keys.url).to_dict()
    data = {"s": data["s"], "p": {**data["p"], "x-extension": [1, {"a": None}]}, "h": data["h"], "extra": True}
    assert (await post_cacao(http, keys, data)).status_code == 200
    raw = await http.get(f"{keys.url}/identity", params={"publicKey": multibase(identity)})
    served = raw.json()["value"]["cacao"]
    assert served == data and list(served) == list(data) and list(served["p"]) == list(data["p"])


async def test_recap_registration_is_accepted(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new("10"), Ed25519KeyPair.generate()
    cacao = wallet.registration(identity, keys.url, recaps=True)
    assert cacao.payload.aud.startswith("https://app.example.com?walletconnect_identity_key=did:key:z6Mk")
    assert (await post_cacao(http, keys, cacao)).json() == {"status": "SUCCESS", "error": None, "value": None}
    async with KeysClient(keys.url, http) as client:
        assert await client.resolve(multibase(identity)) == cacao


async def test_statement_is_not_checked_at_registration(keys: KeysServer, http: httpx.AsyncClient) -> None:
    """As the reference: any signed CACAO for an Ed25519 key registers; the notify server judges the grant."""
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    payload = dataclasses.replace(wallet.payload(identity, keys.url), statement="Sign in to Example.")
    assert (await post_cacao(http, keys, wallet.sign(payload))).status_code == 200


async def test_resolve_accepts_did_key_prefix_and_refuses_bad_keys(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    await post_cacao(http, keys, wallet.registration(identity, keys.url))
    with_prefix = await http.get(f"{keys.url}/identity", params={"publicKey": encode_did_key(identity.public_key)})
    assert with_prefix.status_code == 200
    x25519 = encode_did_key(os.urandom(32), "X25519")
    for bad in ("z6Mk", "not-a-key", x25519, multibase(identity) + "x", "z" + "1" * 300):
        failure(await http.get(f"{keys.url}/identity", params={"publicKey": bad}), 400, "did")
    failure(await http.get(f"{keys.url}/identity"), 400, "validation")
    failure(await http.get(f"{keys.url}/identity", params={"publicKey": ""}), 400, "validation")
    unknown = Ed25519KeyPair.generate()
    missing = await http.get(f"{keys.url}/identity", params={"publicKey": multibase(unknown)})
    failure(missing, 404, "Identity key not found")


# ------------------------------------------------------------------------------------ registration


async def test_key_of_another_account_is_a_conflict(keys: KeysServer, http: httpx.AsyncClient) -> None:
    alice, mallory, identity = Wallet.new(), Wallet.new(), Ed25519KeyPair.generate()
    assert (await post_cacao(http, keys, alice.registration(identity, keys.url))).status_code == 200
    message = failure(await post_cacao(http, keys, mallory.registration(identity, keys.url)), 409, "conflict")
    assert "another account" in message and str(alice.account) in message
    # the same address on another chain is the same account: idempotent, not a conflict
    assert (await post_cacao(http, keys, alice.on_chain("137").registration(identity, keys.url))).status_code == 200
    async with KeysClient(keys.url, http) as client:
        served = await client.resolve(multibase(identity))
    assert served is not None and served.payload.account == alice.account


async def test_forged_signature_is_refused(keys: KeysServer, http: httpx.AsyncClient) -> None:
    alice, mallory, identity = Wallet.new(), Wallet.new(), Ed25519KeyPair.generate()
    payload = alice.payload(identity, keys.url)
    forged = Cacao(payload, sign_eip191(siwe_message(payload), mallory.eth_key))
    assert "not made by the iss account" in failure(await post_cacao(http, keys, forged), 400, "cacao")
    garbage = Cacao(payload, "0x" + "ab" * 65)
    failure(await post_cacao(http, keys, garbage), 400, "cacao")
    short = Cacao(payload, "0x1234")
    failure(await post_cacao(http, keys, short), 400, "cacao")
    assert await keys.keys.store.count() == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("domain", "evil.example.com"),
        ("nonce", "00" * 32),
        ("iat", "2020-01-01T00:00:00.000Z"),
        ("statement", "I further authorize this app to view and manage my notifications for ALL apps. "
                      "Read more at https://walletconnect.com/notifications-all-apps"),
        ("resources", ("https://keys.example.com",)),
        ("iss", "did:pkh:eip155:5:{address}"),  # another chain id is another SIWE text
    ],
)
async def test_tampered_siwe_field_is_refused(
    keys: KeysServer, http: httpx.AsyncClient, field: str, value: Any
) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    cacao = wallet.registration(identity, keys.url)
    if isinstance(value, str):
        value = value.format(address=wallet.account.address)
    tampered = dataclasses.replace(cacao, payload=dataclasses.replace(cacao.payload, **{field: value}))
    failure(await post_cacao(http, keys, tampered), 400, "cacao")
    other = Ed25519KeyPair.generate()  # and swapping in another identity key
    other_aud = encode_did_key(other.public_key)
    swapped = dataclasses.replace(cacao, payload=dataclasses.replace(cacao.payload, aud=other_aud))
    failure(await post_cacao(http, keys, swapped), 400, "cacao")
    assert await keys.keys.store.count() == 0


async def test_unsupported_header_and_signature_types(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    cacao = wallet.registration(identity, keys.url)
    assert "eip4361" in failure(
        await post_cacao(http, keys, dataclasses.replace(cacao, header_type="caip122")), 400, "cacao"
    )
    for sig_type in ("eip1271", "eip6492"):
        message = failure(
            await post_cacao(http, keys, dataclasses.replace(cacao, signature_type=sig_type)), 400, "cacao"
        )
        assert "chain RPC" in message
    failure(await post_cacao(http, keys, dataclasses.replace(cacao, signature_type="solana")), 400, "cacao")


async def test_identity_key_must_be_ed25519(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet = Wallet.new()
    payload = dataclasses.replace(
        wallet.payload(Ed25519KeyPair.generate(), keys.url),
        aud=encode_did_key(os.urandom(32), "X25519"), resources=(keys.url,),
    )
    assert "identity key" in failure(await post_cacao(http, keys, wallet.sign(payload)), 400, "cacao")


async def test_expired_cacao_is_refused(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    payload = dataclasses.replace(wallet.payload(identity, keys.url), exp="2021-01-01T00:00:00Z")
    assert "expired" in failure(await post_cacao(http, keys, wallet.sign(payload)), 400, "cacao")


# ---------------------------------------------------------------------------------- unregistration


@pytest.fixture
async def registered(keys: KeysServer, http: httpx.AsyncClient) -> tuple[Wallet, Ed25519KeyPair]:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    assert (await post_cacao(http, keys, wallet.registration(identity, keys.url))).status_code == 200
    return wallet, identity


async def test_unregister_with_millisecond_times_as_the_js_client(
    keys: KeysServer, http: httpx.AsyncClient, registered: tuple[Wallet, Ed25519KeyPair]
) -> None:
    wallet, identity = registered
    now_ms = int(time.time() * 1000)
    # identity-keys 2.1.0: iat = Date.now(), exp = jwtExp(iat) (milliseconds), aud = keyserverUrl verbatim
    token = wallet.unregister_jwt(identity, keys.url, iat=now_ms, exp=now_ms + 86_400_000)
    response = await delete_identity(http, keys, {"idAuth": token})
    assert response.status_code == 200 and response.json()["status"] == "SUCCESS"
    assert await keys.keys.store.count() == 0


@pytest.mark.parametrize("aud_form", ["localhost", "trailing-slash"])
async def test_unregister_accepts_every_local_url_as_aud(
    keys: KeysServer, http: httpx.AsyncClient, registered: tuple[Wallet, Ed25519KeyPair], aud_form: str
) -> None:
    wallet, identity = registered
    aud = f"http://localhost:{keys.port}" if aud_form == "localhost" else keys.url + "/"
    assert (await delete_identity(http, keys, {"idAuth": wallet.unregister_jwt(identity, aud)})).status_code == 200


async def test_unregister_refusals_leave_the_key(
    keys: KeysServer, http: httpx.AsyncClient, registered: tuple[Wallet, Ed25519KeyPair]
) -> None:
    wallet, identity = registered
    now = int(time.time())
    cases = [
        (wallet.unregister_jwt(identity, keys.url, iat=now - 7200, exp=now - 3600), 400, "jwt_verification", "expired"),
        (wallet.unregister_jwt(identity, "https://keys.walletconnect.com"), 400, "jwt_verification", "aud"),
        (wallet.unregister_jwt(identity, keys.url, act="register_invite"), 400, "jwt_verification", "act"),
        (wallet.unregister_jwt(identity, keys.url, iat=now + 7200), 400, "jwt_verification", "future"),
        (wallet.unregister_jwt(identity, keys.url, pkh="eip155:1:0xabc"), 400, "did", "pkh"),
        (Wallet.new().unregister_jwt(identity, keys.url), 403, "jwt_verification", "not the account"),
        (wallet.unregister_jwt(identity, keys.url)[:-4] + "AAAA", 400, "jwt_verification", "signature"),
        ("not.a.jwt", 400, "jwt_verification", "JWT"),
    ]
    for token, status, name, needle in cases:
        message = failure(await delete_identity(http, keys, {"idAuth": token}), status, name)
        assert needle in message, (needle, message)
    no_act = encode_jwt({"iat": now, "exp": now + 60, "iss": encode_did_key(identity.public_key), "aud": keys.url,
                         "pkh": wallet.account.did_pkh}, identity)
    failure(await delete_identity(http, keys, {"idAuth": no_act}), 400, "jwt_verification")
    assert await keys.keys.store.count() == 1
    # the right account on another chain may unregister (addresses are compared chain-agnostically)
    token = wallet.on_chain("8453").unregister_jwt(identity, keys.url)
    assert (await delete_identity(http, keys, {"idAuth": token})).status_code == 200


async def test_unregister_unknown_key_is_404(keys: KeysServer, http: httpx.AsyncClient) -> None:
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    failure(await delete_identity(http, keys, {"idAuth": wallet.unregister_jwt(identity, keys.url)}), 404,
            "Identity key not found")


async def test_unregister_claims_class_signs_what_the_server_accepts(
    keys: KeysServer, http: httpx.AsyncClient, registered: tuple[Wallet, Ed25519KeyPair]
) -> None:
    wallet, identity = registered
    now = int(time.time())
    claims = UnregisterIdentityClaims(iat=now, exp=now + 60, iss=encode_did_key(identity.public_key),
                                      aud=keys.url, pkh=wallet.account.did_pkh)
    assert (await delete_identity(http, keys, {"idAuth": claims.sign(identity)})).status_code == 200


# ----------------------------------------------------------------------------------- malformed input


async def test_malformed_bodies_are_400_never_500(
    keys: KeysServer, http: httpx.AsyncClient, registered: tuple[Wallet, Ed25519KeyPair]
) -> None:
    wallet, _ = registered
    good = wallet.registration(Ed25519KeyPair.generate(), keys.url).to_dict()
    url = f"{keys.url}/identity"
    bodies: list[bytes] = [
        b"", b"not json", b"[]", b"null", b'"cacao"', b"{", b'{"cacao": null}', b'{"cacao": []}', b'{"cacao": "x"}',
        b'{"cacao": {}}', b'{"cacao": {"h": {}, "p": {}, "s": {}}}', b"\xff\xfe", b'{"cacao": 1e999}',
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,  # deeper than any parser should follow
        b'{"n": 123456789012345678901234567890}',
        orjson.dumps({"cacao": {**good, "p": {**good["p"], "iss": 7}}}),
        orjson.dumps({"cacao": {**good, "p": {**good["p"], "resources": "x"}}}),
        orjson.dumps({"cacao": {**good, "p": {**good["p"], "domain": "a\nb"}}}),
        orjson.dumps({"cacao": {**good, "s": {"t": "eip191", "s": 5}}}),
        orjson.dumps({"cacao": {**good, "p": {**good["p"], "iat": "yesterday"}}}),
        orjson.dumps({"cacao": {**good, "p": {**good["p"], "iss": "did:pkh:eip155:1:0x" + "z" * 40}}}),
    ]
    for body in bodies:
        for method in ("POST", "DELETE"):
            response = await http.request(method, url, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (method, body[:80], response.text)
            assert response.json()["status"] == "FAILURE"
    for body in (b'{"idAuth": 5}', b'{"idAuth": null}', b"{}", b'{"idAuth": ["a"]}'):
        failure(await http.request("DELETE", url, content=body), 400, "validation")
    assert await keys.keys.store.count() == 1


async def test_oversized_bodies_are_413_unread(keys: KeysServer, http: httpx.AsyncClient) -> None:
    url = f"{keys.url}/identity"
    big = b'{"cacao": "' + b"a" * (KEYS_MAX_BODY_BYTES + 1) + b'"}'
    failure(await http.post(url, content=big), 413, "validation")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the cap applies while streaming
        for _ in range(100):
            yield b"a" * 4096

    failure(await http.post(url, content=chunks()), 413, "validation")
    failure(await http.request("DELETE", url, content=big), 413, "validation")
    assert await keys.keys.store.count() == 0


async def test_health_unknown_paths_and_methods_answer_with_the_envelope(
    keys: KeysServer, http: httpx.AsyncClient
) -> None:
    health = await http.get(f"{keys.url}/health")
    assert health.status_code == 200 and health.json()["status"] == "SUCCESS"
    failure(await http.get(f"{keys.url}/nope"), 404, "validation")
    failure(await http.put(f"{keys.url}/identity", content=b"{}"), 405, "validation")


async def test_concurrent_registrations_of_one_key(keys: KeysServer, http: httpx.AsyncClient) -> None:
    """Same key, two accounts, at once: exactly one wins, the other gets 409, nothing else."""
    identity = Ed25519KeyPair.generate()
    wallets = [Wallet.new() for _ in range(2)]
    cacaos = [w.registration(identity, keys.url) for w in wallets for _ in range(3)]
    responses = await asyncio.gather(*(post_cacao(http, keys, c) for c in cacaos))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 409, 409, 409], [r.text for r in responses]
    assert await keys.keys.store.count() == 1


async def test_storage_failure_is_a_500_envelope(database_url: str, http: httpx.AsyncClient) -> None:
    async with running_keys(database_url) as keys:
        await keys.keys.store.engine.dispose()
        real = keys.keys.store.engine

        class Broken:
            def connect(self) -> Any:
                raise OSError("database is gone")

            begin = connect

        keys.keys.store.engine = Broken()  # type: ignore[assignment]
        try:
            params = {"publicKey": multibase(Ed25519KeyPair.generate())}
            response = await http.get(f"{keys.url}/identity", params=params)
            assert "retry" in failure(response, 500, "unknown_error")
            assert "database is gone" not in response.text
        finally:
            keys.keys.store.engine = real


# ------------------------------------------------------------------------------ property: random JSON


def test_random_json_bodies_are_refused_and_change_nothing(database_url: str) -> None:
    with (
        in_thread(running_keys(database_url)) as (server, loop),
        httpx.Client(trust_env=False, timeout=10) as http,
    ):
        wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
        good = wallet.registration(identity, server.url).to_dict()
        assert http.post(f"{server.url}/identity", json={"cacao": good}).status_code == 200

        def count() -> int:
            return asyncio.run_coroutine_threadsafe(server.keys.store.count(), loop).result(10)

        paths = st.lists(st.sampled_from(["h", "p", "s", "t", "iss", "aud", "domain", "resources", "statement",
                                          "nonce", "version", "iat", "cacao", 0, "exp"]), min_size=1, max_size=3)

        @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                  deadline=None)
        @given(
            body=JSON | st.fixed_dictionaries({"cacao": JSON}) | st.fixed_dictionaries({"idAuth": JSON}),
            edits=st.lists(st.tuples(paths.map(tuple), JSON, st.booleans()), min_size=1, max_size=4),
            method=st.sampled_from(["POST", "DELETE"]),
        )
        def check(body: Any, edits: list[tuple[tuple[Any, ...], Any, bool]], method: str) -> None:
            before = count()
            response = http.request(method, f"{server.url}/identity", content=orjson.dumps(body))
            assert response.status_code == 400, response.text
            assert response.json()["status"] == "FAILURE"
            assert count() == before
            # a valid registration with random edits: refused (or, if the edit kept it valid, accepted), never 500
            mutated = apply_edits({"cacao": good}, [(("cacao", *path), value, delete) for path, value, delete in edits])
            content = orjson.dumps(mutated, option=orjson.OPT_NON_STR_KEYS)  # edits may put int keys in objects
            response = http.post(f"{server.url}/identity", content=content)
            assert response.status_code in (200, 400, 409), response.text
            assert count() == before

        check()


# ---------------------------------------------------------------------------------------------- CLI

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_keys_serves_health_and_registrations(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [WCNOTIFY, "keys", "--host", "127.0.0.1", "--port", str(port), "--database-url", database_url,
         "--public-url", "https://keys.example.org/", "--log-level", "warning"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(trust_env=False, timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise AssertionError(f"wcnotify keys did not become healthy:\n{out}")
                time.sleep(0.05)
            wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
            cacao = wallet.registration(identity, url)
            assert http.post(f"{url}/identity", json={"cacao": cacao.to_dict()}).status_code == 200
            served = http.get(f"{url}/identity", params={"publicKey": multibase(identity)}).json()
            assert served["value"]["cacao"] == cacao.to_dict()
            # --public-url is an accepted aud (trailing slash or not)
            token = wallet.unregister_jwt(identity, "https://keys.example.org")
            assert http.request("DELETE", f"{url}/identity", json={"idAuth": token}).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert not list(tmp_path.glob("wcnotify-keys.db*"))  # --database-url was used, not the default


def test_cli_keys_help_documents_the_default_database() -> None:
    done = subprocess.run([WCNOTIFY, "keys", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert "wcnotify-keys.db" in done.stdout and "Example: wcnotify keys" in done.stdout


async def test_double_slash_path_from_a_trailing_slash_keyserver_url(keys: KeysServer, http: httpx.AsyncClient) -> None:
    """identity-keys builds ``${keyserverUrl}/identity``: with ``http://host:port/`` configured, ``//identity``."""
    wallet, identity = Wallet.new(), Ed25519KeyPair.generate()
    cacao = wallet.registration(identity, keys.url).to_dict()
    response = await http.post(f"{keys.url}//identity", json={"cacao": cacao})
    assert response.status_code == 200
    assert (await http.get(f"{keys.url}//identity", params={"publicKey": multibase(identity)})).status_code == 200
