"""The ``wcnotify`` command line. Subcommands are thin: they parse options and call a service or SDK."""

from __future__ import annotations

import typer
from rich.console import Console

from wcnotify import __version__, cli_dapp, cli_wallet, event_loop, spec

app = typer.Typer(
    name="wcnotify",
    help="Self-hostable WalletConnect Notify: relay, keys server, notify server, wallet and dapp tools.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(emoji=False, highlight=False)


@app.command()
def version() -> None:
    """Print the wcnotify version.

    Example: wcnotify version
    """
    console.print(__version__)


@app.command()
def demo(
    *,
    against: str | None = typer.Option(
        None, "--against", help="A running notify server (its URL, as `wcnotify up` printed it). Default: start a "
        "stack of the demo's own on free ports, in a temporary directory.",
    ),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="WCNOTIFY_ADMIN_TOKEN",
                                           help="With --against: the server's admin token."),
    relay_url: str | None = typer.Option(None, "--relay-url", help="With --against: the relay (default: "
                                         "ws://HOST:8080, HOST being --against's)."),
    keys_url: str | None = typer.Option(None, "--keys-url", help="With --against: the keys server (default: "
                                        "http://HOST:8081)."),
    timeout: float = typer.Option(20.0, min=1, help="Seconds each step may take before it counts as failed."),
) -> None:
    """Play the whole story over real sockets: a dapp, its did.json and webhook, two wallet devices, Sync.

    Exits 1 naming the step that failed. Example: wcnotify demo --against http://127.0.0.1:8082 --admin-token $T
    """
    from wcnotify.demo import Servers, StepFailed, main

    servers = None
    if against is not None:
        if not admin_token:
            console.print("[red]--against needs the server's admin token[/]: pass --admin-token (or set "
                          "WCNOTIFY_ADMIN_TOKEN) to the one `wcnotify up` printed; it is also in DATA_DIR/admin-token",
                          soft_wrap=True)
            raise typer.Exit(2)
        servers = Servers.around(against, admin_token, relay_url, keys_url)

    def report(number: int, title: str, detail: str) -> None:
        console.print(f"[green]✔[/] {number}. [bold]{title}[/]  [dim]{detail}[/]", soft_wrap=True)

    where = f"against {against}" if against else "on a stack of its own (free ports, temporary directory)"
    console.print(f"[bold]wcnotify demo[/]: a dapp and two wallet devices, over real sockets, {where}\n",
                  soft_wrap=True)
    try:
        passed, seconds = main(report, servers=servers, timeout=timeout)
    except StepFailed as exc:
        console.print(f"[red]✘ {exc.number}. {exc.title}[/]: {exc.reason}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt as exc:
        console.print("\ninterrupted")
        raise typer.Exit(130) from exc
    console.print(f"\n[bold green]All {passed} steps passed[/] in {seconds:.1f} s.")


@app.command()
def up(
    *,
    data_dir: str = typer.Option(
        "wcnotify-data", "--data-dir", envvar="WCNOTIFY_DATA_DIR",
        help="Where everything is kept (SQLite files, the server's keys, the admin token); created if missing. "
        "Start again on the same directory and every project, subscription and queued notification is there.",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface for all three services (0.0.0.0 for every interface)."),
    relay_port: int = typer.Option(8080, "--relay-port", min=0, max=65535, help="Relay port (0: any free port)."),
    keys_port: int = typer.Option(8081, "--keys-port", min=0, max=65535, help="Keys server port (0: any free port)."),
    notify_port: int = typer.Option(8082, "--notify-port", min=0, max=65535,
                                    help="Notify server port, the dapp API (0: any free port)."),
    admin_token: str | None = typer.Option(
        None, "--admin-token", envvar="WCNOTIFY_ADMIN_TOKEN",
        help="Bearer token for creating projects. Default: the one kept in DATA_DIR/admin-token (made on the "
        "first start).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line when ready (URLs, admin token) "
                                 "and one when stopped, instead of the text."),
    log_level: str = typer.Option("warning", help="Log level of the services (to stderr)."),
) -> None:
    """Run the relay, keys server and notify server in one process on SQLite, until Ctrl-C.

    For local development: dapps' webhooks and did.json may be on this machine or its network (as
    `wcnotify server --allow-private-urls`). Example: wcnotify up --data-dir ~/.local/share/wcnotify --notify-port 9000
    """
    import time
    from pathlib import Path

    began = time.monotonic()  # "ready in" counts the imports below too: it is what the person waits
    if not as_json:  # at once: loading the three services takes a moment on a slow machine
        console.print(f"[bold]wcnotify up[/]: relay, keys server and notify server in one process (wcnotify "
                      f"{__version__})", soft_wrap=True)
    try:
        from wcnotify.up import UpOptions, run
    except KeyboardInterrupt as exc:  # Ctrl-C before anything started
        console.print("interrupted")
        raise typer.Exit(130) from exc

    options = UpOptions(data_dir=Path(data_dir), host=host, relay_port=relay_port, keys_port=keys_port,
                        notify_port=notify_port, admin_token=admin_token)
    raise typer.Exit(run(options, console, as_json=as_json, log_level=log_level, began=began))


@app.command()
def relay(
    *,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8080, help="TCP port for WebSocket, POST /rpc, /health and /public-key."),
    database_url: str | None = typer.Option(
        None, "--database-url", envvar="WCNOTIFY_RELAY_DATABASE_URL",
        help="Mailbox database: sqlite:///PATH (or postgresql://…). Default: in memory, lost on restart.",
    ),
    redis_url: str | None = typer.Option(
        None, "--redis-url", envvar="WCNOTIFY_RELAY_REDIS_URL",
        help="Redis (redis://host:6379/0) shared by every relay node: pub/sub routing, and the mailbox unless "
        "--database-url is given. Run as many nodes as you like behind a load balancer.",
    ),
    redis_prefix: str = typer.Option(
        "wcnotify:relay:", "--redis-prefix", envvar="WCNOTIFY_RELAY_REDIS_PREFIX",
        help="Prefix of every Redis key and channel; nodes of one relay share it.",
    ),
    public_url: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--public-url", help="A URL clients reach this relay at (accepted as JWT aud); repeatable."
    ),
    key_file: str | None = typer.Option(
        None, "--key-file", help="File holding the relay's Ed25519 seed (hex); created if missing. Default: random."
    ),
    mailbox_cap: int = typer.Option(1_000, help="Unexpired messages kept per topic before MailboxLimitExceeded."),
    watch_retry_base: float = typer.Option(
        1.0, "--watch-retry-base", hidden=True, help="Seconds before the first watch webhook retry (tests)."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the relay: WebSocket JSON-RPC pub/sub (irn_*) with a mailbox, and POST /rpc for servers.

    Example: wcnotify relay --host 127.0.0.1 --port 8080 --database-url sqlite:///relay.db
    """
    import dataclasses
    import os
    from pathlib import Path

    from wcnotify.relay.limits import RelayLimits
    from wcnotify.relay.server import RelayConfig, RelayServer

    if redis_url and database_url and database_url.startswith("sqlite"):
        console.print("[red]--redis-url with a SQLite mailbox[/]: nodes cannot share a SQLite file; "
                      "drop --database-url (the mailbox goes to Redis) or use postgresql://…")
        raise typer.Exit(2)
    seed: bytes | None = None
    if key_file:
        path = Path(key_file)
        if path.exists():
            seed = bytes.fromhex(path.read_text().strip())
        else:
            seed = os.urandom(32)
            path.write_text(seed.hex() + "\n")
            path.chmod(0o600)
    config = RelayConfig(
        host=host, port=port, database_url=database_url, redis_url=redis_url, redis_prefix=redis_prefix,
        public_urls=tuple(public_url), key_seed=seed, watch_retry_base=watch_retry_base,
        limits=dataclasses.replace(RelayLimits(), mailbox_per_topic=mailbox_cap),
    )
    server = RelayServer(config)
    console.print(
        f"wcnotify relay on ws://{server.host_for_clients}:{server.port} "
        f"(mailbox: {database_url or redis_url or 'memory'}; routing: {'redis' if redis_url else 'in-process'}; "
        f"key {server.relay.key.public_key.hex()}; event loop: {event_loop.loop_name()})", soft_wrap=True,
    )
    server.run(log_level=log_level)


@app.command()
def keys(
    *,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(spec.KEYS_DEFAULT_PORT, help="TCP port for POST/GET/DELETE /identity and /health."),
    database_url: str = typer.Option(
        spec.KEYS_DEFAULT_DATABASE_URL, "--database-url", envvar="WCNOTIFY_KEYS_DATABASE_URL",
        help="Where identities are kept: sqlite:///PATH (a file; relative to the working directory) or "
        "postgresql://user@host/db (several keys servers may share one). Migrations run on start.",
    ),
    public_url: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--public-url",
        help="A URL wallets use for this server (their keyserverUrl, which they sign into unregister "
        "requests); repeatable. http://HOST:PORT, localhost and 127.0.0.1 are always accepted.",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the keys server: wallets register identity keys with a signed CACAO; notify servers resolve them.

    Example: wcnotify keys --port 8081 --database-url sqlite:///keys.db --public-url https://keys.example.com
    """
    from wcnotify.keys.server import KeysConfig, KeysServer

    server = KeysServer(KeysConfig(host=host, port=port, database_url=database_url, public_urls=tuple(public_url)))
    console.print(f"wcnotify keys server on {server.url} (database: {database_url}; "
                  f"event loop: {event_loop.loop_name()})", soft_wrap=True)
    server.run(log_level=log_level)


@app.command()
def server(
    *,
    relay_url: str = typer.Option(..., "--relay-url", envvar="WCNOTIFY_RELAY_URL",
                                  help="The relay's HTTP URL (http://host:port): /rpc, /public-key."),
    keys_url: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        ..., "--keys-url", envvar="WCNOTIFY_KEYS_URLS",
        help="A keys server wallets may name in their JWTs (ksu); repeatable. Others are refused.",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8082, help="TCP port of the HTTP API."),
    database_url: str = typer.Option(
        "sqlite:///wcnotify-notify.db", "--database-url", envvar="WCNOTIFY_DATABASE_URL",
        help="sqlite:///PATH (one process) or postgresql://user@host/db (any number of replicas). "
        "Migrations run on start.",
    ),
    public_url: str | None = typer.Option(
        None, "--public-url", envvar="WCNOTIFY_PUBLIC_URL",
        help="The URL the relay and wallets reach this server at (the relay POSTs its webhook there). "
        "Default: http://HOST:PORT.",
    ),
    admin_token: str | None = typer.Option(
        None, "--admin-token", envvar="WCNOTIFY_ADMIN_TOKEN",
        help="Bearer token for POST /v1/projects. Default: a random one, printed at start.",
    ),
    seed: str | None = typer.Option(
        None, "--seed", envvar="WCNOTIFY_SEED",
        help="Secret the server's keys derive from; every replica needs the same. Default: read from (or "
        "written to) --seed-file.",
    ),
    seed_file: str = typer.Option("wcnotify-notify.seed", "--seed-file", help="Where the seed is kept without --seed."),
    delivery_workers: int = typer.Option(
        spec.NOTIFY_DELIVERY_WORKERS, min=0, help="Concurrent delivery loops (claim, sign, publish) in this process."
    ),
    delivery_lease: float = typer.Option(
        spec.NOTIFY_DELIVERY_LEASE, min=1,
        help="SQLite: seconds a claimed delivery may stay in flight before it returns to the queue (how soon "
        "deliveries interrupted by a crash resume). PostgreSQL holds batches by row locks, which a crash frees "
        "at once.",
    ),
    redis_url: str | None = typer.Option(
        None, "--redis-url", envvar="WCNOTIFY_NOTIFY_REDIS_URL",
        help="Redis (redis://host:6379/0) shared by every replica for the rate limits. Default: limits kept "
        "in this process (right for one process; replicas would each allow the full rate).",
    ),
    redis_prefix: str = typer.Option(
        spec.NOTIFY_RATE_REDIS_PREFIX, "--redis-prefix", envvar="WCNOTIFY_NOTIFY_REDIS_PREFIX",
        help="Every Redis key of this deployment starts so (several deployments can share one Redis).",
    ),
    send_rate: str = typer.Option(
        spec.NOTIFY_SEND_RATE, "--send-rate", envvar="WCNOTIFY_SEND_RATE",
        help="/notify and broadcast requests per project: COUNT/UNIT:BURST (UNIT s, m, h or d), or off.",
    ),
    subscriber_rate: str = typer.Option(
        spec.NOTIFY_SUBSCRIBER_RATE, "--subscriber-rate", envvar="WCNOTIFY_SUBSCRIBER_RATE",
        help="Notifications per subscriber (beyond it an account is failed: 'Rate limit exceeded'), or off.",
    ),
    metrics_public: bool = typer.Option(
        False, "--metrics-public", envvar="WCNOTIFY_METRICS_PUBLIC",
        help="Serve GET /metrics without the admin token (when this port is private).",
    ),
    allow_private_urls: bool = typer.Option(
        False, "--allow-private-urls", envvar="WCNOTIFY_ALLOW_PRIVATE_URLS",
        help="Let dapps' webhooks and the console's did.json check reach loopback, private and link-local "
        "addresses (local development only: otherwise a dapp can probe this server's network).",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the notify server: the dapp API, did:web documents, and wallet requests over the relay.

    Example: wcnotify server --relay-url http://127.0.0.1:8080 --keys-url http://127.0.0.1:8081 --port 8082
    """
    import secrets
    from pathlib import Path

    from wcnotify.notify.delivery import DeliveryConfig
    from wcnotify.notify.ratelimit import parse_rate
    from wcnotify.notify.server import NotifyConfig, NotifyServer

    try:
        rates = parse_rate(send_rate), parse_rate(subscriber_rate)
    except ValueError as exc:
        console.print(f"[red]bad rate:[/] {exc}")
        raise typer.Exit(2) from exc

    if seed is None:
        path = Path(seed_file)
        if path.exists():
            seed = path.read_text().strip()
        else:
            seed = secrets.token_hex(32)
            path.write_text(seed + "\n")
            path.chmod(0o600)
    generated = admin_token is None
    config = NotifyConfig(
        relay_url=relay_url, keys_urls=tuple(keys_url), host=host, port=port, database_url=database_url,
        public_url=public_url, admin_token=admin_token or secrets.token_urlsafe(24), seed=seed,
        delivery=DeliveryConfig(workers=delivery_workers, lease=delivery_lease),
        redis_url=redis_url, redis_prefix=redis_prefix, send_rate=rates[0], subscriber_rate=rates[1],
        metrics_public=metrics_public, allow_private_urls=allow_private_urls,
    )
    try:
        notify = NotifyServer(config)
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot start the notify server:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"wcnotify notify server on {notify.url} (database: {database_url}; relay: {relay_url}; "
                  f"event loop: {event_loop.loop_name()})", soft_wrap=True)
    if generated:
        console.print(f"admin token (pass --admin-token to keep one): {config.admin_token}")
    notify.run(log_level=log_level)


project_app = typer.Typer(help="Create, list and update projects (dapps) on a notify server.", no_args_is_help=True)
app.add_typer(project_app, name="project")
cli_dapp.register(app, project_app)  # types, send, webhooks, project update (cli_dapp.py)
cli_wallet.register(app)  # wallet init|register|apps|subscribe|unsubscribe|inbox|read|sync (cli_wallet.py)


def _admin_call(method: str, server_url: str, path: str, admin_token: str, body: object = None) -> object:
    """One admin API call with errors a person can act on instead of a traceback."""
    import httpx

    try:
        response = httpx.request(method, server_url.rstrip("/") + path, json=body, timeout=15, trust_env=False,
                                 headers={"authorization": f"Bearer {admin_token}"})
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the notify server at {server_url}[/]: {exc}. Is it running? "
                      "(wcnotify server … or wcnotify up)")
        raise typer.Exit(1) from exc
    if response.status_code == 401:
        console.print("[red]the notify server refused the admin token[/]: pass the one it printed at start "
                      "(--admin-token or WCNOTIFY_ADMIN_TOKEN)")
        raise typer.Exit(1)
    if response.status_code >= 400:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        console.print(f"[red]{method} {path} failed ({response.status_code})[/]: {detail}")
        raise typer.Exit(1)
    return response.json() if response.content else None


_SERVER_OPTION = typer.Option("http://127.0.0.1:8082", "--server", envvar="WCNOTIFY_SERVER_URL",
                              help="The notify server's URL.")
_ADMIN_OPTION = typer.Option(..., "--admin-token", envvar="WCNOTIFY_ADMIN_TOKEN", help="The server's admin token.")


@project_app.command("create")
def project_create(
    *,
    name: str = typer.Option(..., help="The app's name, shown to wallets."),
    description: str = typer.Option("", help="One line about the app, shown to wallets."),
    icon: list[str] = typer.Option([], "--icon", help="Icon URL; repeatable."),  # noqa: B008
    app_domain: str | None = typer.Option(
        None, "--app-domain", help="Also claim this domain and create the project's keys (subscribe-topic)."
    ),
    server_url: str = _SERVER_OPTION,
    admin_token: str = _ADMIN_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Create a project: prints its id and API secret (shown once; keep it).

    Example: wcnotify project create --name "Gm" --app-domain gm.example.com --admin-token $TOKEN
    """
    import json

    import httpx

    created = _admin_call("POST", server_url, "/v1/projects", admin_token,
                          {"name": name, "description": description, "icons": icon})
    assert isinstance(created, dict)
    result = dict(created)
    if app_domain:
        try:
            response = httpx.post(
                f"{server_url.rstrip('/')}/{created['projectId']}/subscribe-topic", json={"appDomain": app_domain},
                headers={"authorization": f"Bearer {created['secret']}"}, timeout=15, trust_env=False,
            )
        except httpx.HTTPError as exc:
            console.print(f"[red]project created but subscribe-topic failed[/]: {exc}")
            raise typer.Exit(1) from exc
        if response.status_code != 200:
            console.print(f"[red]project created but the app domain was refused ({response.status_code})[/]: "
                          f"{response.text}")
            raise typer.Exit(1)
        result |= {"appDomain": app_domain, **response.json(),
                   "didJson": f"{server_url.rstrip('/')}/v1/{created['projectId']}/did.json"}
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"project [bold]{name}[/] created")
    for key, value in result.items():
        console.print(f"  {key}: {value}")
    if app_domain:
        console.print(f"Next: serve {result['didJson']} at https://{app_domain}/.well-known/did.json, "
                      "then add notification types.")


@project_app.command("list")
def project_list(
    *,
    server_url: str = _SERVER_OPTION,
    admin_token: str = _ADMIN_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List the server's projects.

    Example: wcnotify project list --admin-token $TOKEN
    """
    import json

    from rich.table import Table

    found = _admin_call("GET", server_url, "/v1/projects", admin_token)
    assert isinstance(found, list)
    if as_json:
        print(json.dumps(found))
        return
    table = Table("project id", "name", "app domain")
    for p in found:
        table.add_row(p["projectId"], p["name"], p.get("appDomain") or "-")
    console.print(table)


bench_app = typer.Typer(help="Benchmarks on loopback that print a table (and one JSON line).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("relay")
def bench_relay(
    *,
    pairs: int = typer.Option(32, help="Publisher/subscriber WebSocket pairs."),
    size: int = typer.Option(300, help="Message bytes."),
    seconds: float = typer.Option(4.0, help="Measured seconds per phase (max rate, then half of it)."),
    idle: int = typer.Option(5000, help="Idle connections for the memory figure (0 skips it)."),
) -> None:
    """Relay vs a bare websockets forwarder: msgs/s, p50/p99 latency, KiB per idle connection.

    Example: wcnotify bench relay --seconds 2 --idle 1000
    """
    import json

    from wcnotify.bench.relay import BenchOptions, run, table

    result = run(BenchOptions(pairs=pairs, size=size, seconds=seconds, idle=idle))
    console.print(table(result), markup=False)
    console.print(json.dumps(result), markup=False, soft_wrap=True)


@bench_app.command("fanout")
def bench_fanout(
    *,
    wallets: int = typer.Option(10_000, min=1, help="Subscribed wallets, each a WebSocket connection to the relay."),
    databases: str = typer.Option("sqlite,postgres", help="sqlite, postgres or both (a fresh schema, dropped after)."),
    rounds: int = typer.Option(3, min=1, help="Broadcasts per database with the same wallets (the best is reported)."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the last wallet to decrypt, per round."),
    postgres_url: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5432/test", envvar="WCNOTIFY_BENCH_POSTGRES_URL", help="PostgreSQL to use."
    ),
) -> None:
    """One broadcast to N wallets through relay + notify server: time to the last decrypt vs the sign+seal ceiling.

    Example: wcnotify bench fanout --wallets 2000 --databases sqlite --rounds 1
    """
    import json

    from wcnotify.bench.fanout import BenchOptions, run, table

    names = tuple(d.strip() for d in databases.split(",") if d.strip())
    if not names or set(names) - {"sqlite", "postgres"}:
        console.print("[red]--databases takes sqlite, postgres or sqlite,postgres[/]")
        raise typer.Exit(2)
    result = run(BenchOptions(wallets=wallets, databases=names, rounds=rounds, timeout=timeout,
                              postgres_url=postgres_url))
    console.print(table(result), markup=False, soft_wrap=True)
    console.print(json.dumps(result), markup=False, soft_wrap=True)


@bench_app.command("load")
def bench_load(
    *,
    duration: float = typer.Option(300.0, min=1, help="Seconds of steady notifications and wallet churn."),
    wallets: int = typer.Option(5_000, min=1, help="Receiving wallets, each a WebSocket connection to the relay."),
    send_accounts: int = typer.Option(200, min=1, help="Accounts per /notify request."),
    interval: float = typer.Option(1.0, help="Seconds between /notify requests."),
    churners: int = typer.Option(4, min=0, help="Wallet-SDK clients registering/subscribing/updating/deleting."),
    database_url: str | None = typer.Option(None, help="The notify server's database (default: a SQLite file)."),
    svg: str | None = typer.Option(None, help="Write the queue depth and RSS plot here (e.g. docs/load.svg)."),
    relay_mailbox: str = typer.Option("sqlite", help="The relay's mailbox: sqlite (as `wcnotify up`) or memory."),
) -> None:
    """Bounded load run: throughput, p50/p99 delivery latency, error rate, RSS growth, queue depth over time.

    Example: wcnotify bench load --duration 30 --wallets 500
    """
    import json

    from wcnotify.bench.load import LoadOptions, run, table

    if relay_mailbox not in {"sqlite", "memory"}:
        raise typer.BadParameter("takes sqlite or memory", param_hint="--relay-mailbox")
    result = run(LoadOptions(duration=duration, wallets=wallets, send_accounts=send_accounts, interval=interval,
                             churners=churners, database_url=database_url, svg=svg, relay_mailbox=relay_mailbox))
    console.print(table(result), markup=False, soft_wrap=True)
    console.print(json.dumps(result), markup=False, soft_wrap=True)


@bench_app.command("fuzz")
def bench_fuzz(
    *,
    runs: int = typer.Option(1_000_000, min=1, help="Inputs per target."),
    targets: str = typer.Option("", help="Comma-separated targets (envelope, jwt, jsonrpc, cacao, ...); all if empty."),
    engine: str = typer.Option("atheris", help="atheris (coverage-guided) or builtin (no coverage guidance)."),
    jobs: int = typer.Option(2, min=1, help="Targets fuzzed at once, one process each."),
    seed: int = typer.Option(0, help="Seed of the mutators."),
) -> None:
    """Fuzz the parsers at the trust boundary: inputs, exec/s and crashes per target vs a no-op ceiling.

    Example: wcnotify bench fuzz --runs 100000 --targets envelope,jwt
    """
    import json

    from wcnotify.bench.fuzz import FuzzOptions, run, table

    names = tuple(t.strip() for t in targets.split(",") if t.strip())
    result = run(FuzzOptions(runs=runs, targets=names, engine=engine, jobs=jobs, seed=seed))
    console.print(table(result), markup=False, soft_wrap=True)
    console.print(json.dumps(result), markup=False, soft_wrap=True)


def main() -> None:
    # WCNOTIFY_EVENT_LOOP is checked once, here, before any command runs: every command that serves or
    # connects runs on the loop it names, and a bad value is a message and exit 2, never a traceback
    try:
        event_loop.loop_name()
    except event_loop.EventLoopChoiceError as exc:
        console.print(f"[red]wcnotify:[/] {exc}", soft_wrap=True)
        raise SystemExit(2) from None
    app()


if __name__ == "__main__":
    main()
