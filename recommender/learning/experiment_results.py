"""How the variants of an experiment did: per variant the shoppers, lists served,
impressions, clicks, purchases and revenue, click-through and conversion rates with 95 %
Wilson intervals, revenue per thousand impressions; each variant's CTR against the
control's, and a sample-ratio-mismatch check.

Shoppers, not impressions, are what an experiment randomises (assignment hashes the
user), and one shopper's impressions share a taste: a test that counts impressions as
independent finds "significant" differences between identical variants far more often
than its alpha (15 % of 40 A/A runs in benchmarks/simulate.py at 0.05). So the CTR test
is a z-test of the ratio clicks / impressions with its variance by the delta method over
shoppers (Deng, Knoblich, Lu: "Applying the Delta Method in Metric Analytics", KDD
2018), and the sample-ratio check counts shoppers (a list without a user is its own unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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
    shoppers: int = 0  # distinct users served (a list without a user counts as one)


@dataclass
class ExperimentResults:
    experiment: str
    scenario: str
    variants: list[VariantResult]
    srm_p_value: float | None
    sample_ratio_mismatch: bool


def ratio_variance(numerators: np.ndarray, denominators: np.ndarray) -> float:
    """The delta-method variance of sum(numerators) / sum(denominators) over independent
    units (each unit's pair of sums); NaN with fewer than two units or no denominator."""
    n = len(numerators)
    if n < 2:
        return math.nan
    mean_x, mean_y = float(numerators.mean()), float(denominators.mean())
    if mean_y <= 0:
        return math.nan
    var_x = float(numerators.var(ddof=1))
    var_y = float(denominators.var(ddof=1))
    cov = float(np.cov(numerators, denominators, ddof=1)[0, 1])
    ratio = mean_x / mean_y
    return (var_x - 2 * ratio * cov + ratio * ratio * var_y) / (n * mean_y * mean_y)


def ratio_difference_p(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]):
    """Two-sided p-value that two ratio metrics differ (each a pair of per-unit arrays:
    clicks, impressions), by the delta method; None without two units on each side."""
    var_a, var_b = ratio_variance(*a), ratio_variance(*b)
    if math.isnan(var_a) or math.isnan(var_b):
        return None
    difference = a[0].sum() / a[1].sum() - b[0].sum() / b[1].sum()
    se = math.sqrt(max(var_a + var_b, 0.0))
    if se == 0:
        return 1.0 if difference == 0 else 0.0
    return float(2 * stats.norm.sf(abs(difference) / se))


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
        # Per shopper (a list without a user is its own unit): the CTR test's units, and
        # the sample-ratio check's counts.
        cursor.execute(
            f"SELECT s.variant, coalesce(s.user_id::text, s.id::text), "
            f"count(b.id) FILTER (WHERE b.kind = 'impression'), "
            f"count(b.id) FILTER (WHERE b.kind = 'click') "
            f"FROM {served} s LEFT JOIN {events} b ON b.recommendation_id = s.id "
            f"AND b.kind IN ('impression', 'click') WHERE {where} GROUP BY 1, 2",
            params,
        )
        units: dict[str, list[tuple[int, int]]] = {}
        for variant, _, impressions, clicks in cursor.fetchall():
            units.setdefault(variant, []).append((clicks, impressions))
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
    for row in rows:
        row.shoppers = len(units.get(row.name, ()))
    if rows:
        control = _unit_arrays(units.get(rows[0].name, []))
        for row in rows[1:]:
            row.p_value_vs_control = ratio_difference_p(
                _unit_arrays(units.get(row.name, [])), control
            )
    total_units = sum(row.shoppers for row in rows)
    total_share = sum(row.share for row in rows)
    srm = None
    if len(rows) > 1 and total_units > 0 and total_share > 0:
        expected = [total_units * row.share / total_share for row in rows]
        srm = float(stats.chisquare([row.shoppers for row in rows], expected).pvalue)
    return ExperimentResults(
        experiment=experiment.name,
        scenario=scenario,
        variants=rows,
        srm_p_value=srm,
        sample_ratio_mismatch=srm is not None and srm < SRM_ALPHA,
    )


# A variant wins when its CTR is above the control's with this two-sided p-value or less.
WIN_ALPHA = 0.05


def _unit_arrays(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    clicks = np.array([c for c, _ in pairs], dtype=np.float64)
    impressions = np.array([i for _, i in pairs], dtype=np.float64)
    return clicks, impressions


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
