"""Simulated shoppers for the online loop: they browse the API, see lists, report what was
on screen, and click and buy with a known probability, so an experiment's answer is known
in advance and the loop (served lists, impressions, attribution, results) can be checked.

Each shopper gets a hidden taste from a demo persona (its category weights, its tags and
its price range) and a short history drawn from that taste (a few views), which the
personalised pipeline can learn from and a popularity list cannot. A click on an item at
position ``p`` happens with probability ``BASE_CLICK * taste(item) / (1 + 0.3 * (p - 1))``
(a position bias), a purchase after a click with ``BUY_AFTER_CLICK * taste(item)``.
Used by ``benchmarks/simulate.py`` and by the tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.test import Client

from recommender.demo.catalogue import PERSONAS, Persona
from recommender.models import EndUser, Item

BASE_CLICK = 0.35
BUY_AFTER_CLICK = 0.25
HISTORY_VIEWS = 4
API = "/api/v1"


@dataclass
class Shopper:
    user: str
    persona: Persona


def taste(persona: Persona, item: Item) -> float:
    """How much a shopper of ``persona`` wants ``item``, between 0 and 1."""
    weights = persona.categories
    share = weights.get(item.category, 0.0) / max(weights.values())
    price = (item.attributes or {}).get("price")
    low, high = persona.price
    fits = 1.0 if isinstance(price, int | float) and low <= price <= high else 0.4
    text = f"{item.title} {' '.join(map(str, item.tags or []))}"
    tagged = 1.0 if any(tag in text for tag in persona.tags) else 0.6
    return max(0.02, share) * fits * tagged


class Simulator:
    """Shoppers browsing one placement (``scenario``) through the API in this process."""

    def __init__(self, scenario: str, *, seed: int = 0, k: int = 8):
        self.scenario = scenario
        self.k = k
        self.rng = random.Random(seed)
        self.client = Client()
        self.items = {item.external_id: item for item in Item.objects.filter(is_active=True)}
        self.by_category: dict[str, list[Item]] = {}
        for item in self.items.values():
            self.by_category.setdefault(item.category, []).append(item)

    def _post(self, path: str, body: dict) -> dict:
        response = self.client.post(f"{API}{path}", body, content_type="application/json")
        if response.status_code not in (200, 201):
            raise RuntimeError(
                f"POST {path} answered {response.status_code}: {response.content[:300]!r}"
            )
        return response.json()

    def new_shopper(self, name: str) -> Shopper:
        """A shopper with a hidden persona and a few views drawn from its taste."""
        persona = self.rng.choice(PERSONAS)
        EndUser.objects.get_or_create(
            external_id=name, defaults={"attributes": {"simulated": True}}
        )
        categories = [c for c in persona.categories if c in self.by_category]
        weights = [persona.categories[c] for c in categories]
        for _ in range(HISTORY_VIEWS):
            category = self.rng.choices(categories, weights)[0]
            item = self.rng.choice(self.by_category[category])
            self._post("/behaviours", {"user": name, "item": item.external_id, "kind": "view"})
        return Shopper(name, persona)

    def session(self, shopper: Shopper) -> dict:
        """One visit: a list, its impressions, clicks and purchases; what happened."""
        response = self.client.get(
            f"{API}/users/{shopper.user}/recommendations",
            {"scenario": self.scenario, "k": self.k, "explain": "false"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"recommendations answered {response.status_code}")
        listed = response.json()
        rid = listed["recommendation_id"]
        shown = [entry["id"] for entry in listed["items"]]
        events = [
            {"user": shopper.user, "item": item, "kind": "impression",
             "recommendation_id": rid, "position": n}
            for n, item in enumerate(shown, start=1)
        ]  # fmt: skip
        clicks = purchases = 0
        for n, item in enumerate(shown, start=1):
            liking = taste(shopper.persona, self.items[item])
            if self.rng.random() < BASE_CLICK * liking / (1 + 0.3 * (n - 1)):
                clicks += 1
                events.append({"user": shopper.user, "item": item, "kind": "click",
                               "recommendation_id": rid, "position": n})  # fmt: skip
                if self.rng.random() < BUY_AFTER_CLICK * liking:
                    purchases += 1
                    events.append({"user": shopper.user, "item": item, "kind": "purchase",
                                   "recommendation_id": rid, "position": n})  # fmt: skip
        if events:
            self._post("/behaviours/batch", {"events": events})
        return {"shown": len(shown), "clicks": clicks, "purchases": purchases}

    def run(self, shoppers: int, sessions_per_shopper: int = 1, prefix: str = "sim") -> dict:
        """Many shoppers, each visiting ``sessions_per_shopper`` times; totals."""
        totals = {"sessions": 0, "shown": 0, "clicks": 0, "purchases": 0}
        for n in range(shoppers):
            shopper = self.new_shopper(f"{prefix}-{n}")
            for _ in range(sessions_per_shopper):
                outcome = self.session(shopper)
                totals["sessions"] += 1
                for key in ("shown", "clicks", "purchases"):
                    totals[key] += outcome[key]
        return totals
