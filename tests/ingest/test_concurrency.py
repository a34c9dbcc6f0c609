"""Concurrent writers: repeated events count once, overlapping imports leave one row each."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from recommender.ingest import events
from recommender.ingest.fields import Row
from recommender.ingest.items import import_items
from recommender.models import Behaviour, EndUser, Item, UserProfile
from recommender.serving import profiles
from recommender.spaces import embedding


def in_thread(function, *args):
    """Run with the thread's own database connection, closed afterwards."""
    try:
        return function(*args)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_same_event_sent_concurrently_is_stored_and_counted_once(settings, hashing_space):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    item = Item.objects.create(external_id="sku-1", title="机械键盘")
    embedding.embed_items(hashing_space, [item.pk])
    event = events.EventInput(user="u-1", item="sku-1", kind="purchase", event_id="same-1")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: in_thread(events.record_event, event), range(12)))
    assert sum(result.created for result in results) == 1
    assert sum(result.profile_updated for result in results) == 1
    assert Behaviour.objects.filter(event_id="same-1").count() == 1
    assert EndUser.objects.filter(external_id="u-1").count() == 1
    profile = UserProfile.objects.get(user__external_id="u-1", space=hashing_space)
    assert profile.events == 1
    assert profiles.load(profile.user_id, hashing_space).events == 1


@pytest.mark.django_db(transaction=True)
def test_overlapping_concurrent_imports_leave_one_row_per_item(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False

    def rows(offset):
        for n in range(offset, offset + 600):
            yield Row(f"line {n}", {"external_id": f"sku-{n}", "title": f"商品 {n}"})

    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(lambda o: in_thread(import_items, rows(o)), [0, 300, 150]))
    assert all(report.rows == 600 for report in reports)
    assert Item.objects.count() == 900
    assert Item.objects.values("external_id").distinct().count() == 900
