"""The README's ``sh`` blocks and the curl examples of the guides, run as written.

**Against a ``wcnotify up`` of their own** (:func:`test_the_readme_quickstart_and_the_curl_examples_run_as_written`).
``wcnotify up --json`` runs as a subprocess on free ports, with its data dir ``wcnotify-data`` in the shell's
working directory (as ``make run`` keeps it in the clone), as a user starts it. Then every command of these
``sh`` blocks runs in ``bash``, in this order, as one shell session (what a command exports is carried to the
next), with the real ``curl`` and ``jq``:

1. README.md's quickstart ("Your first notification"): the venv activated, ``WCNOTIFY_SERVER_URL`` and
   ``WCNOTIFY_ADMIN_TOKEN`` exported (the token read from ``wcnotify-data/admin-token``), a project, a type,
   a broadcast, then ``wcnotify demo --against $WCNOTIFY_SERVER_URL`` (its 14 steps on this stack);
2. docs/dapp-api.md ("Try it with curl"): a project with ``wcnotify project create``, a notification type, a
   send to an account, its status, a broadcast, the subscriber list, a withdrawal;
3. docs/webhooks.md: a webhook created (its secret kept), listed and deleted.

**With the services started separately** (:func:`test_the_readme_separate_services_run_as_written`): README.md's
"Running the services separately" block, in a fresh shell session and directory: an admin token made with
``openssl``, ``wcnotify relay``, ``keys`` and ``server`` started in the background (the commands ending in ``&``,
see tests/integration/doc_runner.py), the health check, a project.

Every ``sh`` block of README.md runs, except these lines (checked: nothing else is left out):

- the lines that run ``make`` (``make run`` would run ``wcnotify up`` until stopped on the default ports, and
  ``make test`` the whole suite, this test included).

The substitutions, and nothing else:

- ``127.0.0.1:8082`` (the README's notify server) becomes the free port ``up`` took, in the quickstart;
- ``wcnotify demo --against $WCNOTIFY_SERVER_URL`` gets ``--relay-url RELAY --keys-url KEYS`` with ``up``'s
  free ports appended (exactly what ``wcnotify up`` prints in its demo line when its ports are not the
  defaults 8080 and 8081);
- in the separate-services block, the ports 8080, 8081 and 8082 become free ports (one map for the block);
- the shell's working directory holds a symlink ``.venv`` to the venv running the tests (the README's
  ``. .venv/bin/activate`` runs in the clone), and that venv's ``bin`` comes first on ``PATH`` (the
  separate-services block assumes the venv is active);
- ``WCNOTIFY_*``, ``PROJECT_ID``, ``SECRET``, ``TYPE_ID`` and ``TOKEN`` are removed from the environment first,
  so that only the README's and the docs' own commands set them.

The webhook URL ``https://dapp.example/hooks/notify`` is kept as written: nothing subscribes to the guides'
projects, so the server never calls it. Every command must exit 0, and the answers that matter are checked.
Each run is bounded: ``up``'s start and then each command get what is left of 60 s; ``up`` is stopped with
SIGINT (and must exit 0), killed if it does not stop; the separate services are stopped with SIGTERM. Without
``curl``, ``jq`` or ``openssl`` the tests are skipped with the reason, or fail under
``WCNOTIFY_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import REQUIRE_SERVICES
from .doc_runner import ShellSession, sh_blocks, sh_commands
from .test_relay_durability import free_port
from .test_up import Up

ROOT = Path(__file__).resolve().parents[2]
DAPP_API, WEBHOOKS, README = ROOT / "docs" / "dapp-api.md", ROOT / "docs" / "webhooks.md", ROOT / "README.md"
BUDGET = 60.0  # seconds for up's start and every command (and, separately, for the separate-services block)
ACCOUNT = "eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # the account docs/dapp-api.md sends to
README_PORT = "127.0.0.1:8082"
README_DEMO = "wcnotify demo --against $WCNOTIFY_SERVER_URL"
SEPARATE_PORTS = ("8080", "8081", "8082")
CLEARED = ("PROJECT_ID", "SECRET", "TYPE_ID", "TOKEN")  # (and every WCNOTIFY_*): only the docs set them


def is_make(command: str) -> bool:
    """A ``make`` line: left out (``make run`` serves until stopped, ``make test`` runs this suite)."""
    return command == "make" or command.startswith("make ")


def readme_blocks() -> tuple[list[str], list[str]]:
    """README.md's commands, without the ``make`` lines: (the quickstart's, run against ``up``; the
    separate-services block's, whose servers end in ``&``). Every other command of the README is in one of them."""
    quickstart: list[str] = []
    separate: list[str] = []
    for block in sh_blocks(README):
        commands = [c for c in sh_commands(README, [block]) if not is_make(c)]
        if any(c.endswith("&") for c in commands):
            separate += commands
        else:
            quickstart += commands
    left_out = [c for c in sh_commands(README) if is_make(c)]
    assert len(quickstart) + len(separate) + len(left_out) == len(sh_commands(README))  # nothing else left out
    assert quickstart and README_DEMO in quickstart, "README.md: no quickstart block ending in the demo"
    assert sum(c.endswith("&") for c in separate) == 3, f"README.md: expected three servers started with &: {separate}"
    return quickstart, separate


