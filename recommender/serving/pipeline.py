"""Where serving starts: ``recommend()`` (a user, a session or a text), ``similar_items()``
and ``search()``: candidates from the pool, scored, re-ranked for diversity, explained."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from recommender import spaces
from recommender.models import EndUser, Item
from recommender.serving import business, explain, exposure
from recommender.serving.candidates import (
    MAX_K,
    anchors_of,
    candidate_pool,
    explain_text,
    item_vectors,
    load_items,
)
from recommender.serving.cooccurrence import cooccurrence_candidates
from recommender.serving.filters import Filters
from recommender.serving.nearest import (
    nearest_items,
)
from recommender.serving.ranking import BlendScorer, Candidate, Scorer, mmr, score

logger = logging.getLogger(__name__)


@dataclass
class RecommendationRequest:
    """What a caller asks for. Item ids here are primary keys, not external ids."""

    user: EndUser | None = None
    k: int = 10
    category: str | None = None
    attribute_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    diversity: float = 0.0
    exclude_seen: bool = True
    query: str | None = None
    lang: str = "zh"
    explain: bool = True
    positive: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)
    context: dict = field(default_factory=dict)
    as_of: datetime | None = None
    category_cap: int | None = None
    # Candidates asked of each source (None: RECOMMENDER_CANDIDATES_PER_SOURCE).
    per_source: int | None = None
    mode: str = "recommend"  # or "search": query sources only, seen items allowed
    scorer: Scorer | None = None
    # Restrict candidate sources (offline baselines): history, positive, query, keyword,
    # co_occurrence, popular, trending, new. None means all.
    sources: frozenset[str] | None = None
    # Items never to return (e.g. those earlier pages of the same list already served).
    exclude: frozenset[int] = frozenset()
    # Rotation: items shown to the user this many times without an engagement keep only
    # ``demotion`` of their score (None: no rotation). A scenario sets them.
    demote_after: int | None = None
    demotion: float = 0.5
    # Business rules (``serving.rules``): filter expressions every item must pass (the
    # request's and its scenario's), boosters that multiply scores, the ``$parameters``
    # they name, and promotions that keep slots for matching items.
    rules: tuple[str, ...] = ()
    boosts: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    promotions: tuple[business.PromotionSlot, ...] = ()
    # The encoder space to serve from (a scenario's; None: the active one).
    space_id: int | None = None


@dataclass
class Recommendation:
    item: Item
    score: float
    sources: list[str]
    features: dict[str, float]
    reason: explain.Reason | None = None
    blurb: str | None = None
    promotion: str | None = None  # the promotion whose slot this item fills


def recommend(request: RecommendationRequest) -> list[Recommendation]:
    """A ranked, diverse, explained list for one request."""
    k = max(1, min(request.k, MAX_K))
    found = candidate_pool(request)
    pool = _scored(found.candidates, request)
    promoted: dict[int, str] = {}
    promoted_picks: list[Candidate] = []
    for promotion in request.promotions:
        picks = _promoted(request, promotion, k, set(promoted))
        promoted.update({c.item_id: promotion.name for c in picks})
        promoted_picks += picks
    if promoted:
        pool = [c for c in pool if c.item_id not in promoted]
    chosen = mmr(
        pool, k - len(promoted), diversity=request.diversity, category_cap=request.category_cap
    )
    chosen = _merged(chosen, promoted_picks)
    anchors: dict[int, str] = {}
    closest: dict[int, int] = {}
    # Full rows for what is returned (with vectors, to pick the closest anchor); the
    # anchors' came with the pool.
    missing = [c.item_id for c in chosen if c.item_id not in found.anchor_items]
    items, vectors = load_items(missing, found.space if request.explain else None)
    items.update(found.anchor_items)
    vectors.update(found.anchor_vectors)
    if request.explain:
        anchors, closest = anchors_of(chosen, found.anchor_ids, found.history, vectors)
    results = [
        Recommendation(
            item=items[c.item_id],
            score=c.score,
            sources=sorted(c.sources),
            features=dict(c.features),
            promotion=promoted.get(c.item_id),
        )
        for c in chosen
        if c.item_id in items
    ]
    if request.explain:
        kept = [c for c in chosen if c.item_id in items]
        _explain(results, kept, request, anchors, closest, items)
    return results


def _scored(pool: list[Candidate], request: RecommendationRequest) -> list[Candidate]:
    """``pool`` scored by the request's scorer, rotated (shown-but-ignored items demoted)
    and boosted by its boosters."""
    scorer = request.scorer
    if scorer is None and request.mode == "search":
        scorer = BlendScorer({"similarity": 0.3, "popularity": 0.05})
    score(pool, scorer)
    if request.demote_after and request.user is not None:
        exposure.demote(pool, request.user.pk, request.demote_after, request.demotion)
    if request.boosts:
        business.boost(
            pool,
            request.boosts,
            user=request.user,
            context=request.context,
            params=request.params,
            now=request.as_of,
        )
    return pool


def _promoted(
    request: RecommendationRequest, promotion: business.PromotionSlot, k: int, taken: set[int]
) -> list[Candidate]:
    """The best items for ``promotion``'s slots: candidates gathered under its filter (on
    top of the request's), ranked by the same scorer, boosters and diversity."""
    slots = promotion.slots(k)
    if slots <= 0:
        return []
    narrowed = replace(
        request,
        k=slots,
        rules=(*request.rules, promotion.filter),
        promotions=(),
        explain=False,
        exclude=request.exclude | frozenset(taken),
    )
    pool = _scored(candidate_pool(narrowed).candidates, narrowed)
    return mmr(pool, slots, diversity=request.diversity, category_cap=request.category_cap)


