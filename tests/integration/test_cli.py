"""The CLI through its real entry point (a subprocess running the installed ``wcnotify`` script)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from wcnotify import __version__

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WCNOTIFY, *args], capture_output=True, text=True, timeout=60, check=False)


def test_version() -> None:
    done = run("version")
    assert done.returncode == 0
    assert done.stdout.strip() == __version__


def test_help_lists_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout and " up " in done.stdout
