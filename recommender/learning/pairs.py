"""Training pairs for fine-tuning an encoder, mined from the behaviour log.

* co-engagement: items a user engaged with positively close together in their history
  (each positive engagement with the user's previous ``ENGAGEMENT_WINDOW`` ones);
* search: a search's text and the first item the same user engaged with right after it."""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any

from django.db.models import QuerySet

from encoders import textprep
from recommender import behaviour
from recommender.learning import evaluation
from recommender.models import Behaviour, BehaviourKind, EncoderSpace, Item
from recommender.spaces.embedding import item_text

# Each positive engagement is paired with the user's previous three positive engagements.
ENGAGEMENT_WINDOW = 3


# A search is paired with the first positive engagement among the user's next three events,
# if it came within half an hour.
SEARCH_EVENTS = 3


SEARCH_WINDOW = timedelta(minutes=30)


class NoTrainingPairs(ValueError):
    """The behaviour log yields no pairs to train on."""


@dataclass
class TrainingPairs:
    """Deduplicated, shuffled text pairs (anchor, positive) and where they came from."""

    pairs: list[tuple[str, str]]
    co_engagement: int
    search: int
    events: int
    candidates: int

    def __len__(self) -> int:
        return len(self.pairs)


# Whether an event says the user liked the item: behaviour.is_positive, one definition.
is_positive = behaviour.is_positive


def user_histories(behaviours: QuerySet[Behaviour]) -> Iterator[list[Any]]:
    """Each user's events in time order, one list per user, streamed from the database."""
    rows = (
        behaviours.order_by("user_id", "occurred_at", "pk")
        .values_list("user_id", "kind", "item_id", "value", "text", "occurred_at", named=True)
        .iterator(chunk_size=5000)
    )
    for _, events in groupby(rows, key=attrgetter("user_id")):
        yield list(events)


def engagement_pairs(events: Iterable[Any]) -> Iterator[tuple[int, int]]:
    """(earlier item, later item) for positive engagements at most ``ENGAGEMENT_WINDOW``
    apart in one user's time-ordered positive engagements; never an item with itself."""
    recent: deque[int] = deque(maxlen=ENGAGEMENT_WINDOW)
    for event in events:
        if event.item_id is None or not is_positive(event.kind, event.value):
            continue
        for previous in recent:
            if previous != event.item_id:
                yield previous, event.item_id
        recent.append(event.item_id)


def search_pairs(events: Sequence[Any]) -> Iterator[tuple[str, int]]:
    """(query text, item) for each search followed by a positive engagement of the same
    user within ``SEARCH_EVENTS`` events and ``SEARCH_WINDOW``."""
    for index, event in enumerate(events):
        if event.kind != BehaviourKind.SEARCH:
            continue
        query = textprep.normalize(event.text or "")
        if not query:
            continue
        for later in events[index + 1 : index + 1 + SEARCH_EVENTS]:
            if later.occurred_at - event.occurred_at > SEARCH_WINDOW:
                break
            if later.item_id is not None and is_positive(later.kind, later.value):
                yield query, later.item_id
                break


class _BottomK:
    """A uniform sample of at most ``k`` distinct keys, in a random order fixed by ``seed``.

    Each key gets a pseudo-random priority from a keyed hash and the ``k`` smallest are
    kept, so repeats of a key collapse into one and memory stays O(k) however long the
    behaviour log is.
    """

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self._salt = hashlib.blake2b(str(seed).encode(), digest_size=16).digest()
        self._heap: list[tuple[int, tuple]] = []  # (-priority, key): largest on top
        self._kept: set[tuple] = set()

    def priority(self, key: tuple) -> int:
        digest = hashlib.blake2b(repr(key).encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big")

    def offer(self, key: tuple) -> None:
        if key in self._kept or self.k <= 0:
            return
        priority = self.priority(key)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (-priority, key))
            self._kept.add(key)
        elif priority < -self._heap[0][0]:
            _, evicted = heapq.heapreplace(self._heap, (-priority, key))
            self._kept.discard(evicted)
            self._kept.add(key)

    def sample(self) -> list[tuple[int, tuple]]:
        """(priority, key), ordered by priority: a seeded shuffle of the kept keys."""
        return sorted((-negated, key) for negated, key in self._heap)


def build_pairs(
    space: EncoderSpace,
    *,
    behaviours: QuerySet[Behaviour] | None = None,
    before: datetime | None = None,
    user_cuts: Mapping[int, datetime] | None = None,
    max_pairs: int = 5000,
    seed: int = 0,
) -> TrainingPairs:
    """Training pairs from ``behaviours`` (default: all), only events before ``before``
    and, for a user in ``user_cuts``, only that user's events before their own cut.

    Item texts are what ``space`` encodes (its text template), normalised as the encoder
    normalises them. Pairs are deduplicated (an item pair counts once whichever came
    first), sampled down to ``max_pairs`` and shuffled, all reproducibly from ``seed``.
    """
    if behaviours is None:
        behaviours = Behaviour.objects.all()
    if before is not None:
        behaviours = behaviours.filter(occurred_at__lt=before)
    sample = _BottomK(max_pairs, seed)
    events = candidates = 0
    for history in user_histories(behaviours):
        if user_cuts and (cut := user_cuts.get(history[0].user_id)) is not None:
            history = [event for event in history if event.occurred_at < cut]
        events += len(history)
        for a, b in engagement_pairs(history):
            sample.offer(("item", min(a, b), max(a, b)))
            candidates += 1
        for query, item_id in search_pairs(history):
            sample.offer(("search", query, item_id))
            candidates += 1

    kept = sample.sample()
    item_ids = {key[1] for _, key in kept if key[0] == "item"}
    item_ids |= {key[2] for _, key in kept}
    texts = {
        item.pk: textprep.normalize(item_text(item, space.text_template))
        for item in Item.objects.filter(pk__in=item_ids).only(
            "pk", "title", "category", "tags", "description", "translations"
        )
    }
    pairs: list[tuple[str, str]] = []
    counts = {"item": 0, "search": 0}
    for priority, key in kept:
        if key[0] == "item":
            first, second = texts.get(key[1], ""), texts.get(key[2], "")
            # Item pairs are symmetric; the loss is not, so orient each pair at random.
            pair = (first, second) if priority & 1 else (second, first)
        else:
            pair = (key[1], texts.get(key[2], ""))
        if pair[0] and pair[1] and pair[0] != pair[1]:
            pairs.append(pair)
            counts[key[0]] += 1
    return TrainingPairs(
        pairs=pairs,
        co_engagement=counts["item"],
        search=counts["search"],
        events=events,
        candidates=candidates,
    )


def leave_one_out_cuts(min_rating: float | None = None) -> dict[int, datetime]:
    """Each user's held-out moment under ``evaluate``'s leave-one-out protocol: the time
    of their last positive engagement. Training only on events before it keeps every
    user's held-out event, and whatever came with or after it, out of the pairs."""
    cases = evaluation.leave_one_out(max_users=None, min_rating=min_rating)
    return {case.user_id: case.as_of for case in cases}
