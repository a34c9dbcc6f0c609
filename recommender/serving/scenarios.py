"""Scenarios: named placements whose defaults shape the lists they serve.

A request names one with ``scenario=`` (every list endpoint); without one the default
scenario applies, when an operator marked one, so calls that predate scenarios keep their
behaviour. A scenario's values fill what the request left unsaid (``k``, diversity,
category cap, exclude-seen) and decide what it cannot say (the candidate sources, the
scorer, the encoder space, promotions); a parameter the request gives explicitly wins.
Its filter and booster apply on top of the request's own.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection
from dataclasses import replace

from django.db.models import Prefetch

from recommender import sharedcache
from recommender.models import Promotion, Scenario, SpaceStatus
from recommender.serving import business, rules
from recommender.serving.pipeline import RecommendationRequest
from recommender.serving.ranking import FEATURES, BlendScorer

# The candidate sources a scenario may keep (candidates.candidate_pool's names).
SOURCES = (
    "history", "recent", "positive", "query", "keyword", "co_occurrence", "popular",
    "trending", "new", "ease", "als", "sasrec",
)  # fmt: skip


class UnknownScenario(LookupError):
    """A request named a scenario that does not exist."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no scenario named {name!r}")


# Every list asks for its scenario and the experiment running on it (two to four ORM
# queries, ~1.5 ms). They change only when an operator saves one, so each process keeps
# what it read while a version in the shared cache, bumped by every save and delete
# (``changed``: signals, experiments.start/stop), is the one it read under; the
# version is read on every request (one cache round trip), so a change made in any
# process counts from the next request everywhere. With the cache down nothing is kept.
_VERSION_KEY = "recsite:scenarios-version"
_memo: dict = {"version": None, "values": {}}
sharedcache.read_ahead_keys(lambda: [_VERSION_KEY])


def changed(**_kwargs) -> None:
    """A scenario, promotion, experiment or variant changed: nothing read before counts
    (a signal receiver too; call it after commit as well, see ``signals``)."""
    global _memo
    _memo = {"version": None, "values": {}}
    sharedcache.set(_VERSION_KEY, uuid.uuid4().hex, None)


def remembered(key: tuple, compute: Callable[[], object], *, keep=lambda value: True):
    """``compute()``, kept in this process under ``key`` while the scenarios' version
    holds; a value ``keep`` refuses is not kept (a name that matched nothing: clients may
    send any name, and kept misses would grow without bound)."""
    global _memo
    version = sharedcache.get(_VERSION_KEY, unavailable=sharedcache.UNAVAILABLE)
    if version is None:
        sharedcache.add(_VERSION_KEY, uuid.uuid4().hex, None)
        version = sharedcache.get(_VERSION_KEY, unavailable=sharedcache.UNAVAILABLE)
    if version is None or version is sharedcache.UNAVAILABLE:
        return compute()
    memo = _memo
    if memo["version"] != version:
        memo = _memo = {"version": version, "values": {}}
    values = memo["values"]
    if key in values:
        return values[key]
    value = compute()
    if keep(value):
        values[key] = value
    return value


def resolve(name: str | None) -> Scenario | None:
    """The scenario a request names, else the default one (None when there is none).
    The instance may be shared with other requests: read it, never change it."""
    if name:
        scenario = remembered(
            ("named", name),
            lambda: with_promotions(Scenario.objects.filter(name=name)).first(),
            keep=lambda found: found is not None,
        )
        if scenario is None:
            raise UnknownScenario(name)
        return scenario
    return remembered(
        ("default",), lambda: with_promotions(Scenario.objects.filter(is_default=True)).first()
    )


def with_promotions(scenarios):
    """``scenarios`` with their active promotions fetched along."""
    return scenarios.prefetch_related(
        Prefetch("promotions", queryset=Promotion.objects.filter(is_active=True))
    )


