"""Everything stored about one end user: export it, or forget it."""

from __future__ import annotations

from django.db import transaction

from recommender.models import Behaviour, EndUser, UserProfile


def export_user(user: EndUser) -> dict:
    """All rows that name the user, as plain data."""
    return {
        "user": {
            "id": user.external_id,
            "attributes": user.attributes,
            "created_at": user.created_at.isoformat(),
        },
        "behaviours": [
            {
                "event_id": b.event_id,
                "item": b.item.external_id if b.item else None,
                "kind": b.kind,
                "value": b.value,
                "text": b.text,
                "context": b.context,
                "occurred_at": b.occurred_at.isoformat(),
            }
            for b in Behaviour.objects.filter(user=user).select_related("item")
        ],
        "profiles": [
            {"space": p.space.name, "events": p.events, "updated_at": p.updated_at.isoformat()}
            for p in UserProfile.objects.filter(user=user).select_related("space")
        ],
    }


@transaction.atomic
def forget_user(user: EndUser) -> dict[str, int]:
    """Delete the user and every row that names them; returns counts per model."""
    _, per_model = user.delete()  # behaviours and profiles cascade
    return {label.split(".")[-1]: count for label, count in per_model.items()}
