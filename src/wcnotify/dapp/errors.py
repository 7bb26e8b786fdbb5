"""The errors of the dapp SDK's HTTP client: one class per failure a dapp developer can act on.

The notify server answers every refusal as ``{"error": "<what is wrong and what to do>"}`` with a status
(docs/dapp-api.md). :func:`error_for` turns that into the class below that says what to do about it, so a
dapp writes ``except RateLimitedError as e: await asyncio.sleep(e.retry_after)`` instead of comparing
numbers. Every class keeps the server's ``status`` and ``message``; ``retryable`` says whether the same
request may succeed later unchanged (sends are idempotent under their ``notification_id``, which the
client always sets, so retrying a send is safe).

No message here ever holds the project secret or the admin token: the server never echoes them, and the
client builds its own messages from the method and URL only.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConflictError",
    "DappApiError",
    "NotFoundError",
    "RateLimitedError",
    "RequestTooLargeError",
    "ServerError",
    "ServerUnreachableError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "ValidationError",
    "error_for",
]


class DappApiError(Exception):
    """The notify server refused a request (``status`` is its HTTP status) or could not be asked
    (``status`` is None). ``message`` is the server's explanation, or ours when there is no answer."""

    retryable: ClassVar[bool] = False

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"notify server answered {status}: {message}" if status is not None else message)
        self.status = status
        self.message = message


class UnauthorizedError(DappApiError):
    """401: the project secret (or admin token) is wrong, or the project id is unknown; the server does not
    say which, so that a guessed id teaches nothing. Check both against ``wcnotify project create``."""


class NotFoundError(DappApiError):
    """404: no such notification type, notification, webhook, or (for public calls such as did.json) project;
    or the project has no app domain yet."""


class ConflictError(DappApiError):
    """409: the request clashes with what exists (an app domain of another project, a type name already
    used, a withdrawn ``notification_id``, the webhook limit). The message names which."""


class RequestTooLargeError(DappApiError):
    """413: the body is over the server's limit (1 MiB by default): send fewer accounts per call."""


class ValidationError(DappApiError):
    """422: a field is invalid. ``field`` is where, as the server names it (``0.notification.title``: the
    title of the first notification sent; ``accounts.3``), or None when the message names no field."""

    @property
    def field(self) -> str | None:
        location, sep, _ = self.message.partition(": ")
        return location if sep and location and " " not in location else None


class RateLimitedError(DappApiError):
    """429: the project's send budget is spent; nothing was queued. Wait ``retry_after`` seconds."""

    retryable = True

    def __init__(self, status: int | None, message: str, retry_after: int | None = None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class ServerError(DappApiError):
    """A 5xx answer, or an answer this client cannot read (a server of another version, or not a notify
    server at all at that URL)."""

    retryable = True


class ServiceUnavailableError(ServerError):
    """503: the server's database or relay is down for a moment; nothing was changed. Retry shortly."""


class ServerUnreachableError(DappApiError):
    """No answer: the server is not running at that URL, the network failed, or the answer took longer than
    the client's timeout. A send may or may not have been queued; retrying it is safe (same id)."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


_BY_STATUS: dict[int, type[DappApiError]] = {
    400: ValidationError,
    401: UnauthorizedError,
    403: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: ValidationError,
    503: ServiceUnavailableError,
}


def error_for(status: int, message: str, retry_after: str | None = None) -> DappApiError:
    """The error for a refusal with ``status`` and the server's ``message`` (and ``Retry-After`` header)."""
    if status == 429:
        seconds = int(retry_after) if retry_after is not None and retry_after.strip().isdigit() else None
        return RateLimitedError(status, message, seconds)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else DappApiError
    return cls(status, message)
