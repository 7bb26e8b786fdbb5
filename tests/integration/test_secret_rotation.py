"""Rotating a project's API secret (``POST /v1/{projectId}/secret/rotate``), on SQLite and PostgreSQL, through
HTTP, the dapp SDK and ``wcnotify project rotate-secret``: the new secret works and the old one stops (at once,
or when its grace period ends), only the current secret or the admin token can rotate, a malformed body
changes nothing, only hashes are stored, and of concurrent rotations exactly one wins."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from wcnotify import spec
from wcnotify.cli import app
from wcnotify.dapp import ConflictError, NotifyAdminClient, NotifyDappClient, UnauthorizedError
from wcnotify.notify import store
from wcnotify.storage import create_engine
from wcnotify.storage.tables import projects

from .cli_harness import CliStack, cli_stack, create_project
from .notify_stack import ADMIN_HEADERS, Stack, db_snapshot, refused, running_stack

GRACE = 2  # seconds: long enough to use the old secret after rotating, short enough to wait out
EXPIRY_WAIT = GRACE + 5  # the bound on waiting for the old secret to stop


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def works(stack: Stack, project_id: str, secret: str) -> bool:
    """Whether ``secret`` opens a project-secret route (True: 200, False: 401; anything else fails)."""
    r = await stack.http.get(f"{stack.notify_url}/v1/{project_id}/notification-types", headers=bearer(secret))
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


async def rotate(stack: Stack, project_id: str, token: str, body: Any = None) -> httpx.Response:
    url = f"{stack.notify_url}/v1/{project_id}/secret/rotate"
    return await stack.http.post(url, headers=bearer(token), json=body)


async def wait_until_refused(stack: Stack, project_id: str, secret: str, deadline: float) -> float:
    """Poll until ``secret`` gets 401; the time it did. Fails past ``deadline`` (time.monotonic())."""
    while await works(stack, project_id, secret):
        assert time.monotonic() < deadline, "the old secret still works after its grace period"
        await asyncio.sleep(0.1)
    return time.monotonic()


# ----------------------------------------------------------------------------------------------- HTTP


async def test_rotation_with_the_secret_and_the_admin_token(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        other = await stack.create_dapp()
        old = dapp.secret

        # without credentials, or with wrong ones, nothing rotates
        r = await stack.http.post(f"{stack.notify_url}/v1/{dapp.project_id}/secret/rotate")
        refused(r, 401, "project secret or the admin token")
        refused(await rotate(stack, dapp.project_id, "wrong"), 401, "Invalid project id or secret")
        refused(await rotate(stack, dapp.project_id, other.secret), 401, "Invalid")  # another project's secret
        refused(await rotate(stack, "nope", old), 401, "Invalid")
        refused(await rotate(stack, "nope", ADMIN_HEADERS["authorization"][7:]), 404, "no project")
        assert await works(stack, dapp.project_id, old)

        # the current secret rotates; the answer holds the new secret, once; the old one stops at once
        r = await rotate(stack, dapp.project_id, old)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert set(answer) == {"projectId", "secret", "previousSecretExpiresAt"}
        assert answer["projectId"] == dapp.project_id and answer["previousSecretExpiresAt"] is None
        new = answer["secret"]
        assert len(new) == 64 and new != old and int(new, 16) >= 0  # as project creation makes them
        assert await works(stack, dapp.project_id, new)
        assert not await works(stack, dapp.project_id, old)
        refused(await rotate(stack, dapp.project_id, old), 401, "Invalid")
        assert await works(stack, other.project_id, other.secret)  # other projects are untouched

        # only hashes are stored
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                row = (await conn.execute(select(projects).where(projects.c.project_id == dapp.project_id))).one()
        finally:
            await engine.dispose()
        assert row.secret_hash == store.hash_secret(new) and row.previous_secret_hash is None
        assert new not in repr(tuple(row)) and old not in repr(tuple(row))

        # the admin token rotates without knowing the secret (a lost or leaked one)
        r = await rotate(stack, dapp.project_id, ADMIN_HEADERS["authorization"][7:], {"grace_seconds": 0})
        assert r.status_code == 200, r.text
        newer = r.json()["secret"]
        assert await works(stack, dapp.project_id, newer)
        assert not await works(stack, dapp.project_id, new)
        # the new secret opens every project-secret route, not only the one tried above
        r = await stack.http.get(f"{stack.notify_url}/v1/{dapp.project_id}/project", headers=bearer(newer))
        assert r.status_code == 200 and r.json()["projectId"] == dapp.project_id


async def test_a_grace_period_keeps_the_old_secret_until_it_ends(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        old = dapp.secret
        before = int(time.time() * 1000)
        r = await rotate(stack, dapp.project_id, old, {"grace_seconds": GRACE})
        rotated_at = time.monotonic()
        assert r.status_code == 200, r.text
        new, expires = r.json()["secret"], r.json()["previousSecretExpiresAt"]
        assert before + GRACE * 1000 <= expires <= int(time.time() * 1000) + GRACE * 1000

        # both work during the grace period; the old one may not rotate (409: it was rotated already)
        assert await works(stack, dapp.project_id, new)
        assert await works(stack, dapp.project_id, old)
        refused(await rotate(stack, dapp.project_id, old), 409, "already rotated")
        assert await works(stack, dapp.project_id, new)

        # then the old one stops, the new one goes on
        stopped = await wait_until_refused(stack, dapp.project_id, old, rotated_at + EXPIRY_WAIT)
        assert stopped - rotated_at >= GRACE - 0.5, "the old secret stopped before its grace period ended"
        assert await works(stack, dapp.project_id, new)

        # a rotation without grace ends the previous secret at once, even one still in its grace period
        r = await rotate(stack, dapp.project_id, new, {"grace_seconds": 600})
        newer = r.json()["secret"]
        assert await works(stack, dapp.project_id, new)
        r = await rotate(stack, dapp.project_id, newer, {})
        newest = r.json()["secret"]
        assert [await works(stack, dapp.project_id, s) for s in (old, new, newer, newest)] == [
            False, False, False, True]


async def test_a_malformed_body_is_refused_and_changes_nothing(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        url = f"{stack.notify_url}/v1/{dapp.project_id}/secret/rotate"
        before = await db_snapshot(database_url, (projects,))
        top = spec.NOTIFY_SECRET_GRACE_MAX
        cases: list[tuple[Any, str]] = [
            ({"grace_seconds": -1}, "grace_seconds"),
            ({"grace_seconds": top + 1}, f"less than or equal to {top}"),
            ({"grace_seconds": "60"}, "grace_seconds"),
            ({"grace_seconds": 1.5}, "grace_seconds"),
            ({"grace_seconds": True}, "grace_seconds"),
            ({"grace_seconds": None}, "grace_seconds"),
            ({"grace": 60}, "grace: Extra inputs are not permitted"),  # a misspelling is not a rotation without grace
            ([60], "body"),
            ("60", "body"),
        ]
        for body, words in cases:
            refused(await stack.http.post(url, json=body, headers=bearer(dapp.secret)), 422, words)
        r = await stack.http.post(url, content=b'{"grace_seconds": ', headers=bearer(dapp.secret) | {
            "content-type": "application/json"})
        refused(r, 422)
        huge = json.dumps({"grace_seconds": 1, "pad": "x" * spec.NOTIFY_MAX_BODY_BYTES}).encode()
        refused(await stack.http.post(url, content=huge, headers=bearer(dapp.secret)), 413, "larger than")
        # a bad body with bad credentials: 401 first
        refused(await stack.http.post(url, json={"grace_seconds": -1}, headers=bearer("wrong")), 401, "Invalid")
        assert await db_snapshot(database_url, (projects,)) == before
        assert await works(stack, dapp.project_id, dapp.secret)
        # the largest grace is accepted
        r = await stack.http.post(url, json={"grace_seconds": top}, headers=bearer(dapp.secret))
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("grace", [0, 600])
async def test_concurrent_rotations_leave_one_new_secret(database_url: str, grace: int) -> None:
    """Rotations racing with the same secret: exactly one wins; the others get 409 (or 401, if they were
    authorised after the winner committed and the old secret was already gone) and change nothing."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        old = dapp.secret
        answers = await asyncio.gather(*(rotate(stack, dapp.project_id, old, {"grace_seconds": grace})
                                         for _ in range(8)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses.count(200) == 1, [(r.status_code, r.text) for r in answers]
        assert set(statuses) <= {200, 401, 409}, statuses
        winner = next(r.json()["secret"] for r in answers if r.status_code == 200)
        assert await works(stack, dapp.project_id, winner)
        assert await works(stack, dapp.project_id, old) is (grace > 0)

        # the admin token racing: whatever the interleaving, exactly one secret works afterwards (grace 0)
        answers = await asyncio.gather(*(rotate(stack, dapp.project_id, ADMIN_HEADERS["authorization"][7:])
                                         for _ in range(6)))
        assert {r.status_code for r in answers} <= {200, 409}
        issued = [r.json()["secret"] for r in answers if r.status_code == 200]
        assert issued
        valid = [s for s in [old, winner, *issued] if await works(stack, dapp.project_id, s)]
        assert len(valid) == 1 and valid[0] in issued, (valid, [r.status_code for r in answers])


async def test_the_compare_and_set_lets_one_of_two_engines_win(database_url: str) -> None:
    """Below the API: two engines (as two replicas would) rotate from the same secret at the same moment."""
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        for round_ in range(5):
            async with engines[0].connect() as conn:
                project = await store.project_by_public_id(conn, dapp.project_id)
                assert project is not None
                expected = await store.current_secret_hash(conn, project)
            assert expected is not None

            async def one(engine: Any, expected: str = expected, project: Any = project) -> Any:
                async with store.Database(engine).write() as conn:
                    return await store.rotate_secret(conn, project, expected_hash=expected, grace_ms=60_000,
                                                     now_ms=int(time.time() * 1000))

            results = await asyncio.gather(*(one(e) for e in engines))
            won = [r for r in results if r is not None]
            assert len(won) == 1, (round_, results)
            async with engines[1].connect() as conn:
                row = (await conn.execute(select(projects).where(projects.c.id == project.id))).one()
            assert row.secret_hash == store.hash_secret(won[0][0]) and row.previous_secret_hash == expected
    finally:
        for engine in engines:
            await engine.dispose()


# -------------------------------------------------------------------------------------------- the SDK


async def test_the_dapp_sdk_rotates_and_goes_on_with_the_new_secret(database_url: str) -> None:
    async with running_stack(database_url) as stack:
        dapp = await stack.create_dapp()
        async with (NotifyDappClient(stack.notify_url, dapp.project_id, dapp.secret) as client,
                    NotifyDappClient(stack.notify_url, dapp.project_id, dapp.secret) as stale):
            new = await client.rotate_secret()
            assert new != dapp.secret
            assert (await client.project()).project_id == dapp.project_id  # the client uses the new secret
            with pytest.raises(UnauthorizedError):
                await stale.project()
            with pytest.raises(UnauthorizedError):
                await stale.rotate_secret()

            newer = await client.rotate_secret(grace_seconds=GRACE)
            rotated_at = time.monotonic()
            async with NotifyDappClient(stack.notify_url, dapp.project_id, new) as previous:
                assert (await previous.project()).project_id == dapp.project_id  # in its grace period
                with pytest.raises(ConflictError, match="already rotated"):
                    await previous.rotate_secret()
                await wait_until_refused(stack, dapp.project_id, new, rotated_at + EXPIRY_WAIT)
                with pytest.raises(UnauthorizedError):
                    await previous.project()
            assert await works(stack, dapp.project_id, newer)

        async with NotifyAdminClient(stack.notify_url, ADMIN_HEADERS["authorization"][7:]) as admin:
            credentials = await admin.rotate_project_secret(dapp.project_id)
        assert credentials.project_id == dapp.project_id
        assert await works(stack, dapp.project_id, credentials.secret)
        assert not await works(stack, dapp.project_id, newer)


# -------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Any:
    with cli_stack(database_url, tmp_path) as running:
        yield running


def cli_works(cli: CliStack, secret: str) -> bool:
    done = cli.invoke("types list --json", ok=False, WCNOTIFY_PROJECT_SECRET=secret)
    assert done.exit_code in (0, 1), done.output
    return done.exit_code == 0


def test_cli_rotate_secret(cli: CliStack) -> None:
    created = create_project(cli, "Gm", "gm.example.com", "gm")
    pid, old = created["projectId"], created["secret"]

    # with the project secret (from the environment), --json
    rotated = cli.json(f"project rotate-secret {pid}")
    assert rotated == {"projectId": pid, "secret": rotated["secret"], "graceSeconds": 0}
    new = rotated["secret"]
    assert cli_works(cli, new) and not cli_works(cli, old)

    # the old secret can no longer rotate: exit 1, one line saying what to do
    done = cli.invoke(f"project rotate-secret {pid}", ok=False, WCNOTIFY_PROJECT_SECRET=old)
    assert done.exit_code == 1 and "refused the secret" in done.stderr and "admin token" in done.stderr
    assert done.stdout == ""

    # --grace, text output; the project id from the environment
    done = cli.invoke(f"project rotate-secret --grace {GRACE}", WCNOTIFY_PROJECT_SECRET=new)
    rotated_at = time.monotonic()
    assert "API secret rotated" in done.stdout and f"keeps working for {GRACE} s" in done.stdout, done.stdout
    newer = done.stdout.split("secret: ")[1].split()[0]
    assert cli_works(cli, newer) and cli_works(cli, new)
    done = cli.invoke(f"project rotate-secret {pid}", ok=False, WCNOTIFY_PROJECT_SECRET=new)
    assert done.exit_code == 1 and "already rotated" in done.stderr
    while cli_works(cli, new):
        assert time.monotonic() < rotated_at + EXPIRY_WAIT, "the old secret still works after its grace period"
        time.sleep(0.1)
    assert cli_works(cli, newer)

    # with the admin token alone (WCNOTIFY_ADMIN_TOKEN is in the environment; no secret)
    done = cli.invoke(["project", "rotate-secret", pid, "--json"], WCNOTIFY_PROJECT_SECRET="")
    newest = json.loads(done.stdout)["secret"]
    assert cli_works(cli, newest) and not cli_works(cli, newer)
    assert "stopped working now" in cli.invoke(["project", "rotate-secret", pid, "--secret", newest]).stdout

    # errors that say what to do
    done = cli.invoke(f"project rotate-secret {pid}", ok=False, WCNOTIFY_PROJECT_SECRET="",
                      WCNOTIFY_ADMIN_TOKEN="")
    assert done.exit_code == 1 and "--secret" in done.stderr and "--admin-token" in done.stderr
    done = cli.invoke(f"project rotate-secret {pid}", ok=False, WCNOTIFY_PROJECT_SECRET="",
                      WCNOTIFY_ADMIN_TOKEN="wrong")
    assert done.exit_code == 1 and "refused the admin token" in done.stderr
    done = cli.invoke("project rotate-secret nope", ok=False, WCNOTIFY_PROJECT_SECRET="")
    assert done.exit_code == 1 and "no project 'nope'" in done.stderr
    for bad in ("-1", str(spec.NOTIFY_SECRET_GRACE_MAX + 1), "soon"):
        assert cli.invoke(["project", "rotate-secret", pid, "--grace", bad], ok=False).exit_code == 2
    assert cli.invoke(f"project rotate-secret {pid} --server http://127.0.0.1:1", ok=False).exit_code == 1


def test_cli_rotate_secret_help() -> None:
    done = CliRunner().invoke(app, ["project", "rotate-secret", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Example: wcnotify project rotate-secret" in " ".join(done.stdout.split())
    assert "--json" in done.stdout and "--grace" in done.stdout and "--admin-token" in done.stdout
