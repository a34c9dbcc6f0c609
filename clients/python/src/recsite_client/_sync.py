"""The synchronous client: generated from ``_async.py`` by
``clients/python/unasync.py``; do not edit."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import httpx

from recsite_client import _http
from recsite_client._http import Call, RetryPolicy, body, query
from recsite_client.types import (
    BatchResult,
    Behaviour,
    BulkResult,
    ForgetQueued,
    Item,
    Liveness,
    Page,
    RecommendationList,
    Recorded,
    ScenarioDay,
    Token,
    User,
)

Id = str | UUID


class Client:
    """The recsite API at ``base_url`` (``http://host:8000``; ``/api/v1`` is added).

    Authenticate with ``api_key`` (your backend: ``rk_…``) or ``shopper_token`` (a
    shopper's browser or app: ``st_…``). Idempotent calls (GET, PUT, DELETE, events, which
    always carry event ids, and the bulk item upsert) are retried ``retries`` times on 429,
    502, 503, 504 and connection errors, after ``Retry-After`` or an exponential backoff
    with jitter. ``transport`` and ``headers`` go to httpx.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        shopper_token: str | None = None,
        timeout: float = 10,
        retries: int = 3,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        self.retry = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self._http = httpx.Client(
            base_url=_http.base_url(base_url),
            headers={**_http.headers(api_key, shopper_token), **dict(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call) -> Any:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = self._http.request(
                    call.method, call.url, params=call.params, json=call.json
                )
            except httpx.TransportError as exc:
                error = exc
            if not _http.should_retry(call, attempt, self.retry, response, error):
                if response is None:
                    raise _http.failed(cast(Exception, error)) from error
                return _http.result(call, response)
            time.sleep(self.retry.delay(attempt, response))
            attempt += 1

    # --- items -----------------------------------------------------------------------------

    def get_item(self, id: str) -> Item:
        return self._run(Call("GET", "/items/{id}/", {"id": id}, idempotent=True))

    def list_items(self, limit: int | None = None, offset: int | None = None) -> Page[Item]:
        params = query(limit=limit, offset=offset)
        return self._run(Call("GET", "/items/", params=params, idempotent=True))

    def create_item(self, id: str, title: str, **fields: Any) -> Item:
        """A new item (400 if the id exists); ``fields``: description, category, tags,
        attributes, translations, is_active, available_from, available_until, is_hidden."""
        data = body(id=id, title=title, **fields)
        return self._run(Call("POST", "/items/", json=data))

    def update_item(self, id: str, **fields: Any) -> Item:
        """Change the fields given (PATCH)."""
        return self._run(Call("PATCH", "/items/{id}/", {"id": id}, json=body(**fields)))

    def replace_item(self, id: str, title: str, **fields: Any) -> Item:
        """Replace the item (PUT): fields not given take their defaults."""
        data = body(id=id, title=title, **fields)
        return self._run(Call("PUT", "/items/{id}/", {"id": id}, json=data, idempotent=True))

    def delete_item(self, id: str) -> None:
        """Withdraw the item (``is_active=False``; an admin key)."""
        self._run(Call("DELETE", "/items/{id}/", {"id": id}, idempotent=True))

    def bulk_upsert_items(self, items: Iterable[Mapping[str, Any]]) -> BulkResult:
        """Create or update up to 1,000 items by id, all or nothing. An upsert is
        idempotent, so it is retried (a retry may count as updated what the lost first
        attempt created)."""
        data = {"items": [dict(item) for item in items]}
        return self._run(Call("POST", "/items/bulk/", json=data, idempotent=True))

    # --- users -----------------------------------------------------------------------------

    def get_user(self, id: str) -> User:
        return self._run(Call("GET", "/users/{id}/", {"id": id}, idempotent=True))

    def list_users(self, limit: int | None = None, offset: int | None = None) -> Page[User]:
        params = query(limit=limit, offset=offset)
        return self._run(Call("GET", "/users/", params=params, idempotent=True))

    def create_user(self, id: str, attributes: Mapping[str, Any] | None = None) -> User:
        """Register a user (also lifts a forgotten id's tombstone)."""
        data = body(id=id, attributes=dict(attributes) if attributes is not None else None)
        return self._run(Call("POST", "/users/", json=data))

    def update_user(self, id: str, attributes: Mapping[str, Any]) -> User:
        """Set the user's attributes (PATCH)."""
        data = {"attributes": dict(attributes)}
        return self._run(Call("PATCH", "/users/{id}/", {"id": id}, json=data))

    def replace_user(self, id: str, attributes: Mapping[str, Any] | None = None) -> User:
        """Replace the user (PUT)."""
        data = {"id": id, "attributes": dict(attributes or {})}
        return self._run(Call("PUT", "/users/{id}/", {"id": id}, json=data, idempotent=True))

    def export_user(self, id: str) -> dict[str, Any]:
        """Everything stored about the user (an admin key)."""
        return self._run(Call("GET", "/users/{id}/export/", {"id": id}, idempotent=True))

    def forget_user(self, id: str) -> ForgetQueued | None:
        """Delete the user and everything naming them (an admin key): None when done,
        ``{"status": "queued"}`` when a background task deletes a long history."""
        return self._run(Call("DELETE", "/users/{id}/", {"id": id}, idempotent=True))

    # --- events ----------------------------------------------------------------------------

    def track(
        self,
        user: str,
        item: str | None,
        kind: str,
        *,
        value: float | None = None,
        text: str | None = None,
        context: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        recommendation_id: Id | None = None,
        position: int | None = None,
        event_id: str | None = None,
    ) -> Recorded:
        """Record one event (``item`` None for a search, with its ``text``). It gets an
        ``event_id`` (uuid4) when not given, so a retry records it once."""
        data = _http.event(
            {
                "user": user,
                "item": item,
                "kind": kind,
                "value": value,
                "text": text,
                "context": dict(context) if context is not None else None,
                "occurred_at": occurred_at,
                "recommendation_id": recommendation_id,
                "position": position,
                "event_id": event_id,
            }
        )
        return self._run(Call("POST", "/behaviours/", json=data, idempotent=True))

    def track_batch(self, events: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Record up to 5,000 events, all or nothing; each gets an ``event_id`` when it
        has none, so a retried batch counts each event once."""
        data = {"events": _http.events(events)}
        return self._run(Call("POST", "/behaviours/batch/", json=data, idempotent=True))

    def impressions(
        self,
        user: str,
        recommendation_id: Id,
        items: Sequence[str],
        *,
        start: int = 1,
        context: Mapping[str, Any] | None = None,
    ) -> BatchResult:
        """Report that ``items`` of a list were shown, at positions ``start``, ``start+1``…"""
        events = [
            {
                "user": user,
                "item": item,
                "kind": "impression",
                "recommendation_id": recommendation_id,
                "position": start + index,
                "context": dict(context) if context is not None else None,
            }
            for index, item in enumerate(items)
        ]
        return self.track_batch(events)

    def events(
        self, user: str, limit: int | None = None, offset: int | None = None
    ) -> Page[Behaviour]:
        """A user's events, newest first."""
        params = query(user=user, limit=limit, offset=offset)
        return self._run(Call("GET", "/behaviours/", params=params, idempotent=True))

    # --- lists -----------------------------------------------------------------------------

    def recommend(
        self,
        user: str,
        k: int = 10,
        *,
        scenario: str | None = None,
        filter: str | None = None,
        boost: str | None = None,
        params: Mapping[str, Any] | None = None,
        lang: str | None = None,
        recommendation_id: Id | None = None,
        q: str | None = None,
        category: str | None = None,
        diversity: float | None = None,
        exclude_seen: bool | None = None,
        explain: bool | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
        category_cap: int | None = None,
        device: str | None = None,
        page: str | None = None,
    ) -> RecommendationList:
        """A ranked, explained list for ``user``. Pass a list's ``recommendation_id`` for
        its next page; ``filter``/``boost``/``params``: business rules (docs/rules.md)."""
        found = query(
            k=k,
            scenario=scenario,
            filter=filter,
            boost=boost,
            params=params,
            lang=lang,
            recommendation_id=recommendation_id,
            q=q,
            category=category,
            diversity=diversity,
            exclude_seen=exclude_seen,
            explain=explain,
            price_min=price_min,
            price_max=price_max,
            category_cap=category_cap,
            device=device,
            page=page,
        )
        call = Call(
            "GET", "/users/{id}/recommendations/", {"id": user}, params=found, idempotent=True
        )
        return self._run(call)

    def similar(
        self,
        item: str,
        k: int = 10,
        *,
        scenario: str | None = None,
        filter: str | None = None,
        boost: str | None = None,
        params: Mapping[str, Any] | None = None,
        lang: str | None = None,
    ) -> RecommendationList:
        """Items like ``item``."""
        found = query(k=k, scenario=scenario, filter=filter, boost=boost, params=params, lang=lang)
        call = Call("GET", "/items/{id}/similar/", {"id": item}, params=found, idempotent=True)
        return self._run(call)

    def search(
        self,
        q: str,
        *,
        user: str | None = None,
        k: int = 10,
        category: str | None = None,
        scenario: str | None = None,
        filter: str | None = None,
        boost: str | None = None,
        params: Mapping[str, Any] | None = None,
        lang: str | None = None,
    ) -> RecommendationList:
        """Items matching ``q``, the user's taste (if given) breaking ties."""
        found = query(
            q=q,
            user=user,
            k=k,
            category=category,
            scenario=scenario,
            filter=filter,
            boost=boost,
            params=params,
            lang=lang,
        )
        return self._run(Call("GET", "/search/", params=found, idempotent=True))

    def session(
        self,
        *,
        positive: Sequence[str] = (),
        negative: Sequence[str] = (),
        text: str | None = None,
        user: str | None = None,
        k: int = 10,
        category: str | None = None,
        diversity: float | None = None,
        scenario: str | None = None,
        filter: str | None = None,
        boost: str | None = None,
        params: Mapping[str, Any] | None = None,
        lang: str | None = None,
    ) -> RecommendationList:
        """A list for an anonymous session from liked/disliked items and a text."""
        data = body(
            positive=list(positive),
            negative=list(negative),
            text=text,
            user=user,
            k=k,
            category=category,
            diversity=diversity,
            scenario=scenario,
            filter=filter,
            boost=boost,
            params=dict(params) if params is not None else None,
            lang=lang,
        )
        return self._run(Call("POST", "/recommendations/", json=data))

    # --- tokens, metrics, health -----------------------------------------------------------

    def shopper_token(self, user: str, create: bool = True) -> Token:
        """A short-lived token for one shopper's browser (a write key); ``create`` the
        user if unknown."""
        return self._run(Call("POST", "/tokens/", json={"user": user, "create": create}))

    def scenario_metrics(self, days: int = 14, scenario: str | None = None) -> list[ScenarioDay]:
        """Online metrics per scenario and day (an admin key)."""
        return self._metrics("/metrics/scenarios/", days, scenario)

    def variant_metrics(self, days: int = 14, scenario: str | None = None) -> list[dict[str, Any]]:
        return self._metrics("/metrics/variants/", days, scenario)

    def source_metrics(self, days: int = 14, scenario: str | None = None) -> list[dict[str, Any]]:
        return self._metrics("/metrics/sources/", days, scenario)

    def position_metrics(self, days: int = 14, scenario: str | None = None) -> list[dict[str, Any]]:
        return self._metrics("/metrics/positions/", days, scenario)

    def coverage_metrics(self, days: int = 14, scenario: str | None = None) -> list[dict[str, Any]]:
        return self._metrics("/metrics/coverage/", days, scenario)

    def experiment_metrics(self, name: str) -> dict[str, Any]:
        """An experiment's results per variant (an admin key)."""
        call = Call("GET", "/metrics/experiments/{name}/", {"name": name}, idempotent=True)
        return self._run(call)

    def _metrics(self, path: str, days: int, scenario: str | None) -> Any:
        params = query(days=days, scenario=scenario)
        return self._run(Call("GET", path, params=params, idempotent=True))

    def health(self) -> Liveness:
        """``{"ok": bool}``: whether the server reaches its database (not raised on 503)."""
        return self._run(Call("GET", "/health/", ok=frozenset({503})))

    def health_detail(self) -> dict[str, Any]:
        """Database, broker, workers, the active space (a read key); not raised on 503."""
        return self._run(Call("GET", "/health/detail/", ok=frozenset({503})))
