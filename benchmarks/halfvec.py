"""Half-precision HNSW index against the full-precision one, on the serving benchmark's
data set: index size, build time, bare top-10 latency and recall@10 against exact search.

Run by hand, after ``benchmarks/serving.py`` has built its data set (this script never
builds it):
    .venv/bin/python benchmarks/halfvec.py [--queries 200] [--seed 0]
        [--maintenance-work-mem 1GB] [--data-dir .recsite/bench-serving] [--keep-servers]

Uses the embedded PostgreSQL and Redis of ``.recsite/bench-serving`` (100,000 items x 384 d
in the active ``bench-serving`` space) with DEBUG=0 unless DEBUG is given; it migrates that
database (new columns only) and otherwise changes nothing but the temporary indexes below.

``measure(space, queries)`` is the part other code can call (``benchmarks/serving.py`` for
a ``--halfvec`` run). Per precision (vector, then halfvec):

1. build: a plain ``CREATE INDEX`` (not CONCURRENTLY: nothing writes meanwhile) of the
   space's index definition (``spaces.indexes.hnsw_index``: the same partial ``WHERE
   space_id = N``, ``(embedding::vector(384)) vector_cosine_ops`` or ``(embedding::
   halfvec(384)) halfvec_cosine_ops``, m 16, ef_construction 64) under a temporary name,
   with ``maintenance_work_mem`` as serving.py builds (1GB); timed, then its
   ``pg_relation_size``;
2. search: ``nearest.vector_query(space, v)[:10]`` for each query vector, in a transaction
   with ``SET LOCAL hnsw.ef_search = E`` for each E of ``efs`` (40: pgvector's default;
   1000: what serving uses), after one untimed pass over every query to warm the index;
   the halfvec queries go through a copy of the space whose ``index_precision`` says
   halfvec (unsaved), so they cast as a halfvec space's do. Exactly one index of the
   precision exists while it is searched: when the space's own index has that precision,
   the temporary copy is dropped after step 1 and the searches use the serving index;
   the plan is checked and the index it uses printed;
3. recall@10 of those same results against exact search (numpy brute force over every
   stored, full-precision vector of the space; cross-checked against PostgreSQL with
   ``enable_indexscan = off`` on 3 queries).

Queries: the stored profile vectors of ``--queries`` random users (seeded), as serving.py
draws its queries. Every temporary index is dropped at the end (and any left by an
interrupted run at the start).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".recsite" / "bench-serving"
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402

# Production's DEBUG=0 unless asked: with DEBUG on, Django keeps the SQL of every query.

SPACE_NAME = "bench-serving"  # benchmarks/serving.py's space
PRECISIONS = ("vector", "halfvec")
TEMP_PREFIX = "bench_halfvec_tmp_"
WARMUP_EF = 1000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200, help="profile vectors searched")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--maintenance-work-mem",
        default="1GB",
        help="for the index builds (serving.py's default: the graph must fit)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="the data set serving.py built (e.g. .recsite/bench-serving-1m; give its "
        "--maintenance-work-mem too, 6GB for 1M items of 384 d)",
    )
    parser.add_argument("--keep-servers", action="store_true")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    return args


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min), {os.cpu_count()} CPUs"


# --- Exact search ---------------------------------------------------------------------------


def space_matrix(space) -> tuple[np.ndarray, np.ndarray]:
    """Every stored vector of ``space`` (binary, full precision), L2-normalised, and their
    item ids."""
    from django.db import connection

    from recommender.models import ItemVector
    from recommender.spaces import vector_io

    rows = vector_io.fetch(
        f"SELECT item_id, embedding FROM {ItemVector._meta.db_table} WHERE space_id = %s",
        [space.pk],
        using=connection,
    )
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    matrix = np.stack([vector_io.decode(row[1]) for row in rows])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return ids, matrix


def exact_top(ids: np.ndarray, matrix: np.ndarray, queries: list[np.ndarray], k: int):
    """The exact top-``k`` item ids of each query by cosine (numpy brute force)."""
    found = []
    for start in range(0, len(queries), 64):
        block = np.stack(queries[start : start + 64]).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        sims = block @ matrix.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for row, candidates in zip(sims, top, strict=True):
            found.append(ids[candidates[np.argsort(-row[candidates])]].tolist())
    return found


def exact_sql(space, vector, k: int) -> list[int]:
    """PostgreSQL's own exact top-``k`` (index scans off), to cross-check numpy."""
    from django.db import connection, transaction

    from recommender.serving import nearest

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
        return list(nearest.vector_query(space, vector).values_list("item_id", flat=True)[:k])


# --- Indexes --------------------------------------------------------------------------------


