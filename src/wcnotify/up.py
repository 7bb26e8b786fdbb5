"""``wcnotify up``: the relay, keys server and notify server in one process, on SQLite files in one directory.

This is the embedded default a newcomer starts with (ARCHITECTURE.md, "Storage and scale-out"): one command,
nothing to configure, and nothing lost on restart. Everything that must survive a restart lives in the data
directory:

=================  ==========================================================================================
``relay.db``       the relay's mailbox and watch registrations (a wallet that was away still gets its messages)
``keys.db``        registered identity keys
``notify.db``      projects, subscriptions, notifications and the delivery queue
``notify.seed``    the secret the notify server's own keys derive from (its did.json, its relay identity)
``relay.key``      the relay's Ed25519 seed (the key it signs watch webhooks with)
``admin-token``    the bearer token for ``POST /v1/projects``, made once so scripts keep working
``up.lock``        held while a ``wcnotify up`` uses the directory (two would share the delivery queue)
=================  ==========================================================================================

Secrets are written with mode 0600 and the directory is created 0700. The services listen on loopback
unless ``--host`` says otherwise. :class:`EmbeddedStack` is also what ``wcnotify demo`` starts when it is not
pointed at a running stack.

It is a local development stack, so its notify server runs with ``allow_private_urls`` on (``wcnotify server
--allow-private-urls``): a dapp's webhook receiver and its did.json on ``localhost`` or the local network are
reached, where a production ``wcnotify server`` reaches public addresses only (notify/netguard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Self, TypeVar
from urllib.parse import urlsplit

import uvicorn
from rich.console import Console

from wcnotify import event_loop, spec
from wcnotify.keys.server import KeysConfig, KeysServer
from wcnotify.notify.server import NotifyConfig, NotifyServer
from wcnotify.relay.server import RelayConfig, RelayServer
from wcnotify.serving import AsgiService

DEFAULT_DATA_DIR = "wcnotify-data"  # (cli.py's default) relative to the working directory: visible; rm -r starts over
DEFAULT_RELAY_PORT = 8080  # the same as `wcnotify relay`, `keys` and `server`, so their docs apply as written
DEFAULT_KEYS_PORT = spec.KEYS_DEFAULT_PORT
DEFAULT_NOTIFY_PORT = 8082
READY_TIMEOUT = 30.0  # seconds for the notify server to reach the relay; it takes well under one normally
STOP_TIMEOUT = 10.0  # seconds per service to wind down before the process exits anyway


class UpError(Exception):
    """Something the person running ``wcnotify up`` can fix; the message says how (never a traceback)."""


# ------------------------------------------------------------------------------------------ data dir


@dataclass
class DataDir:
    """The data directory, locked for this process: where each file lives, and the secrets it keeps."""

    path: Path
    _lock: IO[str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> DataDir:
        """Create the directory if missing, check it is usable and take its lock."""
        root = Path(path).expanduser()
        if root.exists() and not root.is_dir():
            raise UpError(f"the data dir {root} is a file, not a directory: pass another --data-dir")
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UpError(f"cannot create the data dir {root} ({exc.strerror}): pass a --data-dir you can "
                          "write to") from exc
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            raise UpError(f"the data dir {root} is not writable by this user: pass a --data-dir you can write to")
        data = cls(root.resolve())
        data._acquire()
        return data

    def _acquire(self) -> None:
        """One ``wcnotify up`` per directory: a second would run a second delivery queue on the same files."""
        lock_path = self.path / "up.lock"
        handle = lock_path.open("a+")
        try:
            import fcntl  # noqa: PLC0415 (POSIX only; elsewhere the directory is simply not locked)
        except ImportError:  # pragma: no cover
            self._lock = handle
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UpError(f"the data dir {self.path} is in use by another `wcnotify up` (pid {holder}): stop it, "
                          "or pass another --data-dir") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    @property
    def shown(self) -> str:
        """The path as a person reads it: relative to the working directory when it is inside it."""
        try:
            return f"./{self.path.relative_to(Path.cwd().resolve())}"
        except ValueError:
            return str(self.path)

    def database_url(self, name: str) -> str:
        return f"sqlite:///{self.path / name}"

    def secret(self, name: str, make: Callable[[], str], check: Callable[[str], object] = str) -> str:
        """The secret kept in file ``name``, made with ``make`` (and written 0600) the first time."""
        path = self.path / name
        if path.exists():
            value = path.read_text().strip()
            try:
                if not value:
                    raise ValueError("the file is empty")
                check(value)
            except ValueError as exc:
                raise UpError(f"{path} is damaged ({exc}): restore it from a backup, or delete it to make a new "
                              "one (wallets then have to subscribe again)") from exc
            return value
        value = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value + "\n")
        return value


def _relay_seed(value: str) -> bytes:
    seed = bytes.fromhex(value)
    if len(seed) != 32:
        raise ValueError("not 32 bytes of hex")
    return seed


# ----------------------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    relay_port: int = DEFAULT_RELAY_PORT  # 0: any free port (the printed URLs are the real ones)
    keys_port: int = DEFAULT_KEYS_PORT
    notify_port: int = DEFAULT_NOTIFY_PORT
    admin_token: str | None = None  # None: the one kept in the data dir (made on the first start)
    notify_options: dict[str, Any] = field(default_factory=dict)  # more NotifyConfig fields (tests, the demo)


S = TypeVar("S", bound=AsgiService)

_PORT_OPTIONS = {"relay": "--relay-port", "keys server": "--keys-port", "notify server": "--notify-port"}


def _bind(bound: list[AsgiService], make: Callable[[], S], what: str, port: int, host: str) -> S:
    """Build a service (it binds its socket at once), turning a refused bind into what to do about it."""
    flag = _PORT_OPTIONS[what]
    try:
        service = make()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UpError(f"port {port} for the {what} is in use (another wcnotify up or wcnotify service?): stop "
                          f"it, or pass {flag} with another port (0 picks a free one)") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UpError(f"cannot listen on {host}: not an address of this machine (try --host 127.0.0.1)") from exc
        if exc.errno == errno.EACCES:
            raise UpError(f"port {port} for the {what} needs privileges: pass {flag} 1024 or above") from exc
        raise UpError(f"cannot listen on {host}:{port} for the {what}: {exc.strerror or exc}") from exc
    except (UnicodeError, ValueError) as exc:  # socket.gaierror is an OSError; a malformed host is not
        raise UpError(f"cannot listen on {host!r}: {exc} (try --host 127.0.0.1)") from exc
    bound.append(service)
    return service


class EmbeddedStack:
    """Relay, keys server and notify server in this event loop, on the data dir's files.

    ``async with EmbeddedStack(options) as stack:`` returns once the notify server's relay link is up (it can
    answer wallets), so whatever comes next can use every service at once.
    """

    def __init__(self, options: UpOptions, data: DataDir) -> None:
        self.options = options
        self.data = data
        host = options.host
        self.admin_token = options.admin_token or data.secret("admin-token", lambda: secrets.token_urlsafe(24))
        self.admin_token_source = ("--admin-token / WCNOTIFY_ADMIN_TOKEN" if options.admin_token
                                   else f"{data.shown}/admin-token")
        seed = data.secret("notify.seed", lambda: secrets.token_hex(32))
        relay_seed = _relay_seed(data.secret("relay.key", lambda: secrets.token_hex(32), _relay_seed))
        bound: list[AsgiService] = []  # closed again if a later one cannot bind
        try:
            self.relay = _bind(bound, lambda: RelayServer(RelayConfig(
                host=host, port=options.relay_port, database_url=data.database_url("relay.db"), key_seed=relay_seed,
            )), "relay", options.relay_port, host)
            self.keys = _bind(bound, lambda: KeysServer(KeysConfig(
                host=host, port=options.keys_port, database_url=data.database_url("keys.db"),
            )), "keys server", options.keys_port, host)
            # wallets may name the keys server by either loopback spelling in their JWTs (ksu)
            keys_urls = tuple(dict.fromkeys([self.keys.url, self.keys.url.replace("127.0.0.1", "localhost")]))
            self.notify = _bind(bound, lambda: NotifyServer(NotifyConfig(
                relay_url=self.relay.http_url, keys_urls=keys_urls, host=host, port=options.notify_port,
                database_url=data.database_url("notify.db"), admin_token=self.admin_token, seed=seed,
                **{"allow_private_urls": True, **options.notify_options},  # local development: see above
            )), "notify server", options.notify_port, host)
        except BaseException:
            for service in bound:
                service.sock.close()
            raise
        for service in bound:
            _leave_signals_alone(service)
        self._started: list[AsgiService] = []

    @property
    def urls(self) -> dict[str, str]:
        """What wallets, dapps and scripts need: also the SDKs' keyword names (relay_url, …)."""
        return {"relay": self.relay.ws_url, "relayHttp": self.relay.http_url, "keys": self.keys.url,
                "notify": self.notify.url}

    def services(self) -> list[AsgiService]:
        return [self.relay, self.keys, self.notify]

    async def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Relay and keys server together, then the notify server; ready once its relay link is up."""
        try:
            await _together(self._start(self.relay), self._start(self.keys))
            await self._start(self.notify)
            try:
                await self.notify.wait_relay(timeout)
            except TimeoutError as exc:
                raise UpError(f"the notify server did not reach the relay at {self.relay.http_url} within "
                              f"{timeout:.0f} s (see the log above)") from exc
        except BaseException:
            await self.stop()
            raise

    async def _start(self, service: AsgiService) -> None:
        try:
            await service.start()
        except UpError:
            raise
        except Exception as exc:  # a database that cannot be opened or migrated, mostly
            raise UpError(f"the {service.name} failed to start: {type(exc).__name__}: {exc}") from exc
        self._started.append(service)

    def failed(self) -> AsgiService | None:
        """A service that stopped serving on its own (uvicorn gave up), if any."""
        for service in self._started:
            task = getattr(service, "_task", None)  # AsgiService's serving task (it exposes no public one)
            if isinstance(task, asyncio.Task) and task.done():
                return service
        return None

    async def stop(self) -> None:
        """The notify server first (it uses the other two), then the relay and keys server together."""
        started, self._started = self._started, []
        if self.notify in started:
            await _stop(self.notify)
        await _together(*(_stop(s) for s in started if s is not self.notify))
        for service in (self.relay, self.keys, self.notify):
            if service not in started:
                service.sock.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def _leave_signals_alone(service: AsgiService) -> None:
    """Keep uvicorn from taking SIGINT/SIGTERM for this service: it would install a handler per server (so one
    Ctrl-C stops one of the three, and is raised again once that one is down), racing ``up``'s own handler,
    which stops all three in order. uvicorn has no option for it; its server's ``capture_signals`` is the hook."""
    make = service._uvicorn

    def quiet(log_level: str = "warning") -> uvicorn.Server:
        server = make(log_level)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        return server

    service._uvicorn = quiet  # type: ignore[method-assign]


