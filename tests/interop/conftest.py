"""Fixtures that drive the official WalletConnect JS packages under Node as interop peers.

``tests/interop/js/current`` pins @walletconnect/utils 2.25.0, relay-auth 1.1.0 and core 2.25.0;
``tests/interop/js/notify`` pins @walletconnect/notify-client 1.4.1 (core/utils 2.12.2, identity-keys 2.1.0,
did-jwt 2.0.1); ``tests/interop/js/notify0146`` pins notify-client 0.14.6 (core/utils 2.25.0, identity-keys
0.2.3). Each is installed with ``npm ci`` from its committed lockfile the first time a test
needs them, and again whenever a lockfile is newer than the installed tree. ``js/peer.mjs`` runs one batch
of operations per process (see the top of that file for the request format).

Without Node/npm (or when ``npm ci`` cannot reach the registry) the interop tests are skipped with the
reason shown, unless ``WCNOTIFY_REQUIRE_SERVICES=1``, in which case they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
PEER = JS_DIR / "peer.mjs"
PACKAGE_DIRS = (JS_DIR / "current", JS_DIR / "notify", JS_DIR / "notify0146")
MIN_NODE_MAJOR = 18
NPM_CI_TIMEOUT = 600
PEER_TIMEOUT = 120

REQUIRE_SERVICES = os.environ.get("WCNOTIFY_REQUIRE_SERVICES") == "1"


class JsPeerError(AssertionError):
    """One or more operations failed inside the Node peer (the message carries the JS stack)."""


def _unavailable(reason: str) -> None:
    """Fail when the environment promises Node (``WCNOTIFY_REQUIRE_SERVICES=1``), else skip visibly."""
    if REQUIRE_SERVICES:
        pytest.fail(f"JS interop peer unavailable: {reason}", pytrace=False)
    pytest.skip(f"JS interop peer unavailable: {reason}")


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    # A developer's NODE_OPTIONS (e.g. --experimental-websocket, a debugger) must not change the peers.
    env.pop("NODE_OPTIONS", None)
    env.setdefault("NO_UPDATE_NOTIFIER", "1")
    return env


@contextlib.contextmanager
def _install_lock(package_dir: Path) -> Iterator[None]:
    """Serialise ``npm ci`` between concurrent pytest sessions (it deletes node_modules first)."""
    digest = hashlib.sha256(str(package_dir.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"wcnotify-interop-npm-{digest}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install_is_current(package_dir: Path) -> bool:
    # npm writes node_modules/.package-lock.json (the "hidden lockfile") at the end of every install.
    hidden = package_dir / "node_modules" / ".package-lock.json"
    lock = package_dir / "package-lock.json"
    return hidden.is_file() and hidden.stat().st_mtime >= lock.stat().st_mtime


def _npm_ci(npm: str, package_dir: Path) -> None:
    with _install_lock(package_dir):
        if _install_is_current(package_dir):
            return
        try:
            proc = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=package_dir,
                env=_node_env(),
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"`npm ci` in {package_dir} took longer than {NPM_CI_TIMEOUT} s")
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            _unavailable(f"`npm ci` failed in {package_dir} (exit {proc.returncode}):\n{tail}")


@pytest.fixture(scope="session")
def js_packages() -> Path:
    """Make sure Node is usable and every pinned package folder is installed; returns the peer script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("`node` and `npm` must be on PATH (Node 20 is what the interop suite is run with)")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < MIN_NODE_MAJOR:
        _unavailable(f"Node >= {MIN_NODE_MAJOR} is required, found {version or 'nothing'}")
    for package_dir in PACKAGE_DIRS:
        if not _install_is_current(package_dir):
            _npm_ci(npm, package_dir)
    return PEER


def run_peer(peer: Path, ops: list[dict[str, Any]], *, check: bool = True) -> list[Any]:
    """Run ``ops`` in one Node process. With ``check`` (the default) return each op's value and raise
    ``JsPeerError`` if any op failed; without it return the raw ``{"ok", "value"|"error"}`` objects."""
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.run(
        [node, str(peer)],
        input=json.dumps({"ops": ops}),
        capture_output=True,
        text=True,
        env=_node_env(),
        timeout=PEER_TIMEOUT,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise JsPeerError(
            f"node peer exited with {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    results = json.loads(lines[-1])
    if not isinstance(results, list) or len(results) != len(ops):
        raise JsPeerError(f"node peer returned {results!r} for {len(ops)} ops")
    if not check:
        return results
    failures = [f"op #{i} {ops[i].get('op')!r}: {r.get('error')}" for i, r in enumerate(results) if not r.get("ok")]
    if failures:
        raise JsPeerError("JS peer operations failed:\n" + "\n\n".join(failures))
    return [r["value"] for r in results]


@pytest.fixture(scope="session")
def run_js(js_packages: Path) -> Callable[..., list[Any]]:
    """``run_js(ops: list[dict], *, check=True) -> list``: one Node process per call; batch your cases."""

    def run(ops: list[dict[str, Any]], *, check: bool = True) -> list[Any]:
        return run_peer(js_packages, ops, check=check)

    return run
