"""Import rate of the behaviour importer on the full MovieLens latest-small ratings.

Run by hand:  .venv/bin/python benchmarks/import_rate.py [--data DIR] [--repeat 3]

Uses its own embedded servers under .recsite/bench (or DATABASE_URL, whose tables it
empties: never point it at a database you care about). Prints rows/s for each run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RECSITE_DATA_DIR", str(ROOT / ".recsite" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/movielens-latest-small"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    from recommender.ingest import movielens
    from recommender.ingest.behaviours import import_behaviours
    from recommender.ingest.files import read_rows
    from recommender.ingest.items import import_items
    from recommender.models import Behaviour, EndUser, Item

    call_command("migrate", verbosity=0)
    Behaviour.objects.all().delete()
    EndUser.objects.all().delete()
    Item.objects.all().delete()

    started = time.perf_counter()
    items = import_items(movielens.movielens_items(args.data))
    print(
        f"items (movies.csv + tags.csv): {items.rows} rows in {items.seconds:.2f}s "
        f"= {items.rows_per_second:,.0f} rows/s"
    )

    ratings = args.data / "ratings.csv"
    mapping = {"user": "userId", "item": "movieId", "value": "rating", "occurred_at": "timestamp"}
    rates = []
    for run in range(1, args.repeat + 1):
        Behaviour.objects.all().delete()
        EndUser.objects.all().delete()
        started = time.perf_counter()
        report = import_behaviours(read_rows(ratings), mapping=mapping, default_kind="rating")
        elapsed = time.perf_counter() - started
        rates.append(report.rows / elapsed)
        print(
            f"run {run}: ratings.csv {report.rows:,} rows ({report.users_created} new users) "
            f"in {elapsed:.2f}s = {report.rows / elapsed:,.0f} rows/s"
        )
    print(
        f"median: {statistics.median(rates):,.0f} rows/s over {len(rates)} runs "
        f"(read + validate + users + COPY + commit)"
    )


if __name__ == "__main__":
    main()
