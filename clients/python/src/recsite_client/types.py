"""The shapes of the API's answers (and of an event to send), as TypedDicts: the client
returns the JSON it gets, so these are plain dicts that a type checker understands."""

from __future__ import annotations

from typing import Any, Generic, NotRequired, TypedDict, TypeVar

T = TypeVar("T")


class Item(TypedDict):
    id: str
    title: str
    description: str
    category: str
    tags: list[str]
    attributes: dict[str, Any]
    translations: dict[str, dict[str, str]]
    is_active: bool
    available_from: str | None
    available_until: str | None
    is_hidden: bool
    created_at: str
    updated_at: str


class User(TypedDict):
    id: str
    attributes: dict[str, Any]
    created_at: str


class Page(TypedDict, Generic[T]):
    """A page of a list (``limit``/``offset``)."""

    count: int
    next: str | None
    previous: str | None
    results: list[T]


class BulkResult(TypedDict):
    created: int
    updated: int


class ForgetQueued(TypedDict):
    status: str


class Event(TypedDict):
    """An event to send (``track_batch``); only ``user`` and ``kind`` are always needed."""

    user: str
    kind: str
    item: NotRequired[str | None]
    value: NotRequired[float | None]
    text: NotRequired[str]
    context: NotRequired[dict[str, Any]]
    event_id: NotRequired[str | None]
    occurred_at: NotRequired[str | None]
    recommendation_id: NotRequired[str | None]
    position: NotRequired[int | None]


class Behaviour(TypedDict):
    """An event as stored."""

    event_id: str | None
    user: str
    item: str | None
    kind: str
    value: float | None
    text: str
    context: dict[str, Any]
    occurred_at: str
    recommendation_id: str | None
    position: int | None


class Recorded(TypedDict):
    created: bool
    profile_updated: bool
    behaviour: Behaviour


class BatchResult(TypedDict):
    created: int
    duplicates: int
    profiles_updated: int
    forgotten: int


class ReasonEvidence(TypedDict):
    anchor: str | None
    similarity: float | None
    cooccurrence: int | None


class Reason(TypedDict):
    type: str
    text: str
    keywords: list[str]
    evidence: ReasonEvidence


class RecommendedItem(TypedDict):
    id: str
    title: str
    category: str
    attributes: dict[str, Any] | None
    score: float
    sources: list[str]
    reason: Reason | None
    blurb: str | None
    promotion: str | None


class RecommendationList(TypedDict):
    user: str | None
    lang: str
    scenario: str | None
    recommendation_id: str | None
    items: list[RecommendedItem]


class Token(TypedDict):
    token: str
    user: str
    expires_in: int


class Rate(TypedDict):
    value: float
    low: float
    high: float


class ScenarioDay(TypedDict):
    scenario: str
    day: str
    lists: int
    shown: int
    impressions: int
    clicks: int
    carts: int
    purchases: int
    ctr: Rate
    conversion: Rate


class Liveness(TypedDict):
    ok: bool
