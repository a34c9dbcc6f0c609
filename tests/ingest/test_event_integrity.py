"""Events are never lost and never leaked; forgetting means forgotten.

Event ids are scoped to their user, repeats with a different payload are refused, profile
writers are serialised per user (concurrent events and the periodic recompute leave an
exact profile), a batch folds into stored profiles exactly, and a forgotten user is not
recreated by late events, leaves no admin log entries and no ids in the request log.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from recommender import spaces, tasks
from recommender.ingest import events, privacy
from recommender.ingest.behaviours import import_behaviours
from recommender.ingest.fields import ImportFailed, Row
from recommender.logfilters import RoutePathFilter
from recommender.models import Behaviour, EndUser, ForgottenUser, Item, UserProfile
from recommender.serving import profiles
from recommender.spaces import embedding

API = "/api/v1"


def make_shop(space, n_items: int = 6):
    """``n_items`` items sku-0… embedded in ``space`` (a hashing space: no model weights)."""
    items = [
        Item.objects.create(external_id=f"sku-{i}", title=f"商品 {i} 羽绒服 款{i % 4}")
        for i in range(n_items)
    ]
    embedding.embed_items(space, [item.pk for item in items])
    return space


@pytest.fixture
def shop(db, settings, hashing_space):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return make_shop(hashing_space)


@pytest.fixture
def shared_shop(transactional_db, settings, hashing_space):
    """The same shop, committed, for tests whose threads use their own connections."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = make_shop(hashing_space)
    yield space
    spaces.drop_index(space)


@pytest.fixture
def api():
    return APIClient()


def post_event(api, **event):
    return api.post(f"{API}/behaviours", event, format="json")


def post_batch(api, batch):
    return api.post(f"{API}/behaviours/batch", {"events": batch}, format="json")


def in_thread(function, *args):
    """Run with the thread's own database connection, closed afterwards."""
    try:
        return function(*args)
    finally:
        connection.close()


def assert_exact(user_id: int, space) -> None:
    """The stored profile equals an exact recompute from the log."""
    stored = UserProfile.objects.get(user_id=user_id, space=space)
    exact = profiles.recompute(user_id, space)
    assert stored.events == exact.events
    assert stored.ref_time == exact.ref_time
    for name in ("item_sum", "text_sum"):
        mine, theirs = getattr(stored, name), getattr(exact, name)
        assert (mine is None) == (theirs is None), name
        if theirs is not None:
            np.testing.assert_allclose(
                np.asarray(mine, np.float32), theirs, rtol=1e-4, atol=1e-5, err_msg=name
            )


# --- event ids are per user -----------------------------------------------------------------


def test_event_id_reuse_by_another_user_leaks_nothing(shop, api):
    secret = post_event(api, user="alice", kind="search", text="生日礼物 给 Bob", event_id="app-1")
    assert secret.status_code == 201
    probe = post_event(api, user="mallory", item="sku-1", kind="view", event_id="app-1")
    assert probe.status_code == 201
    body = probe.json()
    assert body["created"] is True
    assert body["behaviour"]["user"] == "mallory"
    assert "生日礼物" not in probe.content.decode()


def test_same_event_id_for_two_users_stores_both(shop, api):
    for user in ("device-a", "device-b"):
        response = post_event(api, user=user, item="sku-0", kind="like", event_id="1")
        assert response.status_code == 201
    stored = Behaviour.objects.filter(event_id="1")
    assert sorted(stored.values_list("user__external_id", flat=True)) == ["device-a", "device-b"]
    assert UserProfile.objects.filter(user__external_id__in=["device-a", "device-b"]).count() == 2


