"""Training pairs for fine-tuning an encoder, mined from the behaviour log.

* co-engagement: items a user engaged with positively close together in their history
  (each positive engagement with the user's previous ``ENGAGEMENT_WINDOW`` ones);
* search: a search's text and the first item the same user engaged with right after it.

No item (or search text) appears in more than ``MAX_PAIRS_PER_ITEM`` pairs: otherwise the
popular items flood the pairs and training pulls everything towards them. A share of the
pairs, or with ``--leave-one-out`` the validation split's held-out events, is kept back
(``ValidationPairs``) to check that training made retrieval better."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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


# An item (or search text) is in at most this many pairs: a film everyone rated would
# otherwise be in most co-engagement pairs, and in-batch training pulls all of them to it.
MAX_PAIRS_PER_ITEM = 10


# The sample keeps this many times ``max_pairs`` before the per-item cap is applied, so
# that the cap leaves close to ``max_pairs`` when popular items are in most of them.
CAP_OVERSAMPLING = 10


# Share of the pairs held out (whole anchors at a time) to validate fine-tuning on.
VALIDATION_SHARE = 0.1


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
    # Pairs the sample kept but ``max_pairs_per_item`` then left out.
    over_item_cap: int = 0
    # The texts of every item in the pairs (sorted): what validation ranks positives among.
    item_texts: list[str] = field(default_factory=list)

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


def _item_texts(space: EncoderSpace, item_ids: Iterable[int]) -> dict[int, str]:
    """Each item's text as ``space`` encodes it (its text template), normalised."""
    return {
        item.pk: textprep.normalize(item_text(item, space.text_template))
        for item in Item.objects.filter(pk__in=set(item_ids)).only(
            "pk", "title", "category", "tags", "description", "translations"
        )
    }


def _within_cap(kept: list[tuple[int, tuple]], cap: int | None, limit: int) -> list:
    """The first ``limit`` of ``kept`` (in its seeded order) in which no item or search
    text is in more than ``cap`` pairs."""
    if cap is None:
        return kept[:limit]
    uses: Counter[tuple] = Counter()
    chosen = []
    for priority, key in kept:
        if len(chosen) == limit:
            break
        first = ("item", key[1]) if key[0] == "item" else ("search", key[1])
        sides = [first, ("item", key[2])]
        if all(uses[side] < cap for side in sides):
            uses.update(sides)
            chosen.append((priority, key))
    return chosen


def build_pairs(
    space: EncoderSpace,
    *,
    behaviours: QuerySet[Behaviour] | None = None,
    before: datetime | None = None,
    user_cuts: Mapping[int, datetime] | None = None,
    max_pairs: int = 5000,
    max_pairs_per_item: int | None = MAX_PAIRS_PER_ITEM,
    seed: int = 0,
) -> TrainingPairs:
    """Training pairs from ``behaviours`` (default: all), only events before ``before``
    and, for a user in ``user_cuts``, only that user's events before their own cut.

    Item texts are what ``space`` encodes (its text template), normalised as the encoder
    normalises them. Pairs are deduplicated (an item pair counts once whichever came
    first), sampled down to ``max_pairs`` with no item or search text in more than
    ``max_pairs_per_item`` of them (None: no cap), and shuffled, all reproducibly from
    ``seed``. With a cap, fewer than ``max_pairs`` may remain where popular items are in
    most pairs: that is the point.
    """
    if max_pairs_per_item is not None and max_pairs_per_item < 1:
        raise ValueError("max_pairs_per_item must be >= 1 (or None for no cap)")
    if behaviours is None:
        behaviours = Behaviour.objects.all()
    if before is not None:
        behaviours = behaviours.filter(occurred_at__lt=before)
    oversampling = 1 if max_pairs_per_item is None else CAP_OVERSAMPLING
    sample = _BottomK(max_pairs * oversampling, seed)
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

    sampled = sample.sample()
    kept = _within_cap(sampled, max_pairs_per_item, max_pairs)
    # Only what the cap removed counts, not what --max-pairs would have removed anyway.
    over_cap = min(len(sampled), max_pairs) - len(kept)
    item_ids = {key[1] for _, key in kept if key[0] == "item"}
    texts = _item_texts(space, item_ids | {key[2] for _, key in kept})
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
        over_item_cap=over_cap,
        item_texts=sorted({text for text in texts.values() if text}),
    )