def as_precision(space, precision: str):
    """An unsaved copy of ``space`` whose queries cast to ``precision``."""
    copied = copy.copy(space)
    copied.index_precision = precision
    return copied


def temp_name(space, precision: str) -> str:
    return f"{TEMP_PREFIX}{precision}_{space.pk}"


def drop_temp_indexes(space) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for precision in PRECISIONS:
            cursor.execute(f"DROP INDEX IF EXISTS {temp_name(space, precision)}")


def build_temp_index(space, precision: str, maintenance_work_mem: str) -> tuple[float, int]:
    """The space's index definition in ``precision`` under a temporary name, built with a
    plain CREATE INDEX; its seconds and bytes."""
    from django.db import connection

    from recommender.models import ItemVector
    from recommender.spaces import indexes

    index = indexes.hnsw_index(space, precision)
    index.name = temp_name(space, precision)
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = %s", [maintenance_work_mem])
    try:
        started = time.perf_counter()
        with connection.schema_editor(atomic=False) as editor:
            editor.add_index(ItemVector, index)
        seconds = time.perf_counter() - started
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET maintenance_work_mem")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [index.name])
        size = cursor.fetchone()[0]
    return seconds, int(size)


def plan_index(space, vector) -> str:
    """The index the plan of a bare top-10 uses (or the plan's first line)."""
    from django.db import connection, transaction

    from recommender.serving import nearest

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = 40")
        plan = nearest.vector_query(space, vector).values_list("item_id")[:10].explain()
    for line in plan.splitlines():
        if " using " in line.lower():
            return line.split(" using ", 1)[1].split()[0]
    return "no index: " + plan.splitlines()[0].strip()


# --- Search ---------------------------------------------------------------------------------


def top10(space, vector, ef: int) -> list[int]:
    """Bare top-10 through the ORM, as serving.py's (a) runs it."""
    from django.db import connection, transaction

    from recommender.serving import nearest

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef])
        rows = list(nearest.vector_query(space, vector).values_list("item_id", "distance")[:10])
    return [item_id for item_id, _ in rows]


def search(space, queries, exact, efs) -> dict[int, dict[str, float]]:
    """Per ef: p50/p99 of bare top-10 in ms and mean/min recall@10 against ``exact``."""
    for vector in queries:  # warm the index (and the planner's caches)
        top10(space, vector, WARMUP_EF)
    out = {}
    for ef in efs:
        times, hits = [], []
        for vector, want in zip(queries, exact, strict=True):
            started = time.perf_counter()
            found = top10(space, vector, ef)
            times.append(time.perf_counter() - started)
            hits.append(len(set(found) & set(want[:10])) / 10)
        out[ef] = {
            "p50_ms": pct(times, 50) * 1000,
            "p99_ms": pct(times, 99) * 1000,
            "recall10": statistics.fmean(hits),
            "recall10_min": min(hits),
        }
    return out


def measure(
    space,
    queries: list[np.ndarray],
    efs: Sequence[int] = (40, 1000),
    *,
    maintenance_work_mem: str = "1GB",
) -> dict:
    """Vector against halfvec HNSW on ``space``'s stored vectors (see the module docstring):
    ``{"n", "vectors", "sql_check", "vector": {...}, "halfvec": {...}}``, each precision
    with its ``index`` (the one searched), ``size_bytes``, ``build_s`` and, under ``efs``,
    per ef: ``p50_ms``, ``p99_ms``, ``recall10``, ``recall10_min``. Drops its temporary
    indexes before it returns, whatever happens."""
    from recommender import spaces

    started = time.perf_counter()
    ids, matrix = space_matrix(space)
    exact = exact_top(ids, matrix, queries, 10)
    checks = min(3, len(queries))
    agree = sum(set(exact_sql(space, queries[i], 10)) == set(exact[i]) for i in range(checks))
    out: dict[str, Any] = {
        "n": len(queries),
        "vectors": len(ids),
        "exact_s": time.perf_counter() - started,
        "sql_check": f"{agree}/{checks}",
    }
    drop_temp_indexes(space)
    try:
        for precision in PRECISIONS:
            build_s, size = build_temp_index(space, precision, maintenance_work_mem)
            searched = as_precision(space, precision)
            if spaces.index_exists(searched):
                # The serving index has this precision: search it, with no twin beside it.
                drop_temp_indexes(space)
            out[precision] = {
                "build_s": build_s,
                "size_bytes": size,
                "index": plan_index(searched, queries[0]),
                "efs": search(searched, queries, exact, efs),
            }
            drop_temp_indexes(space)
    finally:
        drop_temp_indexes(space)
    return out


# --- The run --------------------------------------------------------------------------------


