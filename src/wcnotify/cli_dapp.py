"""Dapp-side commands: ``wcnotify types …``, ``send``, ``webhooks …``, ``project update`` and ``project rotate-secret``.

They are thin over :class:`wcnotify.dapp.NotifyDappClient` and take the project's credentials from options or
the environment (``--server``/``WCNOTIFY_SERVER_URL``, ``--project``/``WCNOTIFY_PROJECT_ID``,
``--secret``/``WCNOTIFY_PROJECT_SECRET``), so a shell that exported them once can send with one line.

Notification ids and large sends. The API takes at most 500 accounts per request, so ``send`` splits a
longer list into requests of at most 500, and sends **every request under the same notification_id**
(``--notification-id``, or a random one printed before the first request). The server queues a
notification at most once per (notification, subscriber): a later request under the same id queues it
for the subscribers it has not reached yet and for no one twice. So running the same command again after
any failure, with the id it printed, finishes the send and never delivers twice, even if the account list
was reordered, deduplicated or split differently in between; and one ``notification_status`` counts the
whole send. (Per-chunk ids would be safe only if a retry split the list exactly as before.) The first
request's content is kept under an id: a retry cannot change the title. As on the API, a resend spends
each account's rate-limit token again, so a retry may report an already-served account as ``Rate limit
exceeded``; it was still delivered once.

A 429 (the project's send budget) queued nothing, so the chunk is sent again after the server's
``Retry-After``; any other failure stops the send with the command to resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from wcnotify import spec
from wcnotify.cli_common import JSON_HELP, CommandError, fail, literal, print_json, run, stderr, stdout

if TYPE_CHECKING:
    from wcnotify.dapp import Notification, NotificationType, NotifyDappClient, SendResult

types_app = typer.Typer(help="Add, list and delete the project's notification types.", no_args_is_help=True)
webhooks_app = typer.Typer(
    help="Webhooks: the notify server POSTs subscribed/updated/unsubscribed events to your URL, signed.",
    no_args_is_help=True,
)

_SERVER = typer.Option("http://127.0.0.1:8082", "--server", envvar="WCNOTIFY_SERVER_URL",
                       help="The notify server's URL.")
_PROJECT = typer.Option(..., "--project", envvar="WCNOTIFY_PROJECT_ID", show_default=False,
                        help="The project id `wcnotify project create` printed.")
_SECRET = typer.Option(..., "--secret", envvar="WCNOTIFY_PROJECT_SECRET", show_default=False,
                       help="The project's API secret `wcnotify project create` printed.")
_JSON = typer.Option(False, "--json", help=JSON_HELP)

SUMMARY_ROWS_MAX = 100  # above this many accounts, the table lists only those not sent (--json lists all)
RATE_LIMIT_RETRIES = 10  # 429s absorbed per request before giving up
_EVENT_NAMES = ", ".join(spec.WEBHOOK_EVENTS)


def register(app: typer.Typer, project_app: typer.Typer) -> None:
    """Add the dapp commands to the ``wcnotify`` app (``project_app`` is its ``project`` group)."""
    app.add_typer(types_app, name="types")
    app.command("send")(send)
    app.add_typer(webhooks_app, name="webhooks")
    project_app.command("update")(project_update)
    project_app.command("rotate-secret")(project_rotate_secret)


# ----------------------------------------------------------------------------------------- plumbing


@contextlib.asynccontextmanager
async def _client(server: str, project: str, secret: str) -> AsyncIterator[NotifyDappClient]:
    import httpx

    from wcnotify.dapp import NotifyDappClient

    # trust_env=False: the secret goes to --server and nowhere else (no proxy from the environment)
    async with (httpx.AsyncClient(follow_redirects=False, trust_env=False) as http,
                NotifyDappClient(server, project, secret, http=http) as client):
        yield client


def _explainer(server: str, project: str) -> Callable[[BaseException], str | None]:
    """Advice for each dapp SDK error, naming the options that fix it."""

    def explain(exc: BaseException) -> str | None:
        from wcnotify.dapp import (
            DappApiError,
            NotFoundError,
            RateLimitedError,
            ServerUnreachableError,
            UnauthorizedError,
            ValidationError,
        )

        if isinstance(exc, UnauthorizedError):
            return (f"the notify server at {server} refused the secret for project {project} (HTTP {exc.status}): "
                    "check --project and --secret (WCNOTIFY_PROJECT_ID, WCNOTIFY_PROJECT_SECRET) against what "
                    "`wcnotify project create` printed")
        if isinstance(exc, ServerUnreachableError):
            cause = exc.__cause__
            why = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
            return (f"cannot reach the notify server at {server} ({why}). Start it (`wcnotify up`), or pass its "
                    "URL with --server or WCNOTIFY_SERVER_URL")
        if isinstance(exc, RateLimitedError):
            wait = f" in {exc.retry_after} s" if exc.retry_after is not None else " shortly"
            return f"the project's send budget is spent, nothing was queued: {exc.message}; run it again{wait}"
        if isinstance(exc, ValidationError):
            detail = exc.message.partition(": ")[2] if exc.field is not None else exc.message
            return f"the notify server refused {_option_of(exc.field)}: {detail}"
        if isinstance(exc, NotFoundError):
            return f"not found: {exc.message}"
        if isinstance(exc, DappApiError):
            again = " (retrying is safe)" if exc.retryable else ""
            return f"{exc}{again}"
        return None

    return explain


def _option_of(field: str | None) -> str:
    """The command-line option behind a field the server refused (``0.notification.title`` is ``--title``)."""
    if field is None:
        return "the request"
    parts = field.split(".")
    if parts[0].isdigit():  # the index of the item in a send's list: one notification per command here
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "notification":
        return f"--{parts[1]}"
    return ".".join(parts) or field


def _json_of(value: Any) -> Any:
    """A result dataclass as JSON-ready data (field names as in the SDK)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


