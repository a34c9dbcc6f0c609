"""A list's vector searches in process memory against the same searches in SQL, and what
reading the in-memory snapshot costs (``recommender/serving/memory_search.py``).

Run by hand, after ``benchmarks/serving.py`` has built a data set (this script never
builds one):
    .venv/bin/python benchmarks/memory_search.py [--data-dir .recsite/bench-serving-small]
        [--queries 50] [--reads 5]

For ``--queries`` query vectors (a random stored vector plus a little noise, seeded), one
after the other in this process: a list's two searches of 50 rows as serving runs them
(the profile's at ``RECOMMENDER_HNSW_EF_SEARCH``, the recent items' at
``RECOMMENDER_RECENT_EF_SEARCH``, with three excluded ids) through
``nearest.nearest_searches`` (SQL, with the cosine features), then through
``Snapshot.search`` (memory); and ``--reads`` reads of the snapshot itself. Prints p50s
and the snapshot's size. DEBUG=0 unless DEBUG is given; changes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".recsite" / "bench-serving-small")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    if not (data_dir / "dataset.json").exists():
        raise SystemExit(
            f"no data set in {data_dir}: build one with `benchmarks/serving.py --data-dir "
            f"{data_dir} --items 5000 --users 500` first"
        )
    testing.use_data_dir(data_dir, DEBUG="0", SECRET_KEY="bench-memory-search-not-a-secret")
    with testing.own_services(data_dir):
        import django

        django.setup()
        import numpy as np
        from django.utils import timezone

        from recommender.models import EncoderSpace
        from recommender.serving import memory_search
        from recommender.serving.filters import Filters
        from recommender.serving.nearest import Search, nearest_searches

        space = EncoderSpace.objects.filter(is_active=True).first()
        if space is None:
            raise SystemExit("the data set has no active space")
        reads = []
        for _ in range(args.reads):
            started = time.perf_counter()
            snapshot = memory_search._load(space, 10**9, None, 0.0, 0)
            reads.append(time.perf_counter() - started)
        count, dim = snapshot.stored.shape
        print(
            f"{count:,} vectors of {dim} d in space {space.name}; the snapshot holds "
            f"{2 * snapshot.stored.nbytes / 2**20:.1f} MiB of vectors (stored and unit)"
        )
        rng = np.random.default_rng(0)
        queries = [
            snapshot.stored[i] + 0.1 * rng.normal(size=dim)
            for i in rng.integers(0, count, args.queries)
        ]
        excluded = {int(i) for i in snapshot.ids[:3]}
        now = timezone.now()

        def searches(vector):
            return [Search(vector, 50), Search(vector, 50, memory_search.conf.RECENT_EF_SEARCH)]

        in_sql, in_memory = [], []
        for vector in queries:
            started = time.perf_counter()
            nearest_searches(searches(vector), space=space, filters=Filters(exclude_ids=excluded))
            in_sql.append(time.perf_counter() - started)
            started = time.perf_counter()
            snapshot.search(searches(vector), excluded, recommendable=True, now=now)
            in_memory.append(time.perf_counter() - started)
        print(f"both searches in SQL     p50 {statistics.median(in_sql) * 1000:8.2f} ms")
        print(f"both searches in memory  p50 {statistics.median(in_memory) * 1000:8.2f} ms")
        print(
            f"reading the snapshot     p50 {statistics.median(reads) * 1000:8.2f} ms "
            f"({args.reads} reads; {statistics.median(reads) / count * 1e6:.1f} µs a vector)"
        )


if __name__ == "__main__":
    main()
