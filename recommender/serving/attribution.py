"""Attribution: which served list an event came from, and with it the scenario, variant,
position and source that earned it.

An event that names its list (``recommendation_id``, sent by the client with the click,
the cart or the purchase) is attributed to it. A conversion that names none (a purchase
at checkout, say) is attributed to the latest event of the same user on the same item
that did name a list, within ``RECOMMENDER_ATTRIBUTION_WINDOW_SECONDS`` before it. Only
engagements carry that forward, not impressions: a list earns a conversion it was clicked
in, not one it merely showed (click-through, not view-through).

Attribution is read at query time, joining events to the served-list log, so an event
that arrives before its list is flushed is attributed as soon as the list is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from recommender.behaviour import SIGNALLESS
from recommender.conf import conf
from recommender.models import Behaviour, ServedList

# Kinds that may be attributed through the window without naming their list.
CONVERSIONS = ("cart", "purchase")


@dataclass(frozen=True)
class Attribution:
    recommendation_id: str
    endpoint: str
    scenario: str
    variant: str
    position: int | None  # 1-based, in the list
    sources: tuple[str, ...]  # the candidate sources that put the item in the list
    via: str  # "id": the event named its list; "window": an earlier event of the user did


def window() -> timedelta:
    return timedelta(seconds=float(conf.ATTRIBUTION_WINDOW_SECONDS))


def attribute(event: Behaviour) -> Attribution | None:
    """The served list ``event`` is attributed to, or None."""
    recommendation_id, position, via = event.recommendation_id, event.position, "id"
    if recommendation_id is None:
        if event.kind not in CONVERSIONS or event.item_id is None:
            return None
        earlier = (
            Behaviour.objects.filter(
                user_id=event.user_id,
                item_id=event.item_id,
                recommendation_id__isnull=False,
                occurred_at__lte=event.occurred_at,
                occurred_at__gte=event.occurred_at - window(),
            )
            .exclude(pk=event.pk)
            .exclude(kind__in=SIGNALLESS)
            .order_by("-occurred_at", "-pk")
            .first()
        )
        if earlier is None:
            return None
        recommendation_id, position, via = earlier.recommendation_id, earlier.position, "window"
    served = ServedList.objects.filter(pk=recommendation_id).first()
    if served is None:  # not flushed yet, or an id this site never served
        return None
    entry = next((e for e in served.items if e.get("item") == event.item_id), None)
    if entry is not None and position is None:
        position = entry.get("position")
    return Attribution(
        recommendation_id=served.id.hex,
        endpoint=served.endpoint,
        scenario=served.scenario,
        variant=served.variant,
        position=position,
        sources=tuple(entry.get("sources", ())) if entry else (),
        via=via,
    )