async def _stop(service: AsgiService) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(service.stop(), STOP_TIMEOUT)


async def _together(*calls: Awaitable[None]) -> None:
    """Run ``calls`` concurrently; wait for all of them, then raise the first failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


# ------------------------------------------------------------------------------------------ printing


def ready_record(stack: EmbeddedStack, seconds: float) -> dict[str, Any]:
    """The ``--json`` ready line: every URL, the admin token and the data dir, for scripts and tests."""
    return {"event": "ready", **stack.urls, "adminToken": stack.admin_token, "dataDir": str(stack.data.path),
            "seconds": round(seconds, 2)}


def command_name(argv0: str | None = None) -> str:
    """How to type ``wcnotify`` in the next steps: by name when that is what the shell runs, else as invoked
    (``make run`` runs ``.venv/bin/wcnotify``, which is not on the PATH of a fresh clone)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    found = shutil.which("wcnotify")
    try:
        if found is not None and os.path.samefile(found, argv0):
            return "wcnotify"
    except OSError:
        pass
    return argv0 if os.path.basename(argv0) == "wcnotify" else "wcnotify"


def next_steps(urls: dict[str, str], admin_token: str, wcnotify: str = "wcnotify") -> list[str]:
    """Shell lines that take a newcomer from nothing to a sent notification, runnable as printed (the README's
    quickstart is the same; tests/integration/test_up.py runs them). ``jq`` picks the ids out of the answers."""
    auth = '-H "authorization: Bearer $SECRET" -H "content-type: application/json"'
    demo = f"{wcnotify} demo --against $WCNOTIFY_SERVER_URL"
    host = urlsplit(urls["notify"]).hostname
    if urls["relay"] != f"ws://{host}:{DEFAULT_RELAY_PORT}" or urls["keys"] != f"http://{host}:{DEFAULT_KEYS_PORT}":
        demo += f" --relay-url {urls['relay']} --keys-url {urls['keys']}"
    return [
        f"export WCNOTIFY_SERVER_URL={urls['notify']} WCNOTIFY_ADMIN_TOKEN={admin_token}",
        f"{wcnotify} project create --name Hello --app-domain hello.example.com --json > project.json",
        "export PROJECT_ID=$(jq -r .projectId project.json) SECRET=$(jq -r .secret project.json)",
        f"export TYPE_ID=$(curl -fsS -X POST $WCNOTIFY_SERVER_URL/v1/$PROJECT_ID/notification-types {auth} "
        "-d '{\"name\": \"gm\"}' | jq -r .id)",
        f"curl -fsS -X POST $WCNOTIFY_SERVER_URL/v1/$PROJECT_ID/notify/broadcast {auth} "
        "-d '{\"notification\": {\"type\": \"'$TYPE_ID'\", \"title\": \"gm\", \"body\": \"Your first notification\"}}'",
        f"{demo}   # the whole story: a dapp and two wallet devices on this stack",
    ]


