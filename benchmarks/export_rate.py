"""Export and restore rates (``manage.py export`` / ``import_all``) on MovieLens latest-small.

Run by hand:  .venv/bin/python benchmarks/export_rate.py [--data DIR] [--keep-servers]

Own embedded servers under .recsite/bench-export (their tables are emptied; the servers
this run started are stopped at the end). Imports movies.csv + tags.csv as items and
ratings.csv + tags.csv as behaviours (the movielens presets), declares a hashing space,
then times an export into a temporary folder and, after emptying the site, its
restore. Prints rows/s for each kind, each way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".recsite" / "bench-export"
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402

testing.use_data_dir(DATA_DIR, DEBUG="0", SECRET_KEY="bench-export-not-a-secret")


def empty_site() -> None:
    from recommender.models import (
        Behaviour,
        EncoderSpace,
        EndUser,
        Item,
        ItemAttribute,
        Scenario,
        ServedList,
    )

    for model in (Behaviour, ServedList, Scenario, Item, EndUser, ItemAttribute, EncoderSpace):
        model.objects.all().delete()


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>12,.0f} rows/s" if rows and seconds > 0 else f"{'-':>12} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/movielens-latest-small"
    )
    parser.add_argument("--keep-servers", action="store_true")
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL"):
        raise SystemExit("unset DATABASE_URL: this benchmark uses its own servers")
    with testing.own_services(DATA_DIR, keep=args.keep_servers):
        import django

        django.setup()
        from django.core.management import call_command

        from recommender import spaces
        from recommender.ingest import backup, movielens
        from recommender.ingest.behaviours import import_behaviours
        from recommender.ingest.items import import_items
        from recommender.models import Scenario

        call_command("migrate", verbosity=0)
        empty_site()
        items = import_items(movielens.movielens_items(args.data))
        behaviours = import_behaviours(movielens.movielens_behaviours(args.data))
        space = spaces.create_space("bench-hashing", "hashing", {"dim": 64}, activate=True)
        Scenario.objects.create(name="home", space=space)
        print(
            f"loaded MovieLens: {items.rows:,} items, {behaviours.rows:,} behaviours "
            f"({behaviours.users_created} users)"
        )
        with tempfile.TemporaryDirectory(prefix="recsite-export-") as folder:
            started = time.perf_counter()
            manifest = backup.export_site(Path(folder))
            export_s = time.perf_counter() - started
            size = sum(p.stat().st_size for p in Path(folder).iterdir())
            empty_site()
            started = time.perf_counter()
            report = backup.import_site(Path(folder))
            import_s = time.perf_counter() - started
        counts = manifest["counts"]
        print(f"{'kind':<12}{'rows':>10}  {'export':>19}  {'import_all':>19}")
        for kind in backup.KINDS:
            print(
                f"{kind:<12}{counts[kind]:>10,}  "
                f"{rate(counts[kind], manifest['seconds_per_kind'][kind])}  "
                f"{rate(counts[kind], report.seconds[kind])}"
            )
        total = sum(counts.values())
        print(
            f"{'all':<12}{total:>10,}  {rate(total, export_s)}  {rate(total, import_s)}"
            f"   ({size / 2**20:.1f} MiB of JSONL; export {export_s:.1f}s, import_all "
            f"{import_s:.1f}s incl. {report.cooccurrence_rows:,} co-occurrence rows)"
        )


if __name__ == "__main__":
    main()
