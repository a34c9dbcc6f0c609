"""Explanations keep each co-occurrence proof for RECOMMENDER_EXPLAIN_CACHE_SECONDS per
process (tests/settings.py switches it off everywhere else)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender.models import Behaviour, EndUser, ItemCooccurrence
from recommender.serving import evidence


@pytest.fixture
def pair(db, make_items):
    anchor, other = make_items(2)
    now = timezone.now()
    for n in range(3):
        user = EndUser.objects.create(external_id=f"u-{n}")
        for minutes, item in enumerate((anchor, other)):
            Behaviour.objects.create(
                user=user, item=item, kind="view", occurred_at=now - timedelta(minutes=9 - minutes)
            )
    ItemCooccurrence.objects.create(item=anchor, other=other, score=0.5, count=3)
    evidence._proofs.clear()
    yield anchor, other
    evidence._proofs.clear()


def _read(pairs, **options) -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        found = evidence.cooccurrence_proofs(pairs, **options)
    return found, len(queries)


def test_a_proof_is_read_once_while_it_is_fresh(pair, settings, monkeypatch):
    anchor, other = pair
    settings.RECOMMENDER_EXPLAIN_CACHE_SECONDS = 60
    proof = evidence.CooccurrenceProof(3, "view", "view")
    assert _read([(anchor.pk, other.pk)]) == ({(anchor.pk, other.pk): proof}, 1)
    # Kept, and so is a pair with no stored count (no proof), once read.
    assert _read([(anchor.pk, other.pk)]) == ({(anchor.pk, other.pk): proof}, 0)
    assert _read([(other.pk, anchor.pk)]) == ({}, 1)
    assert _read([(other.pk, anchor.pk), (anchor.pk, other.pk)]) == (
        {(anchor.pk, other.pk): proof},
        0,
    )
    # Another min_count is another question.
    assert _read([(anchor.pk, other.pk)], min_count=4) == ({}, 1)
    # A replay of the past (as_of) always reads.
    found, queries = _read([(anchor.pk, other.pk)], as_of=timezone.now())
    assert found == {(anchor.pk, other.pk): proof} and queries == 1
    # Past its time the proof is read again, and a change is seen.
    ItemCooccurrence.objects.filter(item=anchor).update(count=4)
    clock = evidence.time.monotonic() + 61
    monkeypatch.setattr(evidence.time, "monotonic", lambda: clock)
    assert _read([(anchor.pk, other.pk)]) == (
        {(anchor.pk, other.pk): evidence.CooccurrenceProof(4, "view", "view")},
        1,
    )


def test_with_the_cache_off_every_call_reads(pair, settings):
    anchor, other = pair
    settings.RECOMMENDER_EXPLAIN_CACHE_SECONDS = 0
    assert _read([(anchor.pk, other.pk)])[1] == 1
    assert _read([(anchor.pk, other.pk)])[1] == 1
    assert evidence._proofs == {}
