"""The ``wcnotify`` command line. Subcommands are thin: they parse options and call a service or SDK."""

from __future__ import annotations

import typer
from rich.console import Console

from wcnotify import __version__

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
