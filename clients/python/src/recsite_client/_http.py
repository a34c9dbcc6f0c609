"""What the sync and async clients share: building a request, when and how long to wait
before a retry, and turning an answer into a result or an error."""

from __future__ import annotations

import email.utils
import json
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from recsite_client.errors import ConnectionFailed, RecsiteError, error_for

RETRY_STATUSES = frozenset({429, 502, 503, 504})
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Call:
    """One API request: ``path`` is the schema's template (``/items/{id}/``), filled with
    ``args``; ``idempotent`` calls are retried; ``ok`` lists error statuses returned as
    results rather than raised (health answers 503 with a body)."""

    method: str
    path: str
    args: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool = False
    ok: frozenset[int] = frozenset()

    @property
    def url(self) -> str:
        return self.path.format(**{name: quote(str(v), safe="") for name, v in self.args.items()})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (``backoff * 2**attempt``, at most
    ``max_backoff``), or the server's ``Retry-After`` (at most ``max_retry_after``)."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = retry_after(response) if response is not None else None
        if asked is not None:
            return min(asked, self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))  # noqa: S311


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (it may be a number of seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def should_retry(
    call: Call,
    attempt: int,
    policy: RetryPolicy,
    response: httpx.Response | None,
    error: Exception | None,
) -> bool:
    if not call.idempotent or attempt >= policy.retries:
        return False
    if error is not None:
        return isinstance(error, httpx.TransportError)
    return response is not None and response.status_code in RETRY_STATUSES


def result(call: Call, response: httpx.Response) -> Any:
    """The answer's JSON (None for an empty one), or the error it stands for."""
    body: Any
    if not response.content:
        body = None
    else:
        try:
            body = response.json()
        except ValueError:
            body = response.text
    if response.status_code >= 400 and response.status_code not in call.ok:
        if isinstance(body, dict) and set(body) == {"detail"} and response.status_code != 400:
            body = body["detail"]
        raise error_for(response.status_code, body, retry_after(response))
    return body


def failed(error: Exception) -> RecsiteError:
    return ConnectionFailed(None, f"{type(error).__name__}: {error}")


def base_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def headers(api_key: str | None, shopper_token: str | None) -> dict[str, str]:
    found = {"Accept": "application/json", "User-Agent": "recsite-client/0.1"}
    if api_key and shopper_token:
        raise ValueError("give api_key (your backend) or shopper_token (a browser), not both")
    if api_key:
        found["Authorization"] = f"Api-Key {api_key}"
    elif shopper_token:
        found["Authorization"] = f"Shopper {shopper_token}"
    return found


# --- building requests ---------------------------------------------------------------------


def query(**values: Any) -> dict[str, str]:
    """Query parameters: None left out, booleans as true/false, dicts as JSON text."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, Mapping):
            out[name] = json.dumps(dict(value), separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def body(**values: Any) -> dict[str, Any]:
    """A JSON body: None left out."""
    return {name: value for name, value in values.items() if value is not None}


def event(data: Mapping[str, Any]) -> dict[str, Any]:
    """An event ready to send: an ``event_id`` (uuid4) when it has none, so that sending
    it again (a retry) records it once; datetimes and UUIDs as text."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[name] = value
    if not out.get("event_id"):
        out["event_id"] = str(uuid.uuid4())
    return out


def events(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [event(e) for e in items]
