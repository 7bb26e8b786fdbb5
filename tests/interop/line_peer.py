"""A long-lived Node process driven line by line: one JSON request per stdin line, answers on stdout.

The Node scripts (``js/relay_peer.mjs``, ``js/notify_wallet.mjs``) print each answer as
``<prefix>{"id", "ok", "value"|"error"}``; any other output is kept as the log shown when a call fails.
Every call is bounded; ``close`` asks the script to exit, then kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any, Self

from tests.interop.conftest import JsPeerError, _node_env


class LinePeer:
    """One ``node <script>`` process; ``await peer.call(op, **args)`` returns the op's value."""

    PREFIX = ""  # the answer-line prefix the script prints
    SCRIPT: Path
    WATCHDOG_ENV = ""  # the script's self-kill timer (ms), so a stuck test cannot leave Node behind
    WATCHDOG_MS = "60000"
    CALL_TIMEOUT = 20.0

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    @classmethod
    async def start(cls) -> Self:
        node = shutil.which("node")
        assert node is not None
        env = _node_env()
        env.setdefault(cls.WATCHDOG_ENV, cls.WATCHDOG_MS)
        proc = await asyncio.create_subprocess_exec(
            node, str(cls.SCRIPT), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            if not line.startswith(self.PREFIX):
                self.stderr.append(line)
                continue
            answer = json.loads(line[len(self.PREFIX) :])
            future = self._waiting.pop(answer.get("id"), None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(JsPeerError(f"node exited ({self.proc.returncode}):\n{self.log_tail()}"))

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace"))

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.stderr[-lines:])

    async def diagnostics(self) -> str:
        """What a failed call's message shows; subclasses add the peer's own state."""
        return f"--- node stderr ---\n{self.log_tail()}"

    async def request(self, op: str, timeout: float, **args: Any) -> dict[str, Any]:
        """Send one op and wait for its raw answer line."""
        assert self.proc.stdin is not None
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        self.proc.stdin.write((json.dumps({"id": rid, "op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def call(self, op: str, *, timeout: float | None = None, **args: Any) -> Any:
        timeout = self.CALL_TIMEOUT if timeout is None else timeout
        try:
            answer = await self.request(op, timeout, **args)
        except TimeoutError:
            raise JsPeerError(f"{op} {args}: no answer within {timeout} s\n{await self.diagnostics()}") from None
        if not answer["ok"]:
            raise JsPeerError(f"{op} failed: {answer['error']}\n{await self.diagnostics()}")
        return answer["value"]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("exit", timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
