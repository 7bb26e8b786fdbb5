"""What the dapp and wallet subcommands of ``wcnotify`` share: where output goes and how failures are reported.

The promises every command keeps, written once here so the two command families cannot drift apart:

* ``--json`` prints exactly one JSON document on stdout (``inbox --follow`` prints one per line), and nothing
  else goes to stdout, so ``wcnotify … --json | jq`` always parses. Progress bars, prompts and errors go
  to stderr.
* A failure the user can act on ends the command with exit code 1 and one line on stderr saying what went
  wrong and what to do, never a traceback. The SDKs raise one error class per such failure; each command
  family maps its classes to advice (``explain``) and :func:`run` applies it. An exception nobody explained
  is a bug and keeps its traceback.
* Text that came from a server or a dapp (titles, bodies, error messages) is printed literally: rich
  markup in it must not restyle, hide or forge output.

This module imports only typer, rich and the standard library (``event_loop``), so ``wcnotify --help`` stays
fast; the SDKs are imported by the commands that use them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from wcnotify import event_loop

T = TypeVar("T")

JSON_HELP = "Print JSON for scripts (one document on stdout; errors still go to stderr)."


class CommandError(Exception):
    """A failure the user can act on; the message says what happened and what to do next."""


def stdout() -> Console:
    """A console on the current stdout (looked up at each write, so test runners that swap it see the output)."""
    return Console(emoji=False, highlight=False)


def stderr() -> Console:
    return Console(stderr=True, emoji=False, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` (literally) as an error on stderr and end the command with ``code``."""
    stderr().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def run(main: Coroutine[Any, Any, T], explain: Callable[[BaseException], str | None]) -> T:
    """Run a command's coroutine; a :class:`CommandError`, or an exception ``explain`` has advice for, becomes
    :func:`fail`. Ctrl-C ends quietly with 130, the shell's convention for an interrupted command."""
    try:
        return event_loop.run(main)
    except KeyboardInterrupt:
        stderr().print("interrupted")
        raise typer.Exit(130) from None
    except CommandError as exc:
        fail(str(exc))
    except Exception as exc:
        advice = explain(exc)
        if advice is None:
            raise
        fail(advice)


def literal(value: object) -> str:
    """``value`` as text rich prints as written (for table cells and lines holding others' text)."""
    return escape(str(value))