# ------------------------------------------------------------------------------------------- running


class _Stopper:
    """SIGINT/SIGTERM -> an event the main coroutine waits on, so a signal at any moment (start-up included)
    stops all three services in order and the process exits 0. Installed with ``signal.signal`` so it also
    works when the shell started ``up`` in the background with SIGINT ignored."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.signal: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, sig: int, _frame: FrameType | None) -> None:
        self.signal = sig
        self.loop.call_soon_threadsafe(self.event.set)


async def serve(options: UpOptions, *, on_ready: Callable[[EmbeddedStack, float], None],
                on_stopping: Callable[[str], None], began: float | None = None) -> None:
    """Run the stack until SIGINT/SIGTERM (or a service dies); raises :class:`UpError` for what to fix.

    ``on_ready`` gets the seconds since ``began`` (the command's start, imports included: what a person waits).
    """
    began = time.monotonic() if began is None else began
    umask = os.umask(0o077)  # the databases hold the projects' private keys: this user only, whatever the dir's mode
    stopper = _Stopper(asyncio.get_running_loop())
    stopper.install()
    try:
        await _serve(options, stopper, on_ready, on_stopping, began)
    finally:
        stopper.uninstall()
        os.umask(umask)


async def _serve(options: UpOptions, stopper: _Stopper, on_ready: Callable[[EmbeddedStack, float], None],
                 on_stopping: Callable[[str], None], began: float) -> None:
    data = DataDir.open(options.data_dir)
    try:
        stack = EmbeddedStack(options, data)
        try:
            starting = asyncio.create_task(stack.start())
            stopping = asyncio.create_task(stopper.event.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # a signal during start-up: stop what started
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            else:
                stopping.cancel()
                starting.result()  # raises what stopped the start
                on_ready(stack, time.monotonic() - began)
            while not stopper.event.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopper.event.wait(), 1.0)
                dead = stack.failed()
                if dead is not None:
                    raise UpError(f"the {dead.name} stopped unexpectedly (see the log above); the data is intact: "
                                  "run wcnotify up again")
            name = signal.Signals(stopper.signal).name if stopper.signal is not None else "signal"
            on_stopping(name)
        finally:
            await stack.stop()
    finally:
        data.close()


def run(options: UpOptions, console: Console, *, as_json: bool = False, log_level: str = "warning",
        began: float | None = None) -> int:
    """``wcnotify up``: serve until Ctrl-C / SIGTERM; print the URLs, the admin token and what to do next
    (below the title line cli.py prints before loading this module).

    Returns the exit status: 0 after a signal, 1 for a problem the message explains (no traceback).
    With ``as_json`` stdout carries only JSON lines (``ready``, then ``stopped``) for scripts and tests.
    """
    errors = Console(stderr=True, emoji=False, highlight=False)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)

    def on_ready(stack: EmbeddedStack, seconds: float) -> None:
        if as_json:
            print(json.dumps(ready_record(stack, seconds)), flush=True)
            return
        urls = stack.urls
        say = functools.partial(console.print, soft_wrap=True)  # never wrap or cut a URL or the token
        say(f"data dir: {stack.data.shown} (SQLite; delete it to start over)\n")
        rows = [("relay", urls["relay"], f"servers: {urls['relayHttp']}/rpc"),
                ("keys server", urls["keys"], "wallets register identity keys here"),
                ("notify server", urls["notify"], "dapp API, did.json, app registry"),
                ("admin token", stack.admin_token, f"from {stack.admin_token_source}")]
        width = max(len(value) for _, value, _ in rows)
        for name, value, note in rows:
            say(f"  {name:<14} {value:<{width}}  [dim]{note}[/]")
        say("\nNext, in another terminal:")
        for line in next_steps(urls, stack.admin_token, command_name()):
            say(f"  {line}", markup=False)
        say(f"\n[green]Ready[/] in {seconds:.1f} s. Ctrl-C stops (the data stays).")

    def on_stopping(name: str) -> None:
        if not as_json:
            console.print(f"\n{name}: stopping…", soft_wrap=True)

    try:
        event_loop.run(serve(options, on_ready=on_ready, on_stopping=on_stopping, began=began))
    except UpError as exc:
        if as_json:
            print(json.dumps({"event": "error", "error": str(exc)}), flush=True)
        errors.print(f"[red]wcnotify up:[/] {exc}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while stopping, or one during start-up
        errors.print("\ninterrupted; the data dir is intact")
        return 130
    kept = DataDir(Path(options.data_dir).expanduser().resolve())  # (not opened: only its path is wanted)
    if as_json:
        print(json.dumps({"event": "stopped", "dataDir": str(kept.path)}), flush=True)
    else:
        console.print(f"stopped; the data is kept in {kept.shown}", soft_wrap=True)
    return 0
