"""The errors the client raises: one class per kind of answer, all :class:`RecsiteError`."""

from __future__ import annotations

from typing import Any


class RecsiteError(Exception):
    """The API answered an error (``status``), or did not answer (``status`` None).

    ``detail`` is the answer's JSON body (a dict for DRF's errors) or its text.
    """

    def __init__(self, status: int | None, detail: Any = None) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status if status is not None else 'no answer'}: {detail!r}")


class BadRequest(RecsiteError):
    """400: the request was invalid; ``errors`` maps field names to their messages."""

    @property
    def errors(self) -> dict[str, Any]:
        return self.detail if isinstance(self.detail, dict) else {"detail": self.detail}


class Unauthorized(RecsiteError):
    """401: no key, or a key or shopper token the server does not accept."""


class Forbidden(RecsiteError):
    """403: the key's scope (or the shopper token) does not allow this call."""


class NotFound(RecsiteError):
    """404: no such item, user or list."""


class Conflict(RecsiteError):
    """409: an id already used differently (an event_id reused for another event)."""


class Gone(RecsiteError):
    """410: the user was recently forgotten."""


class RateLimited(RecsiteError):
    """429 after the retries ran out; ``retry_after``: the seconds the server asked for."""

    def __init__(self, status: int | None, detail: Any = None, retry_after: float | None = None):
        super().__init__(status, detail)
        self.retry_after = retry_after


class ServerError(RecsiteError):
    """5xx (after the retries, for an idempotent call)."""


class ConnectionFailed(RecsiteError):
    """The server could not be reached or did not answer in time (``status`` None);
    ``__cause__`` is the httpx error."""


_BY_STATUS: dict[int, type[RecsiteError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    429: RateLimited,
}


def error_for(status: int, detail: Any, retry_after: float | None = None) -> RecsiteError:
    """The exception for an error answer."""
    if status == 429:
        return RateLimited(status, detail, retry_after)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else RecsiteError)
    return cls(status, detail)
