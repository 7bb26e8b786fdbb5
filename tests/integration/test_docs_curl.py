"""The curl examples of the guides, run as written against a ``wcnotify up`` of their own.

``wcnotify up --json`` runs as a subprocess on free ports and a temporary data dir, as a user starts it. Then
every command of these ``sh`` blocks runs in ``bash``, in this order, as one shell session (what a command
exports is carried to the next), with the real ``curl`` and ``jq``:

1. docs/dapp-api.md ("Try it with curl"): a project with ``wcnotify project create``, a notification type, a
   send to an account, its status, a broadcast, the subscriber list, a withdrawal;
2. docs/webhooks.md: a webhook created (its secret kept), listed and deleted;
3. README.md's curl call (the broadcast; its other ``sh`` blocks start fixed-port servers or run ``make``).

The substitutions, and nothing else:

- ``WCNOTIFY_SERVER_URL`` and ``WCNOTIFY_ADMIN_TOKEN`` are set to what ``wcnotify up`` prints for the user to
  export (read from its ``--json`` ready line), and the venv's ``wcnotify`` comes first on ``PATH``;
- ``127.0.0.1:8082`` (the README's notify server) becomes the free port ``up`` took;
- ``PROJECT_ID``, ``SECRET`` and ``TYPE_ID``, which the README uses, are the ones docs/dapp-api.md's commands
  exported earlier in the session (they are removed from the environment first, so that only the docs set
  them).

The webhook URL ``https://dapp.example/hooks/notify`` is kept as written: nothing subscribes here, so the server
never calls it. Every command must exit 0, and the answers that matter are checked. The whole run is bounded:
``up``'s start and then each command get what is left of 60 s; ``up`` is stopped with SIGINT (and must exit 0),
killed if it does not stop. Without ``curl`` or ``jq`` the test is skipped with the reason, or fails under
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
from .test_up import Up

ROOT = Path(__file__).resolve().parents[2]
DAPP_API, WEBHOOKS, README = ROOT / "docs" / "dapp-api.md", ROOT / "docs" / "webhooks.md", ROOT / "README.md"
BUDGET = 60.0  # seconds for up's start and every command
ACCOUNT = "eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # the account docs/dapp-api.md sends to
README_PORT = "127.0.0.1:8082"


def readme_curl_commands() -> list[str]:
    """The commands of README.md's ``sh`` blocks that call curl (the quickstart's send)."""
    blocks = [block for block in sh_blocks(README) if "curl " in block]
    assert len(blocks) == 1, f"README.md: expected one sh block with curl, found {len(blocks)}"
    return sh_commands(README, blocks)


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


def test_the_curl_examples_of_the_guides_run_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # this venv's wcnotify
        "NO_COLOR": "1",
    }
    for tool in ("curl", "jq"):
        if shutil.which(tool, path=env["PATH"]) is None:
            tool_missing(tool)
    for name in [n for n in env if n.startswith("WCNOTIFY_")] + ["PROJECT_ID", "SECRET", "TYPE_ID"]:
        env.pop(name, None)  # only up's ready line and the docs' own commands set them
    docs = {doc: sh_commands(doc) for doc in (DAPP_API, WEBHOOKS)} | {README: readme_curl_commands()}
    for doc, commands in docs.items():
        assert commands, f"{doc.name}: no sh command found"

    start = time.monotonic()
    up = Up(tmp_path, "--data-dir", str(tmp_path / "data"), "--relay-port", "0", "--keys-port", "0",
            "--notify-port", "0", "--json")
    session: ShellSession | None = None
    try:
        ready = json.loads(up.read_until(lambda line: '"ready"' in line, timeout=BUDGET))
        notify = ready["notify"]
        env |= {"WCNOTIFY_SERVER_URL": notify, "WCNOTIFY_ADMIN_TOKEN": ready["adminToken"]}
        shell = tmp_path / "shell"
        shell.mkdir()
        session = ShellSession(shell, env, BUDGET - (time.monotonic() - start),
                               lambda command: command.replace(f"http://{README_PORT}", notify))
        ran: dict[Path, list[tuple[str, str]]] = {}
        for doc, commands in docs.items():
            for command in commands:
                session.run(command)
            ran[doc] = session.outputs[-len(commands):]
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

    # docs/dapp-api.md: the project and type it exported, then what each call answered
    project = json.loads((shell / "project.json").read_text())
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

    # README.md: the broadcast, with the project and type of docs/dapp-api.md
    (command, out), = ran[README]
    assert README_PORT in command
    readme = json.loads(out)
    assert set(readme) == {"notification_id", "queued"} and readme["queued"] == 0, readme
    assert re.fullmatch(r"[0-9a-f-]{8,}", readme["notification_id"]), readme