def test_repeat_with_the_same_payload_returns_the_stored_event(shop, api):
    sent = timezone.now() - timedelta(hours=1)
    first = post_event(
        api, user="u", item="sku-0", kind="cart", event_id="r-1", occurred_at=sent.isoformat()
    )
    again = post_event(api, user="u", item="sku-0", kind="cart", event_id="r-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["behaviour"] == first.json()["behaviour"]
    assert again.json()["created"] is False


def test_repeat_with_different_payload_is_409_and_stores_nothing(shop, api):
    assert post_event(api, user="u", item="sku-0", kind="view", event_id="e-1").status_code == 201
    before = UserProfile.objects.get(user__external_id="u").events
    response = post_event(api, user="u", item="sku-2", kind="view", event_id="e-1")
    assert response.status_code == 409
    assert "e-1" in response.json()["detail"] and "item" in response.json()["detail"]
    assert Behaviour.objects.filter(user__external_id="u").count() == 1
    assert UserProfile.objects.get(user__external_id="u").events == before


def test_repeat_does_not_create_a_phantom_user(shop, api):
    post_event(api, user="u", item="sku-0", kind="view", event_id="e-1")
    users = EndUser.objects.count()
    assert post_event(api, user="u", item="sku-0", kind="view", event_id="e-1").status_code == 200
    assert post_event(api, user="u", item="sku-3", kind="view", event_id="e-1").status_code == 409
    unknown = post_event(api, user="newcomer", item="no-such-sku", kind="view", event_id="e-1")
    assert unknown.status_code == 400
    assert EndUser.objects.count() == users


def test_batch_repeats_are_per_user_and_count_once(shop, api):
    batch = [
        {"user": "a", "item": "sku-0", "kind": "view", "event_id": "1"},
        {"user": "b", "item": "sku-0", "kind": "view", "event_id": "1"},
        {"user": "a", "item": "sku-0", "kind": "view", "event_id": "1"},
    ]
    first = post_batch(api, batch)
    assert first.status_code == 201
    assert first.json() == {"created": 2, "duplicates": 1, "profiles_updated": 2, "forgotten": 0}
    again = post_batch(api, batch)
    assert again.json()["created"] == 0 and again.json()["duplicates"] == 3
    assert Behaviour.objects.count() == 2


def test_batch_with_a_conflicting_repeat_is_409_naming_the_index(shop, api):
    post_event(api, user="a", item="sku-0", kind="view", event_id="1")
    before = (Behaviour.objects.count(), EndUser.objects.count())
    batch = [
        {"user": "new-user", "item": "sku-1", "kind": "view"},
        {"user": "a", "item": "sku-0", "kind": "like", "event_id": "1"},
    ]
    response = post_batch(api, batch)
    assert response.status_code == 409
    assert response.json()["index"] == 1 and "events[1]" in response.json()["detail"]
    within = post_batch(
        api,
        [
            {"user": "c", "item": "sku-1", "kind": "view", "event_id": "x"},
            {"user": "c", "item": "sku-2", "kind": "view", "event_id": "x"},
        ],
    )
    assert within.status_code == 409 and within.json()["index"] == 1
    assert (Behaviour.objects.count(), EndUser.objects.count()) == before


# --- bounds ------------------------------------------------------------------------------------


def test_future_event_is_refused(shop, api, tmp_path):
    future = (timezone.now() + timedelta(days=365)).isoformat()
    response = post_event(api, user="u", item="sku-0", kind="view", occurred_at=future)
    assert response.status_code == 400
    assert "future" in response.json()["occurred_at"][0]
    soon = (timezone.now() + timedelta(seconds=60)).isoformat()  # within the clock skew
    assert post_event(api, user="u", item="sku-0", kind="view", occurred_at=soon).status_code == 201
    rows = [
        Row("line 2", {"user": "u", "item": "sku-0", "kind": "view", "when": "1700000000"}),
        Row("line 3", {"user": "u", "item": "sku-0", "kind": "view", "when": "4102444800"}),
    ]
    with pytest.raises(ImportFailed, match=r"^line 3: column 'when': .*future"):
        import_behaviours(rows, mapping={"occurred_at": "when"})
    assert Behaviour.objects.count() == 1


def test_rating_outside_scale_is_refused(shop, api, settings):
    settings.RECOMMENDER_RATING_RANGE = (1.0, 5.0)
    response = post_event(api, user="u", item="sku-0", kind="rating", value=1e6)
    assert response.status_code == 400
    assert "between 1 and 5" in response.json()["value"][0]
    assert post_event(api, user="u", item="sku-0", kind="rating", value=4.5).status_code == 201
    view = post_event(api, user="u", item="sku-0", kind="view", value=2e6)
    assert view.status_code == 400 and "value" in view.json()
    rows = [Row("line 2", {"user": "u", "item": "sku-0", "kind": "rating", "value": "50"})]
    with pytest.raises(ImportFailed, match=r"^line 2: column 'value': 50: a rating must lie"):
        import_behaviours(rows)
    assert Behaviour.objects.count() == 1


# --- profiles: serialised per user, folded in batches ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_events_both_count(shared_shop):
    # A registered user (no profile yet) whose first two events arrive at once: there is
    # no profile row to lock, so without the user's lock each would store only its own.
    EndUser.objects.create(external_id="new")
    start = threading.Barrier(2)

    def send(item):
        start.wait()
        return events.record_event(events.EventInput(user="new", item=item, kind="like"))

    threads = [threading.Thread(target=in_thread, args=(send, item)) for item in ("sku-0", "sku-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    user_id = EndUser.objects.get(external_id="new").pk
    assert UserProfile.objects.get(user_id=user_id).events == 2
    assert_exact(user_id, shared_shop)


@pytest.mark.django_db(transaction=True)
def test_concurrent_events_and_periodic_recompute_leave_an_exact_profile(shared_shop):
    writers, per_writer = 8, 10
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    recomputes = 0

    def write(n):
        start.wait()
        for k in range(per_writer):
            kind = ("view", "like", "cart")[(n + k) % 3]
            events.record_event(
                events.EventInput(
                    user="busy", item=f"sku-{(n + k) % 6}", kind=kind, event_id=f"w{n}-{k}"
                )
            )

    def recompute():
        nonlocal recomputes
        start.wait()
        while not done.is_set():
            pk = EndUser.objects.filter(external_id="busy").values_list("pk", flat=True).first()
            if pk is not None:
                tasks.recompute_profiles([pk])  # the periodic task, run inline
                recomputes += 1

    def guarded(function, *args):
        try:
            in_thread(function, *args)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(write, n)) for n in range(writers)]
    repair = threading.Thread(target=guarded, args=(recompute,))
    for thread in [*threads, repair]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    repair.join()
    assert not errors, errors
    assert recomputes > 0
    user_id = EndUser.objects.get(external_id="busy").pk
    assert Behaviour.objects.filter(user_id=user_id).count() == writers * per_writer
    assert UserProfile.objects.get(user_id=user_id).events == writers * per_writer
    assert_exact(user_id, shared_shop)


def test_batch_folds_into_existing_profile_exactly(shop, api):
    now = timezone.now()
    for n in range(3):
        events.record_event(
            events.EventInput(
                user="u",
                item=f"sku-{n}",
                kind="like",
                occurred_at=now - timedelta(days=10 - n),
            )
        )
    events.record_event(
        events.EventInput(user="u", kind="search", text="长款羽绒服", occurred_at=now)
    )
    batch = [
        # in no particular order, one of them older than the stored profile's time
        {"user": "u", "item": "sku-4", "kind": "cart", "occurred_at": (now - timedelta(days=1))},
        {"user": "u", "item": "sku-5", "kind": "view", "occurred_at": (now - timedelta(days=20))},
        {"user": "u", "kind": "review", "item": "sku-1", "text": "很暖和", "occurred_at": now},
        {"user": "other", "item": "sku-2", "kind": "dislike"},
        {"user": "other", "item": "sku-3", "kind": "view"},
        {"user": "searcher", "kind": "search", "text": "机械键盘"},  # a text sum only
        {"user": "no-vectors", "item": "sku-new", "kind": "view"},  # neither sum
    ]
    Item.objects.create(external_id="sku-new", title="还没有向量的新品")
    for event in batch:
        if "occurred_at" in event:
            event["occurred_at"] = event["occurred_at"].isoformat()
    response = post_batch(api, batch)
    assert response.status_code == 201
    assert response.json()["profiles_updated"] == 4
    for external_id in ("u", "other", "searcher", "no-vectors"):
        assert_exact(EndUser.objects.get(external_id=external_id).pk, shop)
    assert UserProfile.objects.get(user__external_id="u").events == 7


@pytest.mark.django_db(transaction=True)
def test_an_event_racing_a_forget_is_refused_not_stored(shared_shop):
    events.record_event(events.EventInput(user="leaving", item="sku-0", kind="view"))
    user = EndUser.objects.get(external_id="leaving")
    outcome: list = []

    def late_event():
        try:
            events.record_event(events.EventInput(user="leaving", item="sku-1", kind="like"))
            outcome.append("stored")
        except events.UserForgotten:
            outcome.append("refused")

    late = threading.Thread(target=in_thread, args=(late_event,))
    with transaction.atomic():
        profiles.lock_users([user.pk])
        late.start()  # inserts its row, then waits for the user's lock
        _wait_for_a_lock_waiter()
        privacy.forget_user(user)
    late.join()
    assert outcome == ["refused"]
    assert not EndUser.objects.filter(external_id="leaving").exists()
    assert not Behaviour.objects.exists() and not UserProfile.objects.exists()


def _wait_for_a_lock_waiter(timeout: float = 10.0) -> None:
    """Until another session waits for an advisory lock (pg_locks is live even inside a
    transaction, unlike pg_stat_activity)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no session waited for an advisory lock")


@pytest.mark.django_db(transaction=True)
def test_profile_locks_refuse_to_work_outside_a_transaction():
    with pytest.raises(RuntimeError, match="transaction"):
        profiles.lock_users([1])


def test_text_vectors_are_cached_by_text_hash(shop):
    texts = ["长款羽绒服", "机械键盘", "长款羽绒服"]
    vectors = embedding.encode_cached(shop, texts)
    direct = embedding.encoder_for(shop).encode(["长款羽绒服", "机械键盘"])
    np.testing.assert_array_equal(vectors, direct[[0, 1, 0]])
    key = embedding.text_cache_key(shop, "机械键盘")
    assert key.endswith(":" + hashlib.sha256("机械键盘".encode()).hexdigest())
    assert cache.get(key) == direct[1].astype(np.float32).tobytes()
    # A second call reads the cache instead of encoding: a planted vector comes back.
    planted = np.arange(shop.dim, dtype=np.float32)
    cache.set(key, planted.tobytes())
    np.testing.assert_array_equal(embedding.encode_cached(shop, ["机械键盘"])[0], planted)


def test_text_vectors_are_encoded_when_the_cache_is_down(shop, settings, tmp_path):
    expected = embedding.encoder_for(shop).encode(["有机绿茶"])
    settings.CACHES = {
        "default": {
            "BACKEND": "recsite.cache.ReusedClientRedisCache",
            "LOCATION": f"unix://{tmp_path / 'no-redis.sock'}?db=1",
        }
    }
    np.testing.assert_array_equal(embedding.encode_cached(shop, ["有机绿茶"]), expected)


# --- forgetting -----------------------------------------------------------------------------


def admin_log(obj, staff) -> None:
    """A change logged by the admin, the way the admin logs one."""
    LogEntry.objects.log_actions(staff.pk, [obj], CHANGE, change_message="edited")


def test_forget_removes_admin_log_entries(shop, api, admin_user):
    post_event(api, user="forget-me", kind="search", text="私密的搜索")
    post_event(api, user="keep-me", item="sku-0", kind="view")
    target = EndUser.objects.get(external_id="forget-me")
    kept = EndUser.objects.get(external_id="keep-me")
    for obj in (
        target,
        Behaviour.objects.get(user=target),
        UserProfile.objects.get(user=target),
        kept,
        Behaviour.objects.get(user=kept),
    ):
        admin_log(obj, admin_user)
    assert LogEntry.objects.filter(object_repr__contains="私密").exists()
    assert api.delete(f"{API}/users/forget-me").status_code == 204
    assert LogEntry.objects.count() == 2
    types = ContentType.objects.get_for_models(EndUser, Behaviour)
    remaining = set(LogEntry.objects.values_list("content_type_id", "object_id"))
    assert remaining == {
        (types[EndUser].id, str(kept.pk)),
        (types[Behaviour].id, str(Behaviour.objects.get(user=kept).pk)),
    }
    assert not EndUser.objects.filter(external_id="forget-me").exists()
    assert Item.objects.filter(external_id="sku-0").exists()  # PROTECT is on the item side


def test_retried_event_after_forget_does_not_recreate_user(shop, api):
    post_event(api, user="gone", item="sku-0", kind="view", event_id="e-1")
    assert api.delete(f"{API}/users/gone").status_code == 204
    assert ForgottenUser.objects.filter(id_hash=privacy.id_hash("gone")).exists()
    retry = post_event(api, user="gone", item="sku-0", kind="view", event_id="e-1")
    assert retry.status_code == 410
    assert "forgotten" in retry.json()["detail"]
    batch = post_batch(
        api,
        [
            {"user": "gone", "item": "sku-0", "kind": "view"},
            {"user": "gone", "item": "sku-1", "kind": "view", "event_id": "e-2"},
            {"user": "someone", "item": "sku-1", "kind": "view"},
        ],
    )
    assert batch.status_code == 201
    assert batch.json() == {"created": 1, "duplicates": 0, "profiles_updated": 1, "forgotten": 2}
    report = import_behaviours([Row("line 2", {"user": "gone", "item": "sku-2", "kind": "view"})])
    assert report.rows == 0 and report.extra["forgotten"] == 1
    assert not EndUser.objects.filter(external_id="gone").exists()


def test_tombstone_expires_after_the_grace_period(shop, api, settings):
    settings.RECOMMENDER_FORGET_GRACE_SECONDS = 60
    post_event(api, user="gone", item="sku-0", kind="view")
    api.delete(f"{API}/users/gone")
    ForgottenUser.objects.update(forgotten_at=timezone.now() - timedelta(seconds=61))
    assert post_event(api, user="gone", item="sku-0", kind="view").status_code == 201


def test_explicit_user_creation_lifts_the_tombstone(shop, api):
    post_event(api, user="back", item="sku-0", kind="view")
    api.delete(f"{API}/users/back")
    assert api.post(f"{API}/users", {"id": "back"}, format="json").status_code == 201
    assert not ForgottenUser.objects.exists()
    assert post_event(api, user="back", item="sku-0", kind="view").status_code == 201


@pytest.fixture
def eager_tasks():
    """``delay`` runs the real task in this process, not on the broker that other test
    runs on this machine share."""
    from recsite.celery import app

    previous = {name: app.conf[name] for name in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(previous)


def test_large_forget_runs_as_task(
    shop, api, settings, monkeypatch, eager_tasks, django_capture_on_commit_callbacks
):
    settings.RECOMMENDER_FORGET_INLINE_LIMIT = 3
    monkeypatch.setattr(privacy, "DELETE_CHUNK", 2)  # several chunks, each a transaction
    for n in range(5):
        post_event(api, user="long", item=f"sku-{n}", kind="view")
    post_event(api, user="short", item="sku-0", kind="view")
    user_id = EndUser.objects.get(external_id="long").pk
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api.delete(f"{API}/users/long")
    assert response.status_code == 202 and response.json() == {"status": "queued"}
    assert EndUser.objects.filter(pk=user_id).exists()  # until the task runs
    assert len(queued) == 1
    queued[0]()
    assert not EndUser.objects.filter(pk=user_id).exists()
    assert not Behaviour.objects.filter(user_id=user_id).exists()
    assert ForgottenUser.objects.filter(id_hash=privacy.id_hash("long")).exists()
    assert tasks.forget_user(user_id) == {"user": user_id, "forgotten": False, "deleted": {}}
    assert api.delete(f"{API}/users/short").status_code == 204


# --- logs --------------------------------------------------------------------------------------


@pytest.fixture
def console_log():
    """What the console handler (the one with the route filter) writes."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RoutePathFilter) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_request_log_has_no_user_ids(shop, api, console_log):
    secret = "jane.doe@example.com"
    assert api.get(f"{API}/users/{secret}/recommendations", {"q": "私密"}).status_code == 404
    assert api.get(f"/no/such/page/{secret}").status_code == 404
    assert post_event(api, user=secret, item="no-such-sku", kind="view").status_code == 400
    written = console_log.getvalue()
    assert "Not Found: " in written and "users/" in written and "<unmatched>" in written
    assert secret not in written and "私密" not in written