def tool_missing(tool: str) -> None:
    reason = f"the docs run `{tool}`, which is not installed (apt-get install {tool})"
    if REQUIRE_SERVICES:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def answer(outputs: list[tuple[str, str]], *fragments: str) -> Any:
    """The JSON printed by the one command containing every fragment."""
    found = [out for command, out in outputs if all(f in command for f in fragments)]
    assert len(found) == 1, f"{len(found)} commands contain {fragments}"
    return json.loads(found[0])


def shell_env(*tools: str) -> dict[str, str]:
    """The environment the docs' commands start from (this venv first on PATH, no variable the docs set)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # this venv's wcnotify
        "NO_COLOR": "1",
    }
    for tool in tools:
        if shutil.which(tool, path=env["PATH"]) is None:
            tool_missing(tool)
    for name in [n for n in env if n.startswith("WCNOTIFY_")] + list(CLEARED):
        env.pop(name, None)
    return env


def test_the_readme_quickstart_and_the_curl_examples_run_as_written(tmp_path: Path) -> None:
    env = shell_env("curl", "jq")
    activate = Path(sys.prefix) / "bin" / "activate"
    if not activate.exists():
        reason = f"README.md's quickstart activates the venv; these tests do not run in one ({sys.prefix})"
        if REQUIRE_SERVICES:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    quickstart, _ = readme_blocks()
    docs = {README: quickstart} | {doc: sh_commands(doc) for doc in (DAPP_API, WEBHOOKS)}
    for doc, commands in docs.items():
        assert commands, f"{doc.name}: no sh command found"

    start = time.monotonic()
    shell = tmp_path / "shell"  # the clone, as the README's reader stands in it: .venv and wcnotify-data
    shell.mkdir()
    (shell / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    up = Up(tmp_path, "--data-dir", str(shell / "wcnotify-data"), "--relay-port", "0", "--keys-port", "0",
            "--notify-port", "0", "--json")
    session: ShellSession | None = None
    try:
        ready = json.loads(up.read_until(lambda line: '"ready"' in line, timeout=BUDGET))
        notify, relay, keys = ready["notify"], ready["relay"], ready["keys"]

        def substitute(command: str) -> str:
            if command == README_DEMO:  # what up prints in its demo line when its ports are not the defaults
                return f"{command} --relay-url {relay} --keys-url {keys}"
            return command.replace(f"http://{README_PORT}", notify)

        session = ShellSession(shell, env, BUDGET - (time.monotonic() - start), substitute)
        ran: dict[Path, list[tuple[str, str]]] = {}
        for doc, commands in docs.items():
            for command in commands:
                session.run(command)
            ran[doc] = session.outputs[-len(commands):]
            if doc == README:
                readme_env = session.env
                readme_project = json.loads((shell / "project.json").read_text())
    finally:
        if session is not None:
            session.stop()
        try:
            code, rest = up.stop(signal.SIGINT)
        finally:
            up.kill()
    assert code == 0 and json.loads(rest.strip().splitlines()[-1])["event"] == "stopped", rest + up.stderr()
    assert "Traceback" not in up.stderr(), up.stderr()
    assert session is not None
    env = session.env

    # README.md: the variables it exported, its project and type, the broadcast's answer, the demo on this stack
    assert readme_env["WCNOTIFY_SERVER_URL"] == notify, readme_env["WCNOTIFY_SERVER_URL"]
    assert readme_env["WCNOTIFY_ADMIN_TOKEN"] == ready["adminToken"]
    assert readme_env["VIRTUAL_ENV"] and Path(readme_env["VIRTUAL_ENV"]).samefile(sys.prefix), readme_env["VIRTUAL_ENV"]
    assert re.fullmatch(r"[0-9a-f]{32}", readme_project["projectId"]), readme_project
    assert readme_project["appDomain"] == "hello.example.com", readme_project
    assert (readme_env["PROJECT_ID"], readme_env["SECRET"]) == (readme_project["projectId"], readme_project["secret"])
    assert re.fullmatch(r"[0-9a-f-]{8,}", readme_env["TYPE_ID"]), readme_env["TYPE_ID"]
    outputs = ran[README]
    broadcast = answer(outputs, "/notify/broadcast")
    assert set(broadcast) == {"notification_id", "queued"} and broadcast["queued"] == 0, broadcast
    assert re.fullmatch(r"[0-9a-f-]{8,}", broadcast["notification_id"]), broadcast
    demo = next(out for command, out in outputs if command == README_DEMO)
    assert f"against {notify}" in demo and "All 14 steps passed" in demo, demo
    assert relay in demo, demo  # the demo used up's relay (the substituted --relay-url)

    # docs/dapp-api.md: the project and type it exported, then what each call answered
    project = json.loads((shell / "project.json").read_text())
    assert project["projectId"] != readme_project["projectId"], project
    assert env["PROJECT_ID"] == project["projectId"] and env["SECRET"] == project["secret"], project
    assert re.fullmatch(r"[0-9a-f-]{8,}", env["TYPE_ID"]), env["TYPE_ID"]
    outputs = ran[DAPP_API]
    sent = answer(outputs, "/notify\"")
    assert sent == {"sent": [], "failed": [], "not_found": [ACCOUNT]}, sent
    status = answer(outputs, "/notifications/gm-2026-11-21")
    assert status["notification_id"] == "gm-2026-11-21" and status["title"] == "gm", status
    assert (status["total"], status["withdrawn_at"]) == (0, None), status
    broadcast = answer(outputs, "/notify/broadcast")
    assert broadcast == {"notification_id": "gm-everyone", "queued": 0}, broadcast
    assert answer(outputs, "/subscribers?") == {"subscribers": [], "next_cursor": None}
    withdrawn = answer(outputs, "-X DELETE", "/notifications/gm-everyone")
    assert withdrawn["notification_id"] == "gm-everyone" and withdrawn["withdrawn_now"] == 0, withdrawn
    assert isinstance(withdrawn["withdrawn_at"], int), withdrawn

    # docs/webhooks.md: created with its secret (shown once, and kept), listed without it, deleted
    outputs = ran[WEBHOOKS]
    created = answer(outputs, "-X POST", "/webhooks")
    assert created["url"] == "https://dapp.example/hooks/notify", created
    assert created["events"] == ["subscribed", "unsubscribed"], created
    assert created["secret"].startswith("whsec_") and env["WEBHOOK_SECRET"] == created["secret"], created
    assert env["WEBHOOK_ID"] == created["id"] and json.loads((shell / "webhook.json").read_text()) == created
    listed = answer(outputs, "curl -fsS \"$WCNOTIFY_SERVER_URL/v1/$PROJECT_ID/webhooks\"")
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0], listed
    assert (listed[0]["delivered"], listed[0]["pending"], listed[0]["last_error"]) == (0, 0, None), listed
    assert [out for command, out in outputs if "-X DELETE" in command] == ["204\n"]


def test_the_readme_separate_services_run_as_written(tmp_path: Path) -> None:
    env = shell_env("curl", "openssl")
    _, commands = readme_blocks()
    ports = {port: str(free_port()) for port in SEPARATE_PORTS}

    def substitute(command: str) -> str:  # the README's fixed ports become free ones
        return re.sub(r"\b(" + "|".join(SEPARATE_PORTS) + r")\b", lambda m: ports[m[1]], command)

    session = ShellSession(tmp_path, env, BUDGET, substitute)
    try:
        for command in commands:
            session.run(command)
    finally:
        session.stop()
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("process-*.log")))
    assert len(session.procs) == 3 and all(proc.returncode is not None for proc in session.procs), logs
    assert "Traceback" not in logs, logs

    token = session.env["TOKEN"]
    assert re.fullmatch(r"[0-9a-f]{32}", token), token
    servers = [command for command in commands if command.endswith("&")]
    assert all(f"--port {port}" in " ".join(servers) for port in SEPARATE_PORTS), servers
    assert f"wcnotify notify server on http://127.0.0.1:{ports['8082']}" in logs, logs
    assert "admin token (pass --admin-token" not in logs, logs  # the README's token, not a generated one
    health = [out for command, out in session.outputs if command.startswith("until curl")]
    assert len(health) == 1 and "relay link up" in health[0], health
    created = next(out for command, out in session.outputs if command.startswith("wcnotify project create"))
    assert "project Gm created" in created and re.search(r"projectId: [0-9a-f]{32}\b", created), created
    assert "appDomain: gm.example.com" in created, created
    for name in ("relay.db", "keys.db", "wcnotify-notify.db", "wcnotify-notify.seed"):
        assert (tmp_path / name).exists(), f"{name} was not made in the working directory"