def _merged(chosen: list[Candidate], promoted: list[Candidate]) -> list[Candidate]:
    """The organic list with each promoted item placed before the first organic item
    it outscores: the model's order, and the organic list's diversity order kept."""
    if not promoted:
        return chosen
    merged = list(chosen)
    for candidate in sorted(promoted, key=lambda c: -c.score):
        at = next((i for i, c in enumerate(merged) if c.score < candidate.score), len(merged))
        merged.insert(at, candidate)
    return merged


def _explain(results, chosen, request, anchors, closest, items) -> None:
    kinds = {i: kind for i, kind in anchors.items() if kind}
    anchor_items = {i: items[i] for i in anchors if i in items}
    for result, candidate in zip(results, chosen, strict=True):
        with _explaining(result):
            evidence = _evidence(candidate, request, kinds, closest, anchor_items)
            text = explain_text(result.item)
            result.reason = explain.explain(text, evidence, request.lang)
            result.blurb = explain.blurb(text, result.reason, request.lang)


@contextmanager
def _explaining(result: Recommendation) -> Iterator[None]:
    """Around one item's reason and blurb: if they fail (bad data stored before the write
    checks, a bug on an odd text), that item is listed without them and a warning is
    logged; the rest of the list is served. One row must never take down every list."""
    try:
        yield
    except Exception as exc:
        # One line per failure (a popular bad item fails on every request); the
        # traceback at DEBUG.
        logger.warning(
            "no reason or blurb for item %r: %s: %.200s",
            result.item.external_id,
            type(exc).__name__,
            exc,
        )
        logger.debug("explaining item %r failed", result.item.external_id, exc_info=True)
        result.reason = None
        result.blurb = None


def _evidence(candidate, request, kinds, closest, anchor_items) -> explain.Evidence:
    f = candidate.features
    if request.query and (f.get("query_similarity", 0.0) >= 0.25 or "keyword" in candidate.sources):
        kind = "query" if request.mode == "search" else "intent"
        return explain.Evidence(kind, query=request.query)
    if "co_occurrence" in candidate.sources and candidate.anchor_item_id in anchor_items:
        anchor = anchor_items[candidate.anchor_item_id]
        anchor_kind = kinds.get(anchor.pk, "purchase")
        # "People who bought X also bought this" is only true of an item the user bought;
        # otherwise the honest reason is the user's own action on X.
        kind = "co_occurrence" if anchor_kind in ("purchase", "cart") else "history"
        return explain.Evidence(kind, anchor=explain_text(anchor), anchor_kind=anchor_kind)
    if candidate.item_id in closest and f.get("similarity", 0.0) > 0:
        best = closest[candidate.item_id]
        if best in anchor_items:
            kind = "positive" if best in request.positive else "history"
            return explain.Evidence(
                kind, anchor=explain_text(anchor_items[best]), anchor_kind=kinds.get(best, "like")
            )
    for source in ("trending", "popular", "new"):
        if source in candidate.sources:
            return explain.Evidence(source)
    return explain.Evidence("popular")


def similar_items(
    item: Item,
    k: int = 10,
    *,
    lang: str = "zh",
    request: RecommendationRequest | None = None,
) -> list[Recommendation]:
    """Items like ``item``: nearest in the space (the active one, or the scenario's), plus
    co-occurrence; ``request`` brings the filters, boosters and parameters of the rules."""
    k = max(1, min(k, MAX_K))
    request = request or RecommendationRequest(k=k, lang=lang)
    space = spaces.space_for(request.space_id)
    filters = business.with_rules(
        Filters(exclude_ids={item.pk}),
        request.rules,
        context=request.context,
        params=request.params,
    )
    candidates: dict[int, Candidate] = {}
    if space is not None:
        vector = item_vectors(space, [item.pk]).get(item.pk)
        if vector is not None:
            for hit in nearest_items(vector, k * 3, space=space, filters=filters):
                c = candidates.setdefault(hit.item_id, Candidate(hit.item_id))
                c.sources.add("similar_item")
                c.features["similarity"] = hit.similarity
    for other, (value, _) in cooccurrence_candidates({item.pk: 1.0}, k, filters).items():
        c = candidates.setdefault(other, Candidate(other))
        c.sources.add("co_occurrence")
        c.features["cooccurrence"] = value
    score(list(candidates.values()), BlendScorer({"cooccurrence": 0.5}))
    if request.boosts:
        business.boost(
            list(candidates.values()),
            request.boosts,
            context=request.context,
            params=request.params,
        )
    ranked = sorted(candidates.values(), key=lambda c: -c.score)[:k]
    items, _ = load_items([c.item_id for c in ranked])
    anchor = explain_text(item)
    results = []
    for c in ranked:
        if c.item_id not in items:
            continue
        result = Recommendation(items[c.item_id], c.score, sorted(c.sources), dict(c.features))
        with _explaining(result):
            text = explain_text(result.item)
            kind = "similar_item" if "similar_item" in c.sources else "co_occurrence"
            evidence = explain.Evidence(kind, anchor=anchor, anchor_kind="view")
            result.reason = explain.explain(text, evidence, lang)
            result.blurb = explain.blurb(text, result.reason, lang)
        results.append(result)
    return results


def search_request(
    query: str, user: EndUser | None = None, k: int = 10, lang: str = "zh", **kwargs
) -> RecommendationRequest:
    """The request of a personalised search (query sources first, seen items allowed)."""
    return RecommendationRequest(
        user=user, k=k, query=query, lang=lang, mode="search", exclude_seen=False, **kwargs
    )


def search(query: str, user: EndUser | None = None, k: int = 10, lang: str = "zh", **kwargs):
    """Personalised search: query matches first, the user's profile as a tie-breaker."""
    return recommend(search_request(query, user, k, lang, **kwargs))
