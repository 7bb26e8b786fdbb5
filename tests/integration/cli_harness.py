"""Running the ``wcnotify`` dapp and wallet commands against a live stack, for tests/integration/test_cli_*.py.

The stack runs on its own event loop in a thread (``stack_in_thread``), so a command can run the way a user
runs it: in-process through typer's CliRunner (its own ``asyncio.run`` on the main thread; fast), or as a
real ``wcnotify`` subprocess where the entry point, the exit code or live output is what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from click.testing import Result
from typer.testing import CliRunner

from wcnotify.cli import app

from .notify_stack import ADMIN, Stack, stack_in_thread

T = TypeVar("T")

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"
COMMAND_TIMEOUT = 60  # seconds for any one command


@dataclass
class CliStack:
    stack: Stack
    loop: asyncio.AbstractEventLoop
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the stack's loop (for the stack's helpers and protocol-level test wallets)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def invoke(self, command: str | list[str], *, ok: bool = True, input: str | None = None,
               **env: str) -> Result:
        """Run one command in-process; with ``ok`` it must succeed. Never a traceback: an exception that
        escaped the command (anything but an exit) fails the test."""
        args = shlex.split(command) if isinstance(command, str) else command
        result = CliRunner().invoke(app, args, env={**self.env, **env}, input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"wcnotify {command}: uncaught {result.exception!r}\n{result.output}") \
                from result.exception
        if ok:
            assert result.exit_code == 0, f"wcnotify {command} exited {result.exit_code}:\n{result.output}"
        return result

    def json(self, command: str, **env: str) -> Any:
        """Run a command with --json and parse its stdout (which must be JSON and nothing else)."""
        return json.loads(self.invoke(f"{command} --json", **env).stdout)

    def process(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The real entry point in a subprocess."""
        return subprocess.run([WCNOTIFY, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False, env={**os.environ, **self.env, **env})

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([WCNOTIFY, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env={**os.environ, **self.env, **env})


@contextlib.contextmanager
def cli_stack(database_url: str, tmp: Path) -> Iterator[CliStack]:
    """A stack in a thread, and the environment that points every command at it (as `wcnotify up` would)."""
    with stack_in_thread(database_url) as (stack, loop):
        env = {
            "WCNOTIFY_SERVER_URL": stack.notify_url,
            "WCNOTIFY_RELAY_URL": stack.relay.http_url,
            "WCNOTIFY_KEYS_URL": stack.keys.url,
            "WCNOTIFY_ADMIN_TOKEN": ADMIN,
            "WCNOTIFY_WALLET": str(tmp / "wallet.db"),
            "COLUMNS": "200",  # rich tables: no wrapped cells to search through
            "NO_COLOR": "1",
        }
        yield CliStack(stack, loop, tmp, env)


def create_project(cli: CliStack, name: str, domain: str, *types: str, listed: bool = False) -> dict[str, str]:
    """A project through the CLI (`project create`, `types add`, maybe `project update --listed`); its
    credentials are put in ``cli.env`` as the dapp commands read them."""
    created = cli.json(f"project create --name {name} --app-domain {domain}")
    cli.env |= {"WCNOTIFY_PROJECT_ID": created["projectId"], "WCNOTIFY_PROJECT_SECRET": created["secret"]}
    for kind in types:
        cli.invoke(["types", "add", kind, "--description", f"{kind} of {name}"])
    if listed:
        cli.invoke("project update --listed")
    return created
