"""The candidate pool of one request: the user's history and profile, every source's
candidates merged with their features, and the anchors explanations may name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from recommender import behaviour, dbroute, spaces
from recommender.conf import MODEL_SCALINGS, conf
from recommender.models import Behaviour, EncoderSpace, EndUser, Item, ItemVector
from recommender.serving import (
    behaviour_models,
    business,
    context_features,
    explain,
    helper_connection,
    memory_search,
    profiles,
)
from recommender.serving.cooccurrence import cooccurrence_candidates
from recommender.serving.filters import Filters
from recommender.serving.keywords import keyword_matches
from recommender.serving.nearest import (
    CosineFeatures,
    HistoryExclusion,
    Search,
    candidate_rows,
    nearest_searches,
    seen_window,
)
from recommender.serving.popularity import (
    ScoreTable,
    new_items,
    popularity,
    top_items_of,
    trending,
)
from recommender.serving.ranking import Candidate
from recommender.spaces import vector_io

if TYPE_CHECKING:  # the pipeline imports this module
    from recommender.serving.pipeline import RecommendationRequest

MAX_K = 200
HISTORY_LIMIT = 200


SEED_LIMIT = 30


@dataclass
class History:
    """What the user did before the request (or before ``as_of``)."""

    recent: list[tuple[int, str, datetime, float | None]]  # item, kind, time, value
    seen: set[int]
    disliked: set[int]
    categories: dict[int, str] = field(default_factory=dict)  # of the recent items
    truncated: bool = False  # more than HISTORY_LIMIT events: ``recent`` holds the latest

    @classmethod
    def load(
        cls, user: EndUser | None, as_of: datetime | None, forget: frozenset[int] = frozenset()
    ) -> History:
        """``forget``: items whose events are left out, as if never touched.

        One precomposed statement: the ORM's query building cost as much as the read. In
        binary: Django's text loader of ``timestamptz`` is Python, and the events' times
        took 1.5 of the read's 1.9 ms of CPU on the demo shop; psycopg's binary one is C."""
        if user is None:
            return cls([], set(), set())
        events, params = _history_sql(user.pk, as_of, forget)
        item_table = Item._meta.db_table
        reads = dbroute.read_connection()  # the standby, unless this user just wrote
        rows = vector_io.fetch(
            f"SELECT b.item_id, b.kind, b.occurred_at, b.value, i.category FROM {events} "
            f"JOIN {item_table} i ON i.id = b.item_id "
            "ORDER BY b.occurred_at DESC, b.id DESC LIMIT %s",
            [*params, HISTORY_LIMIT + 1],
            using=reads,
        )
        recent = [row[:4] for row in rows[:HISTORY_LIMIT]]
        seen = {row[0] for row in rows}
        disliked = {item for item, kind, _, _ in recent if kind == "dislike"}
        if len(rows) > HISTORY_LIMIT:
            # A long history: "seen" and dislikes come from the latest seen_window()
            # events (the search's exclusion uses the same window), a bounded read.
            pairs = set(
                vector_io.fetch(
                    f"SELECT b.item_id, b.kind FROM {events} ORDER BY b.occurred_at DESC LIMIT %s",
                    [*params, seen_window()],
                    using=reads,
                )
            )
            seen = {item for item, _ in pairs}
            disliked = {item for item, kind in pairs if kind == "dislike"}
        categories = {row[0]: row[4] for row in rows[:HISTORY_LIMIT]}
        return cls(recent, seen, disliked, categories, len(rows) > HISTORY_LIMIT)

    def seeds(self, now: datetime) -> dict[int, float]:
        """Recent positively engaged items, weighted by kind and recency."""
        seeds: dict[int, float] = {}
        weights: dict[str, float] = {}  # per kind: settings are read once, not per event
        half_life = profiles.half_life_seconds()
        for item_id, kind, occurred_at, value in self.recent:
            if kind == "rating":
                weight = behaviour.seed_weight(kind, value)
            elif kind in weights:
                weight = weights[kind]
            else:
                weight = weights[kind] = behaviour.seed_weight(kind, value)
            if weight <= 0 or item_id in self.disliked:
                continue
            age = max((now - occurred_at).total_seconds(), 0.0)
            seeds[item_id] = seeds.get(item_id, 0.0) + weight * 0.5 ** (age / half_life)
        return dict(sorted(seeds.items(), key=lambda kv: -kv[1])[:SEED_LIMIT])

    def positive_sequence(self) -> list[int]:
        """The positively engaged items, oldest first, each once at its latest event (what
        the behaviour models read)."""
        order: dict[int, None] = {}
        positive: dict[str, bool] = {}  # per kind: settings are read once, not per event
        for item_id, kind, _, value in reversed(self.recent):
            if item_id in self.disliked:
                continue
            if kind == "rating":
                if behaviour.seed_weight(kind, value) <= 0:
                    continue
            else:
                if kind not in positive:
                    positive[kind] = behaviour.seed_weight(kind, value) > 0
                if not positive[kind]:
                    continue
            order.pop(item_id, None)
            order[item_id] = None
        return list(order)

    def anchor_kinds(self) -> dict[int, str]:
        """The strongest thing the user did to each recent item (for explanations)."""
        order = behaviour.STRENGTH
        best: dict[int, str] = {}
        for item_id, kind, _, _ in self.recent:
            if kind in order and (
                item_id not in best or order.index(kind) > order.index(best[item_id])
            ):
                best[item_id] = kind
        return best


def _history_sql(user_id: int, as_of: datetime | None, forget: frozenset[int]) -> tuple[str, list]:
    """The user's events that carry a signal (not impressions), before ``as_of``, without
    the ``forget`` items: a FROM clause aliased ``b``, and its parameters."""
    table = Behaviour._meta.db_table
    where = [
        "user_id = %s",
        "item_id IS NOT NULL",
        "NOT (kind = ANY(%s::text[]))",
    ]
    params: list = [user_id, list(behaviour.SIGNALLESS)]
    if forget:
        where.append("NOT (item_id = ANY(%s::bigint[]))")
        params.append(sorted(forget))
    if as_of is not None:
        where.append("occurred_at < %s")
        params.append(as_of)
    return f"(SELECT * FROM {table} WHERE {' AND '.join(where)}) AS b", params


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 1e-9 else None


def item_vectors(space: EncoderSpace | None, ids) -> dict[int, np.ndarray]:
    """Stored vectors of ``ids`` in ``space`` ({} without a space)."""
    if space is None or not ids:
        return {}
    return profiles.item_vectors(space, ids)


def explain_text(item: Item) -> explain.ItemText:
    """What explanations and blurbs read of an item."""
    return explain.ItemText(
        title=item.title,
        category=item.category,
        tags=tuple(str(tag) for tag in item.tags or ()),
        description=item.description,
        attributes=item.attributes or {},
        translations=item.translations or {},
    )


@dataclass
class Pool:
    """Every candidate for a request, with features filled in, before scoring."""

    candidates: list[Candidate]
    history: History
    space: EncoderSpace | None
    # The recent items a reason may name (``request.explain``) and their vectors.
    anchor_ids: list[int] = field(default_factory=list)
    anchor_vectors: dict[int, np.ndarray] = field(default_factory=dict)
    # The user's stored profile as this request read it (None: no user, or a forgetting
    # request), so explanations need not read it again.
    profile_state: profiles.ProfileState | None = None
    # ``history.seeds`` as this request computed them (None: not computed).
    seeds: dict[int, float] | None = None
    # The co-occurrence candidates' terms (item → seed → score × seed weight), read when
    # the request explains (``cooccurrence_candidates``' ``parts``).
    cooccurrence_parts: dict[int, dict[int, float]] = field(default_factory=dict)
    # The small catalogue's vectors this request searched in memory (None: in SQL).
    in_memory: memory_search.Snapshot | None = None

    def vectors_of(self, ids) -> dict[int, np.ndarray]:
        """Stored vectors of ``ids`` in the pool's space: from the snapshot the request
        searched when it holds them, else read."""
        ids = list(ids)
        found = self.in_memory.vectors(ids) if self.in_memory is not None else {}
        missing = [item_id for item_id in ids if item_id not in found]
        if missing:
            found.update(item_vectors(self.space, missing))
        return found


def candidate_pool(request: RecommendationRequest) -> Pool:
    """Candidates from every source with their features (shared by serving and training)."""
    k = max(1, min(request.k, MAX_K))
    now = request.as_of or timezone.now()
    space = spaces.space_for(request.space_id)
    search_mode = request.mode == "search"
    per_source = request.per_source or int(conf.CANDIDATES_PER_SOURCE)
    n = max(per_source, k * 3)
    wanted = request.sources

    query_vector = None
    if request.query and space is not None:
        from recommender.spaces.embedding import encode_cached

        # Shoppers repeat the same queries: each distinct text is encoded once per
        # TEXT_VECTOR_TTL across the processes (the shared cache), not once a request.
        query_vector = _unit(encode_cached(space, [request.query])[0])
    # Free-text intent is blended into the profile for this request only, and history-bound
    # features are damped by the same share, so what the user asks for now comes first.
    history_share = 1.0
    if query_vector is not None and not search_mode:
        history_share = 1.0 - float(conf.INTENT_WEIGHT)

    # Hidden items are found by search, never recommended; the rules compile for this
    # request's user, context and parameters.
    filters = business.with_rules(
        Filters(
            category=request.category,
            attribute_ranges=dict(request.attribute_ranges),
            recommendable=not search_mode,
        ),
        request.rules,
        user=request.user,
        context=request.context,
        params=request.params,
        now=request.as_of,
    )
    filters.exclude_ids |= set(request.positive) | set(request.negative) | set(request.exclude)
    filters.exclude_ids |= set(request.forget)
    profile_vector, profile_state = _profile_vector(request, space, query_vector, history_share)
    # A small catalogue is searched in this process's memory instead, exactly
    # (``memory_search``); its vectors then also give the recent items from the history.
    in_memory = memory_search.snapshot_for(space, filters, request.as_of)
    history = None
    recent = None
    if space is not None and request.user is not None and not search_mode:
        interests = _interest_searches(request, query_vector)
        if in_memory is not None and not request.forget:
            history = History.load(request.user, request.as_of)
            recent = recent_in_memory(history, in_memory, interests, profile_state)
        if recent is None:
            recent = recent_items(
                request.user.pk,
                space,
                request.as_of,
                request.forget,
                max_interests=interests,
                state=profile_state,
            )
    if recent is None:
        recent = RecentItems()
    cosine = CosineFeatures(
        profile=profile_vector,
        query=query_vector,
        dislikes_of=request.user.pk if request.user is not None else None,
        before=request.as_of,
        vectors=request.diversity > 0,  # only re-ranking for diversity compares candidates
        recent=recent.vector,
    )
    # The nearest-neighbour searches first, on the helper connection when there is one
    # (``parallel``): they are the request's longest wait, and they leave out the user's
    # items in their own SQL, so they need nothing gathered below.
    searches = _searches(request, space, n, query_vector, profile_vector, recent)
    exclusion = None
    if request.user is not None:
        exclusion = HistoryExclusion(
            request.user.pk, seen=request.exclude_seen and not search_mode, before=request.as_of
        )
    nearest = None
    if in_memory is None:
        nearest = helper_connection.start(
            _nearest,
            space,
            searches,
            replace(filters, exclude_ids=set(filters.exclude_ids)),  # this thread adds to its own
            exclusion,
            cosine,
        )

    if history is None:
        history = History.load(request.user, request.as_of, request.forget)
    filters.exclude_ids |= history.disliked
    if request.exclude_seen and not search_mode:
        filters.exclude_ids |= history.seen

    # Meanwhile the other sources: (source, id, features, anchor) in source order.
    found: list[tuple[str, int, dict[str, float], int | None]] = []
    if request.query:
        matches = keyword_matches(request.query, n // 2, filters)
        top = max(matches.values(), default=1)
        found += [("keyword", i, {"keyword_match": c / top}, None) for i, c in matches.items()]
    seeds = None
    cooccurrence_parts: dict[int, dict[int, float]] = {}
    cooccurrence_head = None  # from the table in memory: checked with the other candidates
    if not search_mode:
        seeds = history.seeds(now)
        kept_seeds = dict(seeds)
        for item_id in request.positive:
            seeds[item_id] = seeds.get(item_id, 0.0) + 3.0
        in_memory_table = memory_search.cooccurrences_for(in_memory)
        if in_memory_table is not None:
            # The head the SQL ranks before its item filters (twice what it keeps: see
            # ``cooccurrence_candidates``), checked below by the statement every candidate
            # goes through.
            cooccurrence_head = in_memory_table.head(seeds, 2 * n, filters.exclude_ids)
        else:
            # With explanations, each candidate's terms too (the reasons' check uses them).
            cooc = cooccurrence_candidates(
                seeds, n, filters, parts=cooccurrence_parts if request.explain else None
            )
            found += _cooccurring(cooc)
    # The trained behaviour models (EASE, ALS, SASRec): each a source of its best items
    # for the user's history, and later a score feature of every candidate.
    models = {}
    model_history = history.positive_sequence()
    if not search_mode and (model_history or request.positive):
        model_history = model_history + [i for i in request.positive if i not in model_history]
        models = behaviour_models.active()
    # Each model offers more than the other sources: a cheap top-n over a numpy vector, and
    # on MovieLens the target was in the pool for 57 % of users with 100 per model against
    # 40 % with 25 (docs/evaluation.md).
    model_n = max(int(conf.MODEL_CANDIDATES), n // 2)
    for name, model in models.items():
        best = model.top(model_history, model_n, filters.exclude_ids)
        if wanted is None or name in wanted:
            found += [(name, i, {}, None) for i, _ in best]
    popular = popularity(request.as_of)
    pop_scale = math.log1p(popular.peak()) or 1.0  # log(1 + max); 1 for an empty table
    if not search_mode:
        trend = trending(request.as_of)
        heads = top_items_of([(popular, n // 2), (trend, 20)], filters)
        listed = [("popular", heads[0]), ("trending", heads[1])]
        found += [(source, i, {}, None) for source, ids in listed for i in ids]
    else:
        trend = ScoreTable()
    found = [entry for entry in found if wanted is None or entry[0] in wanted]
    remembered: list[tuple[str, list[int]]] = []
    if in_memory is not None:
        # Left out as the SQL search leaves them out: the request's exclusions, what the
        # user disliked and (unless searching or asked otherwise) what they touched.
        nearest_ids = in_memory.search(
            [search for _, search in searches],
            filters.exclude_ids,
            recommendable=filters.recommendable,
            now=now,
        )
        remembered = [(source, ids) for (source, _), ids in zip(searches, nearest_ids, strict=True)]

    # The business filters once more on those (cached tables may be a minute old, a
    # snapshot a moment old), with their cosine features, in one round trip.
    head_ids = set()
    if cooccurrence_head is not None and (wanted is None or "co_occurrence" in wanted):
        head_ids = {entry[0] for entry in cooccurrence_head}
    rows = candidate_rows(
        space,
        list({entry[1] for entry in found} | {i for _, ids in remembered for i in ids} | head_ids),
        filters,
        cosine,
        # A forgetting request's history leaves out dislikes the SQL's features still count.
        in_memory=None if request.forget else in_memory,
        disliked=history.disliked,
    )
    if head_ids:
        # As the SQL keeps them: the first ``n`` of the head that pass the filters, in
        # their place among the sources (after the keyword matches).
        passed = [entry for entry in cooccurrence_head if entry[0] in rows][:n]
        if request.explain:
            cooccurrence_parts.update((item, terms) for item, _, _, terms in passed)
        at = sum(1 for entry in found if entry[0] == "keyword")
        found[at:at] = _cooccurring({item: (total, anchor) for item, total, anchor, _ in passed})
    # Still waiting for the search: fetch what explanations will need.
    # Only their vectors: the few a reason names are read with the list's own items.
    anchor_ids = _anchor_ids(history, request) if request.explain else []
    anchor_vectors = in_memory.vectors(anchor_ids) if in_memory is not None else {}
    anchor_vectors.update(item_vectors(space, [i for i in anchor_ids if i not in anchor_vectors]))
    if nearest is not None:
        hits = nearest.result()  # these passed the filters in their own SQL
    else:
        hits = [(source, [rows[i] for i in ids if i in rows]) for source, ids in remembered]
    cold = profile_vector is None and query_vector is None and not search_mode
    if cold and (wanted is None or "new" in wanted):
        # Nothing to search by (a cold start): the newest items are a source too.
        fresh = new_items(20, filters, request.as_of)
        rows.update(candidate_rows(space, list(set(fresh) - rows.keys()), filters))
        found += [("new", item_id, {}, None) for item_id in fresh]

    candidates: dict[int, Candidate] = {}

    def add(item_id: int, source: str, features: dict[str, float]) -> Candidate:
        candidate = candidates.setdefault(item_id, Candidate(item_id))
        candidate.sources.add(source)
        for name, value in features.items():
            candidate.features[name] = max(candidate.features.get(name, 0.0), value)
        return candidate

    for source, source_rows in hits:
        for row in source_rows:
            rows.setdefault(row.item_id, row)
            add(row.item_id, source, {})
    for source, item_id, features, anchor in found:
        if item_id in rows:
            candidate = add(item_id, source, features)
            if anchor is not None:
                candidate.anchor_item_id = anchor
    if not candidates:
        return Pool([], history, space, anchor_ids, anchor_vectors)

    ordered = list(candidates.values())
    affinity = _category_affinity(history)
    trend_top = (trend.peak() if trend else 1.0) or 1.0
    now_s = now.timestamp()
    for candidate in ordered:
        row = rows[candidate.item_id]
        candidate.category = row.category
        candidate.vector = _unit(row.vector)
        f = candidate.features
        f.update(row.features)
        f["popularity"] = math.log1p(popular.get(candidate.item_id, 0.0)) / pop_scale
        f["trending"] = trend.get(candidate.item_id, 0.0) / trend_top
        age_days = max(now_s - row.created_at.timestamp(), 0.0) / 86400.0
        f["freshness"] = 0.5 ** (age_days / 30.0)
        f["category_affinity"] = affinity.get(row.category, 0.0) * history_share
        if "cooccurrence" in f:
            f["cooccurrence"] *= history_share
    _add_model_scores(ordered, models, model_history)
    context_features.add_features(request, ordered)
    return Pool(
        ordered,
        history,
        space,
        anchor_ids,
        anchor_vectors,
        profile_state,
        kept_seeds if seeds is not None else None,
        cooccurrence_parts,
        in_memory,
    )


def _cooccurring(cooc: dict[int, tuple[float, int]]) -> list[tuple]:
    """``found`` entries of co-occurrence candidates (item → (sum, anchor)), their feature
    scaled to the largest sum."""
    top = max((value for value, _ in cooc.values()), default=1.0) or 1.0
    return [
        ("co_occurrence", i, {"cooccurrence": value / top}, anchor)
        for i, (value, anchor) in cooc.items()
    ]


def _profile_vector(
    request: RecommendationRequest,
    space: EncoderSpace | None,
    query_vector: np.ndarray | None,
    history_share: float,
) -> tuple[np.ndarray | None, profiles.ProfileState | None]:
    """The vector this request is served for: the user's profile, moved towards the
    session's positive items and away from its negative ones, with the request's
    free-text intent blended in; and the stored profile it started from."""
    if space is None:
        return None, None
    profile_vector, state = None, None
    if request.user is not None and request.forget:
        profile_vector = _forgetting_profile(request, space).vector()
    elif request.user is not None:
        state = profiles.state_for(request.user, space, as_of=request.as_of)
        profile_vector = state.vector()
    if request.positive or request.negative:
        session = item_vectors(space, request.positive + request.negative)
        pos = [session[i] for i in request.positive if i in session]
        neg = [session[i] for i in request.negative if i in session]
        total = (np.mean(pos, axis=0) if pos else 0) - (0.5 * np.mean(neg, axis=0) if neg else 0)
        if isinstance(total, np.ndarray):
            base = profile_vector if profile_vector is not None else 0
            profile_vector = _unit(total + 0.5 * base)
    if query_vector is not None and profile_vector is not None and request.mode != "search":
        intent = 1.0 - history_share
        profile_vector = _unit(history_share * profile_vector + intent * query_vector)
    return profile_vector, state


def _add_model_scores(ordered, models, model_history) -> None:
    """Each behaviour model's score of every candidate, as a feature standardised over the
    pool (z-score: the known candidates' mean 0, one standard deviation 1). Raw scores are
    on no common scale (EASE weights, ALS dot products, SASRec logits, often negative),
    and a scale set by the pool keeps the whole order the model gives the candidates.
    Measured on MovieLens with the tuned blend (docs/evaluation.md): dividing by the best
    score and clipping at 0 gave test NDCG@10 0.0597, min-max over the pool 0.0609-0.0625,
    the z-score 0.0648-0.0654; a model's few clear favourites stand out from the rest more
    than a 0..1 range lets them. Candidates the model does not know (an item newer than the
    model) get 0, the pool's average: the model has no opinion on them.
    RECOMMENDER_MODEL_SCORE_SCALING=minmax scales to 0..1 instead, which scored higher on
    Amazon Beauty (0.0458 against 0.0365): choose on the validation split."""
    if not ordered:
        return
    ids = [candidate.item_id for candidate in ordered]
    for name, model in models.items():
        values = np.asarray(model.score_items(model_history, ids), dtype=np.float64)
        known = model.known(ids)
        if not known.any():
            continue
        scaled = _scaled(values, known, str(conf.MODEL_SCORE_SCALING))
        for candidate, value in zip(ordered, scaled, strict=True):
            candidate.features[f"{name}_score"] = float(value)


def _scaled(values: np.ndarray, known: np.ndarray, scaling: str) -> np.ndarray:
    """``values`` over the known candidates as ``scaling`` says (zscore or minmax); 0 for
    unknown ones. Known scores that do not spread give 0 (zscore) or 1 (minmax)."""
    if scaling not in MODEL_SCALINGS:
        raise ImproperlyConfigured(
            f"RECOMMENDER_MODEL_SCORE_SCALING must be one of "
            f"{', '.join(MODEL_SCALINGS)}, not {scaling!r}"
        )
    if scaling == "minmax":
        low, high = float(values[known].min()), float(values[known].max())
        if high <= low:  # one known candidate, or all level: the model's best
            return np.where(known, 1.0, 0.0)
        return np.where(known, (values - low) / (high - low), 0.0)
    mean, spread = float(values[known].mean()), float(values[known].std())
    if spread <= 0:
        return np.zeros(len(values))
    return np.where(known, (values - mean) / spread, 0.0)


# The last few items a user engaged with, newest weighted most: what they want next
# depends on these more than on a long-decayed profile, and their text neighbours include
# items too new to have co-occurred with anything.
RECENT_ITEMS = 5
RECENT_DECAY = 0.7
DISLIKE_PUSH = 0.5
# The user's interests: their last INTEREST_ITEMS distinct positively engaged items,
# grouped (``interests``); each group is searched on its own, so a user with several
# interests is not served from the point between them, where a narrow HNSW search
# lands in one of them and a broad one costs several times as much.
INTEREST_ITEMS = 20
INTEREST_DECAY = 0.9
# Two groups whose weighted mean vectors are at least this similar are one interest.
INTEREST_SIMILARITY = 0.5


@dataclass
class RecentItems:
    """What the user's latest events say: the recent-items vector (``recent_items``) and
    their interests' vectors with each one's share of the recency weight."""

    vector: np.ndarray | None = None
    interests: list[tuple[np.ndarray, float]] = field(default_factory=list)


def recent_items_vector(
    user_id: int,
    space: EncoderSpace,
    as_of: datetime | None = None,
    forget: frozenset[int] = frozenset(),
) -> np.ndarray | None:
    """``recent_items(…).vector``."""
    return recent_items(user_id, space, as_of, forget).vector


def recent_items(
    user_id: int,
    space: EncoderSpace,
    as_of: datetime | None = None,
    forget: frozenset[int] = frozenset(),
    max_interests: int = 0,
    state: profiles.ProfileState | None = None,
) -> RecentItems:
    """From the user's latest events with their vectors, in one query: the unit mean of
    the vectors of the last ``RECENT_ITEMS`` distinct positively engaged items, weighted
    ``RECENT_DECAY`` ** (0 for the newest, 1, …), less ``DISLIKE_PUSH`` times those they
    disliked among them; and up to ``max_interests`` interests among the last
    ``INTEREST_ITEMS`` such items (``interests``), each item weighted as the profile
    weighs its events (kind, rating against the user's mean in ``state``, age)."""
    rows = vector_io.fetch(
        f"SELECT b.item_id, b.kind, b.value, b.occurred_at, v.embedding "
        f"FROM {Behaviour._meta.db_table} b "
        f"JOIN {ItemVector._meta.db_table} v ON v.item_id = b.item_id AND v.space_id = %s "
        "WHERE b.user_id = %s AND b.item_id IS NOT NULL AND NOT (b.kind = ANY(%s)) "
        "AND (%s::timestamptz IS NULL OR b.occurred_at < %s::timestamptz) "
        "ORDER BY b.occurred_at DESC, b.id DESC LIMIT %s",
        [
            space.pk,
            user_id,
            list(behaviour.SIGNALLESS),
            as_of,
            as_of,
            _recent_rows(max_interests),
        ],
    )
    rows = [(*row[:4], vector_io.decode(row[4])) for row in rows]
    return _recent_of(rows, forget, max_interests, state, as_of)


def _recent_rows(max_interests: int) -> int:
    """How many of the user's latest events (on items with a vector) ``recent_items``
    reads."""
    return max(8 * RECENT_ITEMS, 3 * INTEREST_ITEMS if max_interests else 0)


def recent_in_memory(
    history: History,
    snapshot: memory_search.Snapshot,
    max_interests: int = 0,
    state: profiles.ProfileState | None = None,
) -> RecentItems | None:
    """``recent_items`` from the user's ``history`` (read anyway) and the vectors of a
    small catalogue's ``snapshot``: one statement fewer per list. None when the history
    read is too short to hold the events ``recent_items`` would read (a long history
    whose latest events are mostly on items without a vector)."""
    wanted = _recent_rows(max_interests)
    vectors = snapshot.vectors(item_id for item_id, *_ in history.recent)
    rows = [
        (item_id, kind, value, occurred_at, vectors[item_id])
        for item_id, kind, occurred_at, value in history.recent
        if item_id in vectors
    ][:wanted]
    if len(rows) < wanted and history.truncated:
        return None
    return _recent_of(rows, frozenset(), max_interests, state, None)


def _recent_of(rows, forget, max_interests, state, as_of) -> RecentItems:
    """``recent_items`` of the user's latest events with their items' vectors, newest first:
    (item, kind, value, time, stored vector)."""
    total, used, skipped = None, 0, set(forget)
    disliked = []
    for item_id, kind, value, _, stored in rows:
        if item_id in skipped:
            continue
        skipped.add(item_id)  # an item counts once, at its latest event
        vector = _unit(stored)
        if vector is None:
            continue
        if kind == "dislike":
            disliked.append(vector * RECENT_DECAY**used)
            continue
        if behaviour.seed_weight(kind, value) <= 0:
            continue
        weighted = vector * RECENT_DECAY**used
        total = weighted if total is None else total + weighted
        used += 1
        if used == RECENT_ITEMS:
            break
    if total is None:
        return RecentItems()
    # A recent dislike pushes away, as it does in the profile (profiles.apply).
    for vector in disliked:
        total = total - DISLIKE_PUSH * vector
    found = RecentItems(_unit(total))
    if max_interests:
        found.interests = _interests_of(rows, forget, max_interests, state, as_of)
    return found


def _interests_of(rows, forget, limit, state, as_of) -> list[tuple[np.ndarray, float]]:
    """``interests`` of the last ``INTEREST_ITEMS`` distinct items of ``rows`` (newest
    first) whose events, weighted as the profile weighs them, add up to a pull towards
    the item: each interest is then the part of the profile its items make."""
    state = state or profiles.ProfileState(item_sum=None, text_sum=None, ref_time=None)
    now = as_of or timezone.now()
    half_life = profiles.half_life_seconds()
    weights: dict[int, float] = {}
    vectors: dict[int, np.ndarray] = {}
    for item_id, kind, value, occurred_at, stored in rows:
        if item_id in forget:
            continue
        if item_id not in vectors:
            if len(vectors) == INTEREST_ITEMS:
                continue  # older events of the items already in count below
            vector = _unit(stored)
            if vector is None:
                continue
            vectors[item_id] = vector
        age = max((now - occurred_at).total_seconds(), 0.0)
        pull = profiles.event_weight(kind, value, state) * 0.5 ** (age / half_life)
        weights[item_id] = weights.get(item_id, 0.0) + pull
    kept = [item_id for item_id in vectors if weights[item_id] > 0]
    if not kept:
        return []
    return interests(
        np.array([vectors[i] for i in kept]), np.array([weights[i] for i in kept]), limit
    )


def interests(
    vectors: np.ndarray, weights: np.ndarray, limit: int
) -> list[tuple[np.ndarray, float]]:
    """Groups of ``vectors`` (unit rows) as the unit direction of each group's weighted
    sum, strongest first, each with its share of the sums' lengths (how much of the
    weighted sum of all of them it makes): every vector starts as its own group, then the
    two most similar groups merge while their directions' cosine is at least
    ``INTEREST_SIMILARITY`` or there are more than ``limit`` groups. (Agglomerative
    clustering of at most ``INTEREST_ITEMS`` points is a few small matrix products; no
    library call needed.)"""
    sums = [vector * weight for vector, weight in zip(vectors, weights, strict=True)]
    while len(sums) > 1:
        means = np.array(sums)
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        similar = means @ means.T
        np.fill_diagonal(similar, -np.inf)
        a, b = np.unravel_index(int(np.argmax(similar)), similar.shape)
        if similar[a, b] < INTEREST_SIMILARITY and len(sums) <= limit:
            break
        a, b = min(a, b), max(a, b)
        sums[a] = sums[a] + sums.pop(b)
    lengths = [float(np.linalg.norm(group)) for group in sums]
    total = sum(lengths) or 1.0
    found = [(_unit(group), length / total) for group, length in zip(sums, lengths, strict=True)]
    found = [(vector, share) for vector, share in found if vector is not None]
    return sorted(found, key=lambda pair: -pair[1])


def _forgetting_profile(
    request: RecommendationRequest, space: EncoderSpace
) -> profiles.ProfileState:
    """The user's exact profile (as ``profiles.recompute``) from their log without the
    events on ``request.forget``'s items: never stored, never memoised."""
    rows = [
        row
        for row in profiles._log([request.user.pk], request.as_of)
        if row[2] not in request.forget
    ]
    vectors = profiles.item_vectors(space, {row[2] for row in rows if row[2] is not None})
    texts = profiles._text_vectors(space, ((row[1], row[4]) for row in rows))
    state = profiles.ProfileState(item_sum=None, text_sum=None, ref_time=None)
    for _, kind, item_id, value, text, occurred_at in rows:
        profiles.apply(
            state,
            kind=kind,
            occurred_at=occurred_at,
            value=value,
            item_vector=vectors.get(item_id),
            text_vector=texts.get(text) if kind in profiles.TEXT_KINDS and text else None,
        )
    return state


def _interest_searches(request: RecommendationRequest, query_vector) -> int:
    """How many of the user's interests this request searches
    (``RECOMMENDER_INTEREST_SEARCHES``; none for a session's or a forgetting request,
    whose profile is not the stored one)."""
    if request.positive or request.negative or request.forget:
        return 0
    if request.sources is not None and "history" not in request.sources:
        return 0
    return max(int(conf.INTEREST_SEARCHES), 0)


def _searches(
    request: RecommendationRequest,
    space: EncoderSpace | None,
    n: int,
    query_vector: np.ndarray | None,
    profile_vector: np.ndarray | None,
    recent: RecentItems,
) -> list[tuple[str, Search]]:
    """The request's nearest-neighbour searches, each with the source it feeds.

    The ``history`` source searches around each of the user's interests, its ``n`` rows
    shared by their weights (at least ``k`` each), at ``RECOMMENDER_RECENT_EF_SEARCH``: a
    vector near a few items needs a narrow search only. A user without interests (no
    recent item with a vector), a session's positives and free-text intent blended into the
    profile search the profile at the full breadth (``RECOMMENDER_HNSW_EF_SEARCH``), as a
    mean of several interests may lie between them. The recent-items vector is searched
    narrowly too."""
    if space is None:
        return []
    k = max(1, min(request.k, MAX_K))
    narrow = int(conf.RECENT_EF_SEARCH)
    searches: list[tuple[str, Search]] = []
    if query_vector is not None:
        searches.append(("query", Search(query_vector, n)))
    if profile_vector is not None and request.mode != "search":
        if request.positive and request.user is None:
            searches.append(("positive", Search(profile_vector, n)))
        elif recent.interests and query_vector is None:
            for vector, share in recent.interests:
                searches.append(("history", Search(vector, max(k, round(n * share)), narrow)))
        else:
            searches.append(("history", Search(profile_vector, n)))
    if recent.vector is not None:
        searches.append(("recent", Search(recent.vector, n, narrow)))
    wanted = request.sources
    return [(name, search) for name, search in searches if wanted is None or name in wanted]


def _nearest(space, searches, filters, exclusion, cosine):
    """Each search's source and nearest rows (run by ``helper_connection``, perhaps on
    the helper thread), in as few statements as their breadths allow."""
    if not searches:
        return []
    found = nearest_searches(
        [search for _, search in searches],
        space=space,
        filters=filters,
        history=exclusion,
        cosine=cosine,
    )
    return [(source, rows) for (source, _), rows in zip(searches, found, strict=True)]


def load_items(
    ids: list[int],
    space: EncoderSpace | None = None,
    *,
    in_memory: memory_search.Snapshot | None = None,
) -> tuple[dict[int, Item], dict[int, np.ndarray]]:
    """``Item.objects.in_bulk(ids)`` in one binary round trip, without the ORM's query
    building (a millisecond a request); with ``space``, the items' vectors in it too.

    With ``in_memory`` (a small catalogue's snapshot; not with ``space``), the rows it
    kept from earlier lists are not read again (their JSON took 1.2 ms of a list's CPU on
    the demo shop), and those read are kept: they change with the snapshot."""
    if in_memory is not None and space is None:
        kept = in_memory.items
        items = {item_id: kept[item_id] for item_id in ids if item_id in kept}
        missing = [item_id for item_id in ids if item_id not in items]
        if missing:
            read, _ = load_items(missing)
            items.update(read)
            if len(kept) < memory_search.ITEMS_KEPT:
                kept.update(read)
        return items, {}
    if not ids:
        return {}, {}
    fields = Item._meta.concrete_fields
    table = Item._meta.db_table
    columns = ", ".join(f"{table}.{connection.ops.quote_name(f.column)}" for f in fields)
    rows = vector_io.fetch(
        f"SELECT {columns}, v.embedding FROM {table} LEFT JOIN {ItemVector._meta.db_table} v "
        f"ON v.item_id = {table}.id AND v.space_id = %s WHERE {table}.id = ANY(%s::bigint[])",
        [space.pk if space is not None else None, list(ids)],
    )
    names = [f.attname for f in fields]
    items, vectors = {}, {}
    for *values, vector in rows:
        items[values[0]] = Item.from_db(connection.alias, names, values)
        if vector is not None:
            vectors[values[0]] = vector_io.decode(vector)
    return items, vectors


def _category_affinity(history: History) -> dict[str, float]:
    counts: dict[str, float] = {}
    for item_id, kind, _, _ in history.recent:
        category = history.categories.get(item_id, "")
        if kind != "dislike" and category:
            counts[category] = counts.get(category, 0.0) + 1.0
    total = sum(counts.values())
    return {category: value / total for category, value in counts.items()}


ANCHOR_LIMIT = 50


def _anchor_ids(history: History, request: RecommendationRequest) -> list[int]:
    """Items a reason may name: the most recent ones the user did not dislike, and the
    request's positives."""
    kinds = history.anchor_kinds()
    recent = dict.fromkeys(item_id for item_id, *_ in history.recent)
    liked = [item_id for item_id in recent if kinds.get(item_id) != "dislike"]
    return liked[:ANCHOR_LIMIT] + list(request.positive)


def anchors_of(
    chosen, anchor_ids, history, vectors
) -> tuple[dict[int, str], dict[int, tuple[int, float]]]:
    """The items the reasons may name → the user's strongest action on each, and for
    each chosen candidate the anchor closest to it by cosine and that cosine
    (``vectors``: id → vector). Whether the cosine is strong enough to name the anchor
    is the explanation's decision (``serving.evidence.min_similarity``)."""
    kinds = history.anchor_kinds()
    ids, rows = [], []
    for item_id in anchor_ids:
        if item_id in vectors and (unit := _unit(vectors[item_id])) is not None:
            ids.append(item_id)
            rows.append(unit)
    closest: dict[int, tuple[int, float]] = {}
    chosen_ids, chosen_rows = [], []
    for c in chosen:
        if c.item_id in vectors and (unit := _unit(vectors[c.item_id])) is not None:
            chosen_ids.append(c.item_id)
            chosen_rows.append(unit)
    if rows and chosen_rows:
        sims = np.stack(chosen_rows) @ np.stack(rows).T
        best = sims.argmax(axis=1)
        closest = {
            item_id: (ids[int(j)], float(sims[row, j]))
            for row, (item_id, j) in enumerate(zip(chosen_ids, best, strict=True))
        }
    needed = {anchor for anchor, _ in closest.values()}
    needed |= {c.anchor_item_id for c in chosen if c.anchor_item_id}
    return {i: kinds.get(i, "") for i in needed}, closest