def draw_queries(space, n: int, seed: int) -> list[np.ndarray]:
    """The stored profile vectors of ``n`` random users (as serving.py draws them)."""
    from recommender.models import UserProfile
    from recommender.serving import profiles

    rng = np.random.default_rng(seed + 1)
    user_pks = list(
        UserProfile.objects.filter(space=space)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    picked = [int(pk) for pk in rng.choice(user_pks, size=min(n, len(user_pks)), replace=False)]
    vectors = [profiles.load(pk, space).vector() for pk in picked]
    return [np.asarray(v, dtype=np.float32) for v in vectors if v is not None]


def serving_space(data_dir: Path):
    """Migrate the data set's database (new columns only) and return its active
    ``bench-serving`` space, printing when the data set was built; exits with one line if
    the data set is incomplete."""
    from django.core.management import call_command

    from recommender.models import EncoderSpace, ItemVector

    call_command("migrate", verbosity=0)
    space = EncoderSpace.objects.filter(name=SPACE_NAME, is_active=True).first()
    if space is None or not ItemVector.objects.filter(space=space).exists():
        raise SystemExit(
            "the serving data set is incomplete (no active bench-serving space with "
            "vectors): rebuild it with `benchmarks/serving.py --rebuild`"
        )
    marker = json.loads((data_dir / "dataset.json").read_text())
    print(f"data set built {marker.get('built_at')}")
    return space


def describe(space, maintenance_work_mem: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
        cursor.execute("SHOW max_parallel_maintenance_workers")
        workers = cursor.fetchone()[0]
    return (
        f"space {space.name} ({space.dim}d, its own index: {space.index_precision}); "
        f"pgvector {version}, shared_buffers {buffers}, max_parallel_maintenance_workers "
        f"{workers}, maintenance_work_mem for the builds {maintenance_work_mem}, "
        f"DEBUG={os.environ['DEBUG']}"
    )


def report(result: dict, efs: Sequence[int]) -> None:
    vector, half = result["vector"], result["halfvec"]
    rows = [
        (
            "index size (pg_relation_size)",
            f"{vector['size_bytes'] / 2**20:,.1f} MiB",
            f"{half['size_bytes'] / 2**20:,.1f} MiB",
            f"{half['size_bytes'] / vector['size_bytes']:.2f}x",
        ),
        (
            "build (plain CREATE INDEX)",
            f"{vector['build_s']:.1f} s",
            f"{half['build_s']:.1f} s",
            f"{half['build_s'] / vector['build_s']:.2f}x",
        ),
    ]
    for ef in efs:
        v, h = vector["efs"][ef], half["efs"][ef]
        rows.append(
            (
                f"bare top-10 p50 / p99, ef_search {ef}",
                f"{v['p50_ms']:.2f} / {v['p99_ms']:.2f} ms",
                f"{h['p50_ms']:.2f} / {h['p99_ms']:.2f} ms",
                f"{h['p50_ms'] / v['p50_ms']:.2f}x (p50)",
            )
        )
        rows.append(
            (
                f"recall@10 vs exact (min), ef_search {ef}",
                f"{v['recall10']:.4f} ({v['recall10_min']:.1f})",
                f"{h['recall10']:.4f} ({h['recall10_min']:.1f})",
                f"{h['recall10'] - v['recall10']:+.4f}",
            )
        )
    print(f"\n| {result['n']} queries, {result['vectors']:,} vectors | vector | halfvec | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\nsearched: vector on {vector['index']}, halfvec on {half['index']}; numpy exact "
        f"agrees with PostgreSQL's on {result['sql_check']} queries"
    )


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir
    # Here, not at import: benchmarks/serving.py imports this module for --halfvec after
    # pointing the process at its own --data-dir.
    testing.use_data_dir(data_dir, DEBUG="0", SECRET_KEY="bench-halfvec-not-a-secret")
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this benchmark uses the embedded "
            f"servers of {data_dir}"
        )
    if not (data_dir / "dataset.json").exists():
        raise SystemExit(
            f"no serving data set in {data_dir}: build it first with "
            "`.venv/bin/python benchmarks/serving.py` (this benchmark does not build it)"
        )
    efs = (40, 1000)
    with testing.own_services(data_dir, keep=args.keep_servers):
        import django

        django.setup()
        from django.db import connection

        try:
            space = serving_space(data_dir)
            print(describe(space, args.maintenance_work_mem))
            print(f"load average at start: {load()}")
            queries = draw_queries(space, args.queries, args.seed)
            started = time.perf_counter()
            result = measure(space, queries, efs, maintenance_work_mem=args.maintenance_work_mem)
            print(f"measured in {time.perf_counter() - started:.0f}s; load average: {load()}")
            report(result, efs)
        finally:
            connection.close()


if __name__ == "__main__":
    main()
