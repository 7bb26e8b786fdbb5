"""The three services as real processes started by the CLI (``wcnotify relay``, ``keys``, ``server``),
wired together the way an operator would, and ``wcnotify project create|list`` against them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wcnotify.protocol.did import parse_did_document

from .test_relay_durability import free_port

WCNOTIFY = shutil.which("wcnotify", path=str(Path(sys.executable).parent)) or "wcnotify"
ADMIN = "cli-test-admin"


def wait_healthy(proc: subprocess.Popen[bytes], url: str, *, ready: str | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"exited with {proc.returncode}: {out}")
        try:
            r = httpx.get(url + "/health", timeout=1, trust_env=False)
            if r.status_code == 200 and (ready is None or ready in r.text):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy")


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in ("relay", "keys", "notify")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs = []
    try:
        commands = [
            ("relay", ["relay", "--port", str(ports["relay"])], None),
            ("keys", ["keys", "--port", str(ports["keys"]), "--database-url", database_url], None),
            ("notify", ["server", "--port", str(ports["notify"]), "--relay-url", urls["relay"], "--keys-url",
                        urls["keys"], "--database-url", database_url, "--admin-token", ADMIN,
                        "--seed-file", str(tmp_path / "seed")], "relay link up"),
        ]
        for _name, args, _ready in commands:  # all at once: the notify server retries the relay link
            procs.append(subprocess.Popen([WCNOTIFY, *args, "--log-level", "warning"], cwd=tmp_path,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for proc, (name, _args, ready) in zip(procs, commands, strict=True):
            wait_healthy(proc, urls[name], ready=ready)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WCNOTIFY, *args], capture_output=True, text=True, timeout=60, check=False)


def test_project_create_and_list_through_the_cli(services: dict[str, str], tmp_path: Path) -> None:
    done = cli("project", "create", "--name", "Gm", "--app-domain", "gm.example.com", "--server", services["notify"],
               "--admin-token", ADMIN, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    created = json.loads(done.stdout)
    assert created["appDomain"] == "gm.example.com" and len(created["secret"]) == 64
    document = httpx.get(created["didJson"], trust_env=False).json()
    keys = parse_did_document(document)
    assert keys.key_agreement.hex() == created["subscribeKey"]
    assert keys.authentication.hex() == created["authenticationKey"]

    listed = cli("project", "list", "--server", services["notify"], "--admin-token", ADMIN, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [p["projectId"] for p in json.loads(listed.stdout)] == [created["projectId"]]
    # the seed file keeps the server's identity across restarts
    assert (tmp_path / "seed").read_text().strip()

    # errors say what to do, without a traceback
    wrong = cli("project", "list", "--server", services["notify"], "--admin-token", "nope")
    assert wrong.returncode == 1 and "refused the admin token" in wrong.stdout
    down = cli("project", "list", "--server", f"http://127.0.0.1:{free_port()}", "--admin-token", ADMIN)
    assert down.returncode == 1 and "cannot reach the notify server" in down.stdout and "Traceback" not in down.stdout