def problems(scenario: Scenario) -> dict[str, str]:
    """Field name → why the scenario's value cannot serve (empty when all is well)."""
    found = {}
    sources = scenario.sources or []
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        found["sources"] = "a list of source names"
    elif unknown := sorted(set(sources) - set(SOURCES)):
        found["sources"] = f"unknown sources {unknown}; choose from {', '.join(SOURCES)}"
    weights = scenario.blend_weights or {}
    if not isinstance(weights, dict):
        found["blend_weights"] = "an object of feature name → weight"
    else:
        unknown = sorted(set(weights) - set(FEATURES))
        bad = [k for k, v in weights.items() if not _finite_number(v) or abs(v) > 1000]
        if unknown:
            found["blend_weights"] = (
                f"unknown features {unknown}; choose from {', '.join(FEATURES)}"
            )
        elif bad:
            found["blend_weights"] = f"weights must be numbers within ±1000: {bad}"
    if scenario.diversity is not None and not 0.0 <= scenario.diversity <= 1.0:
        found["diversity"] = "between 0 and 1"
    if scenario.k is not None and not 1 <= scenario.k <= 200:
        found["k"] = "between 1 and 200"
    if scenario.demotion is not None and not 0.0 <= scenario.demotion <= 1.0:
        found["demotion"] = "between 0 and 1"
    if scenario.category_cap is not None and not 1 <= scenario.category_cap <= 200:
        found["category_cap"] = "between 1 and 200"
    if scenario.space is not None and scenario.space.status == SpaceStatus.RETIRED:
        found["space"] = "a retired space cannot serve; choose a ready one or none"
    for name, kind in (("filter", "filter"), ("boost", "boost")):
        if reason := rule_problem(getattr(scenario, name), kind):
            found[name] = reason
    return found


def rule_problem(text: str, kind: str = "filter") -> str | None:
    """Why ``text`` is no valid rule expression of ``kind`` (None: it is, or it is empty).
    References to the user, the context and ``$parameters`` are checked when a request
    binds them."""
    if not text or not text.strip():
        return None
    try:
        business.parse(text, kind)
    except rules.RuleError as exc:
        return str(exc)
    return None


def promotion_problems(promotion: Promotion) -> dict[str, str]:
    """Field name → why a promotion cannot serve."""
    found = {}
    if not promotion.filter or not promotion.filter.strip():
        found["filter"] = "a promotion needs a filter"
    elif reason := rule_problem(promotion.filter):
        found["filter"] = reason
    if not 0.0 < promotion.share <= 1.0:
        found["share"] = "more than 0, at most 1"
    return found


def _finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def apply(
    scenario: Scenario | None,
    request: RecommendationRequest,
    explicit: Collection[str] = (),
    *,
    max_k: int | None = None,
) -> RecommendationRequest:
    """``request`` with the scenario's defaults where the caller gave none (``explicit``:
    the parameters the caller did give), its sources and its scorer. ``max_k`` caps a
    scenario's ``k`` (lists with explanations are capped lower than bare ones)."""
    if scenario is None:
        return request
    changes: dict = {}
    if scenario.k is not None and "k" not in explicit:
        changes["k"] = min(scenario.k, max_k) if max_k else scenario.k
    for name in ("diversity", "category_cap", "exclude_seen"):
        value = getattr(scenario, name)
        if value is not None and name not in explicit:
            changes[name] = value
    if scenario.sources:
        changes["sources"] = frozenset(scenario.sources)
    if scenario.demote_after:
        changes["demote_after"] = scenario.demote_after
        changes["demotion"] = scenario.demotion
    if scenario.filter and scenario.filter.strip():
        changes["rules"] = (*request.rules, scenario.filter)
    if scenario.boost and scenario.boost.strip():
        changes["boosts"] = (*request.boosts, scenario.boost)
    if scenario.space_id is not None:
        changes["space_id"] = scenario.space_id
    promotions = tuple(
        business.PromotionSlot(p.name, p.filter, p.share)
        for p in scenario.promotions.all()
        if p.is_active
    )
    if promotions:
        changes["promotions"] = promotions
    if scenario.blend_weights:
        changes["scorer"] = BlendScorer(dict(scenario.blend_weights))
    elif not scenario.use_learned_ranker:
        changes["scorer"] = BlendScorer()
    return replace(request, **changes)
