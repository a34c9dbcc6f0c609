"""Replay of logged lists: how a scorer would have ordered the lists users actually saw.

For each served list in the log that a click (or cart or purchase) named, the user's
candidate pool is rebuilt as of the moment the list was served (the same features
serving computed then, from the history before it), the list's own items are scored by
the scorer under test, and the clicked items' ranks in that order are compared with the
positions they were shown at. The mean reciprocal rank of the clicked items, logged and
replayed, says whether the scorer would have put what shoppers chose higher. Items the
pool no longer finds keep their logged relative order behind the scored ones.

This is an off-policy estimate in its simplest form: it reorders only what was shown,
so it cannot credit a scorer for items the logged list never contained.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recommender.models import Behaviour, ServedList
from recommender.serving.candidates import candidate_pool
from recommender.serving.pipeline import RecommendationRequest
from recommender.serving.ranking import Scorer, score

ENGAGEMENTS = ("click", "cart", "purchase")


@dataclass
class ReplayReport:
    lists: int  # lists replayed (with a user and an engagement naming them)
    engagements: int  # engaged items in them
    mrr_logged: float  # mean reciprocal rank of the engaged items as they were shown
    mrr_replayed: float  # the same, with the list reordered by the scorer
    found: float  # share of shown items the rebuilt pool still holds


def replay(scorer: Scorer, *, since: datetime | None = None, limit: int = 1000) -> ReplayReport:
    """Replay up to ``limit`` engaged lists (served since ``since``) under ``scorer``."""
    engaged: dict = {}
    rows = Behaviour.objects.filter(recommendation_id__isnull=False, kind__in=ENGAGEMENTS)
    for rid, item_id in rows.values_list("recommendation_id", "item_id"):
        engaged.setdefault(rid, set()).add(item_id)
    lists = ServedList.objects.filter(pk__in=list(engaged), user__isnull=False)
    if since is not None:
        lists = lists.filter(served_at__gte=since)
    logged_rr: list[float] = []
    replayed_rr: list[float] = []
    shown_total = found_total = replayed = 0
    for served in lists.select_related("user").order_by("-served_at")[:limit]:
        shown = [entry["item"] for entry in sorted(served.items, key=lambda e: e["position"])]
        targets = engaged[served.pk] & set(shown)
        if not targets:
            continue
        pool = candidate_pool(
            RecommendationRequest(
                user=served.user, k=len(shown), as_of=served.served_at, exclude_seen=False,
                explain=False,
                # The context the list was served in (device, page): the ranker's features.
                context={k: v for k, v in (served.context or {}).items() if k != "continues"},
            )
        ).candidates  # fmt: skip
        by_item = {candidate.item_id: candidate for candidate in pool if candidate.item_id in shown}
        score(list(by_item.values()), scorer)
        ordered = sorted(by_item, key=lambda item: -by_item[item].score)
        ordered += [item for item in shown if item not in by_item]  # unknown ones last
        for target in targets:
            logged_rr.append(1.0 / (shown.index(target) + 1))
            replayed_rr.append(1.0 / (ordered.index(target) + 1))
        shown_total += len(shown)
        found_total += len(by_item)
        replayed += 1
    count = len(logged_rr)
    return ReplayReport(
        lists=replayed,
        engagements=count,
        mrr_logged=sum(logged_rr) / count if count else 0.0,
        mrr_replayed=sum(replayed_rr) / count if count else 0.0,
        found=found_total / shown_total if shown_total else 0.0,
    )
