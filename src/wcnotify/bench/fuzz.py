"""Fuzzing of the parsers at the trust boundary: every byte a peer, a dapp or a wallet can send us.

    wcnotify bench fuzz [--runs 1000000] [--targets envelope,jwt,...] [--jobs 2] [--engine atheris|builtin]
    .venv/bin/python bench/fuzz.py [same options]

Each target feeds one input to one parser (or a parser and what the service runs right after it) and
allows only that parser's documented error type(s) out: ``CryptoError`` (``EnvelopeError``), ``JwtError``,
``JsonRpcError``, ``CacaoError``, ``DidError``, ``PairingError``, ``ProposalError``, ``NotifySyncError``,
``SyncError``. Anything else that escapes is a crash: it is recorded (type, the innermost ``wcnotify`` frame,
the input) and the run goes on, so one run counts every distinct crash.

Engines:

* **atheris** (coverage-guided: libFuzzer's mutator steered by the Python line/branch coverage of the
  instrumented ``wcnotify`` modules), one subprocess per target, ``--jobs`` at a time. For targets whose input
  is JSON, a custom mutator half of the time parses the input and mutates one node of the tree (replace a value
  by an interesting one, drop or add a member, mutate a string's bytes with libFuzzer), so the fuzzer gets past
  the JSON syntax into the fields; the other half is libFuzzer's own byte mutation.
* **builtin** (no coverage guidance): the same tree mutator and a byte mutator in pure Python with a seeded
  ``random.Random``; what ``tests/unit/test_fuzz_short.py`` runs in CI for a few thousand inputs per target.

The corpus of every target is seeded from ``tests/vectors`` (known-answer inputs) and valid encodings made
here. The ceiling is the same engine and mutator running a target that does nothing, in the same run: the
ratio says how much of the time is the parser's and how much the fuzzer's own.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# ruff: noqa: PLC0415  (the protocol modules are imported lazily: atheris instruments them at import)

NOW = 1_700_000_000
_ROOT = Path(__file__).resolve().parents[3]
_VECTORS = _ROOT / "tests" / "vectors"
_MAX_LEN = 4096


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    seeds: tuple[bytes, ...]
    json: bool  # the input is JSON text: the tree mutator applies


@dataclass(frozen=True)
class Crash:
    target: str
    kind: str
    where: str
    message: str
    data: bytes = field(repr=False)

    @property
    def signature(self) -> tuple[str, str]:
        return (self.kind, self.where)


# ------------------------------------------------------------------------------------------- targets


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _json(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _SKIP


_SKIP = object()


def _vectors() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = json.loads((_VECTORS / "spec-kat.json").read_text())
    js = json.loads((_VECTORS / "walletconnect-js.json").read_text())
    return spec, js


def _dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def _claims_seed(cls: type, act: str) -> dict[str, Any]:
    """Plausible claims for one claims class, from its field annotations (a valid encoding to mutate)."""
    from wcnotify.protocol.crypto import Ed25519KeyPair
    from wcnotify.protocol.did import encode_did_key

    did = encode_did_key(Ed25519KeyPair.from_seed(bytes(32)).public_key)
    out: dict[str, Any] = {"act": act} if act else {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("extra", "act"):
            continue
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            hint = next((a for a in args if a is not type(None)), type(None))
            origin = typing.get_origin(hint)
        if f.name in ("iat", "exp"):
            out[f.name] = NOW if f.name == "iat" else NOW + 300
        elif hint is str:
            out[f.name] = did if f.name in ("iss", "aud", "sub") else "https://app.example.com"
        elif hint is int:
            out[f.name] = 1
        elif hint is bool:
            out[f.name] = True
        elif origin is list:
            out[f.name] = [{"account": "eip155:1:0x" + "11" * 20}] if f.name == "sbs" else []
        elif origin is dict or hint is dict:
            out[f.name] = {"title": "t", "body": "b", "type": "gm", "id": "1"}
        else:
            out[f.name] = None
    return out


def build_targets() -> dict[str, Target]:  # noqa: PLR0915 (one closure per target, read top to bottom)
    """The targets, built lazily so that atheris instruments the protocol modules it imports first."""
    from wcnotify.protocol import cacao, crypto, did, jsonrpc, jwt, notify_sync, pairing, proposal, sync
    from wcnotify.protocol.crypto import X25519KeyPair

    spec, js = _vectors()
    env = js["envelopes"]
    sym_key = bytes.fromhex(env["symKey"])
    receiver = X25519KeyPair.from_private(bytes.fromhex(spec["x25519"]["privB"]))
    js_receiver = X25519KeyPair.from_private(bytes.fromhex(js["x25519"]["privB"]))
    spec_sym_key = bytes.fromhex(spec["x25519"]["symKey"])
    envelope_seeds = [env[k].encode() for k in ("type0_base64", "type1_base64", "type2_base64_unencrypted")]
    envelope_seeds += [spec["envelope"][k].encode() for k in ("type0", "type1_sender_A", "type2")]
    envelope_seeds.append(crypto.encode_type0(sym_key, b'{"id":1,"jsonrpc":"2.0","method":"m","params":{}}',
                                              iv=bytes(12)).encode())

    def run_envelope(data: bytes) -> None:
        text = _text(data)
        parsed = crypto.decode_envelope(text)
        if parsed.type == crypto.EnvelopeType.TYPE_1:
            try:
                crypto.decrypt_type1(text, receiver.private_key)
            except crypto.EnvelopeError:
                crypto.decrypt_type1(text, js_receiver.private_key)
        elif parsed.type == crypto.EnvelopeType.TYPE_0:
            try:
                crypto.decrypt(text, sym_key)
            except crypto.EnvelopeError:
                crypto.decrypt(text, spec_sym_key)

    tokens = [js["relay_auth"]["jwt"].encode(), js["identity_jwt"]["jwt"].encode()]

    def run_jwt(data: bytes) -> None:
        token = _text(data)
        decoded = jwt.decode_jwt(token)
        jwt.parse_claims(decoded.claims) if "act" in decoded.claims else jwt.RelayAuthClaims.from_claims(
            decoded.claims)
        claims = jwt.verify_jwt(token, now=NOW, leeway=10**9)
        jwt.parse_claims(claims) if "act" in claims else jwt.RelayAuthClaims.from_claims(claims)

    claims_seeds = [_dumps(js["identity_jwt"]["claims"]), _dumps(spec["relay_auth_jwt"]["payload_in_order"])]
    claims_seeds += [_dumps(_claims_seed(cls, act)) for act, cls in sorted(jwt.CLAIMS_BY_ACT.items())]

    def run_claims(data: bytes) -> None:
        claims = _json(data)
        if not isinstance(claims, dict):
            return
        jwt.parse_claims(claims) if "act" in claims else jwt.RelayAuthClaims.from_claims(claims)

    request = js["envelopes"]["plaintext"].encode()
    rpc_seeds = [
        request,
        spec["envelope"]["message"].encode(),
        b'{"id":1,"jsonrpc":"2.0","result":true}',
        b'{"id":"a","jsonrpc":"2.0","error":{"code":-32600,"message":"bad","data":[1]}}',
        b'{"id":1,"jsonrpc":"2.0","method":"irn_batchPublish","params":{"messages":[{"topic":"' + b"a" * 64
        + b'","message":"AA==","ttl":300,"tag":4002}]}}',
    ]

    def run_jsonrpc(data: bytes) -> None:
        jsonrpc.parse_message(data, max_bytes=_MAX_LEN * 2)

    cacao_js = js["cacao_siwe"]
    cacao_obj = cacao_js["keyserver_post_body"]["cacao"]

    def run_cacao(data: bytes) -> None:
        obj = _json(data)
        if obj is _SKIP:
            return
        parsed = cacao.Cacao.from_dict(obj)
        cacao.authorization(parsed.payload)
        cacao.identity_key(parsed.payload)
        cacao.verify_cacao(parsed, now=NOW)

    document = did.build_did_document("app.example.com", bytes.fromhex(spec["x25519"]["pubA"]),
                                      bytes.fromhex(js["identity_jwt"]["identityPublicKey"]))

    def run_did(data: bytes) -> None:
        obj = _json(data)
        if obj is _SKIP:
            return
        did.parse_did_document(obj, expected_did="did:web:app.example.com")
        did.parse_did_document(obj)
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            value = obj["id"]
            for parse in (did.decode_did_key, did.Account.parse, did.Account.from_did_pkh, did.did_web_domain):
                with contextlib.suppress(did.DidError):
                    parse(value)

    uri = pairing.new_pairing(lambda n: bytes(range(n)), NOW, methods=("wc_pushPropose",))

    def run_pairing(data: bytes) -> None:
        pairing.parse(_text(data))

    params = {"publicKey": spec["x25519"]["pubA"], "account": "eip155:1:0x" + "2c" * 20,
              "metadata": {"name": "GM", "description": "d", "url": "https://gm.example.com",
                           "icons": ["https://gm.example.com/i.png"],
                           "redirect": {"native": "gm://", "universal": "https://gm.example.com/app"}},
              "scope": ["gm", "promotions"]}
    prop = proposal.PushProposal.from_params(params)
    record = proposal.pending_record(1_700_000_000_000_123, "aa" * 32, prop, received_at=NOW)
    response_topic = crypto.topic_of(prop.public_key)

    def run_params(data: bytes) -> None:
        obj = _json(data)
        if obj is _SKIP:
            return
        proposal.PushProposal.from_params(obj)

    def run_record(data: bytes) -> None:
        proposal.ProposalRecord.from_json(_text(data))
        proposal.ProposalRecord.from_json(_text(data), key=response_topic)

    value = notify_sync.PushSubscriptionValue(
        topic=crypto.topic_of(bytes(range(32))), account="eip155:1:0x" + "2c" * 20, app_domain="app.example.com",
        sym_key=bytes(range(32)), expiry=NOW + 86400,
        scope=(notify_sync.ScopeEntry("alerts", "Alerts", True, "11111111-1111-4111-8111-111111111111"),),
        name="App", description="d", icons=("https://app.example.com/i.png",),
    ).encode()

    def run_push_subscription(data: bytes) -> None:
        notify_sync.parse_push_subscription(crypto.topic_of(bytes(range(32))), _text(data))

    sync_seeds = [
        b'{"id":1700000000000,"jsonrpc":"2.0","method":"wc_syncSet","params":{"key":"k","value":"v"}}',
        b'{"id":1700000000001,"jsonrpc":"2.0","method":"wc_syncDel","params":{"key":"k"}}',
        _dumps({"id": 1, "jsonrpc": "2.0", "method": "wc_syncSet", "params": {"key": "cc" * 32, "value": value}}),
    ]

    def run_sync(data: bytes) -> None:
        obj = _json(data)
        if obj is _SKIP:
            return
        sync.parse_record("pushSubscription", obj)

    targets = [
        Target("envelope", run_envelope, (crypto.CryptoError,), tuple(envelope_seeds), json=False),
        Target("jwt", run_jwt, (jwt.JwtError,), tuple(tokens), json=False),
        Target("jwt_claims", run_claims, (jwt.JwtError,), tuple(claims_seeds), json=True),
        Target("jsonrpc", run_jsonrpc, (jsonrpc.JsonRpcError,), tuple(rpc_seeds), json=True),
        Target("cacao", run_cacao, (cacao.CacaoError,), (_dumps(cacao_obj),), json=True),
        Target("did_document", run_did, (did.DidError,), (_dumps(document),), json=True),
        Target("pairing", run_pairing, (pairing.PairingError,), (str(uri).encode(),), json=False),
        Target("proposal_params", run_params, (proposal.ProposalError,), (_dumps(params),), json=True),
        Target("proposal_record", run_record, (proposal.ProposalError,), (record.to_json().encode(),), json=True),
        Target("push_subscription", run_push_subscription, (notify_sync.NotifySyncError,), (value.encode(),),
               json=True),
        Target("sync_record", run_sync, (sync.SyncError,), tuple(sync_seeds), json=True),
    ]
    return {t.name: t for t in targets}


def check(target: Target, data: bytes) -> Crash | None:
    """Run one input; None if it parsed or was refused with an allowed error, else the crash."""
    try:
        target.run(data)
    except target.allowed:
        return None
    except RecursionError as exc:  # a deep JSON tree is refused by orjson at 1024 levels: count it anyway
        return _crash(target, exc, data)
    except Exception as exc:
        return _crash(target, exc, data)
    return None


def _crash(target: Target, exc: BaseException, data: bytes) -> Crash:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "wcnotify" in f.filename
              and not f.filename.endswith("bench/fuzz.py")]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return Crash(target.name, type(exc).__name__, where, str(exc)[:200], data)


# ------------------------------------------------------------------------------------------ mutators

_INTERESTING: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63), 1e308, -0.0, 0.5, "", " ", "0", "-1",
    "\x00", "\ud7ff", "é", "😀", "a" * 300, "did:key:z", "did:pkh:eip155:1:0x", "did:web:", "eip155:1:0x" + "0" * 40,
    "https://", "https://a.b", "0x", "z6Mk", "AA==", "wc:", [], {}, [None], [[]], {"": None}, {"a": {"b": {}}},
)


class Mutator:
    """Byte and JSON-tree mutations from one seeded ``random.Random``."""

    def __init__(self, seed: int, corpus: tuple[bytes, ...], byte_mutate: Callable[[bytes, int], bytes] | None = None
                 ) -> None:
        self.rng = random.Random(seed)
        self.corpus = list(corpus)
        self._byte_mutate = byte_mutate

    def bytes(self, data: bytes, max_size: int = _MAX_LEN) -> bytes:
        if self._byte_mutate is not None:
            return self._byte_mutate(data, max_size)
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 4))):
            op = rng.randrange(7)
            pos = rng.randrange(len(buf) + 1)
            if op == 0 and buf:  # flip a bit
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
            elif op == 1 and buf:  # an interesting byte
                buf[rng.randrange(len(buf))] = rng.choice(b'\x00\xff\x7f\x80"\\{}[],:.=@?&%-_/+0aAzZ \n')
            elif op == 2:  # insert random bytes
                buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
            elif op == 3 and buf:  # delete a range
                del buf[pos : pos + rng.randrange(1, 9)]
            elif op == 4 and buf:  # duplicate a range
                start = rng.randrange(len(buf))
                buf[pos:pos] = buf[start : start + rng.randrange(1, 17)]
            elif op == 5:  # splice with another corpus entry
                other = rng.choice(self.corpus)
                cut = rng.randrange(len(other) + 1)
                buf = buf[:pos] + bytearray(other[cut:])
            elif op == 6 and buf:  # truncate
                del buf[pos:]
        return bytes(buf[:max_size])

    def json(self, data: bytes, max_size: int = _MAX_LEN) -> bytes:
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.bytes(data, max_size)
        rng = self.rng
        for _ in range(rng.choice((1, 1, 2))):
            tree = self._mutate_node(tree, depth=0)
        try:
            out = orjson.dumps(tree)
        except (orjson.JSONEncodeError, TypeError):
            return self.bytes(data, max_size)
        return out[:max_size]

    def _mutate_node(self, node: Any, depth: int) -> Any:
        rng = self.rng
        if isinstance(node, dict) and node and rng.random() < 0.8:
            key = rng.choice(list(node))
            op = rng.randrange(10)
            if op == 0:
                del node[key]
            elif op == 1:
                node[self._mutate_str(key)] = node.pop(key)
            else:
                node[key] = self._mutate_node(node[key], depth + 1)
            return node
        if isinstance(node, list) and node and rng.random() < 0.8:
            i = rng.randrange(len(node))
            op = rng.randrange(8)
            if op == 0:
                del node[i]
            elif op == 1:
                node.append(node[i])
            else:
                node[i] = self._mutate_node(node[i], depth + 1)
            return node
        if isinstance(node, str) and rng.random() < 0.6:
            return self._mutate_str(node)
        if isinstance(node, int) and not isinstance(node, bool) and rng.random() < 0.5:
            return node + rng.choice((-1, 1, -(2**32), 2**32, -node, node))
        choice = rng.choice(_INTERESTING)
        if rng.random() < 0.2:  # a corpus value's subtree
            try:
                other = orjson.loads(rng.choice(self.corpus))
            except orjson.JSONDecodeError:
                other = None
            choice = other
        return json.loads(json.dumps(choice))  # a fresh copy

    def _mutate_str(self, value: str) -> str:
        return self.bytes(value.encode("utf-8", "surrogatepass"), 512).decode("utf-8", "replace")

    def mutate(self, data: bytes, use_json: bool, max_size: int = _MAX_LEN) -> bytes:
        if use_json and self.rng.random() < 0.5:
            return self.json(data, max_size)
        return self.bytes(data, max_size)


# --------------------------------------------------------------------------------------------- builtin


@dataclass
class Result:
    target: str
    engine: str
    inputs: int
    seconds: float
    crashes: list[dict[str, Any]]
    ceiling_per_s: float = 0.0
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def run_builtin(target: Target, inputs: int, seed: int = 0, noop: bool = False) -> Result:
    """Mutate the corpus ``inputs`` times in-process (no coverage guidance); inputs that parse join the corpus."""
    mutator = Mutator(seed, target.seeds)
    corpus = list(target.seeds)
    crashes: dict[tuple[str, str], Crash] = {}
    start = time.perf_counter()
    for i in range(inputs):
        base = corpus[i % len(corpus)] if i < len(corpus) else mutator.rng.choice(corpus)
        data = base if i < len(target.seeds) else mutator.mutate(base, target.json)
        if noop:
            continue
        try:
            target.run(data)
        except target.allowed:
            continue
        except Exception as exc:
            crash = _crash(target, exc, data)
            crashes.setdefault(crash.signature, crash)
            continue
        if len(corpus) < 512 and mutator.rng.random() < 0.05:
            corpus.append(data)  # accepted inputs are good parents
    seconds = time.perf_counter() - start
    return Result(target.name, "builtin", inputs, seconds, [_crash_json(c) for c in crashes.values()])


def _crash_json(crash: Crash) -> dict[str, Any]:
    return {"kind": crash.kind, "where": crash.where, "message": crash.message,
            "input": base64.b64encode(crash.data).decode()}


# --------------------------------------------------------------------------------------------- atheris


def atheris_available() -> bool:
    try:
        import atheris  # type: ignore[import-not-found,import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def _worker(name: str, inputs: int, out: Path, noop: bool, seed: int) -> None:
    """One target under atheris in this process (libFuzzer exits the process when ``-runs`` is reached)."""
    import atheris

    with atheris.instrument_imports(include=["wcnotify.protocol"]):
        target = build_targets()[name]
    state: dict[str, Any] = {"count": 0, "start": 0.0, "crashes": {}}

    def flush() -> None:
        elapsed = time.perf_counter() - state["start"]
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inputs": state["count"], "seconds": elapsed,
                                   "crashes": list(state["crashes"].values())}))
        tmp.replace(out)

    def one(data: bytes) -> None:
        if state["count"] == 0:
            state["start"] = time.perf_counter()
        state["count"] += 1
        if not noop:
            crash = check(target, data)
            if crash is not None and crash.signature not in state["crashes"]:
                state["crashes"][crash.signature] = _crash_json(crash)
                flush()
        if state["count"] % 20_000 == 0 or state["count"] >= inputs:
            flush()

    mutator = Mutator(seed, target.seeds, byte_mutate=None)

    def custom(data: bytes, max_size: int, mseed: int) -> bytes:
        mutator.rng.seed(mseed)
        if target.json and mutator.rng.random() < 0.5:
            return mutator.json(data, max_size)
        return bytes(atheris.Mutate(data, max_size))

    corpus = out.parent / "corpus"  # in the parent's temporary directory, removed with it
    corpus.mkdir(exist_ok=True)
    for i, s in enumerate(target.seeds):
        (corpus / f"seed{i}").write_bytes(s)
    argv = [sys.argv[0], f"-runs={inputs}", f"-seed={seed + 1}", f"-max_len={_MAX_LEN}", "-print_final_stats=0",
            "-close_fd_mask=0", str(corpus)]
    atheris.Setup(argv, one, custom_mutator=custom)
    atheris.Fuzz()


def run_atheris(name: str, inputs: int, seed: int = 0, noop: bool = False, timeout: float = 3600) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "wcnotify.bench.fuzz", "--worker", name, "--runs", str(inputs),
               "--out", str(out), "--seed", str(seed)] + (["--noop"] if noop else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if not out.exists():
            raise RuntimeError(f"atheris worker {name} wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
        data = json.loads(out.read_text())
    return Result(name, "atheris", data["inputs"], data["seconds"], data["crashes"])


# ------------------------------------------------------------------------------------------------- run


@dataclass
class FuzzOptions:
    runs: int = 1_000_000
    targets: tuple[str, ...] = ()
    engine: str = "atheris"
    jobs: int = 2
    seed: int = 0


def run(options: FuzzOptions) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    engine = options.engine
    note = ""
    if engine == "atheris" and not atheris_available():
        engine, note = "builtin", "atheris is not installed: builtin mutator, no coverage guidance"
    all_targets = build_targets()
    names = options.targets or tuple(all_targets)
    unknown = set(names) - set(all_targets)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}; known: {', '.join(all_targets)}")

    def one(job: tuple[str, bool]) -> Result:
        name, noop = job
        runs = min(options.runs, 200_000) if noop else options.runs
        if engine == "atheris":
            return run_atheris(name, runs, options.seed, noop=noop)
        return run_builtin(all_targets[name], runs, options.seed, noop=noop)

    # the ceiling: the same engine, mutator and corpus on a target that does nothing (a rate: fewer inputs do)
    jobs = [(n, False) for n in names] + [(n, True) for n in names]
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        results = list(pool.map(one, jobs))
    rows = []
    for result, ceiling in zip(results[: len(names)], results[len(names) :], strict=True):
        result.ceiling_per_s = ceiling.per_s
        rows.append(dataclasses.asdict(result) | {"per_s": result.per_s})
    return {"engine": engine, "note": note, "runs": options.runs, "python": sys.version.split()[0], "targets": rows}


def table(result: dict[str, Any]) -> str:
    lines = [f"engine: {result['engine']}" + (f" ({result['note']})" if result["note"] else ""),
             "ceiling: the same engine, mutator and corpus with a target that does nothing",
             f"{'target':<18} {'inputs':>10} {'exec/s':>9} {'crashes':>7} {'ceiling/s':>9} {'of ceiling':>10}"]
    for row in result["targets"]:
        ratio = row["per_s"] / row["ceiling_per_s"] if row["ceiling_per_s"] else 0.0
        lines.append(f"{row['target']:<18} {row['inputs']:>10,} {row['per_s']:>9,.0f} {len(row['crashes']):>7} "
                     f"{row['ceiling_per_s']:>9,.0f} {ratio:>10.1%}")
        for crash in row["crashes"]:
            lines.append(f"    crash {crash['kind']} at {crash['where']}: {crash['message'][:80]} "
                         f"input={crash['input'][:60]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--targets", default="", help="comma-separated; all when empty")
    parser.add_argument("--engine", choices=("atheris", "builtin"), default="atheris")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.worker:
        _worker(args.worker, args.runs, Path(args.out), args.noop, args.seed)
        return
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    result = run(FuzzOptions(runs=args.runs, targets=targets, engine=args.engine, jobs=args.jobs, seed=args.seed))
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