async def _find_type(client: NotifyDappClient, wanted: str) -> NotificationType:
    """The project's notification type named ``wanted`` (its name or id), or advice listing the types."""
    types = await client.notification_types()
    for kind in types:
        if wanted in (kind.id, kind.name):
            return kind
    names = ", ".join(sorted(t.name for t in types)) or "none yet"
    raise CommandError(f"project {client.project_id} has no notification type {wanted!r} (its types: {names}); "
                       f"add it with `wcnotify types add {wanted}`")


# ------------------------------------------------------------------------------------------ types


@types_app.command("add")
def types_add(
    name: str = typer.Argument(..., help="The type's name, shown to wallets (e.g. alerts)."),
    *,
    description: str = typer.Option("", help="One line wallets show beside the name."),
    icon: str | None = typer.Option(None, "--icon", help="Icon URL, used for every size (sm, md, lg)."),
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Add a notification type; wallets subscribe to types, and `wcnotify send --type` names one.

    Example: wcnotify types add alerts --description "Price alerts"
    """
    from wcnotify.dapp import ImageUrls

    async def main() -> NotificationType:
        async with _client(server, project, secret) as client:
            urls = ImageUrls(icon, icon, icon) if icon else None
            return await client.add_notification_type(name, description, urls)

    kind = run(main(), _explainer(server, project))
    if as_json:
        print_json(_json_of(kind))
        return
    stdout().print(f"notification type [bold]{literal(kind.name)}[/] added: id {kind.id}")


@types_app.command("list")
def types_list(
    *,
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """List the project's notification types (id, name, description).

    Example: wcnotify types list --json
    """

    async def main() -> list[NotificationType]:
        async with _client(server, project, secret) as client:
            return await client.notification_types()

    kinds = run(main(), _explainer(server, project))
    if as_json:
        print_json([_json_of(k) for k in kinds])
        return
    if not kinds:
        stdout().print("no notification types yet: add one with `wcnotify types add NAME`")
        return
    from rich.table import Table

    table = Table("name", "id", "description")
    for kind in kinds:
        table.add_row(literal(kind.name), kind.id, literal(kind.description))
    stdout().print(table)


@types_app.command("delete")
def types_delete(
    type_: str = typer.Argument(..., metavar="TYPE", help="The type's name or id."),
    *,
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Delete a notification type (subscribers stop receiving it; sends naming it are refused).

    Example: wcnotify types delete alerts
    """

    async def main() -> NotificationType:
        async with _client(server, project, secret) as client:
            kind = await _find_type(client, type_)
            await client.delete_notification_type(kind.id)
            return kind

    kind = run(main(), _explainer(server, project))
    if as_json:
        print_json({"deleted": _json_of(kind)})
        return
    stdout().print(f"notification type [bold]{literal(kind.name)}[/] ({kind.id}) deleted")


# ------------------------------------------------------------------------------------------- send


def read_accounts(accounts: Sequence[str], accounts_file: Path | None) -> list[str]:
    """The accounts to send to, in order, each once (exact repeats dropped), every one a valid CAIP-10
    account: a bad line is reported with its line number before anything is sent."""
    from wcnotify.protocol.did import Account, DidError

    named: list[tuple[str, str]] = [(a.strip(), f"--account {a!r}") for a in accounts]
    if accounts_file is not None:
        try:
            text = sys.stdin.read() if str(accounts_file) == "-" else accounts_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read the accounts file {accounts_file}: {exc.strerror or exc}") from exc
        for number, line in enumerate(text.splitlines(), start=1):
            value = line.split("#", 1)[0].strip()
            if value:
                named.append((value, f"{accounts_file} line {number}"))
    out: dict[str, None] = {}
    for value, where in named:
        try:
            Account.parse(value)
        except DidError as exc:
            raise CommandError(f"{where}: {value[:80]!r} is not a CAIP-10 account (eip155:1:0x…): {exc}") from exc
        out.setdefault(value)
    return list(out)


def send(
    *,
    type_: str = typer.Option(..., "--type", help="The notification type: its name or id (`wcnotify types list`)."),
    title: str = typer.Option(..., help=f"1-{spec.NOTIFY_TITLE_MAX} characters."),
    body: str = typer.Option(..., help=f"1-{spec.NOTIFY_BODY_MAX} characters."),
    url: str | None = typer.Option(None, help="Where the wallet opens the notification."),
    icon: str | None = typer.Option(None, help="Icon URL."),
    account: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--account", help="A CAIP-10 account (eip155:1:0x…); repeatable."
    ),
    accounts_file: Path | None = typer.Option(  # noqa: B008
        None, "--accounts-file", help="A file with one account per line (# comments); - reads stdin."
    ),
    broadcast: bool = typer.Option(False, "--broadcast", help="Every subscriber of the type, in one request."),
    notification_id: str | None = typer.Option(
        None, "--notification-id",
        help="Makes the send idempotent: again with the same id, nobody gets it twice. Default: a random id, "
        "printed first (reuse it to finish an interrupted send).",
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until every delivery is published (or failed)."),
    wait_timeout: float = typer.Option(30.0, "--wait-timeout", min=0.1, help="Seconds --wait waits."),
    chunk_size: int = typer.Option(
        spec.NOTIFY_SEND_MAX_ACCOUNTS, "--chunk-size", min=1, max=spec.NOTIFY_SEND_MAX_ACCOUNTS, hidden=True,
        help="Accounts per request (tests use a small one).",
    ),
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Send a notification to accounts (in requests of 500, one notification id for all) or to every subscriber.

    Prints a summary per account: sent (queued), failed with the reason, or not subscribed.

    Example: wcnotify send --type alerts --title "ETH 4k" --body "ETH crossed 4000" --accounts-file accounts.txt
    """
    if broadcast and (account or accounts_file):
        raise typer.BadParameter("--broadcast sends to every subscriber: leave out --account/--accounts-file")
    if not broadcast and not account and accounts_file is None:
        raise typer.BadParameter("say who gets it: --account A (repeatable), --accounts-file F, or --broadcast")
    try:
        accounts = [] if broadcast else read_accounts(account, accounts_file)
    except CommandError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not broadcast and not accounts:
        raise typer.BadParameter(f"{accounts_file} lists no accounts")
    nid = notification_id or str(uuid.uuid4())
    sending = _Send(server, project, secret, type_, title, body, url, icon, nid, chunk_size, as_json)
    outcome = run(sending.broadcast() if broadcast else sending.to_accounts(accounts), _explainer(server, project))
    if wait:
        outcome["delivery"] = run(sending.wait(wait_timeout), _explainer(server, project))
    if as_json:
        print_json(outcome)
    else:
        _print_send(outcome, accounts)
    delivery = outcome.get("delivery")
    if delivery is not None and delivery["queued"]:
        stderr().print(f"[yellow]{delivery['queued']} of {delivery['total']} deliveries still queued after "
                       f"{wait_timeout:g} s[/]: the server keeps retrying for 24 hours (is the relay up?)")
        raise typer.Exit(1)


@dataclasses.dataclass
class _Send:
    """One ``wcnotify send``: its notification, id and destination; each step is one coroutine for :func:`run`."""

    server: str
    project: str
    secret: str
    type_: str
    title: str
    body: str
    url: str | None
    icon: str | None
    notification_id: str
    chunk_size: int
    quiet: bool

    async def _notification(self, client: NotifyDappClient) -> tuple[Notification, NotificationType]:
        from wcnotify.dapp import Notification

        kind = await _find_type(client, self.type_)
        return Notification(kind.id, self.title, self.body, self.icon, self.url), kind

    async def broadcast(self) -> dict[str, Any]:
        async with _client(self.server, self.project, self.secret) as client:
            notification, kind = await self._notification(client)
            result = await client.broadcast(notification, notification_id=self.notification_id)
        return {"notification_id": result.notification_id, "type": kind.id, "type_name": kind.name,
                "broadcast": True, "queued": result.queued}

    async def to_accounts(self, accounts: list[str]) -> dict[str, Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from wcnotify.dapp import DappApiError

        chunks = [accounts[i : i + self.chunk_size] for i in range(0, len(accounts), self.chunk_size)]
        sent: list[str] = []
        failed: list[dict[str, str]] = []
        not_found: list[str] = []
        done = 0
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=stderr(), disable=self.quiet or len(chunks) < 2)
        async with _client(self.server, self.project, self.secret) as client:
            notification, kind = await self._notification(client)
            if len(chunks) > 1 and not self.quiet:  # before the first request, in case the last never comes
                stderr().print(f"notification id {literal(self.notification_id)}: {len(accounts)} accounts in "
                               f"{len(chunks)} requests", soft_wrap=True)
            with progress:
                task = progress.add_task("sending", total=len(accounts))
                for chunk in chunks:
                    try:
                        result = await self._send_chunk(client, notification, chunk, progress, task)
                    except DappApiError as exc:
                        if done == 0 and not exc.retryable:
                            raise
                        explained = _explainer(self.server, self.project)(exc)
                        raise CommandError(
                            f"{explained}. {done} of {len(accounts)} accounts were handled before it. Run the same "
                            f"command with --notification-id {self.notification_id} to finish: accounts already "
                            "queued are not sent twice"
                        ) from exc
                    sent += result.sent
                    failed += [{"account": f.account, "reason": f.reason} for f in result.failed]
                    not_found += result.not_found
                    done += len(chunk)
                    progress.update(task, completed=done, description="sending")
        return {"notification_id": self.notification_id, "type": kind.id, "type_name": kind.name,
                "requests": len(chunks), "sent": sent, "failed": failed, "not_found": not_found}

    async def _send_chunk(self, client: NotifyDappClient, notification: Notification, chunk: list[str],
                          progress: Any, task: Any) -> SendResult:
        """One request; a 429 queued nothing, so it is sent again after the server's Retry-After."""
        from wcnotify.dapp import RateLimitedError

        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return await client.send(notification, chunk, notification_id=self.notification_id)
            except RateLimitedError as exc:
                if attempt == RATE_LIMIT_RETRIES:
                    raise
                pause = max(1, exc.retry_after or 1)
                progress.update(task, description=f"rate limited, waiting {pause} s")
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def wait(self, timeout: float) -> dict[str, Any]:
        async with _client(self.server, self.project, self.secret) as client:
            try:
                status = await client.wait_for_delivery(self.notification_id, timeout=timeout)
            except TimeoutError:
                status = await client.notification_status(self.notification_id)
        return _json_of(status)  # type: ignore[no-any-return]


def _print_send(outcome: dict[str, Any], accounts: list[str]) -> None:
    from rich.table import Table

    console = stdout()
    name = literal(outcome["type_name"])
    if outcome.get("broadcast"):
        console.print(f"broadcast {literal(outcome['notification_id'])} ({name}): queued for "
                      f"{outcome['queued']} subscriber(s)", soft_wrap=True)
    else:
        sent, failed, not_found = outcome["sent"], outcome["failed"], outcome["not_found"]
        console.print(f"notification {literal(outcome['notification_id'])} ({name}): [green]{len(sent)} sent[/], "
                      f"[red]{len(failed)} failed[/], [yellow]{len(not_found)} not subscribed[/]"
                      + (f" ({outcome['requests']} requests)" if outcome["requests"] > 1 else ""), soft_wrap=True)
        reasons = {f["account"]: f["reason"] for f in failed}
        missing = set(not_found)
        rows = []
        for account in accounts:
            if account in reasons:
                rows.append((account, "[red]failed[/]", literal(reasons[account])))
            elif account in missing:
                rows.append((account, "[yellow]not found[/]", "not subscribed to the app"))
            elif len(accounts) <= SUMMARY_ROWS_MAX:
                rows.append((account, "[green]sent[/]", ""))
        if rows:
            table = Table("account", "result", "reason")
            for row in rows:
                table.add_row(literal(row[0]), row[1], row[2])
            console.print(table)
        if len(accounts) > SUMMARY_ROWS_MAX and sent:
            console.print(f"({len(sent)} sent accounts not listed; --json lists every account)")
    delivery = outcome.get("delivery")
    if delivery is not None:
        console.print(f"delivery: {delivery['published']} of {delivery['total']} published, "
                      f"{delivery['failed']} failed, {delivery['queued']} queued, {delivery['withdrawn']} withdrawn")


# --------------------------------------------------------------------------------------- webhooks


@webhooks_app.command("add")
def webhooks_add(
    url: str = typer.Argument(..., help="Where the server POSTs events (http:// or https://)."),
    *,
    event: list[str] = typer.Option(  # noqa: B008 (typer reads the default at definition time)
        [], "--event", help=f"Only these events ({_EVENT_NAMES}); repeatable. Default: all."
    ),
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Add a webhook; prints its signing secret once (verify deliveries with wcnotify.dapp.verify_webhook).

    Example: wcnotify webhooks add https://gm.example.com/hooks/notify --event subscribed --event unsubscribed
    """

    async def main() -> Any:
        async with _client(server, project, secret) as client:
            return await client.create_webhook(url, event or None)

    created = run(main(), _explainer(server, project))
    if as_json:
        print_json(_json_of(created))
        return
    console = stdout()
    console.print(f"webhook {created.id} added for {literal(', '.join(created.events))} to {literal(created.url)}",
                  soft_wrap=True)
    console.print(f"signing secret (shown once; keep it): {created.secret}", soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(
    *,
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """List the project's webhooks and how their deliveries are going (never their secrets).

    Example: wcnotify webhooks list
    """

    async def main() -> Any:
        async with _client(server, project, secret) as client:
            return await client.webhooks()

    hooks = run(main(), _explainer(server, project))
    if as_json:
        print_json([_json_of(h) for h in hooks])
        return
    if not hooks:
        stdout().print("no webhooks: add one with `wcnotify webhooks add URL`")
        return
    from rich.table import Table

    table = Table("id", "url", "events", "delivered", "failed", "pending", "last error")
    for h in hooks:
        table.add_row(h.id, literal(h.url), ", ".join(h.events), str(h.delivered), str(h.failed), str(h.pending),
                      literal(h.last_error or ""))
    stdout().print(table)


@webhooks_app.command("delete")
def webhooks_delete(
    webhook_id: str = typer.Argument(..., metavar="ID", help="The webhook's id (`wcnotify webhooks list`)."),
    *,
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Delete a webhook and drop its pending events.

    Example: wcnotify webhooks delete 0f6c1b9e-4c1d-4a57-9c3e-2f1f0c2b7d11
    """

    async def main() -> None:
        async with _client(server, project, secret) as client:
            await client.delete_webhook(webhook_id)

    run(main(), _explainer(server, project))
    if as_json:
        print_json({"deleted": webhook_id})
        return
    stdout().print(f"webhook {literal(webhook_id)} deleted")


# ----------------------------------------------------------------------------------- project update


def project_update(
    *,
    name: str | None = typer.Option(None, help="The app's name, shown to wallets."),
    description: str | None = typer.Option(None, help="One line about the app, shown to wallets."),
    icon: list[str] | None = typer.Option(None, "--icon", help="Icon URL; repeatable (replaces the list)."),  # noqa: B008
    listed: bool | None = typer.Option(
        None, "--listed/--unlisted",
        help="Show the app in the server's public registry, where wallets find and subscribe to it "
        "(`wcnotify wallet apps`) without visiting its site.",
    ),
    server: str = _SERVER,
    project: str = _PROJECT,
    secret: str = _SECRET,
    as_json: bool = _JSON,
) -> None:
    """Change what wallets see of the project, and whether the app registry lists it (project secret).

    Example: wcnotify project update --listed --description "gm, every morning"
    """

    async def main() -> Any:
        async with _client(server, project, secret) as client:
            return await client.update_project(name=name, description=description, icons=icon or None,
                                               listed=listed)

    info = run(main(), _explainer(server, project))
    if as_json:
        print_json(_json_of(info))
        return
    console = stdout()
    console.print(f"project [bold]{literal(info.name)}[/] updated")
    for key, value in _json_of(info).items():
        shown = ", ".join(value) if isinstance(value, tuple | list) else value
        console.print(f"  {key}: {literal(shown)}", soft_wrap=True)
    if info.listed and not info.app_domain:
        console.print("listed, but the registry shows it only once it has an app domain (project create "
                      "--app-domain)")


def project_rotate_secret(
    project_id: str = typer.Argument(..., metavar="PROJECT_ID", envvar="WCNOTIFY_PROJECT_ID", show_default=False,
                                     help="The project whose API secret to replace (default: WCNOTIFY_PROJECT_ID)."),
    *,
    grace: int = typer.Option(
        0, "--grace", metavar="SECONDS", min=0, max=spec.NOTIFY_SECRET_GRACE_MAX,
        help="Keep the old secret working this long, to roll the new one out to every backend first "
        f"(at most {spec.NOTIFY_SECRET_GRACE_MAX} s). 0: the old secret stops at once (a leaked secret).",
    ),
    server: str = _SERVER,
    secret: str | None = typer.Option(None, "--secret", envvar="WCNOTIFY_PROJECT_SECRET", show_default=False,
                                      help="The project's current API secret (used when given)."),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="WCNOTIFY_ADMIN_TOKEN", show_default=False,
                                           help="The server's admin token (used when no --secret is given)."),
    as_json: bool = _JSON,
) -> None:
    """Issue a new API secret for the project, printed once (the server keeps only its hash).

    Takes the current secret or the admin token. --grace SECONDS keeps the old secret working that long.

    Example: wcnotify project rotate-secret $WCNOTIFY_PROJECT_ID --grace 3600
    """
    import time

    if not secret and not admin_token:
        fail("no credentials: pass the project's current secret (--secret or "
                                "WCNOTIFY_PROJECT_SECRET) or the server's admin token (--admin-token or "
                                "WCNOTIFY_ADMIN_TOKEN)")

    async def main() -> str:
        if secret:
            async with _client(server, project_id, secret) as client:
                return await client.rotate_secret(grace)
        import httpx

        from wcnotify.dapp import NotifyAdminClient

        assert admin_token
        async with (httpx.AsyncClient(follow_redirects=False, trust_env=False) as http,
                    NotifyAdminClient(server, admin_token, http=http) as admin):
            return (await admin.rotate_project_secret(project_id, grace)).secret

    explain = _explainer(server, project_id)

    def explain_rotation(exc: BaseException) -> str | None:
        from wcnotify.dapp import ConflictError, ServerUnreachableError, UnauthorizedError

        if isinstance(exc, UnauthorizedError):
            if secret:
                return (f"the notify server at {server} refused the secret for project {project_id} (HTTP "
                        f"{exc.status}): check it (--secret, WCNOTIFY_PROJECT_SECRET); if the dapp lost its "
                        "secret, the operator rotates it with the admin token (--admin-token, without --secret)")
            return (f"the notify server at {server} refused the admin token: pass the one it printed at start "
                    "(--admin-token or WCNOTIFY_ADMIN_TOKEN)")
        if isinstance(exc, ConflictError):
            return f"nothing changed: {exc.message}"
        if isinstance(exc, ServerUnreachableError) and exc.__cause__ is not None and "no answer" in exc.message:
            return (f"no answer from the notify server at {server} in time: the secret may or may not have been "
                    "rotated. Try the old secret (e.g. `wcnotify types list`); if it is refused, rotate again with "
                    "the admin token")
        return explain(exc)

    new_secret = run(main(), explain_rotation)
    until = int(time.time()) + grace if grace else None
    if as_json:
        print_json({"projectId": project_id, "secret": new_secret, "graceSeconds": grace})
        return
    console = stdout()
    console.print(f"project {literal(project_id)}: API secret rotated")
    console.print(f"  secret: {new_secret}")
    if until is None:
        console.print("the old secret stopped working now")
    else:
        shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
        console.print(f"the old secret keeps working for {grace} s (until about {shown}), then stops")
    console.print("Next: give the new secret to the dapp's backends (export WCNOTIFY_PROJECT_SECRET=<secret>); "
                  "it is shown only once", soft_wrap=True)
