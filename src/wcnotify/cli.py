"""The ``wcnotify`` command line. Subcommands are thin: they parse options and call a service or SDK."""

from __future__ import annotations

import typer
from rich.console import Console

from wcnotify import __version__, spec

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
def demo() -> None:
    """Walk through one notification end to end with the protocol core, checking every step.

    Example: wcnotify demo
    """
    from wcnotify.demo import story

    console.print("[bold]wcnotify demo[/]: one notification, from did:web to a second device\n")
    count = 0
    try:
        for count, step in enumerate(story(), start=1):
            console.print(f"[green]✔[/] {count}. [bold]{step.title}[/]  [dim]{step.detail}[/]")
    except Exception as exc:  # the demo reports a failed step instead of a traceback
        console.print(f"[red]✘ step {count + 1} failed:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"\n[bold green]All {count} steps passed.[/]")


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
        public_urls=tuple(public_url), key_seed=seed,
        limits=dataclasses.replace(RelayLimits(), mailbox_per_topic=mailbox_cap),
    )
    server = RelayServer(config)
    console.print(
        f"wcnotify relay on ws://{server.host_for_clients}:{server.port} "
        f"(mailbox: {database_url or redis_url or 'memory'}; routing: {'redis' if redis_url else 'in-process'}; "
        f"key {server.relay.key.public_key.hex()})"
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
    console.print(f"wcnotify keys server on {server.url} (database: {database_url})")
    server.run(log_level=log_level)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
