"""The nearest-neighbour search on serving's helper connection: the same answer as
inline, a lost connection replaced, a busy helper not waited for."""

import pytest
from django.db import connection

from recommender.ingest import events
from recommender.models import EndUser, Item
from recommender.serving import candidates, nearest
from recommender.spaces import embedding


@pytest.fixture
def committed_shop(transactional_db, space, make_items, settings):
    """A small shop whose rows are committed (so a second connection sees them), and a
    spy on the nearest-neighbour searches reporting which server process ran them. Its
    searches go to SQL, as a catalogue above ``RECOMMENDER_IN_PROCESS_SEARCH_ITEMS``."""
    from recommender.serving import helper_connection

    settings.RECOMMENDER_IN_PROCESS_SEARCH_ITEMS = 0

    items = make_items(60)
    for i, item in enumerate(items):
        item.category = f"c{i % 3}"
        item.save()
    embedding.embed_items(space, [item.pk for item in items])
    for item in items[:4]:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="view"))
    yield EndUser.objects.get(external_id="u1")
    helper_connection.shutdown()


def _spy_on_searches(monkeypatch) -> list[int]:
    backends: list[int] = []
    original = nearest.nearest_searches

    def spy(*args, **kwargs):
        connection.ensure_connection()
        backends.append(connection.connection.info.backend_pid)
        return original(*args, **kwargs)

    monkeypatch.setattr(candidates, "nearest_searches", spy)  # as the pipeline calls it
    return backends


class _Score(float):
    """A score equal to another within a relative 1e-6: history weights decay between two
    calls, so digits rounded off can land either side of a rounding boundary."""

    def __eq__(self, other):
        return abs(self - other) <= 1e-6 * max(abs(self), abs(other), 1e-9)

    __hash__ = float.__hash__


def _served(user, **fields) -> list[tuple[int, float, list[str]]]:
    from recommender.serving.pipeline import RecommendationRequest, recommend

    found = recommend(RecommendationRequest(user=user, k=8, **fields))
    return [(r.item.pk, _Score(r.score), r.sources, r.reason.text) for r in found]


def test_the_nearest_search_runs_on_a_second_connection_with_the_same_answer(
    committed_shop, monkeypatch, settings
):
    from django.db import transaction

    backends = _spy_on_searches(monkeypatch)
    parallel_answer = _served(committed_shop, category="c1")
    main_pid = connection.connection.info.backend_pid
    # The profile's and the recent items' searches, one call, on the helper connection.
    assert len(backends) == 1 and main_pid not in backends
    assert parallel_answer and {pk for pk, *_ in parallel_answer} <= set(
        Item.objects.filter(category="c1").values_list("pk", flat=True)
    )
    assert any("history" in sources for _, _, sources, _ in parallel_answer)

    settings.RECOMMENDER_PARALLEL_RETRIEVAL = False
    assert _served(committed_shop, category="c1") == parallel_answer
    assert backends[-1] == main_pid
    settings.RECOMMENDER_PARALLEL_RETRIEVAL = True
    with transaction.atomic():  # another connection could not see this transaction's rows
        assert _served(committed_shop, category="c1") == parallel_answer
    assert backends[-1] == main_pid


def test_a_lost_helper_connection_is_replaced_and_the_answer_kept(committed_shop, monkeypatch):
    backends = _spy_on_searches(monkeypatch)
    first = _served(committed_shop)
    with connection.cursor() as cursor:  # the server drops the helper's connection
        cursor.execute("SELECT pg_terminate_backend(%s)", [backends[0]])
    assert _served(committed_shop) == first
    assert _served(committed_shop) == first
    assert backends[-1] not in (backends[0], connection.connection.info.backend_pid)


def test_a_request_does_not_queue_behind_a_busy_helper(committed_shop, monkeypatch):
    import threading

    from recommender.serving import helper_connection

    release = threading.Event()
    held = helper_connection.start(release.wait, 10)  # the helper is busy with another request
    try:
        backends = _spy_on_searches(monkeypatch)
        assert _served(committed_shop)
        assert set(backends) == {connection.connection.info.backend_pid}  # ran inline
    finally:
        release.set()
    assert held.result() is True and not held.ran_inline
    assert _served(committed_shop)
    assert backends[-1] != connection.connection.info.backend_pid  # the helper is free again
