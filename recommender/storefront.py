"""The demo storefront: thin views rendering pages that fill themselves from the JSON API.

Only what the first paint needs comes from the server (the category navigation, the item's
title for the tab); recommendations, shoppers, item details and similar items are fetched
by ``static/storefront/app.js`` from ``/api/v1/``, exactly as a client site would.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Max
from django.db.models.fields.json import KT
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from recommender.demo.catalogue import PERSONAS
from recommender.models import Item


@dataclass(frozen=True)
class Category:
    slug: str
    label_zh: str
    label_en: str
    items: int


def categories() -> list[Category]:
    """Categories of active items with their display names (``category_zh``/``category_en``
    attributes, as the demo catalogue sets them; the slug when an item has none)."""
    rows = (
        Item.objects.filter(is_active=True)
        .exclude(category="")
        .values("category")
        .annotate(
            n=Count("pk"),
            zh=Max(KT("attributes__category_zh")),
            en=Max(KT("attributes__category_en")),
        )
        .order_by("category")
    )
    return [
        Category(
            row["category"], row["zh"] or row["category"], row["en"] or row["category"], row["n"]
        )
        for row in rows
    ]


def persona_labels() -> dict[str, dict[str, str]]:
    """Display names of the demo personas, by slug and language (users store the slug)."""
    return {persona.slug: {"zh": persona.name[0], "en": persona.name[1]} for persona in PERSONAS}


def _page_context(request) -> dict:
    return {
        "categories": categories(),
        "current_category": request.GET.get("category", ""),
        "personas": persona_labels(),
    }


@ensure_csrf_cookie
def shop(request):
    """The shop front: shopper picker, intent box, diversity, the recommendation row."""
    return render(request, "storefront/shop.html", _page_context(request))


@ensure_csrf_cookie
def item_page(request, external_id: str):
    """One item with its details and similar items (404 for an unknown id)."""
    item = get_object_or_404(Item, external_id=external_id)
    return render(request, "storefront/item.html", {**_page_context(request), "item": item})
