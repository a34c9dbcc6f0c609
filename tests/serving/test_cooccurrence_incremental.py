"""The incremental co-occurrence refresh: after new events it rewrites only the rows of the
items near them, and those rows are exactly what a full refresh writes."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from recommender import tasks
from recommender.models import Behaviour, CooccurrenceRefresh, EndUser, ItemCooccurrence
from recommender.serving import cooccurrence

FULL, INCREMENTAL = CooccurrenceRefresh.Kind.FULL, CooccurrenceRefresh.Kind.INCREMENTAL


def _rows() -> dict[int, set]:
    rows: dict[int, set] = {}
    for item, other, score, count in ItemCooccurrence.objects.values_list(
        "item_id", "other_id", "score", "count"
    ):
        rows.setdefault(item, set()).add((other, round(score, 9), count))
    return rows


@pytest.fixture
def shop(space, make_items, settings):
    """40 items, 25 users with random histories, all received an hour ago."""
    settings.RECOMMENDER_COOCCURRENCE_WINDOW = 2
    rng = random.Random(3)
    items = make_items(40)
    users = [EndUser.objects.create(external_id=f"u{n}") for n in range(25)]
    start = timezone.now() - timedelta(days=2)
    for user in users:
        for step in range(12):
            Behaviour.objects.create(
                user=user,
                item=rng.choice(items),
                kind=rng.choice(["view", "purchase", "click"]),
                occurred_at=start + timedelta(minutes=step + rng.random()),
            )
    Behaviour.objects.update(created_at=timezone.now() - timedelta(hours=1))
    return items, users


def test_incremental_rows_are_the_full_refresh_rows_of_the_items_near_new_events(shop):
    items, users = shop
    cooccurrence.refresh_cooccurrence()
    before = _rows()
    now = timezone.now()
    new = [
        (users[0], items[0], now),
        (users[0], items[1], now + timedelta(seconds=1)),
        (users[1], items[2], now),
        # a backfilled event in the middle of a history shifts its neighbours' windows
        (users[2], items[3], timezone.now() - timedelta(days=2) + timedelta(minutes=5.5)),
        (EndUser.objects.create(external_id="new"), items[4], now),
    ]
    for user, item, at in new:
        Behaviour.objects.create(user=user, item=item, kind="purchase", occurred_at=at)

    mark = CooccurrenceRefresh.objects.first().last_event_id
    affected = set(cooccurrence.affected_items(mark))
    # the new events' items, their neighbours within the window, and not the whole catalogue
    assert {items[n].pk for n in range(5)} <= affected and len(affected) < len(items)
    count, written = cooccurrence.refresh_cooccurrence_incremental(max_share=None)
    incremental = _rows()
    refresh = CooccurrenceRefresh.objects.first()
    assert refresh.kind == INCREMENTAL and (refresh.items, refresh.rows) == (count, written)
    assert count == len(affected) and written == sum(len(incremental.get(i, ())) for i in affected)

    cooccurrence.refresh_cooccurrence()
    full = _rows()
    for item in affected:  # rebuilt from every user's events, as the full refresh does
        assert incremental.get(item) == full.get(item), item
    assert any(before.get(item) != full.get(item) for item in affected)
    for item in (set(before) | set(incremental)) - affected:
        # kept as they were (a full refresh may rescore them: their other items gained users)
        assert incremental.get(item) == before.get(item), item


def test_no_new_events_rewrite_nothing(shop):
    cooccurrence.refresh_cooccurrence()
    before = _rows()
    assert cooccurrence.refresh_cooccurrence_incremental() == (0, 0)
    assert _rows() == before


def test_nothing_to_build_on_means_a_full_refresh(shop, settings):
    assert cooccurrence.refresh_cooccurrence_incremental() is None  # no refresh yet
    assert tasks.refresh_cooccurrence()["kind"] == "full"
    assert tasks.refresh_cooccurrence()["kind"] == "incremental"
    # an evaluation's replay leaves a table of the past: the next refresh is full
    cooccurrence.refresh_cooccurrence(as_of=timezone.now() - timedelta(days=1))
    assert CooccurrenceRefresh.objects.first().kind == CooccurrenceRefresh.Kind.REPLAY
    assert cooccurrence.refresh_cooccurrence_incremental() is None
    assert tasks.refresh_cooccurrence()["kind"] == "full"


def test_the_schedule_runs_full_when_the_last_full_one_is_old_or_incremental_is_off(shop, settings):
    cooccurrence.refresh_cooccurrence()
    assert cooccurrence.scheduled_refresh()["kind"] == "incremental"
    CooccurrenceRefresh.objects.filter(kind=FULL).update(
        finished_at=timezone.now() - timedelta(hours=25)
    )
    assert cooccurrence.scheduled_refresh()["kind"] == "full"
    settings.RECOMMENDER_COOCCURRENCE_INCREMENTAL = False
    assert cooccurrence.scheduled_refresh()["kind"] == "full"


def test_events_received_in_the_last_minutes_are_taken_again(shop):
    items, users = shop
    cooccurrence.refresh_cooccurrence()
    mark = CooccurrenceRefresh.objects.first().last_event_id
    assert mark == Behaviour.objects.order_by("-id").values_list("id", flat=True).first()
    Behaviour.objects.create(user=users[0], item=items[0], kind="purchase")
    cooccurrence.refresh_cooccurrence_incremental()
    # just received: it may sit behind a transaction that commits later, so the mark stays
    assert CooccurrenceRefresh.objects.first().last_event_id == mark
    affected, _ = cooccurrence.refresh_cooccurrence_incremental()
    assert affected > 0


def test_deleted_events_make_the_next_refresh_full(shop):
    from recommender.ingest import privacy

    items, users = shop
    assert tasks.refresh_cooccurrence()["kind"] == "full"
    privacy.forget_user(users[5])  # their events go; only a full refresh takes them out
    assert cooccurrence.refresh_cooccurrence_incremental() is None
    assert tasks.refresh_cooccurrence()["kind"] == "full"
    assert tasks.refresh_cooccurrence()["kind"] == "incremental"


def test_a_deleted_event_newer_than_the_mark_is_noticed_too(shop):
    items, users = shop
    fresh = Behaviour.objects.create(user=users[0], item=items[7], kind="purchase")
    cooccurrence.refresh_cooccurrence()  # the table counts it; the mark lags behind it
    assert CooccurrenceRefresh.objects.first().last_event_id < fresh.pk
    fresh.delete()
    assert cooccurrence.refresh_cooccurrence_incremental() is None


def test_too_many_items_to_recompute_means_a_full_refresh(shop):
    items, users = shop
    cooccurrence.refresh_cooccurrence()
    for user in users[:6]:
        Behaviour.objects.create(user=user, item=items[9], kind="purchase")
    assert cooccurrence.refresh_cooccurrence_incremental(max_share=0.05) is None
    count, _ = cooccurrence.refresh_cooccurrence_incremental(max_share=None)
    assert count > 0.05 * len(items)