@dataclass
class ValidationPairs:
    """(anchor, positive) text pairs never trained on, and the item texts each positive is
    ranked among (the positives and item anchors among them)."""

    pairs: list[tuple[str, str]]
    candidates: list[str]
    # How they were chosen, for the report: "N% of the anchors", "leave-one-out".
    source: str

    def __len__(self) -> int:
        return len(self.pairs)

    @classmethod
    def among(
        cls, pairs: list[tuple[str, str]], training: TrainingPairs, source: str
    ) -> ValidationPairs:
        """``pairs`` ranked among every item text of ``training`` and their own positives."""
        candidates = sorted({*training.item_texts, *(positive for _, positive in pairs)})
        return cls(pairs, candidates, source)


def hold_out(
    training: TrainingPairs, share: float = VALIDATION_SHARE, seed: int = 0
) -> tuple[list[tuple[str, str]], ValidationPairs]:
    """Split ``training.pairs`` into pairs to train on and pairs to validate on.

    Whole anchors are held out, in an order fixed by ``seed``, until ``share`` of the pairs
    are: the validation then asks about anchors the model was never trained to pull
    towards anything. At least one anchor is held out and one kept, when there are two.
    """
    if not 0 < share < 1:
        raise ValueError("share must be between 0 and 1")
    by_anchor: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in training.pairs:
        by_anchor[pair[0]].append(pair)
    order = _BottomK(len(by_anchor), seed)
    for anchor in by_anchor:
        order.offer((anchor,))
    anchors = [key[0] for _, key in order.sample()]
    held: set[str] = set()
    count = 0
    for anchor in anchors[:-1]:
        if held and count >= share * len(training.pairs):
            break
        held.add(anchor)
        count += len(by_anchor[anchor])
    train = [pair for pair in training.pairs if pair[0] not in held]
    validation = [pair for pair in training.pairs if pair[0] in held]
    return train, ValidationPairs.among(
        validation, training, f"{len(held)} held-out anchors' pairs ({share:.0%} of them)"
    )


def leave_one_out_validation(
    space: EncoderSpace, min_rating: float | None = None
) -> tuple[dict[int, datetime], list[tuple[str, str]]]:
    """Training cuts and validation pairs for ``finetune --leave-one-out``.

    The validation pairs are ``evaluate``'s validation split: each user's second-to-last
    positive engagement, paired with the user's last positive engagement before it. The
    cuts keep it, and the test target after it, out of training: each user's validation
    cut, or test cut for a user with too few engagements for the validation split. The
    test split is never looked at, so ``evaluate`` can report it afterwards.
    """
    cuts = leave_one_out_cuts(min_rating)
    cases = evaluation.split("validation", max_users=None, min_rating=min_rating)
    cuts.update({case.user_id: case.as_of for case in cases})
    if not cases:
        return cuts, []
    by_user = {case.user_id: case for case in cases}
    earlier = (
        Behaviour.objects.filter(behaviour.positive_q(min_rating), user_id__in=list(by_user))
        .order_by("user_id", "-occurred_at", "-pk")
        .values_list("user_id", "item_id", "occurred_at")
    )
    anchors: dict[int, int] = {}
    for user_id, item_id, occurred_at in earlier.iterator(chunk_size=20000):
        if user_id not in anchors and occurred_at < by_user[user_id].as_of:
            anchors[user_id] = item_id
    targets = {user_id: next(iter(by_user[user_id].targets)) for user_id in anchors}
    texts = _item_texts(space, [*anchors.values(), *targets.values()])
    found = [(texts.get(anchors[user], ""), texts.get(targets[user], "")) for user in anchors]
    return cuts, [(a, b) for a, b in found if a and b and a != b]


def leave_one_out_cuts(min_rating: float | None = None) -> dict[int, datetime]:
    """Each user's held-out moment under ``evaluate``'s leave-one-out protocol: the time
    of their last positive engagement. Training only on events before it keeps every
    user's held-out event, and whatever came with or after it, out of the pairs."""
    cases = evaluation.leave_one_out(max_users=None, min_rating=min_rating)
    return {case.user_id: case.as_of for case in cases}
