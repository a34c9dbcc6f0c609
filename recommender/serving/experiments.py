"""A/B experiments at serving time: which variant of a running experiment serves a user.

Assignment is a hash of the experiment and the user's id onto the variants' traffic
shares: the same user gets the same variant in every request and every process, with no
state to store; a request without a user (an anonymous session) gets the control, the
first variant. ``learning.experiment_results`` reads how the variants did.
"""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils import timezone

from recommender.models import EndUser, Experiment, Scenario, Variant
from recommender.serving import scenarios


def bucket(experiment_id: int, user_id: str, total: int) -> int:
    """A stable number in [0, total) for a user in an experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{user_id}".encode()).hexdigest()
    return int(digest[:15], 16) % total


def variant_for(experiment: Experiment, user: EndUser | None) -> Variant | None:
    """The variant ``user`` is assigned to (the control without a user)."""
    variants = list(experiment.variants.all())
    total = sum(variant.share for variant in variants)
    if not variants or total <= 0:
        return None
    if user is None:
        return variants[0]
    point = bucket(experiment.pk, user.external_id, total)
    for variant in variants:
        if point < variant.share:
            return variant
        point -= variant.share
    return variants[-1]


def assign(scenario: Scenario | None, user: EndUser | None) -> tuple[Scenario | None, str]:
    """The configuration to serve ``scenario`` with, and the variant's name ("" when no
    experiment runs on it)."""
    if scenario is None:
        return None, ""
    experiment = scenarios.remembered(
        ("experiment", scenario.pk),
        lambda: (
            Experiment.objects.filter(scenario=scenario, is_running=True)
            .prefetch_related("variants__configuration__promotions")
            .first()
        ),
    )
    variant = variant_for(experiment, user) if experiment is not None else None
    if variant is None:
        return scenario, ""
    return variant.configuration, variant.name


# The scenario fields a variant's configuration decides (what promoting it copies).
CONFIG_FIELDS = (
    "k",
    "sources",
    "blend_weights",
    "use_learned_ranker",
    "diversity",
    "category_cap",
    "exclude_seen",
    "demote_after",
    "demotion",
    "space",
    "filter",
    "boost",
)


def start(experiment: Experiment) -> None:
    """Start serving the experiment's variants on its scenario."""
    with transaction.atomic():  # one running experiment per scenario (IntegrityError)
        Experiment.objects.filter(pk=experiment.pk).update(
            is_running=True, started_at=timezone.now(), stopped_at=None
        )
    _changed()


def stop(experiment: Experiment) -> None:
    """Stop the experiment: the scenario serves with its own configuration again."""
    Experiment.objects.filter(pk=experiment.pk, is_running=True).update(
        is_running=False, stopped_at=timezone.now()
    )
    _changed()


def _changed() -> None:
    """Serving's kept scenarios and experiments are stale (``scenarios.changed``): now,
    and after commit, as another process may read the old rows in between."""
    scenarios.changed()
    transaction.on_commit(scenarios.changed)


def promote(experiment: Experiment, variant: Variant) -> Scenario:
    """Make ``variant``'s configuration the scenario's own, and stop the experiment."""
    scenario = experiment.scenario
    for name in CONFIG_FIELDS:
        setattr(scenario, name, getattr(variant.configuration, name))
    scenario.save(update_fields=[*CONFIG_FIELDS, "updated_at"])
    stop(experiment)
    return scenario
