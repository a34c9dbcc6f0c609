"""Load the generated demo shop through the same importers a real site uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recommender.demo.catalogue import DemoData, generate
from recommender.ingest.behaviours import import_behaviours
from recommender.ingest.fields import ImportReport, Row
from recommender.ingest.items import import_items
from recommender.models import EndUser


@dataclass
class DemoLoadReport:
    items: ImportReport
    users_created: int
    behaviours: ImportReport


def _rows(records: list[dict], label: str):
    for number, record in enumerate(records, start=1):
        yield Row(f"{label} record {number}", record)


def load(seed: int = 20261125, now: datetime | None = None) -> DemoLoadReport:
    """Upsert the demo items and users and add the behaviours not stored yet (idempotent)."""
    data: DemoData = generate(seed=seed, now=now)
    items = import_items(_rows(data.items, "demo items"))
    existing = set(
        EndUser.objects.filter(
            external_id__in=[user["external_id"] for user in data.users]
        ).values_list("external_id", flat=True)
    )
    EndUser.objects.bulk_create(
        [EndUser(external_id=u["external_id"], attributes=u["attributes"]) for u in data.users],
        update_conflicts=True,
        unique_fields=["external_id"],
        update_fields=["attributes"],
    )
    behaviours = import_behaviours(_rows(data.behaviours, "demo behaviours"), skip_existing=True)
    return DemoLoadReport(
        items=items, users_created=len(data.users) - len(existing), behaviours=behaviours
    )
