"""Load benchmark: a bounded run of steady traffic against relay, keys server and notify server.

    wcnotify bench load [--duration 300] [--wallets 5000] [--send-accounts 200] [--interval 1] [--churners 4]
                        [--database-url postgresql://…] [--svg docs/load.svg]
    .venv/bin/python bench/load.py [same options]

The stack is the fan-out bench's (``wcnotify.bench.fanout``), each in its own process: a **relay** (rate limit
and mailbox cap raised, as there), a **keys server** (its own SQLite file) and a **notify server** (default
settings, rate limits included; SQLite by default, ``--database-url`` for PostgreSQL, in a fresh schema dropped
at the end). The project, its two
notification types (``alerts``, ``news``) go through the HTTP API, and the project is listed in the app
registry. The ``--wallets`` receiving subscribers are inserted straight into the notify database, as in the
fan-out bench, and each is a real WebSocket connection to the relay (``--wallet-procs`` processes hold them,
with the fan-out bench's ``asyncio.Protocol`` client: no task per connection), subscribed to its own topic,
decrypting and acking every ``irn_subscription`` push.

For ``--duration`` seconds, at the same time:

* **notifications**: every ``--interval`` s, ``POST /{projectId}/notify`` to the next ``--send-accounts``
  receiving accounts (round robin), as notification ``load-k`` with title ``load k``. Sends are fired on a
  fixed schedule (a slow one does not delay the next).
* **wallet churn**: ``--churners`` wallet-SDK clients (``wcnotify.wallet.NotifyClient``, each its own relay
  connection and SQLite file), each in a loop: a fresh account registers its identity at the keys server
  (CACAO), subscribes to the app from its registry entry (type-1 ``wc_notifySubscribe``), updates its scope
  (``wc_notifyUpdate``), deletes the subscription (``wc_notifyDelete``) and unregisters; then waits
  ``--churn-pause`` s. Every request is a real relay round trip to the notify server.
* **sampling**: every ``--sample-every`` s, the RSS of each server process (``/proc/PID/status``) and the
  notify server's ``/metrics`` ``queue_depth`` (queued + processing).

Then sending and churn stop, and the run waits (at most ``--drain-timeout`` s) until the queue is empty and
every wallet has what was sent to it.

Figures: **throughput** = deliveries decrypted / (first send to last decrypt, at least ``--duration``);
**latency** per delivery = wall time the wallet decrypted it - wall time the send's HTTP response arrived
(same machine, same clock; it can be slightly negative: the relay may push before the response is back);
**errors** = sends refused or failed,
accounts reported failed or not found, deliveries missing or duplicated (``msg.id``), envelopes that did not
decrypt, wallet connections lost, and churn requests that raised or timed out (30 s); **error rate** = errors
/ (expected deliveries + churn requests + sends). **Memory**: mean RSS of each server in the first vs the last
minute (a third of the run if shorter). A table and one JSON line are printed; ``--svg`` writes a plot of queue
depth and RSS over time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from wcnotify import event_loop, spec
from wcnotify.bench.fanout import (
    HOST,
    Process,
    WalletConnection,
    WalletFleet,
    WalletProcess,
    WalletSpec,
    cpu_seconds,
    create_project,
    drop_schema,
    free_port,
    insert_subscribers,
    raise_nofile,
    start_process,
)
from wcnotify.protocol.crypto import EnvelopeError, decrypt

MODULE = "wcnotify.bench.load"
DOMAIN = "fanout.bench.example.com"  # create_project's domain
BODY = "A notification of the load run."
URL = "https://fanout.bench.example.com/n/load"
CHURN_TIMEOUT = 30.0


# ------------------------------------------------------------------------------------------ servers


def serve_keys(port: int, database_url: str) -> None:
    from wcnotify.keys.server import KeysConfig, KeysServer  # noqa: PLC0415 (the wallet processes need no server)

    raise_nofile()
    KeysServer(KeysConfig(host=HOST, port=port, database_url=database_url)).run(log_level="warning")


def serve_notify(port: int, relay_url: str, keys_url: str, database_url: str, admin_token: str,  # noqa: PLR0917
                 seed: str) -> None:
    """``NotifyServer.run`` as ``wcnotify server`` calls it: default delivery and rate limits."""
    from wcnotify.notify.server import NotifyConfig, NotifyServer  # noqa: PLC0415

    raise_nofile()
    config = NotifyConfig(relay_url=relay_url, keys_urls=(keys_url,), host=HOST, port=port,
                          database_url=database_url, admin_token=admin_token, seed=seed)
    NotifyServer(config).run(log_level="warning")


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ------------------------------------------------------------------------------------------ wallets


def _jwt_claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


class LoadFleet(WalletFleet):
    """The fan-out fleet, keeping per delivery only (k, wall time) and the ``msg.id`` (for duplicates)."""

    def __init__(self, relay: str, wallets: list[WalletSpec]) -> None:
        super().__init__(relay, wallets, "", "")
        self.received: list[tuple[int, float]] = []
        self.seen: set[str] = set()
        self.duplicates = 0

    def on_message(self, conn: WalletConnection, payload: bytes) -> None:
        obj = orjson.loads(payload)
        if obj.get("method") == "irn_subscription":
            data = obj["params"]["data"]
            try:
                if data["topic"] != conn.wallet.topic:
                    raise EnvelopeError("pushed on another topic")
                request = orjson.loads(decrypt(data["message"], conn.wallet.sym_key))
                msg = _jwt_claims(request["params"][spec.NOTIFY_MESSAGE.params_key])["msg"]
                k = int(str(msg["title"]).removeprefix("load "))
            except (EnvelopeError, KeyError, TypeError, ValueError, IndexError):
                self.errors += 1
            else:
                if msg["id"] in self.seen:
                    self.duplicates += 1
                else:
                    self.seen.add(msg["id"])
                    self.received.append((k, time.time()))
            conn.send(0x1, b'{"id":%d,"jsonrpc":"2.0","result":true}' % obj["id"])
        elif not conn.answered.done():
            conn.answered.set_result(obj)


async def wallets_main(spec_path: str) -> None:
    """A wallet process: ``ready n`` once connected; ``count`` -> ``count n``; ``report`` -> one JSON line."""
    raise_nofile()
    config = orjson.loads(Path(spec_path).read_bytes())
    fleet = LoadFleet(config["relay"], [WalletSpec(t, bytes.fromhex(k), a) for t, k, a in config["wallets"]])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        await fleet.open()
    except (ConnectionError, OSError) as exc:
        print(f"failed {exc}", flush=True)
        return
    gc.freeze()
    print(f"ready {len(fleet.connections)}", flush=True)
    while words := (await reader.readline()).decode().split():
        if words[0] == "count":
            print(f"count {len(fleet.received)}", flush=True)
        elif words[0] == "report":
            sys.stdout.buffer.write(orjson.dumps({
                "wallets": len(fleet.connections), "received": fleet.received, "errors": fleet.errors,
                "lost": fleet.lost, "duplicates": fleet.duplicates}) + b"\n")
            sys.stdout.flush()
    for conn in fleet.connections:
        if conn.transport is not None:
            conn.transport.close()


async def ask(w: WalletProcess, command: str, prefix: str, timeout: float = 60) -> str:
    await w.command(command)
    while not (line := await w.line(timeout)).startswith(prefix):
        pass
    return line


# ------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class LoadOptions:
    """What a run does; the defaults are the run docs/performance.md reports."""

    duration: float = 300.0
    wallets: int = 5_000
    send_accounts: int = 200  # accounts per /notify request
    interval: float = 1.0  # s between /notify requests
    churners: int = 4  # wallet-SDK clients doing register/subscribe/update/delete/unregister in a loop
    churn_pause: float = 1.0  # s each churner waits between cycles
    database_url: str | None = None  # the notify server's; None: a SQLite file in the run's directory
    wallet_procs: int = 2
    sample_every: float = 2.0
    drain_timeout: float = 60.0
    svg: str | None = None  # where to write the plot
    # the relay's mailbox: "sqlite" (a file in the run's directory, what `wcnotify up` runs) or "memory"
    relay_mailbox: str = "sqlite"


@dataclass
class Run:
    options: LoadOptions
    sends: dict[int, dict[str, Any]] = field(default_factory=dict)  # k -> accounts, sent_at, result
    send_errors: list[str] = field(default_factory=list)
    churn_ms: dict[str, list[float]] = field(default_factory=dict)
    churn_errors: dict[str, int] = field(default_factory=dict)
    churn_failures: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


async def queue_depth(http: httpx.AsyncClient, notify: Process, admin: str) -> int | None:
    try:
        r = await http.get(f"{notify.url}/metrics", headers={"authorization": f"Bearer {admin}"})
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    depth = 0.0
    for line in r.text.splitlines():
        if line.startswith("wcnotify_notify_queue_depth{"):
            depth += float(line.rsplit(" ", 1)[1])
    return int(depth)


async def sampler(run: Run, *, http: httpx.AsyncClient, servers: dict[str, Process], admin: str, t0: float,
                  stop: asyncio.Event) -> None:
    while not stop.is_set():
        sample: dict[str, Any] = {"t": round(time.monotonic() - t0, 1),
                                  "queue": await queue_depth(http, servers["notify"], admin)}
        for name, server in servers.items():
            sample[name] = round(rss_mb(server.proc.pid), 1)
        run.samples.append(sample)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), run.options.sample_every)


async def sender(run: Run, *, http: httpx.AsyncClient, notify: Process, project: Any, accounts: list[str],
                 end: float) -> None:
    o = run.options
    per = min(o.send_accounts, len(accounts))
    tasks: set[asyncio.Task[None]] = set()

    async def send(k: int, batch: list[str]) -> None:
        body = {"notification_id": f"load-{k}", "accounts": batch,
                "notification": {"type": project.type_id, "title": f"load {k}", "body": BODY, "url": URL}}
        entry: dict[str, Any] = {"accounts": len(batch), "sent": 0}
        run.sends[k] = entry
        try:
            r = await http.post(f"{notify.url}/{project.project_id}/notify", json=body, headers=project.headers)
        except httpx.HTTPError as exc:
            run.send_errors.append(f"send {k}: {type(exc).__name__}: {exc}")
            return
        entry["sent_at"] = time.time()
        if r.status_code != 200:
            run.send_errors.append(f"send {k}: {r.status_code} {r.text[:200]}")
            return
        result = r.json()
        entry["sent"] = len(result.get("sent", ()))
        entry["failed"] = len(result.get("failed", ())) + len(result.get("not_found", ()))

    start, k, pos = time.monotonic(), 0, 0
    while time.monotonic() < end:
        k += 1
        batch = [accounts[(pos + i) % len(accounts)] for i in range(per)]
        pos += per
        task = asyncio.create_task(send(k, batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, start + k * o.interval - time.monotonic()))
    if tasks:
        await asyncio.gather(*tasks)


async def churner(i: int, run: Run, *, http: httpx.AsyncClient, urls: dict[str, str], tmp: Path,
                  stop: asyncio.Event) -> None:
    """One wallet device in a loop: register a fresh account, subscribe, update, delete, unregister."""
    from eth_account import Account as EthAccount  # noqa: PLC0415

    from wcnotify.wallet.client import NotifyClient  # noqa: PLC0415

    async def op(name: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(call, CHURN_TIMEOUT)
        except Exception as exc:  # every failure is a figure
            run.churn_errors[name] = run.churn_errors.get(name, 0) + 1
            if len(run.churn_failures) < 5:
                run.churn_failures.append(f"{name}: {type(exc).__name__}: {exc}")
            raise
        run.churn_ms.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return result

    async with NotifyClient(tmp / f"churn-{i}.db", relay_url=urls["relay_ws"], keys_server_url=urls["keys"],
                            notify_server_url=urls["notify"], http=http) as client:
        app = next(a for a in await client.apps(DOMAIN) if a.domain == DOMAIN)
        while not stop.is_set():
            eth = EthAccount.create()
            account = f"eip155:1:{eth.address}"
            with contextlib.suppress(Exception):
                await op("register", client.register_with_key(account, eth.key, DOMAIN))
                sub = await op("subscribe", client.subscribe(account, app, ["alerts"]))
                await op("update", client.update(sub.topic, ["alerts", "news"], account=account))
                await op("delete", client.delete(sub.topic, account=account))
                await op("unregister", client.unregister(account))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), run.options.churn_pause)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def memory(samples: list[dict[str, Any]], name: str, duration: float) -> dict[str, float]:
    window = min(60.0, duration / 3)
    points = [(s["t"], s[name]) for s in samples if s.get(name)]
    if not points:
        return {}
    last_t = points[-1][0]
    first = [v for t, v in points if t <= window] or [points[0][1]]
    last = [v for t, v in points if t >= last_t - window] or [points[-1][1]]
    a, b = statistics.mean(first), statistics.mean(last)
    return {"first_mb": round(a, 1), "last_mb": round(b, 1), "growth_mb": round(b - a, 1),
            "growth_pct": round(100 * (b - a) / a, 1) if a else 0.0, "max_mb": round(max(v for _, v in points), 1)}


async def bench(o: LoadOptions) -> dict[str, Any]:  # noqa: PLR0915 (one run, read top to bottom)
    nofile = raise_nofile()
    if o.wallets + 1000 > nofile:
        raise SystemExit(f"RLIMIT_NOFILE is {nofile}: too low for {o.wallets} wallet sockets (raise the hard limit)")
    tmp = Path(tempfile.mkdtemp(prefix="wcnotify-load-"))
    database_url = o.database_url or f"sqlite:///{tmp / 'notify.db'}"
    schema = None
    if database_url.startswith("postgres"):  # a schema of its own, dropped at the end (as the fan-out bench)
        schema = f"load_{os.urandom(5).hex()}"
        database_url = f"{database_url}{'&' if '?' in database_url else '?'}search_path={schema}"
    admin, seed = os.urandom(16).hex(), os.urandom(32).hex()
    relay_port, keys_port, notify_port = free_port(), free_port(), free_port()
    relay_url = f"http://{HOST}:{relay_port}"
    notify_args = ["--serve-notify", str(notify_port), "--relay-url", relay_url, "--keys-url",
                   f"http://{HOST}:{keys_port}", "--database-url", database_url, "--admin-token", admin, "--seed", seed]
    servers: dict[str, Process] = {}
    wallets: list[WalletProcess] = []
    run = Run(o)
    setup: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=60, trust_env=False,
                                     limits=httpx.Limits(max_connections=200)) as http:
            t = time.perf_counter()
            relay_args = ["--serve-relay", str(relay_port)]
            if o.relay_mailbox == "sqlite":
                relay_args += ["--relay-database-url", f"sqlite:///{tmp / 'relay.db'}"]
            servers["relay"] = await start_process("relay", relay_args, port=relay_port, tmp=tmp, ready="ok")
            servers["keys"] = await start_process(
                "keys", ["--serve-keys", str(keys_port), "--database-url", f"sqlite:///{tmp / 'keys.db'}"],
                port=keys_port, tmp=tmp, ready="", module=MODULE)
            servers["notify"] = await start_process("notify", notify_args, port=notify_port, tmp=tmp,
                                                    ready="relay link up", module=MODULE)
            project = await create_project(http, servers["notify"].url, admin)
            r = await http.post(f"{servers['notify'].url}/v1/{project.project_id}/notification-types",
                                json={"name": "news", "description": "load bench"}, headers=project.headers)
            r.raise_for_status()
            r = await http.patch(f"{servers['notify'].url}/v1/{project.project_id}/project",
                                 json={"listed": True}, headers=project.headers)
            r.raise_for_status()
            servers.pop("notify").stop()
            specs = await insert_subscribers(database_url, project, o.wallets)
            servers["notify"] = await start_process("notify", notify_args, port=notify_port, tmp=tmp,
                                                    ready="relay link up", timeout=60 + o.wallets / 100, module=MODULE)
            setup["servers_s"] = round(time.perf_counter() - t, 1)
            t = time.perf_counter()
            procs = max(1, min(o.wallet_procs, o.wallets))
            for i in range(procs):
                path = tmp / f"wallets-{i}.json"
                path.write_bytes(orjson.dumps({"relay": f"ws://{HOST}:{relay_port}", "wallets": specs[i::procs]}))
                wallets.append(await WalletProcess.start(path, module=MODULE))
            connected = 0
            for w in wallets:
                line = await w.line(60 + o.wallets / 50)
                if not line.startswith("ready"):
                    raise RuntimeError(f"a wallet process could not connect its wallets: {line}")
                connected += int(line.split()[1])
            setup["connect_s"] = round(time.perf_counter() - t, 1)

            pids = {name: s.proc.pid for name, s in servers.items()}
            pids.update({f"wallets{i}": w.proc.pid for i, w in enumerate(wallets)})
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            stop = asyncio.Event()
            t0 = time.monotonic()
            wall0 = time.time()
            urls = {"relay_ws": f"ws://{HOST}:{relay_port}", "keys": servers["keys"].url,
                    "notify": servers["notify"].url}
            sampling = asyncio.create_task(sampler(run, http=http, servers=servers, admin=admin, t0=t0, stop=stop))
            churn = [asyncio.create_task(churner(i, run, http=http, urls=urls, tmp=tmp, stop=stop))
                     for i in range(o.churners)]
            await sender(run, http=http, notify=servers["notify"], project=project, accounts=[s[2] for s in specs],
                         end=t0 + o.duration)
            stop.set()
            churn_results = await asyncio.gather(*churn, return_exceptions=True)
            for outcome in churn_results:
                if isinstance(outcome, BaseException):
                    run.churn_failures.append(f"churner: {type(outcome).__name__}: {outcome}")
            window = time.monotonic() - t0
            cpu = {name: round((cpu_seconds(pid) - cpu0[name]) / window, 2) for name, pid in pids.items()}

            expected = sum(s["sent"] for s in run.sends.values())
            drain_t = time.monotonic()
            while time.monotonic() - drain_t < o.drain_timeout:
                counts = [int((await ask(w, "count", "count")).split()[1]) for w in wallets]
                if sum(counts) >= expected and await queue_depth(http, servers["notify"], admin) == 0:
                    break
                await asyncio.sleep(0.5)
            drain_s = time.monotonic() - drain_t
            await asyncio.sleep(o.sample_every)  # one more sample after the drain
            sampling_stop_t = time.monotonic()
            run.samples.append({"t": round(sampling_stop_t - t0, 1),
                                "queue": await queue_depth(http, servers["notify"], admin),
                                **{name: round(rss_mb(s.proc.pid), 1) for name, s in servers.items()}})
            await sampling
            reports = [orjson.loads(await ask(w, "report", "{", 120)) for w in wallets]
    finally:
        for w in wallets:
            await w.stop()
        for server in servers.values():
            server.stop()
        if schema is not None and o.database_url is not None:
            await drop_schema(o.database_url, schema)
        if os.environ.get("WCNOTIFY_BENCH_KEEP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    received = [kt for rep in reports for kt in rep["received"]]
    latencies = sorted(t - run.sends[k]["sent_at"] for k, t in received if "sent_at" in run.sends.get(k, {}))
    delivered = len(received)
    last_receipt = max((t for _, t in received), default=wall0)
    churn_requests = sum(len(v) for v in run.churn_ms.values()) + sum(run.churn_errors.values())
    failed_accounts = sum(s.get("failed", 0) for s in run.sends.values())
    errors = {
        "send_refused": len(run.send_errors), "accounts_failed": failed_accounts,
        "undelivered": max(0, expected - delivered), "duplicates": sum(rep["duplicates"] for rep in reports),
        "undecryptable": sum(rep["errors"] for rep in reports), "connections_lost": sum(rep["lost"] for rep in reports),
        "churn": sum(run.churn_errors.values()),
    }
    total_errors = sum(errors.values())
    operations = expected + churn_requests + len(run.sends)
    servers_mem = {name: memory(run.samples, name, o.duration) for name in ("relay", "keys", "notify")}
    queue = [s["queue"] for s in run.samples if s["queue"] is not None]
    result = {
        "duration_s": o.duration, "wallets": o.wallets, "connected": connected, "cpus": os.cpu_count(),
        "python": platform.python_version(), "event_loop": event_loop.loop_name(),
        "database": "postgres" if database_url.startswith("postgres") else "sqlite", "relay_mailbox": o.relay_mailbox,
        "nofile": nofile, "send_accounts": min(o.send_accounts, o.wallets), "interval_s": o.interval,
        "offered_per_s": round(min(o.send_accounts, o.wallets) / o.interval, 1), "sends": len(run.sends),
        "expected": expected, "delivered": delivered,
        "throughput_per_s": round(delivered / max(o.duration, last_receipt - wall0), 1),
        "latency_ms": {"p50": round(1000 * percentile(latencies, 0.5), 1),
                       "p99": round(1000 * percentile(latencies, 0.99), 1),
                       "max": round(1000 * latencies[-1], 1) if latencies else 0.0,
                       "min": round(1000 * latencies[0], 1) if latencies else 0.0},
        "churn": {name: {"count": len(v), "p50_ms": round(percentile(sorted(v), 0.5), 1),
                         "p99_ms": round(percentile(sorted(v), 0.99), 1), "errors": run.churn_errors.get(name, 0)}
                  for name, v in sorted(run.churn_ms.items())},
        "churn_requests": churn_requests, "errors": errors, "error_count": total_errors,
        "error_rate": round(total_errors / max(1, operations), 6),
        "failures": (run.send_errors + run.churn_failures)[:5],
        "memory": servers_mem, "queue_depth": {"max": max(queue, default=0), "mean": round(statistics.mean(queue), 1)
                                               if queue else 0, "end": queue[-1] if queue else None},
        "cpu": cpu, "drain_s": round(drain_s, 1), "setup": setup, "samples": run.samples,
    }
    if o.svg:
        Path(o.svg).write_text(svg(run.samples, result))
        result["svg"] = o.svg
    return result


def run(options: LoadOptions) -> dict[str, Any]:
    return event_loop.run(bench(options))


# ------------------------------------------------------------------------------------------ output


def svg(samples: list[dict[str, Any]], r: dict[str, Any]) -> str:
    """Two panels over time: queue depth, and the RSS of each server (hand-written SVG polylines)."""
    w, h, left, top, gap = 720, 180, 60, 30, 60
    t_max = max((s["t"] for s in samples), default=1) or 1
    colors = {"queue": "#d62728", "relay": "#1f77b4", "keys": "#2ca02c", "notify": "#ff7f0e"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + left + 140}" height="{2 * h + top + gap + 50}" '
           'font-family="sans-serif" font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">wcnotify load run: {r["wallets"]} wallets, '
           f'{r["offered_per_s"]:g} notifications/s offered, {r["duration_s"]:g} s ({r["database"]})</text>']

    def panel(y0: int, title: str, series: list[str], unit: str) -> None:
        values = [s[k] for s in samples for k in series if s.get(k) is not None]
        v_max = max(values, default=1) or 1
        v_max = v_max * 1.1
        out.append(f'<rect x="{left}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{left}" y="{y0 - 6}">{title}</text>')
        for frac in (0, 0.5, 1):
            y = y0 + h - frac * h
            out.append(f'<text x="{left - 6}" y="{y + 4:.0f}" text-anchor="end">{v_max * frac:.0f}</text>')
        for frac in (0, 0.25, 0.5, 0.75, 1):
            x = left + frac * w
            out.append(f'<text x="{x:.0f}" y="{y0 + h + 15}" text-anchor="middle">{t_max * frac:.0f} s</text>')
        for i, k in enumerate(series):
            pts = " ".join(f"{left + s['t'] / t_max * w:.1f},{y0 + h - s[k] / v_max * h:.1f}"
                           for s in samples if s.get(k) is not None)
            out.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="1.5" points="{pts}"/>')
            out.append(f'<text x="{left + w + 10}" y="{y0 + 15 + 16 * i}" fill="{colors[k]}">{k} {unit}</text>')

    panel(top + 10, "queue depth (queued + processing deliveries, notify /metrics)", ["queue"], "rows")
    panel(top + 10 + h + gap, "RSS of each server process (MB)", ["relay", "keys", "notify"], "MB")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(r: dict[str, Any]) -> str:
    lat, err = r["latency_ms"], r["errors"]
    rows = [
        ("wallets (WebSocket connections)", f"{r['connected']}/{r['wallets']}"),
        ("run", f"{r['duration_s']:g} s, {r['database']}, relay mailbox {r['relay_mailbox']}, "
                f"send of {r['send_accounts']} accounts every "
                f"{r['interval_s']:g} s ({r['offered_per_s']:g}/s offered)"),
        ("delivered / expected", f"{r['delivered']}/{r['expected']}"),
        ("throughput", f"{r['throughput_per_s']:g} notifications/s"),
        ("delivery latency p50 / p99 / max", f"{lat['p50']:g} / {lat['p99']:g} / {lat['max']:g} ms"),
        ("churn requests (register, subscribe, update, delete, unregister)", str(r["churn_requests"])),
        *[(f"  {name} p50 / p99", f"{c['p50_ms']:g} / {c['p99_ms']:g} ms ({c['count']}, {c['errors']} errors)")
          for name, c in r["churn"].items()],
        ("errors", f"{r['error_count']} (rate {r['error_rate']:g}): "
                   + ", ".join(f"{k} {v}" for k, v in err.items())),
        ("queue depth max / mean / end", f"{r['queue_depth']['max']} / {r['queue_depth']['mean']} / "
                                         f"{r['queue_depth']['end']}"),
        *[(f"RSS {name} first / last window (growth)",
           f"{m['first_mb']:g} / {m['last_mb']:g} MB ({m['growth_mb']:+g} MB, {m['growth_pct']:+g}%)")
          for name, m in r["memory"].items() if m],
        ("CPU (share of one core)", ", ".join(f"{k} {v:.0%}" for k, v in r["cpu"].items())),
        ("drain after the run", f"{r['drain_s']:g} s"),
    ]
    width = max(len(a) for a, _ in rows)
    lines = [f"{a.ljust(width)}  {b}" for a, b in rows]
    if r["failures"]:
        lines += ["", "first failures:", *(f"  {f}" for f in r["failures"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    d = LoadOptions()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=d.duration, help="seconds of steady traffic")
    parser.add_argument("--wallets", type=int, default=d.wallets, help="connected receiving wallets")
    parser.add_argument("--send-accounts", type=int, default=d.send_accounts, help="accounts per /notify request")
    parser.add_argument("--interval", type=float, default=d.interval, help="seconds between /notify requests")
    parser.add_argument("--churners", type=int, default=d.churners, help="wallet-SDK clients churning subscriptions")
    parser.add_argument("--churn-pause", type=float, default=d.churn_pause, help="s between a churner's cycles")
    parser.add_argument("--database-url", help="the notify server's database (default: a SQLite file)")
    parser.add_argument("--wallet-procs", type=int, default=d.wallet_procs, help="wallet processes")
    parser.add_argument("--sample-every", type=float, default=d.sample_every, help="s between RSS/queue samples")
    parser.add_argument("--drain-timeout", type=float, default=d.drain_timeout)
    parser.add_argument("--svg", help="write the queue depth and RSS plot here (e.g. docs/load.svg)")
    parser.add_argument("--relay-mailbox", choices=("sqlite", "memory"), default=d.relay_mailbox,
                        help="the relay's mailbox: a SQLite file (as `wcnotify up`) or memory")
    parser.add_argument("--serve-keys", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-notify", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-wallets", help=argparse.SUPPRESS)
    parser.add_argument("--relay-url", help=argparse.SUPPRESS)
    parser.add_argument("--keys-url", help=argparse.SUPPRESS)
    parser.add_argument("--admin-token", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_keys:
        serve_keys(args.serve_keys, args.database_url)
        return
    if args.serve_notify:
        serve_notify(args.serve_notify, args.relay_url, args.keys_url, args.database_url, args.admin_token, args.seed)
        return
    if args.serve_wallets:
        event_loop.run(wallets_main(args.serve_wallets))
        return
    if args.wallets < 1 or args.duration <= 0 or args.send_accounts < 1 or args.interval <= 0:
        parser.error("--wallets, --duration, --send-accounts and --interval must be positive")
    options = LoadOptions(args.duration, args.wallets, args.send_accounts, args.interval, args.churners,
                          args.churn_pause, args.database_url, args.wallet_procs, args.sample_every,
                          args.drain_timeout, args.svg, args.relay_mailbox)
    result = run(options)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
