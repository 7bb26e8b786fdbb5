"""The dapp-side commands (`wcnotify types|send|webhooks|project update`) against a live stack: what they print,
their --json, and the errors that say what to do. Wallets here are the protocol-level test wallets of
notify_stack.py, so a test can check what each wallet received; test_cli_wallet.py uses the CLI's wallet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wcnotify import spec
from wcnotify.cli import app
from wcnotify.protocol.crypto import topic_of

from .cli_harness import CliStack, cli_stack, create_project
from .notify_stack import Dapp, Wallet

STRANGER = "eip155:1:0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[CliStack]:
    with cli_stack(database_url, tmp_path) as running:
        yield running


def subscribed_wallets(cli: CliStack, types: list[list[str]]) -> tuple[Dapp, list[Wallet]]:
    """A project made with the CLI, and one test wallet per entry of ``types``, subscribed to those types."""
    created = create_project(cli, "Gm", "gm.example.com", "alerts", "news")
    listed = {t["name"]: t["id"] for t in cli.json("types list")}
    dapp = Dapp(created["projectId"], created["secret"], "gm.example.com", bytes.fromhex(created["subscribeKey"]),
                bytes.fromhex(created["authenticationKey"]), listed)

    async def make() -> list[Wallet]:
        wallets = []
        for wanted in types:
            wallet = await Wallet(cli.stack).__aenter__()
            await wallet.register(dapp.domain)
            await wallet.subscribe(dapp, wanted)
            wallets.append(wallet)
        return wallets

    return dapp, cli.call(make())


def close(cli: CliStack, wallets: list[Wallet]) -> None:
    for wallet in wallets:
        cli.call(wallet.__aexit__(None, None, None))


def test_every_command_has_an_example_and_json() -> None:
    mine = [["types", "add"], ["types", "list"], ["types", "delete"], ["send"], ["webhooks", "add"],
            ["webhooks", "list"], ["webhooks", "delete"], ["project", "update"]]
    mine += [["wallet", name] for name in ("init", "register", "apps", "subscribe", "unsubscribe", "inbox", "read",
                                             "sync")]
    for path in mine:
        done = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        out = done.stdout
        assert "Example: wcnotify " + " ".join(path) in " ".join(out.split()), path
        assert "--json" in out, path


def test_types_add_list_delete_and_an_unknown_type(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com")
    assert "no notification types yet" in cli.invoke("types list").stdout
    added = cli.json("types add alerts --description 'Price alerts' --icon https://gm.example.com/a.png")
    assert added["name"] == "alerts" and added["image_urls"]["md"] == "https://gm.example.com/a.png"
    assert "notification type news added" in cli.invoke("types add news").stdout
    listed = cli.json("types list")
    assert [(t["name"], t["description"]) for t in listed] == [("alerts", "Price alerts"), ("news", "")]
    table = cli.invoke("types list").stdout
    assert added["id"] in table and "Price alerts" in table

    unknown = cli.invoke("send --type gm --title t --body b --account " + STRANGER, ok=False)
    assert unknown.exit_code == 1
    assert "has no notification type 'gm' (its types: alerts, news)" in unknown.stderr
    assert "wcnotify types add gm" in unknown.stderr and not unknown.stdout

    assert "deleted" in cli.invoke("types delete news").stdout
    assert [t["name"] for t in cli.json("types list")] == ["alerts"]
    assert cli.invoke("types delete news", ok=False).exit_code == 1


def test_send_prints_each_account_sent_failed_or_not_found(cli: CliStack) -> None:
    dapp, (alice, bob) = subscribed_wallets(cli, [["alerts", "news"], ["alerts"]])
    try:
        accounts = f"--account {alice.account} --account {bob.account} --account {STRANGER}"
        done = cli.invoke(f"send --type news --title 'Weekly' --body 'The digest' --url https://gm.example.com/w "
                          f"{accounts} --wait")
        lines = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│ eip155")}
        assert "sent" in lines[str(alice.account)].split("│")[2]
        assert spec.NOTIFY_REASON_NOT_SUBSCRIBED_TO_TYPE in lines[str(bob.account)]
        assert "failed" in lines[str(bob.account)] and "not found" in lines[STRANGER]
        assert "1 sent, 1 failed, 1 not subscribed" in done.stdout
        assert "delivery: 1 of 1 published, 0 failed, 0 queued" in done.stdout
        message = cli.call(alice.next_notification(dapp))["msg"]
        assert (message["title"], message["body"], message["url"]) == ("Weekly", "The digest",
                                                                       "https://gm.example.com/w")
        assert cli.call(bob.nothing(topic_of(bob.sub_key(dapp)), wait=0.3))

        # --json: the same, for scripts, and an --accounts-file (comments, blank lines, a repeat)
        listing = cli.tmp / "accounts.txt"
        listing.write_text(f"# subscribers\n{alice.account}\n\n{STRANGER}  # nobody\n{alice.account}\n")
        out = cli.json(f"send --type alerts --title Alert --body 'ETH 4k' --accounts-file {listing} "
                       "--notification-id alert-1")
        assert out == {"notification_id": "alert-1", "type": dapp.types["alerts"], "type_name": "alerts",
                       "requests": 1, "sent": [str(alice.account)], "failed": [], "not_found": [STRANGER]}
        assert cli.call(alice.next_notification(dapp))["msg"]["title"] == "Alert"
    finally:
        close(cli, [alice, bob])


def test_a_chunked_send_is_one_notification_and_a_retry_delivers_nothing_twice(cli: CliStack) -> None:
    dapp, wallets = subscribed_wallets(cli, [["alerts"], ["alerts"], ["alerts"]])
    try:
        accounts = [str(w.account) for w in wallets] + [STRANGER]
        listing = cli.tmp / "accounts.txt"
        listing.write_text("\n".join(accounts) + "\n")
        first = cli.invoke(f"send --type alerts --title t --body b --accounts-file {listing} --chunk-size 1 "
                           "--notification-id big-1 --wait")
        assert "3 sent, 0 failed, 1 not subscribed (4 requests)" in first.stdout
        assert "4 accounts in 4 requests" in first.stderr and "4/4" in first.stderr  # the id, then the bar
        assert "delivery: 3 of 3 published" in first.stdout
        for wallet in wallets:
            cli.call(wallet.next_notification(dapp))

        # the retry of an interrupted send: other order, other split, same id: nobody gets it twice
        listing.write_text("\n".join(reversed(accounts)) + "\n")
        again = cli.json(f"send --type alerts --title t --body b --accounts-file {listing} --chunk-size 3 "
                         "--notification-id big-1 --wait")
        assert again["requests"] == 2 and sorted(again["sent"]) == sorted(accounts[:3])
        assert again["delivery"]["total"] == 3 and again["delivery"]["published"] == 3
        for wallet in wallets:
            assert cli.call(wallet.nothing(topic_of(wallet.sub_key(dapp)), wait=0.3))
    finally:
        close(cli, wallets)


def test_broadcast(cli: CliStack) -> None:
    dapp, wallets = subscribed_wallets(cli, [["alerts"], ["alerts", "news"], ["news"]])
    try:
        out = cli.json("send --type alerts --title Everyone --body 'to all' --broadcast --wait")
        assert out["queued"] == 2 and out["broadcast"] is True and out["delivery"]["published"] == 2
        for wallet in wallets[:2]:
            assert cli.call(wallet.next_notification(dapp))["msg"]["title"] == "Everyone"
        assert cli.call(wallets[2].nothing(topic_of(wallets[2].sub_key(dapp)), wait=0.3))
        assert "queued for 2 subscriber(s)" in cli.invoke("send --type news --title N --body n --broadcast").stdout

        both = cli.invoke(f"send --type news --title N --body n --broadcast --account {STRANGER}", ok=False)
        assert both.exit_code == 2 and "leave out --account" in both.output
        nobody = cli.invoke("send --type news --title N --body n", ok=False)
        assert nobody.exit_code == 2 and "--broadcast" in nobody.output
    finally:
        close(cli, wallets)


def test_errors_say_what_to_do_without_a_traceback(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts")
    send = ["send", "--type", "alerts", "--title", "t", "--body", "b", "--account", STRANGER]

    # the real entry point: exit code 1, one line of advice on stderr, nothing on stdout
    wrong = cli.process(*send, "--secret", "not-the-secret")
    assert wrong.returncode == 1 and not wrong.stdout
    assert "refused the secret" in wrong.stderr and "WCNOTIFY_PROJECT_SECRET" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    down = cli.process("types", "list", "--server", "http://127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach the notify server at http://127.0.0.1:9" in down.stderr
    assert "wcnotify up" in down.stderr and "Traceback" not in down.stderr

    too_long = cli.invoke([*send[:4], "x" * (spec.NOTIFY_TITLE_MAX + 1), *send[5:]], ok=False)
    assert too_long.exit_code == 1 and "refused --title" in too_long.stderr

    bad = cli.invoke([*send[:-1], "not-an-account"], ok=False)
    assert bad.exit_code == 2 and "is not a CAIP-10 account" in bad.output

    unknown_event = cli.invoke("webhooks add http://127.0.0.1:9/hook --event paid", ok=False)
    assert unknown_event.exit_code == 1 and "unknown event(s) paid" in unknown_event.stderr

    missing = cli.invoke("types list", ok=False, WCNOTIFY_PROJECT_ID="")
    assert missing.exit_code == 2 and "--project" in missing.output


def test_webhooks_add_list_delete(cli: CliStack) -> None:
    create_project(cli, "Gm", "gm.example.com", "alerts")
    assert "no webhooks" in cli.invoke("webhooks list").stdout
    added = cli.invoke("webhooks add http://127.0.0.1:9/notify --event subscribed --event unsubscribed")
    assert "signing secret (shown once; keep it): whsec_" in added.stdout
    created = cli.json("webhooks add http://127.0.0.1:9/all")
    assert created["secret"].startswith("whsec_") and created["events"] == list(spec.WEBHOOK_EVENTS)

    hooks = cli.json("webhooks list")
    assert [(h["url"], h["events"]) for h in sorted(hooks, key=lambda h: h["url"])] == [
        ("http://127.0.0.1:9/all", list(spec.WEBHOOK_EVENTS)),
        ("http://127.0.0.1:9/notify", ["subscribed", "unsubscribed"]),
    ]
    assert all("secret" not in h for h in hooks)
    assert created["id"] in cli.invoke("webhooks list").stdout

    assert json.loads(cli.invoke(f"webhooks delete {created['id']} --json").stdout) == {"deleted": created["id"]}
    assert [h["url"] for h in cli.json("webhooks list")] == ["http://127.0.0.1:9/notify"]
    gone = cli.invoke(f"webhooks delete {created['id']}", ok=False)
    assert gone.exit_code == 1 and "not found" in gone.stderr


def test_project_update_lists_the_app_in_the_registry(cli: CliStack) -> None:
    created = create_project(cli, "Gm", "gm.example.com", "alerts")
    apps = cli.call(cli.stack.http.get(f"{cli.stack.notify_url}/v1/apps")).json()["apps"]
    assert apps == []
    out = cli.json("project update --listed --description 'gm, every morning' --icon https://gm.example.com/i.png")
    assert out["listed"] is True and out["project_id"] == created["projectId"]
    assert out["icons"] == ["https://gm.example.com/i.png"]
    apps = cli.call(cli.stack.http.get(f"{cli.stack.notify_url}/v1/apps")).json()["apps"]
    assert [(a["appDomain"], a["description"]) for a in apps] == [("gm.example.com", "gm, every morning")]
    assert "listed: False" in cli.invoke("project update --unlisted").stdout
