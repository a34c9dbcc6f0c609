"""How the variants of an experiment did: per variant the lists served, impressions,
clicks, purchases and revenue, click-through and conversion rates with 95 % Wilson
intervals, revenue per thousand impressions; each variant's CTR against the control's
(a two-proportion z-test), and a sample-ratio-mismatch check (a chi-square test of the
lists served against the traffic shares: a small p-value means the assignment, not the
variants, may explain the difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import connection
from scipy import stats

from recommender.learning.online_metrics import Rate
from recommender.models import Behaviour, Experiment, Item, ServedList

# Below this p-value the lists served do not match the shares (a broken assignment).
SRM_ALPHA = 0.001


@dataclass
class VariantResult:
    name: str
    share: int
    lists: int
    impressions: int
    clicks: int
    purchases: int
    revenue: float
    ctr: Rate
    conversion: Rate
    revenue_per_mille: float
    p_value_vs_control: float | None  # None for the control itself


@dataclass
class ExperimentResults:
    experiment: str
    scenario: str
    variants: list[VariantResult]
    srm_p_value: float | None
    sample_ratio_mismatch: bool


def two_proportions_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value that two proportions differ (pooled z-test); None without data."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def results(experiment: Experiment) -> ExperimentResults:
    """The experiment's figures from its start (to its stop, if stopped)."""
    scenario = experiment.scenario.name
    window = ["s.scenario = %s"]
    params: list = [scenario]
    if experiment.started_at:
        window.append("s.served_at >= %s")
        params.append(experiment.started_at)
    if experiment.stopped_at:
        window.append("s.served_at <= %s")
        params.append(experiment.stopped_at)
    where = " AND ".join(window)
    served, events, items = (
        ServedList._meta.db_table,
        Behaviour._meta.db_table,
        Item._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.variant, count(*) FROM {served} s WHERE {where} GROUP BY 1", params
        )
        lists = dict(cursor.fetchall())
        # Revenue: purchases that name their list, at the item's price when it has one.
        cursor.execute(
            f"SELECT s.variant, b.kind, count(*), coalesce(sum(CASE WHEN b.kind = 'purchase' "
            f"AND jsonb_typeof(i.attributes -> 'price') = 'number' "
            f"THEN (i.attributes ->> 'price')::float8 END), 0) "
            f"FROM {events} b JOIN {served} s ON s.id = b.recommendation_id "
            f"JOIN {items} i ON i.id = b.item_id "
            f"WHERE {where} AND b.kind IN ('impression', 'click', 'purchase') GROUP BY 1, 2",
            params,
        )
        counted = cursor.fetchall()
    counts: dict[str, dict[str, float]] = {}
    for variant, kind, n, revenue in counted:
        counts.setdefault(variant, {})[kind] = n
        if kind == "purchase":
            counts[variant]["revenue"] = float(revenue)
    rows = []
    variants = list(experiment.variants.all())
    for variant in variants:
        c = counts.get(variant.name, {})
        impressions, clicks = int(c.get("impression", 0)), int(c.get("click", 0))
        purchases, revenue = int(c.get("purchase", 0)), float(c.get("revenue", 0.0))
        rows.append(
            VariantResult(
                name=variant.name,
                share=variant.share,
                lists=int(lists.get(variant.name, 0)),
                impressions=impressions,
                clicks=clicks,
                purchases=purchases,
                revenue=revenue,
                ctr=Rate.of(min(clicks, impressions), impressions),
                conversion=Rate.of(min(purchases, clicks), clicks),
                revenue_per_mille=1000 * revenue / impressions if impressions else 0.0,
                p_value_vs_control=None,
            )
        )
    if rows:
        control = rows[0]
        for row in rows[1:]:
            row.p_value_vs_control = two_proportions_p(
                row.clicks, row.impressions, control.clicks, control.impressions
            )
    total_lists = sum(row.lists for row in rows)
    total_share = sum(row.share for row in rows)
    srm = None
    if len(rows) > 1 and total_lists > 0 and total_share > 0:
        expected = [total_lists * row.share / total_share for row in rows]
        srm = float(stats.chisquare([row.lists for row in rows], expected).pvalue)
    return ExperimentResults(
        experiment=experiment.name,
        scenario=scenario,
        variants=rows,
        srm_p_value=srm,
        sample_ratio_mismatch=srm is not None and srm < SRM_ALPHA,
    )


# A variant wins when its CTR is above the control's with this two-sided p-value or less.
WIN_ALPHA = 0.05


def winner(experiment: Experiment):
    """The variant with the best CTR among those significantly above the control, or None."""
    found = results(experiment)
    if not found.variants or found.sample_ratio_mismatch:
        return None
    control = found.variants[0]
    better = [
        v
        for v in found.variants[1:]
        if v.p_value_vs_control is not None
        and v.p_value_vs_control <= WIN_ALPHA
        and v.ctr.value > control.ctr.value
    ]
    if not better:
        return None
    best = max(better, key=lambda v: v.ctr.value)
    return experiment.variants.get(name=best.name)
