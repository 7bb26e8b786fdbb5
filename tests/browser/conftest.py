"""What the browser tests need: Debian's Chromium and the pinned playwright-core that drives it.

Chromium comes from Debian (``make setup`` installs the ``chromium`` package when it is missing and it runs as
root); Playwright's own browser download is not used, it cannot reach its host from the test machines.
``tests/browser/js`` pins playwright-core; it is installed with ``npm ci`` from its lockfile by ``make setup``,
or here the first time a test needs it.

Anything missing skips the test with the reason shown, unless ``WCNOTIFY_REQUIRE_SERVICES=1`` (CI), in which
case it fails: a CI run that silently skipped its only browser test would prove nothing about the console.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import service_unavailable

JS_DIR = Path(__file__).parent / "js"
CHROMIUM = os.environ.get("WCNOTIFY_CHROMIUM", "/usr/bin/chromium")
MIN_NODE_MAJOR = 20  # playwright-core 1.65 needs it
NPM_CI_TIMEOUT = 300


@dataclass(frozen=True)
class BrowserTools:
    node: str
    chromium: str
    js_dir: Path


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)  # a developer's debugger or flags must not change the run
    env.setdefault("NO_UPDATE_NOTIFIER", "1")
    return env


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialise ``npm ci`` between concurrent pytest sessions (it deletes node_modules first)."""
    with (Path(tempfile.gettempdir()) / "wcnotify-browser-npm.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed() -> bool:
    hidden = JS_DIR / "node_modules" / ".package-lock.json"  # npm writes it at the end of every install
    return hidden.is_file() and hidden.stat().st_mtime >= (JS_DIR / "package-lock.json").stat().st_mtime


@pytest.fixture(scope="session")
def browser_tools() -> BrowserTools:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        service_unavailable(f"Chromium is not installed at {CHROMIUM}: run `make setup` as root, or "
                            "`sudo apt-get install --no-install-recommends chromium`")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        service_unavailable("`node` and `npm` must be on PATH to drive Chromium with playwright-core")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    major = int(version.lstrip("v").split(".")[0]) if version.lstrip("v").split(".")[0].isdigit() else 0
    if major < MIN_NODE_MAJOR:
        service_unavailable(f"Node >= {MIN_NODE_MAJOR} is needed for playwright-core, found {version or 'nothing'}")
    with _install_lock():
        if not _installed():
            try:
                proc = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=JS_DIR,
                                      env=node_env(), capture_output=True, text=True, timeout=NPM_CI_TIMEOUT,
                                      check=False)
            except subprocess.TimeoutExpired:
                service_unavailable(f"`npm ci` in {JS_DIR} took longer than {NPM_CI_TIMEOUT} s")
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                service_unavailable(f"`npm ci` failed in {JS_DIR} (exit {proc.returncode}):\n{tail}")
    return BrowserTools(node, CHROMIUM, JS_DIR)
