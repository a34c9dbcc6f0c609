"""Scenarios: named placements whose defaults shape the lists they serve.

A request names one with ``scenario=`` (every list endpoint); without one the default
scenario applies, when an operator marked one, so calls that predate scenarios keep their
behaviour. A scenario's values fill what the request left unsaid (``k``, diversity,
category cap, exclude-seen) and decide what it cannot say (the candidate sources, the
scorer); a parameter the request gives explicitly wins.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace

from recommender.models import Scenario
from recommender.serving.pipeline import RecommendationRequest
from recommender.serving.ranking import FEATURES, BlendScorer

# The candidate sources a scenario may keep (candidates.candidate_pool's names).
SOURCES = (
    "history", "positive", "query", "keyword", "co_occurrence", "popular", "trending", "new",
)  # fmt: skip


class UnknownScenario(LookupError):
    """A request named a scenario that does not exist."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no scenario named {name!r}")


def resolve(name: str | None) -> Scenario | None:
    """The scenario a request names, else the default one (None when there is none)."""
    if name:
        scenario = Scenario.objects.filter(name=name).first()
        if scenario is None:
            raise UnknownScenario(name)
        return scenario
    return Scenario.objects.filter(is_default=True).first()


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
    if scenario.blend_weights:
        changes["scorer"] = BlendScorer(dict(scenario.blend_weights))
    elif not scenario.use_learned_ranker:
        changes["scorer"] = BlendScorer()
    return replace(request, **changes)
