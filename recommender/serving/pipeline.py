"""Where serving starts: ``recommend()`` (a user, a session or a text), ``similar_items()``
and ``search()``: candidates from the pool, scored, re-ranked for diversity, explained."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.utils import timezone

from recommender import spaces
from recommender.models import EndUser, Item
from recommender.serving import (
    behaviour_models,
    business,
    evidence,
    explain,
    exposure,
    memory_search,
    profiles,
)
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
from recommender.serving.nearest import ScoredItem, candidate_rows, nearest_items
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
    # Items whose events this request ignores, as if the user had never touched them (the
    # profile, history, seeds and category affinity leave them out; they are not served
    # either): explanation fidelity re-ranks a list without a reason's anchor.
    forget: frozenset[int] = frozenset()


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
    vectors = dict(found.anchor_vectors)
    if request.explain:
        # The closest anchor of each listed item by their vectors, then one read of the
        # rows of the list and of the anchors its reasons may name. The vectors of the
        # head below the list come along: the check that a reason's anchor matters
        # (``_faithful``) re-scores them.
        head = sorted(pool, key=lambda c: -c.score)[: k + HEAD_MARGIN]
        needed = dict.fromkeys(c.item_id for c in [*chosen, *head] if c.item_id not in vectors)
        vectors.update(found.vectors_of(needed))
        anchors, closest = anchors_of(chosen, found.anchor_ids, found.history, vectors)
    listed = [c.item_id for c in chosen]
    items, _ = load_items(
        listed + [i for i in anchors if i not in set(listed)], in_memory=found.in_memory
    )
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
        _explain(results, kept, request, anchors, closest, items, found, pool, vectors)
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


def _explain(results, chosen, request, anchors, closest, items, found, pool, vectors) -> None:
    """Each result's reason and blurb. A reason names an anchor only on strong evidence:
    a co-occurrence with enough shoppers behind it, or a cosine above the space's
    calibrated threshold (``serving.evidence``); and only when, by the request's own
    scorer, the item would drop from the list without that anchor."""
    kinds = {i: kind for i, kind in anchors.items() if kind}
    anchor_items = {i: items[i] for i in anchors if i in items}
    pairs = [
        (c.anchor_item_id, c.item_id)
        for c in chosen
        if "co_occurrence" in c.sources and c.anchor_item_id in anchor_items
    ]
    least = evidence.min_cooccurrence()
    strength = _Strength(
        min_similarity=evidence.min_similarity(found.space),
        min_cooccurrence=least,
        # Only pairs strong enough to be named need their proof.
        proofs=evidence.cooccurrence_proofs(pairs, request.as_of, min_count=least) if pairs else {},
    )
    strong = {pair for pair in pairs if _strong_cooccurrence(strength, pair)}
    for c in chosen:
        best, similarity = closest.get(c.item_id, (None, 0.0))
        if best in anchor_items and similarity >= strength.min_similarity:
            strong.add((best, c.item_id))
    if strong:
        strength = replace(strength, faithful=_faithful(strong, request, found, pool, vectors))
    texts = [explain_text(result.item) for result in results]
    explain.prefetch(texts, request.lang, request.query)
    for result, candidate, text in zip(results, chosen, texts, strict=True):
        with _explaining(result):
            found_evidence = _evidence(candidate, request, kinds, closest, anchor_items, strength)
            result.reason = explain.explain(text, found_evidence, request.lang)
            result.blurb = explain.blurb(text, result.reason, request.lang)


# How far below the list the re-scoring for faithful anchors looks (items that could
# overtake a listed one once an anchor is gone).
HEAD_MARGIN = 20


def _faithful(strong, request, found, pool, vectors) -> set[tuple[int, int]]:
    """Of the (anchor, item) pairs with strong evidence, those whose item would drop
    without the anchor (``evidence.faithful_pairs``)."""
    k = max(1, min(request.k, MAX_K))
    ranked = sorted(pool, key=lambda c: -c.score)[: k + HEAD_MARGIN]
    listed = {item for _, item in strong}
    ranked += [c for c in pool if c.item_id in listed and c not in ranked]
    anchor_ids = {anchor for anchor, _ in strong}
    needed = [c.item_id for c in ranked if c.item_id not in vectors]
    needed += [a for a in anchor_ids if a not in vectors]
    vectors = {**vectors, **found.vectors_of(needed)}
    state = None
    weights: dict[int, float] = {}
    if request.user is not None and found.space is not None:
        state = found.profile_state  # as the candidates were found (no second read)
        if state is None:
            state = profiles.state_for(request.user, found.space, as_of=request.as_of)
        kinds: dict[str, float] = {}  # per kind (not ratings): settings read once
        half_life = profiles.half_life_seconds()
        for item_id, kind, occurred_at, value in found.history.recent:
            if item_id in anchor_ids and state.ref_time is not None:
                age = (state.ref_time - occurred_at).total_seconds()
                if kind == "rating":
                    weight = profiles.event_weight(kind, value, state)
                elif kind in kinds:
                    weight = kinds[kind]
                else:
                    weight = kinds[kind] = profiles.event_weight(kind, value, state)
                decay = 0.5 ** (max(age, 0.0) / half_life)  # profiles.decay_factor
                weights[item_id] = weights.get(item_id, 0.0) + weight * decay
    shares = evidence.cooccurrence_shares(found.cooccurrence_parts, anchor_ids)
    faithful = evidence.faithful_pairs(
        anchor_ids,
        ranked,
        k,
        scorer=request.scorer,
        vectors=vectors,
        profile=state,
        anchor_weights=weights,
        shares=shares,
    )
    return faithful & strong


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


@dataclass(frozen=True)
class _Strength:
    """How strong evidence must be to name an anchor, and the co-occurrence proofs."""

    min_similarity: float
    min_cooccurrence: int
    proofs: dict = field(default_factory=dict)
    # (anchor, item) pairs where the item would drop without the anchor.
    faithful: frozenset | set = frozenset()


def _strong_cooccurrence(strength: _Strength, pair: tuple[int, int]) -> bool:
    proof = strength.proofs.get(pair)
    return proof is not None and proof.count >= strength.min_cooccurrence


# A category the user "likes": at least this share of their recent events (damped by a
# request's intent, as the feature is).
LIKED_CATEGORY = 0.25
# "Popular": at least this popularity feature (log-scaled to the most popular item).
POPULAR = 0.5


def _evidence(candidate, request, kinds, closest, anchor_items, strength) -> explain.Evidence:
    """The strongest true thing to say about a candidate: the query it matches; the
    co-occurrence or the similar recent item behind it, named only when the evidence
    clears ``strength``; otherwise a reason that names no item."""
    f = candidate.features
    if request.query and (f.get("query_similarity", 0.0) >= 0.25 or "keyword" in candidate.sources):
        kind = "query" if request.mode == "search" else "intent"
        return explain.Evidence(kind, query=request.query)
    anchor = anchor_items.get(candidate.anchor_item_id)
    pair = (candidate.anchor_item_id, candidate.item_id)
    if (
        "co_occurrence" in candidate.sources
        and anchor is not None
        and _strong_cooccurrence(strength, pair)
        and pair in strength.faithful
    ):
        proof = strength.proofs[pair]
        # Phrased by what the other shoppers did ("Shoppers who viewed X also viewed
        # this"), never by what this user did.
        return explain.Evidence(
            "co_occurrence",
            anchor=explain_text(anchor),
            anchor_kind=proof.anchor_kind,
            item_kind=proof.item_kind,
            anchor_id=anchor.external_id,
            cooccurrence=proof.count,
        )
    best, similarity = closest.get(candidate.item_id, (None, 0.0))
    if (
        best in anchor_items
        and similarity >= strength.min_similarity
        and (best, candidate.item_id) in strength.faithful
    ):
        kind = "positive" if best in request.positive else "history"
        return explain.Evidence(
            kind,
            anchor=explain_text(anchor_items[best]),
            anchor_kind=kinds.get(best, "like"),
            anchor_id=anchor_items[best].external_id,
            similarity=similarity,
        )
    popular = f.get("popularity", 0.0) >= POPULAR or bool(
        {"popular", "trending"} & candidate.sources
    )
    if f.get("category_affinity", 0.0) >= LIKED_CATEGORY and popular:
        return explain.Evidence("popular", category=True)
    if candidate.sources & {"history", "recent", "co_occurrence", *behaviour_models.NAMES}:
        return explain.Evidence("history")  # "Based on items you looked at recently"
    if "positive" in candidate.sources:
        return explain.Evidence("positive")  # "Similar to items you liked"
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
    # A small catalogue is searched in memory (``memory_search``); what it finds then
    # passes the filters in SQL, as the search's own statement would have checked them.
    in_memory = memory_search.snapshot_for(space, filters, None)
    if space is not None:
        vector = in_memory.vectors([item.pk]).get(item.pk) if in_memory is not None else None
        if vector is None:
            vector = item_vectors(space, [item.pk]).get(item.pk)
        if vector is not None and in_memory is not None:
            found = in_memory.nearest(
                vector, k * 3, filters.exclude_ids, recommendable=True, now=timezone.now()
            )
            passing = candidate_rows(space, [item_id for item_id, _ in found], filters)
            hits = [ScoredItem(i, similarity) for i, similarity in found if i in passing]
        elif vector is not None:
            hits = nearest_items(vector, k * 3, space=space, filters=filters)
        else:
            hits = []
        for hit in hits:
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
    proofs = evidence.cooccurrence_proofs(
        [(item.pk, c.item_id) for c in ranked if "similar_item" not in c.sources]
    )
    explain.prefetch([explain_text(items[c.item_id]) for c in ranked if c.item_id in items], lang)
    results = []
    for c in ranked:
        if c.item_id not in items:
            continue
        result = Recommendation(items[c.item_id], c.score, sorted(c.sources), dict(c.features))
        with _explaining(result):
            text = explain_text(result.item)
            if "similar_item" in c.sources:
                found = explain.Evidence(
                    "similar_item",
                    anchor=anchor,
                    anchor_id=item.external_id,
                    similarity=c.features.get("similarity"),
                )
            else:
                # What the shoppers behind the pair did ("mixed": "Shoppers who chose X").
                proof = proofs.get((item.pk, c.item_id))
                found = explain.Evidence(
                    "co_occurrence",
                    anchor=anchor,
                    anchor_kind=proof.anchor_kind if proof else None,
                    item_kind=proof.item_kind if proof else None,
                    anchor_id=item.external_id,
                    cooccurrence=proof.count if proof else None,
                )
            result.reason = explain.explain(text, found, lang)
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
