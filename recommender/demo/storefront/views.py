"""The demo storefront: thin views rendering pages that fill themselves from the JSON API.

Only what the first paint needs comes from the server (the category navigation, the item's
title for the tab); recommendations, item details and similar items are fetched by
``static/storefront/app.js`` from ``/api/v1/``, exactly as a client site would: with a
shopper token, never an API key. The token comes from this storefront's own backend
(``shopper_token``), as a real shop's backend would issue one for its logged-in customer;
being a demo with a shopper picker, this one issues a token for any shopper it lists, so it
is mounted only with DEBUG on or ``RECSITE_STOREFRONT=1`` (recsite/urls.py).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from django.db.models import Count, Max
from django.db.models.fields.json import KT
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from recommender import sharedcache, shopper_tokens
from recommender.demo.catalogue import PERSONAS
from recommender.ingest import limits
from recommender.models import EndUser, Item


@dataclass(frozen=True)
class Category:
    slug: str
    label_zh: str
    label_en: str
    items: int


_CATEGORIES_KEY = "recsite:storefront:categories"


def categories() -> list[Category]:
    """Categories of active items with their display names (``category_zh``/``category_en``
    attributes, as the demo catalogue sets them; the slug when an item has none). Cached
    for a minute: the query groups every active item, and every page view needs it."""
    cached = sharedcache.get(_CATEGORIES_KEY)
    if cached is not None:
        return [Category(**row) for row in cached]
    found = _categories()
    sharedcache.set(_CATEGORIES_KEY, [asdict(category) for category in found], 60)
    return found


def _categories() -> list[Category]:
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
    item = get_object_or_404(Item, external_id=external_id, is_active=True)
    return render(request, "storefront/item.html", {**_page_context(request), "item": item})


# How many shoppers the picker lists (the demo has a few dozen).
MAX_SHOPPERS = 500


def _shopper(user: EndUser) -> dict:
    return {"id": user.external_id, "attributes": user.attributes}


def _json_body(request) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@require_GET
def shoppers(request):
    """The shoppers the picker offers (this demo's stand-in for "who is logged in")."""
    users = EndUser.objects.order_by("external_id")[:MAX_SHOPPERS]
    return JsonResponse({"results": [_shopper(user) for user in users]})


@require_POST
def new_shopper(request):
    """Create a shopper named ``name`` (the picker's "new shopper")."""
    body = _json_body(request)
    name = body.get("name") if body else None
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        return JsonResponse({"name": ["a name of 1 to 100 characters is needed"]}, status=400)
    lang = body.get("lang") if body.get("lang") in ("zh", "en") else "zh"
    user = EndUser.objects.create(
        external_id=f"shopper-{secrets.token_hex(5)}",
        attributes={"name": name.strip(), "lang": lang, "source": "storefront"},
    )
    return JsonResponse(_shopper(user), status=201)


@require_POST
def shopper_token(request):
    """A shopper token for ``user`` (one of the listed shoppers): what the page's script
    sends to the API as ``Authorization: Shopper …``."""
    body = _json_body(request)
    user = body.get("user") if body else None
    try:
        limits.check_external_id(user if isinstance(user, str) else "")
    except ValueError as exc:
        return JsonResponse({"user": [str(exc)]}, status=400)
    if not EndUser.objects.filter(external_id=user).exists():
        return JsonResponse({"user": ["no such shopper"]}, status=404)
    return JsonResponse(
        {"token": shopper_tokens.issue(user), "expires_in": shopper_tokens.ttl_seconds()}
    )
