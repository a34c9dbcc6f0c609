"""A list's blurbs and reasons read their items' segmentations from the shared cache in
one round trip (``explain.prefetch``), not one or two per item, and read the same."""

import uuid

import pytest
from django.core.cache import cache

from recommender.serving import explain, segmentation
from recommender.serving.explain import ItemText, Reason


class CountingCache:
    """The shared cache, counting the reads ``segmentation`` makes."""

    def __init__(self):
        self.calls: list[str] = []

    def get(self, key, default=None):
        self.calls.append("get")
        return cache.get(key, default)

    def get_many(self, keys):
        self.calls.append("get_many")
        return cache.get_many(keys)

    def set(self, key, value, timeout=None):
        self.calls.append("set")
        return cache.set(key, value, timeout)


def items() -> list[ItemText]:
    marker = uuid.uuid4().hex  # texts no process has segmented yet
    return [
        ItemText(
            title=f"羽绒服 {marker} {n}",
            description=f"白鸭绒填充，防风面料，款式{n}。",
            attributes={"brand": "北极", "price": 300 + n},
            translations={"en": {"title": f"Down jacket {n}", "description": "Duck down."}},
        )
        for n in range(8)
    ] + [ItemText(title=f"Down jacket {marker}", description="Warm, light and windproof.")]


def blurbs_and_reasons(listed, lang, query):
    reason = Reason("popular", "热门商品")
    return [
        (explain.blurb(item, reason, lang), explain.shared_keywords(query, item)) for item in listed
    ]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_one_round_trip_for_a_lists_segmentations(monkeypatch, lang):
    listed, query = items(), "羽绒服 jacket"
    first = blurbs_and_reasons(listed, lang, query)  # segmented here, kept in both caches
    # A process that has not seen these items: nothing local, everything shared.
    segmentation._local.clear()
    explain._features.cache_clear()
    counting = CountingCache()
    monkeypatch.setattr(segmentation, "cache", counting)
    explain.prefetch(listed, lang, query)
    assert counting.calls == ["get_many"]
    monkeypatch.setattr(segmentation, "segment", lambda text: pytest.fail("segmented again"))
    monkeypatch.setattr(segmentation, "extract_keywords", lambda *a: pytest.fail("again"))
    assert blurbs_and_reasons(listed, lang, query) == first
    assert counting.calls == ["get_many"]
    # What this process holds already is not asked for again.
    explain.prefetch(listed, lang, query)
    assert counting.calls == ["get_many"]


def test_prefetch_fails_open_when_the_shared_cache_is_down(settings, monkeypatch):
    monkeypatch.setattr(segmentation, "_shared_retry_at", 0.0)  # restored afterwards
    settings.CACHES = {
        "default": {
            "BACKEND": "recsite.cache.ReusedClientRedisCache",
            "LOCATION": "unix:///nonexistent/redis.sock",
        }
    }
    listed = items()
    explain.prefetch(listed, "zh", "羽绒服")  # no error: the texts are segmented when used
    assert blurbs_and_reasons(listed[:1], "zh", "羽绒服")[0][1] == ["羽绒服"]
