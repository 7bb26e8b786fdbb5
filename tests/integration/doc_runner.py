"""Running a guide's ``sh`` blocks as written, as one shell session would (shared by the tests of the docs).

- :func:`sh_blocks` and :func:`sh_commands` read the commands of a Markdown file's ```` ```sh ```` blocks, in
  order: ``\\`` continuations joined, blank lines and comment lines left out.
- :class:`ShellSession` runs them one by one in ``bash``: what a command exports (``export X=…``) is carried
  to the next; a command ending in ``&`` is a long-running process, started in a process group of its own and
  stopped (SIGTERM, then SIGKILL after 10 s) by :meth:`ShellSession.stop`, whatever happened; every command
  gets what is left of the session's budget (on a timeout, its process group is killed), and must exit 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def sh_blocks(path: Path) -> list[str]:
    """The text of every ```` ```sh ```` block of ``path``, in order."""
    return re.findall(r"```sh\n(.*?)```", path.read_text(), re.DOTALL)


def sh_commands(path: Path, blocks: list[str] | None = None) -> list[str]:
    """Every command of ``blocks`` (default: all the ``sh`` blocks of ``path``), in order (``\\`` continuations
    joined, blank and comment lines left out)."""
    commands: list[str] = []
    for block in sh_blocks(path) if blocks is None else blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process's group (bash and what it started), then SIGKILL to those still there after 10 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group the session made for it (bash and its children)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class ShellSession:
    """Commands run in ``bash`` in ``cwd``, one after the other, sharing their exported variables.

    ``substitute`` rewrites a command before it runs (the substitutions a test documents); ``outputs`` keeps
    ``(command as written, its stdout)``; ``env`` is the environment after the latest command.
    """

    def __init__(self, cwd: Path, env: dict[str, str], budget: float,
                 substitute: Callable[[str], str] = lambda command: command) -> None:
        self.cwd = cwd
        self.env = env
        self.budget = budget
        self.deadline = time.monotonic() + budget
        self.substitute = substitute
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outputs: list[tuple[str, str]] = []
        self._envfile = cwd / ".env-after"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, written: str) -> str:
        """Run one command as written (after ``substitute``); its stdout ("" for a background process)."""
        command = self.substitute(written)
        left = self.left()
        assert left > 0, f"the guide took over {self.budget} s; stopped before: {written}"
        if command.endswith("&"):
            log = (self.cwd / f"process-{len(self.procs)}.log").open("wb")
            self.procs.append(subprocess.Popen(["bash", "-c", command[:-1]], cwd=self.cwd, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
            return ""
        script = f"{command}\n__rc=$?\nenv -0 > {self._envfile}\nexit $__rc\n"
        # a session of its own, so that a timeout stops what the command started too (curl under bash)
        proc = subprocess.Popen(["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.cwd.glob("process-*.log")))
            pytest.fail(f"timed out: {written}\nprocess logs:\n{logs}")
        assert proc.returncode == 0, f"{written}\nexited {proc.returncode}:\n{stdout}\n{stderr}"
        self.env = dict(item.split("=", 1) for item in self._envfile.read_text().split("\0") if "=" in item)
        self.outputs.append((written, stdout))
        for proc in self.procs:
            assert proc.poll() is None, f"a process of the guide exited ({proc.args}): see {self.cwd}"
        return stdout

    def stop(self) -> None:
        stop_processes(self.procs)
