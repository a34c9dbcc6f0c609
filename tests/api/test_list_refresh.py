"""Lists computed ahead (RECOMMENDER_LIST_REFRESH_SECONDS): after an event of a user who
asked for a list lately, a worker computes their next list into the list cache, so that
their next request finds it ready, reflecting the event; nothing built before a change
of the site is computed again, and the setting without the list cache is refused."""

import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from recommender import sharedcache
from recommender.ingest import privacy
from recommender.models import EndUser, Item, Scenario
from recommender.serving import list_cache, pipeline
from tests.api.test_list_cache import event, recs, shop  # noqa: F401 - shop: a fixture

API = "/api/v1"


@pytest.fixture
def refreshing(shop, settings, monkeypatch):  # noqa: F811 - the fixture imported above
    """test_list_cache's shop with lists computed ahead; what the sender thread was given."""
    settings.RECOMMENDER_LIST_REFRESH_SECONDS = 600
    sent: list[list[int]] = []
    monkeypatch.setattr(list_cache, "_queue", sent.append)  # the sender thread's input
    return (*shop, sent)


def user_pk() -> int:
    return EndUser.objects.get(external_id="u1").pk


@pytest.mark.django_db
def test_an_event_has_the_next_list_computed_ahead_and_served_from_the_cache(
    refreshing, django_capture_on_commit_callbacks
):
    api, items, computed, sent = refreshing
    first, _ = recs(api)
    assert len(computed) == 1
    disliked = Item.objects.get(external_id=first[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert event(api, disliked, "dislike").status_code == 201
    assert sent == [[user_pk()]]  # the event asked a worker for this user's lists
    # What the worker runs: the list as the user's next request will ask for it.
    assert list_cache.refresh(user_pk()) == 1
    assert len(computed) == 2
    ahead, _ = recs(api)
    assert len(computed) == 2  # served as computed ahead
    assert disliked.external_id not in ahead
    # It is the list the pipeline gives that request now.
    list_cache.changed()
    live, _ = recs(api)
    assert len(computed) == 3 and live == ahead
    # Already there: a second refresh computes nothing.
    assert list_cache.refresh(user_pk()) == 0


@pytest.mark.django_db
def test_each_way_of_asking_is_computed_ahead_but_not_a_next_page_or_free_text(refreshing):
    api, items, computed, sent = refreshing
    recs(api)
    _, rid = recs(api, diversity=0.5)
    recs(api, recommendation_id=rid)  # the next page of that list: not kept
    recs(api, q="羽绒服")  # free text: not kept
    assert len(computed) == 4
    assert event(api, items[1], "like").status_code == 201
    assert list_cache.refresh(user_pk()) == 2
    recs(api)
    recs(api, diversity=0.5)
    assert len(computed) == 6  # both came ready
    recs(api, q="羽绒服")
    assert len(computed) == 7


@pytest.mark.django_db
def test_only_users_who_asked_lately_and_events_that_move_the_profile_ask_a_worker(
    refreshing, django_capture_on_commit_callbacks
):
    api, items, computed, sent = refreshing
    with django_capture_on_commit_callbacks(execute=True):
        assert event(api, items[1], "view").status_code == 201  # u1 never asked for a list
    assert sent == []
    _, rid = recs(api)
    with django_capture_on_commit_callbacks(execute=True):
        response = event(api, items[2], "impression", recommendation_id=rid, position=1)
        assert response.status_code == 201
    assert sent == []  # an impression does not move the profile
    with django_capture_on_commit_callbacks(execute=True):
        batch = [
            {"user": "u1", "item": items[3].external_id, "kind": "click"},
            {"user": "u1", "item": items[4].external_id, "kind": "cart"},
        ]
        response = api.post(f"{API}/behaviours/batch", {"events": batch}, format="json")
        assert response.status_code == 201, response.content
    assert sent == [[user_pk()]]


@pytest.mark.django_db
def test_ways_of_asking_built_before_a_site_change_are_not_computed_again(refreshing):
    api, items, computed, sent = refreshing
    recs(api)
    Scenario.objects.create(name="home")  # changes the site token
    assert event(api, items[1], "like").status_code == 201
    assert list_cache.refresh(user_pk()) == 0
    recs(api)
    assert len(computed) == 2  # the request rebuilt it


@pytest.mark.django_db
def test_a_list_computed_ahead_obeys_its_filters_clock(refreshing, settings):
    """A worker's list is kept no longer than the request's filters allow, as a request's
    is (test_list_cache): here a filter whose moments cannot be told, so not at all."""
    api, items, computed, sent = refreshing
    settings.RECOMMENDER_ITEM_ATTRIBUTES = {"weeks": "number"}
    rule = "now() - days(7 * weeks) < created_at"
    recs(api, filter=rule)
    assert event(api, items[1], "like").status_code == 201
    assert list_cache.refresh(user_pk()) == 1
    recs(api, filter=rule)
    assert len(computed) == 3  # computed by the worker, then by the request again


@pytest.mark.django_db
def test_off_or_forgotten_nothing_is_kept(refreshing, settings):
    api, items, computed, sent = refreshing
    recs(api)
    pk = user_pk()
    assert sharedcache.get(list_cache.SHAPES + str(pk))
    privacy.forget_user(EndUser.objects.get(pk=pk))
    assert sharedcache.get(list_cache.SHAPES + str(pk)) is None
    settings.RECOMMENDER_LIST_REFRESH_SECONDS = 0
    assert api.post(f"{API}/users", {"id": "u2"}, format="json").status_code == 201
    response = api.get(f"{API}/users/u2/recommendations", {"k": 5})
    assert response.status_code == 200
    pk = EndUser.objects.get(external_id="u2").pk
    assert sharedcache.get(list_cache.SHAPES + str(pk)) is None


def test_the_setting_without_the_list_cache_is_refused(settings):
    settings.RECOMMENDER_LIST_CACHE_SECONDS = 0
    settings.RECOMMENDER_LIST_REFRESH_SECONDS = 600
    with pytest.raises(SystemCheckError, match="RECOMMENDER_LIST_CACHE_SECONDS is 0"):
        call_command("check")
    settings.RECOMMENDER_LIST_CACHE_SECONDS = 60
    call_command("check")


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_has_the_list_ready_after_an_event(refreshing, celery_worker, monkeypatch):
    api, items, computed, sent = refreshing
    monkeypatch.undo()  # the real pipeline, the real broker
    first, _ = recs(api)
    disliked = Item.objects.get(external_id=first[0])
    assert event(api, disliked, "dislike").status_code == 201
    wanted = pipeline.RecommendationRequest(user=EndUser.objects.get(external_id="u1"), k=5)
    key = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shapes = sharedcache.get(list_cache.SHAPES + str(user_pk())) or {}
        (_, shape, scenario, variant, _, _), *_ = shapes.values()
        key = list_cache.key(
            list_cache.replace(shape, user=wanted.user), scenario=scenario, variant=variant
        )
        if list_cache.lookup(key)[0] is not None:
            break
        time.sleep(0.1)
    ready, _ = list_cache.lookup(key)
    assert ready is not None, "the worker did not compute the list"
    assert disliked.pk not in {r.item.pk for r in ready}
    served, _ = recs(api)
    assert served == [r.item.external_id for r in ready]


def test_the_sender_thread_queues_each_user_once_per_burst(monkeypatch):
    sent: list[list[int]] = []
    monkeypatch.setattr(list_cache, "_send", sent.append)
    monkeypatch.setattr(list_cache, "REFRESH_DELAY", 0.3)
    list_cache._queue([3])
    list_cache._queue([1, 3])
    deadline = time.monotonic() + 10
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [[1, 3]]
    list_cache._queue([2])
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [[1, 3], [2]]


def test_a_refresh_expires_in_the_queue_and_a_broker_outage_costs_no_event(monkeypatch, caplog):
    from celery import current_app

    queued = []
    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: queued.append((a, k)))
    list_cache._send([7])
    assert queued == [
        (
            (list_cache.REFRESH_TASK,),
            {"args": [7], "retry": False, "expires": list_cache.REFRESH_EXPIRES},
        )
    ]

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(current_app, "send_task", down)
    list_cache._send([7, 8])  # logged, not raised
    assert "could not queue the list refresh of user 7" in caplog.text
