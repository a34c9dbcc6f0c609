"""Live popular and trending tables: computed once, then recomputed by a worker when old,
never by the request that finds them old (it keeps serving the previous table)."""

import time

import pytest
from django.core.cache import cache

from recommender import tasks
from recommender.models import Behaviour, EndUser
from recommender.serving import popularity


@pytest.fixture
def counted(monkeypatch):
    """Every scan of the behaviour log made by the popularity module (the real query)."""
    calls = []
    real = popularity._weighted_counts

    def counting(start, end):
        calls.append((start, end))
        return real(start, end)

    monkeypatch.setattr(popularity, "_weighted_counts", counting)
    return calls


@pytest.fixture
def sent(monkeypatch):
    """The refresh tasks sent to the broker (the real send_task is not called)."""
    from celery import current_app

    calls = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, **options: calls.append((name, options))
    )
    return calls


def _buy(user, item, times=1):
    for _ in range(times):
        Behaviour.objects.create(user=user, item=item, kind="purchase")


def _age(name: str, seconds: float) -> None:
    """Make the shared stamp of the live table ``name`` ``seconds`` old."""
    key = f"recsite:{name}:live:stamp"
    token, computed_at = cache.get(key)
    cache.set(key, (token, computed_at - seconds), 600)


def test_a_live_table_is_computed_once_and_new_events_wait_for_the_refresh(
    space, make_items, counted, sent
):
    a, b = make_items(2)
    user = EndUser.objects.create(external_id="u")
    _buy(user, a, 3)
    first = popularity.popularity()
    scans = len(counted)
    assert scans > 0 and set(first) == {a.pk}
    _buy(user, b, 5)
    assert popularity.popularity() == first  # the shared table, not a new scan
    assert len(counted) == scans and sent == []
    took = tasks.refresh_popularity()  # what the worker runs
    assert set(took) == {"popularity:30", "trending"}
    after = popularity.popularity()
    assert after.head()[0][0] == b.pk and after[a.pk] == first[a.pk]


def test_an_old_table_is_served_and_one_refresh_is_asked_for(space, make_items, counted, sent):
    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a, 2)
    table = popularity.popularity()
    scans = len(counted)
    _age("popularity:30", popularity.refresh_seconds() + 1)
    for _ in range(3):
        assert popularity.popularity() == table
    assert len(counted) == scans  # no request computed it
    assert sent == [
        (popularity.REFRESH_TASK, {"kwargs": {"names": ["popularity:30"]}, "retry": False})
    ]
    popularity.refresh_live(sent[0][1]["kwargs"]["names"])
    stamp = cache.get("recsite:popularity:30:live:stamp")
    assert time.time() - stamp[1] < 5


def test_a_young_table_asks_for_nothing(space, make_items, sent):
    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a)
    popularity.popularity()
    popularity.trending()
    _age("trending", popularity.refresh_seconds() / 2)
    popularity.trending()
    assert sent == []


def test_a_broker_failure_does_not_fail_the_request(space, make_items, monkeypatch):
    from celery import current_app

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(current_app, "send_task", broken)
    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a)
    table = popularity.popularity()
    _age("popularity:30", popularity.refresh_seconds() + 1)
    assert popularity.popularity() == table


def test_a_table_the_cache_lost_is_recomputed_by_the_request(space, make_items, counted):
    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a)
    popularity.popularity()
    scans = len(counted)
    cache.delete("recsite:popularity:30:live")  # evicted, the stamp still there
    assert popularity.popularity() == {a.pk: popularity.popularity()[a.pk]}
    assert len(counted) == scans  # this process still holds the table of that stamp
    popularity._memo.clear()  # another process: it must read the shared table
    assert a.pk in popularity.popularity()
    assert len(counted) > scans


def test_a_replay_in_the_past_uses_its_own_minute(space, make_items):
    from datetime import timedelta

    from django.utils import timezone

    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a)
    assert a.pk in popularity.popularity()
    assert a.pk not in popularity.popularity(as_of=timezone.now() - timedelta(hours=1))


def test_unknown_live_table_names_are_refused():
    with pytest.raises(ValueError, match="no live table"):
        popularity.refresh_live(["nonsense"])


def test_an_old_table_costs_one_lock_attempt_per_process_and_period(
    space, make_items, sent, monkeypatch
):
    (a,) = make_items(1)
    _buy(EndUser.objects.create(external_id="u"), a)
    popularity.popularity()
    _age("popularity:30", popularity.refresh_seconds() + 1)
    attempts = []
    real_add = popularity.sharedcache.add
    monkeypatch.setattr(
        popularity.sharedcache, "add", lambda *args: attempts.append(args) or real_add(*args)
    )
    for _ in range(5):
        popularity.popularity()
    assert len(attempts) == 1 and len(sent) == 1
    # A newer table that grows old in its turn is asked for again.
    popularity.refresh_live(["popularity:30"])
    _age("popularity:30", popularity.refresh_seconds() + 1)
    popularity.popularity()
    assert len(attempts) == 2
