"""Full against incremental co-occurrence refresh, on the serving benchmark's data set.

Run by hand, after ``benchmarks/serving.py`` has built its data set (this script never
builds it):
    .venv/bin/python benchmarks/cooccurrence_refresh.py [--data-dir .recsite/bench-serving]
        [--batches 100,1000,5000] [--seed 0] [--keep-servers]

Uses the embedded PostgreSQL and Redis of the data dir (DEBUG=0). Steps:

1. a full ``refresh_cooccurrence()`` (what the hourly task ran every hour before), timed;
   it marks the newest event the table includes;
2. for each batch size N of ``--batches``: N new engaged events (view, click or purchase,
   each by a random existing user on a random item, at the current time: the shape of an
   hour of traffic), then ``refresh_cooccurrence_incremental()``, timed, with the items it
   recomputed and the rows it wrote. Batches accumulate, and each incremental refresh
   builds on the one before, as the hourly task does;
3. the rows of a sample of the recomputed items are compared with a full refresh run
   after the last batch (they must be equal), and that refresh is timed too;
4. the inserted events are deleted and the table refreshed again by the hourly task's
   rule, leaving the data set as it was (the deletion makes that refresh full, as it
   would in production; the script checks that it was).

Prints one line per step and a table: seconds, items recomputed, rows written, and the
ratio to the full refresh measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".recsite" / "bench-serving")
    parser.add_argument(
        "--batches",
        default="100,1000,5000",
        help="comma-separated numbers of new events, one incremental refresh after each",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-servers", action="store_true")
    args = parser.parse_args()
    try:
        args.batches = [int(n) for n in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: comma-separated whole numbers, not {args.batches!r}")
    if any(n <= 0 for n in args.batches):
        parser.error("--batches: every batch needs at least one event")
    return args


def _rows_of(items: list[int]) -> dict[int, set]:
    from recommender.models import ItemCooccurrence

    rows: dict[int, set] = {}
    for item, other, score, count in ItemCooccurrence.objects.filter(item_id__in=items).values_list(
        "item_id", "other_id", "score", "count"
    ):
        rows.setdefault(item, set()).add((other, round(score, 9), count))
    return rows


def run(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from recommender.models import Behaviour, CooccurrenceRefresh, EndUser, Item
    from recommender.serving import cooccurrence

    rng = random.Random(args.seed)
    users = list(EndUser.objects.values_list("id", flat=True))
    items = list(Item.objects.filter(is_active=True).values_list("id", flat=True))
    events = Behaviour.objects.count()
    print(
        f"{args.data_dir}: {len(items):,} items, {len(users):,} users, {events:,} events; "
        f"co-occurrence window {cooccurrence.cooccurrence_window()}"
    )
    started = time.monotonic()
    rows = cooccurrence.refresh_cooccurrence()
    full_seconds = time.monotonic() - started
    print(f"full refresh: {full_seconds:.1f} s, {rows:,} rows")

    results, inserted, recomputed = [], [], set()
    for size in args.batches:
        now = timezone.now()
        batch = [
            Behaviour(
                user_id=rng.choice(users),
                item_id=rng.choice(items),
                kind=rng.choice(["view", "click", "purchase"]),
                occurred_at=now,
            )
            for _ in range(size)
        ]
        inserted += [event.pk for event in Behaviour.objects.bulk_create(batch)]
        mark = CooccurrenceRefresh.objects.first().last_event_id
        recomputed |= set(cooccurrence.affected_items(mark))
        started = time.monotonic()
        # No share limit here: the point is its cost at every size (the hourly task runs a
        # full refresh instead above cooccurrence.INCREMENTAL_MAX_SHARE of the items).
        done = cooccurrence.refresh_cooccurrence_incremental(max_share=None)
        seconds = time.monotonic() - started
        if done is None:
            raise SystemExit("the incremental refresh found nothing to build on")
        results.append((size, seconds, *done))
        print(f"{size:,} new events: incremental {seconds:.1f} s, {done[0]:,} items, "
              f"{done[1]:,} rows")  # fmt: skip

    sample = rng.sample(sorted(recomputed), min(200, len(recomputed)))
    incremental_rows = _rows_of(sample)
    started = time.monotonic()
    cooccurrence.refresh_cooccurrence()
    after_seconds = time.monotonic() - started
    full_rows = _rows_of(sample)
    same = sum(incremental_rows.get(i) == full_rows.get(i) for i in sample)
    print(
        f"full refresh after the batches: {after_seconds:.1f} s; rows of {same} of "
        f"{len(sample)} sampled recomputed items equal to the full refresh's"
    )

    Behaviour.objects.filter(pk__in=inserted).delete()
    started = time.monotonic()
    kind = cooccurrence.scheduled_refresh()["kind"]
    took = time.monotonic() - started
    print(f"restored: {len(inserted):,} events deleted, {kind} refresh {took:.1f} s")
    if kind != "full":
        raise SystemExit("the refresh after deleting events was not full")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE recommender_behaviour")

    reference = (full_seconds + after_seconds) / 2
    print()
    print("| new events | incremental | items recomputed | rows written | vs full |")
    print("|---|---|---|---|---|")
    full = f"{full_seconds:.1f} / {after_seconds:.1f} s"
    print(f"| (full refresh) | {full} | {len(items):,} | {rows:,} | 1 |")
    for size, seconds, count, written in results:
        print(
            f"| {size:,} | {seconds:.1f} s | {count:,} | {written:,} | {seconds / reference:.2f} |"
        )
    if same != len(sample):
        raise SystemExit(f"{len(sample) - same} sampled items differ from the full refresh")


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir.resolve()
    if not (data_dir / "dataset.json").exists():
        raise SystemExit(
            f"no serving data set in {data_dir}: build it first with "
            "`.venv/bin/python benchmarks/serving.py` (this benchmark does not build it)"
        )
    testing.use_data_dir(data_dir, DEBUG="0", SECRET_KEY="bench-cooccurrence-not-a-secret")
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit("unset DATABASE_URL and CELERY_BROKER_URL: this uses embedded servers")
    with testing.own_services(data_dir, keep=args.keep_servers):
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        run(args)


if __name__ == "__main__":
    main()
