"""Serving latency at catalogue scale: bare HNSW search, ANN recall, the recommendations
endpoint and event ingestion, measured in one run against the same data.

Run by hand:
    .venv/bin/python benchmarks/serving.py [--items 100000] [--users 10000] [--dim 384]
        [--queries 300] [--recall-queries 200] [--rebuild] [--profile] [--keep-servers]
        [--no-filtered | --only-filtered] [--filtered-queries 200] [--halfvec]
        [--data-dir .recsite/bench-serving] [--clusters 200]
        [--maintenance-work-mem auto] [--index-workers 2]

Uses its own embedded PostgreSQL and Redis under --data-dir, .recsite/bench-serving by
default (it refuses to run with DATABASE_URL or CELERY_BROKER_URL set, because it empties
its database). A million items: ``--data-dir .recsite/bench-serving-1m --items 1000000
--users 100000 --clusters 2000`` (2,000 clusters keep ~500 items a cluster, as 200 do at
100k; the build takes about 16 minutes on the 2-CPU development machine).

Data (built once, reused while ``dataset.json`` and the row counts match; ``--rebuild``
forces it): N items with Chinese product-like titles in 50 categories and vectors that are
clustered (200 Gaussian centres, item = centre + noise, L2-normalised) written straight into
an encoder space of the ``hashing`` plugin with ``dim`` = --dim (its encoder is never
called); U users with 20 engaged events each on items of 1-3 clusters (Zipf-like item
popularity, timestamps spread over the last 60 days), their stored profiles, and the
co-occurrence table. Items, users, vectors and events go in with COPY (explicit ids,
foreign-key triggers off for the session; the item table's GIN indexes are built after the
load); the HNSW index is dropped before the vectors load and built afterwards, in one
plain (not concurrent) parallel build with --maintenance-work-mem (default: about 3x the
index's expected size) and --index-workers; the profiles are computed in bulk with numpy in
``profiles.recompute``'s arithmetic (``benchmarks/_bulk_build.py``), written with one COPY,
and 50 random users' are checked against ``profiles.recompute`` (the build fails if they
differ); the co-occurrence table is the library's ``refresh_cooccurrence()``. Every stage
prints its time and rate.

Measured, in this order, so that the ratios come from one run on one machine state
(first two floors: a ``SELECT 1`` round trip and a one-row INSERT + COMMIT):
(a)  bare HNSW top-10: ``nearest.vector_query(space, v)[:10]`` through the ORM in a
     transaction with ``SET LOCAL hnsw.ef_search = E``, v = stored profile vectors of random
     users; once before and once after the endpoint runs (the machine is shared). E is what
     serving uses (``nearest.ef_search``: RECOMMENDER_HNSW_EF_SEARCH, default 1000); the
     targets are judged at E. Also at pgvector's default ef_search 40, for reference;
(b)  recall@10 of (a) against exact search (numpy brute force over every vector of the
     space, cross-checked against PostgreSQL with ``enable_indexscan = off``), at
     ef_search 40 and at E; recall@100 at ``ef_search(100)`` (serving asks for
     RECOMMENDER_CANDIDATES_PER_SOURCE, 50 by default, at the same E), recall@10 at ef
     1000, and the ef-40 recall split by how
     many clusters the user engaged with (a profile blending several interests lies
     between clusters);
(c)  ``GET /api/v1/users/{id}/recommendations?k=10`` against gunicorn started here
     (``recsite.wsgi:application``, 2 sync workers, 127.0.0.1, no API key required),
     sequential requests for random users, one new connection each (gunicorn's sync worker
     closes it); and the same requests through Django's test client in this process, then
     once more with serving's helper connection on and off (RECOMMENDER_PARALLEL_RETRIEVAL,
     alternating per request: recommender/serving/helper_connection.py), and with the
     served-list log on and off (RECOMMENDER_LOG_SERVED_LISTS: the cost of the
     recommendation_id, target <= 1.1x and <= 1 ms at p50);
(c') lists computed ahead (RECOMMENDER_LIST_REFRESH_SECONDS): gunicorn with the list cache
     and the refresh on, and one Celery worker; per user a GET, a view event POST, a wait
     until the worker has the next list in the cache (the lag; none ready within 5 s is
     "late"), then the timed GET. The ratio target is judged on it when it runs
     (``--no-ahead``: on (c));
(d)  ``POST /api/v1/behaviours``, one view event per request with a fresh event_id (the
     events are deleted and the profiles they touched recomputed at the end);
(e)  filtered serving (business rules, ``recommender/serving/rules.py``; after the rest,
     about 5 minutes on the 2-CPU development machine; ``--no-filtered`` skips it,
     ``--only-filtered`` runs nothing else, on the existing data set): two rule filters
     computed from the data's own prices, a selective one (``price > <99th percentile>``,
     ~1 % of the items) and a broad one (``price < <median>``, ~50 %), each measured twice:
     without an index on the price and with the expression index ``index_attributes()``
     builds for ``{"price": {"type": "number", "indexed": true}}`` (the planner then knows
     the filter's selectivity and may prefer the btree and an exact sort to the HNSW
     index). Per filter and index state: the bare filtered query ``nearest.nearest_rows(v,
     10, filters=business.with_rules(Filters(), [rule]))`` (the SQL serving runs: the item
     join, the compiled rule, iterative scan in relaxed order, ``ef_search(10)``), p50/p95
     before and after the endpoint runs, and at serving's own k
     (RECOMMENDER_CANDIDATES_PER_SOURCE); its recall@10 against the exact filtered top-10
     (numpy brute force over the vectors of the items that pass, cross-checked against
     PostgreSQL with ``enable_indexscan = off``), and how many lists came back short; ``GET
     …/recommendations?k=10&filter=<rule>`` in-process and through gunicorn (every item
     returned is checked against the rule); and the ratio endpoint p50 / bare filtered p50.
     Targets: recall@10 >= 0.95 and the ratio <= 2x (PASS/MISS). For reference, the bare
     query without a rule and the endpoint without a filter, for the same users, before and
     after. The index is dropped again at the end, so every run starts without it.

When a target is missed (or with --profile), the in-process endpoint is broken down by
wrapping each stage of ``candidates.candidate_pool`` / ``pipeline.recommend`` and of the
view in a timer (exclusive times), and cProfile is run over a few requests; the event POST
likewise; in (e), the bare and the served filtered queries are run under EXPLAIN ANALYZE,
the filtered endpoint is broken down the same way, and ``popularity.top_items``' filter
check is timed against the same check as one precompiled statement. Library code is not
changed; the wrappers are removed afterwards.

gunicorn is stopped once (d) is done, or on any failure (SIGTERM, SIGKILL after 20 s), and
the embedded servers at the end too if this script started them (--keep-servers leaves them
running).
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import inspect
import io
import itertools
import json
import math
import os
import pstats
import re
import socket
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# --data-dir (set by main before django.setup(); every use reads it at call time).
DATA_DIR = ROOT / ".recsite" / "bench-serving"
sys.path.insert(0, str(ROOT))
from halfvec import exact_sql  # noqa: E402  (PostgreSQL's exact top-k, index scans off)

from recsite import testing  # noqa: E402


def use_data_dir(data_dir: Path) -> None:
    """Point this process (and the gunicorn it starts) at ``data_dir``'s servers."""
    global DATA_DIR
    DATA_DIR = data_dir
    # The development default (DEBUG on, no API key needed) unless DEBUG=0 is given.
    testing.use_data_dir(
        DATA_DIR,
        DEBUG="1",
        RECOMMENDER_REQUIRE_API_KEY="0",
        SECURE_SSL_REDIRECT="0",
        SECRET_KEY="bench-serving-not-a-secret",
        # It measures the endpoint, not its request budget (a run makes ~400 list requests).
        RECOMMENDER_RECOMMENDATIONS_RATE="1000000/min",
        RECOMMENDER_EVENTS_RATE="1000000/min",
        RECOMMENDER_HEALTH_RATE="1000000/min",
    )


SPACE_NAME = "bench-serving"
DATASET_VERSION = 1
EVENT_PREFIX = "bench-serving-"
EF_SWEEP = (40, 100, 200, 400, 600, 800, 1000)
EF: dict[int, int] = {}  # k → the ef_search nearest_items uses (filled in by main)
TARGETS = {"ratio": 2.0, "recall": 0.95, "post_ms": 15.0}
# (e): recall@10 of the filtered HNSW query against exact filtered search, and the filtered
# endpoint's p50 against the bare filtered query's.
FILTERED_TARGETS = {"recall": 0.95, "ratio": 2.0}
# The attribute schema (e) builds its expression index with (price indexed, brand as the
# default declares it).
PRICE_INDEXED = {"price": {"type": "number", "indexed": True}, "brand": "string"}

CATEGORY_NAMES = (
    "羽绒服 运动鞋 连衣裙 牛仔裤 衬衫 卫衣 风衣 西装 毛衣 T恤 "
    "手机 耳机 平板 笔记本 相机 手表 音箱 键盘 鼠标 显示器 "
    "口红 面膜 香水 洗发水 防晒霜 精华 眼霜 粉底 "
    "咖啡 茶叶 坚果 巧克力 牛奶 饼干 红酒 大米 "
    "台灯 沙发 床垫 枕头 地毯 收纳盒 餐具 炒锅 "
    "图书 玩具 背包 雨伞 拖鞋 围巾"
).split()
ADJECTIVES = (
    "轻薄 保暖 经典 简约 复古 时尚 高端 便携 加厚 柔软 防水 透气 无线 智能 "
    "有机 进口 限量 新款 大容量 静音"
).split()
BRANDS = "北辰 云杉 青禾 远山 知夏 白鹭 星河 木棉 听雨 南风 朝露 松间".split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="the embedded servers and dataset.json (default .recsite/bench-serving; give "
        "each catalogue size its own, e.g. .recsite/bench-serving-1m)",
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300, help="timed requests per measure")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--categories", type=int, default=50)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.75,
        help="norm of an item's Gaussian offset from its (unit) cluster centre",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--maintenance-work-mem",
        default=None,
        help="for the HNSW build only (the graph must fit or the build slows down a lot); "
        "default: 1GB, or about 3x the index's expected size when that is more, at most a "
        "third of the machine's memory (6GB for 1M items of 384d on 24 GiB)",
    )
    parser.add_argument(
        "--index-workers",
        type=int,
        default=2,
        help="max_parallel_maintenance_workers for the HNSW build (the leader works too)",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data set")
    parser.add_argument("--profile", action="store_true", help="break down even if targets met")
    parser.add_argument(
        "--halfvec",
        action="store_true",
        help="after (b), the same queries against a half-precision index built beside the "
        "space's own (benchmarks/halfvec.py: size, build time, latency, recall)",
    )
    parser.add_argument("--keep-servers", action="store_true")
    parser.add_argument(
        "--ahead",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="(c') the endpoint with lists computed ahead by a worker after each event "
        "(default: on)",
    )
    parser.add_argument(
        "--filtered",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="(e) filtered serving with business-rule filters, after the rest (default: on; "
        "~5 min here)",
    )
    parser.add_argument(
        "--only-filtered",
        action="store_true",
        help="run only (e), on the existing data set (built first if missing)",
    )
    parser.add_argument(
        "--filtered-queries",
        type=int,
        default=200,
        help="(e): timed queries and requests per filter and index state",
    )
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    if args.maintenance_work_mem is None:
        args.maintenance_work_mem = f"{hnsw_build_memory_gb(args.items, args.dim)}GB"
    if args.only_filtered and not args.filtered:
        parser.error("--only-filtered and --no-filtered contradict each other")
    if args.filtered_queries > args.queries + 60:
        parser.error("--filtered-queries at most --queries + 60 (the users drawn)")
    if args.categories > len(CATEGORY_NAMES):
        parser.error(f"--categories at most {len(CATEGORY_NAMES)}")
    return args


def hnsw_build_memory_gb(items: int, dim: int) -> int:
    """maintenance_work_mem for the HNSW build: about 3x the on-disk index (~2 KB an item
    at 384d and m=16: 195 MiB at 100k items), at least 1 GB, at most a third of the
    machine's memory (the parallel build's graph lives in shared memory). Not the memory
    free now: after a first build the page cache holds most of it, and a graph that
    outgrows maintenance_work_mem is finished on disk, several times slower."""
    expected_gb = items * (dim * 4 + 500) / 2**30
    total_gb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return max(1, min(int(np.ceil(3 * expected_gb)), int(total_gb // 3)))


# --- Small helpers -----------------------------------------------------------------------


def ms(seconds: float) -> float:
    return seconds * 1000.0


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def ci95(values: list[float]) -> float:
    """Half the width of a normal 95 % confidence interval of the mean of ``values``."""
    if len(values) < 2:
        return float("nan")
    return 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def summary(values_s) -> str:
    values = [ms(v) for v in values_s]
    return (
        f"p50 {pct(values, 50):7.2f} ms   p90 {pct(values, 90):7.2f}   "
        f"p99 {pct(values, 99):7.2f}   mean {statistics.fmean(values):7.2f}   (n={len(values)})"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min), {os.cpu_count()} CPUs"


def raw_connection():
    """A psycopg connection of our own (COPY, binary vectors) to the Django database."""
    import psycopg
    from django.conf import settings
    from pgvector.psycopg import register_vector

    db = settings.DATABASES["default"]
    conn = psycopg.connect(
        host=db["HOST"],
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        port=db["PORT"] or None,
    )
    register_vector(conn)
    return conn


def table(model) -> str:
    return model._meta.db_table


# --- Data set ---------------------------------------------------------------------------


def wanted_marker(args) -> dict:
    return {
        "version": DATASET_VERSION,
        "items": args.items,
        "users": args.users,
        "dim": args.dim,
        "clusters": args.clusters,
        "categories": args.categories,
        "events_per_user": args.events_per_user,
        "noise": args.noise,
        "seed": args.seed,
    }


def dataset_ready(args) -> tuple[bool, str]:
    from recommender.models import (
        Behaviour,
        EncoderSpace,
        EndUser,
        Item,
        ItemCooccurrence,
        ItemVector,
        UserProfile,
    )

    marker_path = DATA_DIR / "dataset.json"
    if not marker_path.exists():
        return False, "no dataset.json"
    marker = json.loads(marker_path.read_text())
    if {k: marker.get(k) for k in wanted_marker(args)} != wanted_marker(args):
        return False, f"dataset.json differs: {marker}"
    space = EncoderSpace.objects.filter(name=SPACE_NAME, is_active=True).first()
    if space is None or space.dim != args.dim:
        return False, "no active bench space of that dimension"
    counts = {
        "items": (Item.objects.count(), args.items),
        "users": (EndUser.objects.count(), args.users),
        "behaviours": (Behaviour.objects.count(), args.users * args.events_per_user),
        "vectors": (ItemVector.objects.filter(space=space).count(), args.items),
        "profiles": (UserProfile.objects.filter(space=space).count(), args.users),
    }
    wrong = {name: have for name, (have, want) in counts.items() if have != want}
    if wrong:
        return False, f"counts differ: {wrong}"
    if not ItemCooccurrence.objects.exists():
        return False, "no co-occurrence rows"
    from recommender import spaces

    if not spaces.index_exists(space):
        return False, "no HNSW index"
    return True, f"reusing {marker_path} (built {marker.get('built_at')})"


def build_dataset(args) -> dict:
    """Empty the benchmark database and fill it; returns timings (and sizes)."""
    from django.utils import timezone

    marker_path = DATA_DIR / "dataset.json"
    marker_path.unlink(missing_ok=True)
    rng = np.random.default_rng(args.seed)
    now = timezone.now()
    timings: dict[str, float] = {}
    empty_tables()
    item_pks, cluster_of, timings["items"] = create_items(args, rng, now)
    space, vectors, timings["vectors"] = load_vectors(args, rng, now, item_pks, cluster_of)
    timings["index"], timings["index_mib"] = build_index(args, space)
    user_pks, events, timings["events"] = create_users_and_events(
        args, rng, now, item_pks, cluster_of
    )
    timings["profiles"] = compute_profiles(space, user_pks, events, vectors)
    del vectors, events
    timings["profile_check"] = check_profiles(args, space, user_pks)
    timings["cooccurrence"], timings["cooccurrence_rows"] = refresh_cooccurrence()
    started = time.perf_counter()
    activate(space)
    timings["activate"] = time.perf_counter() - started
    print(f"  space activated; VACUUM ANALYZE of profiles and vectors: {timings['activate']:.1f}s")
    marker = {
        **wanted_marker(args),
        "built_at": datetime.now(UTC).isoformat(),
        **{f"seconds_{name}": round(value, 2) for name, value in timings.items()},
    }
    marker_path.write_text(json.dumps(marker, indent=2) + "\n")
    return timings


def empty_tables() -> None:
    """TRUNCATE every table the data set fills."""
    from django.db import connection

    from recommender import models as m

    filled = (
        m.Behaviour,
        m.UserProfile,
        m.ItemCooccurrence,
        m.ItemVector,
        m.EncoderSpace,
        m.Item,
        m.EndUser,
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        names = ", ".join(table(model) for model in filled)
        cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    print(f"  emptied tables in {time.perf_counter() - started:.1f}s")


def bulk_connection():
    """``raw_connection()`` for loading generated rows with COPY, foreign-key checks off.

    ``session_replication_role = replica`` skips the per-row foreign-key triggers (each
    one a lookup that also locks the referenced row), as ``pg_restore --disable-triggers``
    does; the rows reference ids this build has just written. The embedded server's
    ``postgres`` role is a superuser, which the setting needs."""
    conn = raw_connection()
    conn.execute("SET session_replication_role = replica")
    return conn


def copy_lines(copy, lines: list[str]) -> None:
    """Send COPY text-format lines. The generated values hold no tab, newline or
    backslash, so they need no escaping (cheaper than ``write_row`` per value)."""
    copy.write("".join(lines))


def set_sequence(model, last_id: int) -> None:
    """Move the id sequence past ids that COPY gave explicitly."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table(model), last_id]
        )


@contextmanager
def indexes_built_after(model, label: str) -> Iterator[None]:
    """Drop ``model``'s ``Meta.indexes`` (the item table's GIN indexes: bigrams, attributes,
    tags) for the block and build them again after it, timed: one build over the loaded
    rows is much cheaper than keeping a GIN index up to date row by row."""
    from django.db import connection

    indexes = list(model._meta.indexes)
    with connection.schema_editor() as editor:
        for index in indexes:
            editor.remove_index(model, index)
    try:
        yield
    finally:
        started = time.perf_counter()
        with connection.schema_editor() as editor:
            editor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            for index in indexes:
                editor.add_index(model, index)
        print(
            f"    {label}: {len(indexes)} indexes ({', '.join(i.name for i in indexes)}) built "
            f"after the load in {time.perf_counter() - started:.1f}s",
            flush=True,
        )


def create_items(args, rng, now) -> tuple[np.ndarray, np.ndarray, float]:
    """The items (COPY, ids 1..N): their pks, their clusters, and the seconds it took."""
    from recommender.models import Item

    # Items: a cluster each (categories follow clusters, 10% elsewhere), Zipf-like weights.
    n = args.items
    cluster_of = rng.integers(0, args.clusters, size=n)
    category_of = cluster_of % args.categories
    stray = rng.random(n) < 0.1
    category_of[stray] = rng.integers(0, args.categories, size=int(stray.sum()))
    ages_days = rng.uniform(0, 365, size=n)
    prices = np.round(rng.lognormal(4.0, 1.0, size=n), 2)
    started = time.perf_counter()
    item_pks = np.arange(1, n + 1, dtype=np.int64)
    now_text = now.isoformat()
    batch = 50_000
    columns = (
        "id, external_id, title, description, category, tags, attributes, translations, "
        "is_active, is_hidden, created_at, updated_at"
    )
    with indexes_built_after(Item, "items"):
        with bulk_connection() as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY {table(Item)} ({columns}) FROM STDIN") as copy:
                for start in range(0, n, batch):
                    lines = []
                    for i in range(start, min(start + batch, n)):
                        cluster = int(cluster_of[i])
                        category = CATEGORY_NAMES[category_of[i]]
                        adjective = ADJECTIVES[(cluster * 7 + i) % len(ADJECTIVES)]
                        brand = BRANDS[(cluster + i) % len(BRANDS)]
                        tags = json.dumps([adjective, f"系列{cluster}"], ensure_ascii=False)
                        attributes = json.dumps({"price": float(prices[i])})
                        created = (now - timedelta(days=float(ages_days[i]))).isoformat()
                        lines.append(
                            f"{i + 1}\titem-{i}\t{brand}{adjective}{category} {i}号\t"
                            f"{brand}出品的{adjective}{category}，系列 {cluster}。\t{category}\t"
                            f"{tags}\t{attributes}\t{{}}\tt\tf\t{created}\t{now_text}\n"
                        )
                    copy_lines(copy, lines)
                    done = min(start + batch, n)
                    if done % (10 * batch) == 0 or done == n:
                        rate = done / (time.perf_counter() - started)
                        print(f"    items: {done:,}/{n:,} ({rate:,.0f}/s)", flush=True)
    set_sequence(Item, n)
    seconds = time.perf_counter() - started
    print(f"  {n:,} items (COPY, GIN indexes after) in {seconds:.1f}s = {n / seconds:,.0f}/s")
    return item_pks, cluster_of, seconds


def load_vectors(args, rng, now, item_pks: np.ndarray, cluster_of: np.ndarray):
    """The bench space and its clustered vectors (binary COPY, no index): the space, the
    vectors (row i is item_pks[i]'s, as stored) and the seconds."""
    from django.db import connection

    from recommender import spaces
    from recommender.models import Item, ItemVector

    # Vectors: unit centres, item = centre + Gaussian offset of norm ~noise, unit length.
    n, dim = args.items, args.dim
    started = time.perf_counter()
    centres = rng.standard_normal((args.clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[cluster_of] + rng.standard_normal((n, dim)).astype(np.float32) * np.float32(
        args.noise / np.sqrt(dim)
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, text_hash FROM {table(Item)}")
        hashes = dict(cursor.fetchall())
    space = spaces.create_space(SPACE_NAME, "hashing", {"dim": dim})
    spaces.drop_index(space)  # load first, index after: much faster than per-row inserts
    with bulk_connection() as conn, conn.cursor() as cursor:
        with cursor.copy(
            f"COPY {table(ItemVector)} (space_id, item_id, embedding, text_hash, updated_at) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "vector", "varchar", "timestamptz"])
            for done, (pk, vector) in enumerate(zip(item_pks.tolist(), vectors, strict=True), 1):
                copy.write_row((space.pk, pk, vector, hashes[pk], now))
                if done % 200_000 == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"    vectors: {done:,}/{n:,} ({rate:,.0f}/s)", flush=True)
    seconds = time.perf_counter() - started
    print(
        f"  {n:,} vectors ({dim}d, binary COPY, no index) in {seconds:.1f}s = {n / seconds:,.0f}/s"
    )
    return space, vectors, seconds


def build_index(args, space) -> tuple[float, float]:
    """The space's HNSW index, with --maintenance-work-mem and --index-workers; seconds and
    MiB. Built in a transaction, so not CONCURRENTLY (nothing else writes the table now,
    and a concurrent build scans the table and the index once more)."""
    from django.db import connection, transaction
    from django.test import override_settings

    from recommender import spaces
    from recommender.models import ItemVector

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table(ItemVector)}")
        cursor.execute("SHOW maintenance_work_mem")
        default_mwm = cursor.fetchone()[0]
    notices: list[str] = []

    def handler(diagnostic) -> None:  # pgvector says so when the graph outgrows the memory
        notices.append(diagnostic.message_primary or "")
        print(f"    PostgreSQL: {notices[-1]}", flush=True)  # now: a spilled build runs long

    connection.ensure_connection()
    connection.connection.add_notice_handler(handler)
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_maintenance_workers = %s", [args.index_workers])
    started = time.perf_counter()
    try:
        # create_index sets maintenance_work_mem itself, from RECOMMENDER_INDEX_BUILD_MEMORY
        # (1GB by default: the graph of 1M vectors of 384d needs about 2.2 GB).
        with (
            override_settings(RECOMMENDER_INDEX_BUILD_MEMORY=args.maintenance_work_mem),
            transaction.atomic(),
        ):
            spaces.create_index(space)
    finally:
        connection.connection.remove_notice_handler(handler)
        with connection.cursor() as cursor:
            cursor.execute("RESET max_parallel_maintenance_workers")
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s)", [spaces.index_name(space)])
        index_bytes = cursor.fetchone()[0]
    print(
        f"  HNSW index (m={space.index_m}, ef_construction={space.index_ef_construction}, "
        f"maintenance_work_mem {args.maintenance_work_mem} instead of {default_mwm}, "
        f"max_parallel_maintenance_workers {args.index_workers}) built in {seconds:.1f}s = "
        f"{args.items / seconds:,.0f} vectors/s, {index_bytes / 2**20:,.0f} MiB"
    )
    return seconds, index_bytes / 2**20


def create_users_and_events(args, rng, now, item_pks, cluster_of):
    """The users and their events (both COPY): the user pks, the events as columns (for the
    bulk profiles) and the seconds."""
    from django.db import connection

    from recommender.models import Behaviour, EndUser, Item

    # Users and their events: 1-3 clusters each, items drawn by popularity inside them.
    started = time.perf_counter()
    user_pks = np.arange(1, args.users + 1, dtype=np.int64)
    now_text = now.isoformat()
    with bulk_connection() as conn, conn.cursor() as cursor:
        with cursor.copy(
            f"COPY {table(EndUser)} (id, external_id, attributes, created_at) FROM STDIN"
        ) as copy:
            copy_lines(copy, [f"{pk}\tuser-{pk - 1}\t{{}}\t{now_text}\n" for pk in user_pks])
    set_sequence(EndUser, args.users)
    members, cdfs = popularity_within_clusters(args, cluster_of)
    events = copy_events(args, rng, now, user_pks, item_pks, members, cdfs, started)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table(Behaviour)}")
        cursor.execute(f"ANALYZE {table(EndUser)}")
        cursor.execute(f"ANALYZE {table(Item)}")
    seconds = time.perf_counter() - started
    print(
        f"  {args.users:,} users + {len(events.user):,} events (COPY) in {seconds:.1f}s = "
        f"{len(events.user) / seconds:,.0f} events/s"
    )
    return user_pks, events, seconds


def popularity_within_clusters(args, cluster_of: np.ndarray):
    """Each cluster's items (indexes) and the cumulative distribution of their Zipf-like
    probabilities of being picked (normalised as ``Generator.choice(p=…)`` does)."""
    members: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(0, dtype=np.int64))
    order = np.argsort(cluster_of, kind="stable")
    bounds = np.searchsorted(cluster_of[order], np.arange(args.clusters + 1))
    cdfs: dict[int, np.ndarray] = {}
    for c in range(args.clusters):
        members[c] = order[bounds[c] : bounds[c + 1]]
        w = 1.0 / np.power(np.arange(1, len(members[c]) + 1) + 5.0, 0.9)
        cdf = (w / w.sum()).cumsum()
        cdfs[c] = cdf / cdf[-1] if len(cdf) else cdf
    return members, cdfs


def copy_events(args, rng, now, user_pks, item_pks, members, cdfs, started) -> Any:
    """--events-per-user events of each user on items of 1-3 clusters (COPY); the events
    as columns.

    The draws are ``Generator.choice``'s own steps (an index from ``integers``, a weighted
    pick as ``searchsorted`` of ``random()`` in the CDF), so a seed gives the data set it
    gave when this called ``rng.choice(…, p=…)`` per event, five times faster."""
    from _bulk_build import EventArrays, microseconds

    from recommender.models import Behaviour

    kinds = np.array(["view", "click", "like", "cart", "purchase"])
    kind_p = np.array([0.78, 0.1, 0.05, 0.04, 0.03])
    window_s = 60 * 86400
    total = len(user_pks) * args.events_per_user
    user_of = np.zeros(total, dtype=np.int64)
    item_of = np.zeros(total, dtype=np.int64)
    kind_of = np.empty(total, dtype=kinds.dtype)
    at_us = np.zeros(total, dtype=np.int64)
    now_us = microseconds(now)
    one_us = timedelta(microseconds=1)
    row = 0
    with bulk_connection() as conn, conn.cursor() as cursor:
        with cursor.copy(
            f"COPY {table(Behaviour)} (user_id, item_id, kind, value, text, context, event_id, "
            "occurred_at, created_at) FROM STDIN"
        ) as copy:
            lines: list[str] = []
            for position, user_pk in enumerate(user_pks.tolist()):
                chosen = rng.choice(args.clusters, size=int(rng.integers(1, 4)), replace=False)
                picks = []
                while len(picks) < args.events_per_user:
                    c = int(chosen[rng.integers(0, len(chosen))])
                    if len(members[c]) == 0:
                        continue
                    picks.append(int(members[c][cdfs[c].searchsorted(rng.random(), "right")]))
                offsets = np.sort(rng.uniform(0, window_s, size=len(picks)))[::-1]
                for item_index, offset, kind in zip(
                    picks, offsets, rng.choice(kinds, size=len(picks), p=kind_p), strict=True
                ):
                    delta = timedelta(seconds=float(offset))
                    at = (now - delta).isoformat()
                    lines.append(
                        f"{user_pk}\t{item_pks[item_index]}\t{kind}\t\\N\t\t{{}}\t\\N\t{at}\t{at}\n"
                    )
                    user_of[row], item_of[row], kind_of[row] = position, item_index, kind
                    at_us[row] = now_us - delta // one_us
                    row += 1
                if (position + 1) % 10_000 == 0 or position + 1 == len(user_pks):
                    copy_lines(copy, lines)
                    lines = []
                    rate = row / (time.perf_counter() - started)
                    print(
                        f"    events: {position + 1:,}/{len(user_pks):,} users, {row:,} events "
                        f"({rate:,.0f}/s)",
                        flush=True,
                    )
    return EventArrays(
        user=user_of[:row],
        item=item_of[:row],
        kind=kind_of[:row],
        value=np.full(row, np.nan),
        at_us=at_us[:row],
    )


def compute_profiles(space, user_pks: np.ndarray, events, vectors: np.ndarray) -> float:
    """Every user's stored profile, computed in bulk from the events just written
    (``_bulk_build.bulk_profiles``, the arithmetic of ``profiles.recompute``) and written
    with one binary COPY; the seconds."""
    from _bulk_build import bulk_profiles, copy_profiles
    from django.db import connection

    from recommender.models import UserProfile

    started = time.perf_counter()
    bulk = bulk_profiles(events, vectors, len(user_pks))
    computed = time.perf_counter() - started
    with bulk_connection() as conn:
        written = copy_profiles(conn, table(UserProfile), space.pk, user_pks, bulk)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table(UserProfile)}")
    seconds = time.perf_counter() - started
    print(
        f"  {written:,} profiles (numpy over {len(events.user):,} events in {computed:.1f}s, "
        f"binary COPY) in {seconds:.1f}s = {ms(seconds) / max(written, 1):.3f} ms/user"
    )
    return seconds


def check_profiles(args, space, user_pks: np.ndarray, n: int = 50) -> float:
    """Fail the build unless ``n`` random users' bulk profiles equal
    ``profiles.recompute``; the seconds."""
    from _bulk_build import check_profiles as compare

    started = time.perf_counter()
    checked = compare(space, user_pks, np.random.default_rng(args.seed + 2), n)
    seconds = time.perf_counter() - started
    print(f"  {checked} bulk profiles equal profiles.recompute() (checked in {seconds:.1f}s)")
    return seconds


def refresh_cooccurrence() -> tuple[float, int]:
    """The co-occurrence table (the library's one statement, the server's settings, as the
    hourly task runs it); seconds and rows."""
    from recommender.models import Behaviour
    from recommender.serving import cooccurrence

    events = Behaviour.objects.count()
    started = time.perf_counter()
    pairs = cooccurrence.refresh_cooccurrence()
    seconds = time.perf_counter() - started
    print(
        f"  refresh_cooccurrence(): {pairs:,} rows from {events:,} events in {seconds:.1f}s "
        f"= {events / seconds:,.0f} events/s"
    )
    return seconds, pairs


def activate(space) -> None:
    """Mark the space ready, make it the active one, and VACUUM ANALYZE what serving reads."""
    from django.db import connection

    from recommender import spaces
    from recommender.models import ItemVector, UserProfile

    # ``mark_ready_if_complete`` asks ``items_needing_vectors``, whose ``id IN (…)`` and
    # ``NOT (id IN (…))`` subqueries PostgreSQL can only hash when the ids fit work_mem
    # (4MB by default). At 1M items they do not, and the plan rescans a million-row list
    # per item (cost 8.5e10: it ran for minutes without finishing). Enough work_mem for
    # the hash, for this call only.
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
    try:
        spaces.mark_ready_if_complete(space)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET work_mem")
    spaces.activate_space(space)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table(UserProfile)}")
        cursor.execute(f"VACUUM ANALYZE {table(ItemVector)}")


def remove_bench_events() -> int:
    """Delete events posted by a (possibly interrupted) run; recompute their users."""
    from recommender import spaces
    from recommender.models import Behaviour
    from recommender.serving import profiles

    events = Behaviour.objects.filter(event_id__startswith=EVENT_PREFIX)
    users = set(events.values_list("user_id", flat=True))
    deleted, _ = events.delete()
    space = spaces.current_space()
    if space is not None:
        for user_id in users:
            profiles.save(user_id, space, profiles.recompute(user_id, space))
    return deleted


# --- (a) bare HNSW and (b) recall --------------------------------------------------------


def hnsw_top(space, vector, k: int, ef: int) -> list[int]:
    from django.db import connection, transaction

    from recommender.serving import nearest

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef])
        rows = list(nearest.vector_query(space, vector).values_list("item_id", "distance")[:k])
    return [item_id for item_id, _ in rows]


def time_bare(space, vectors, ef: int, warmup: int = 30) -> list[float]:
    for vector in vectors[:warmup]:
        hnsw_top(space, vector, 10, ef)
    times = []
    for vector in vectors:
        started = time.perf_counter()
        hnsw_top(space, vector, 10, ef)
        times.append(time.perf_counter() - started)
    return times


def interests(user_pks: list[int]) -> list[int]:
    """How many clusters each user engaged with (from the items' 系列N tag)."""
    from recommender.models import Behaviour

    seen: dict[int, set[str]] = defaultdict(set)
    rows = Behaviour.objects.filter(user_id__in=user_pks).values_list("user_id", "item__tags")
    for user_id, tags in rows:
        if tags and len(tags) > 1:
            seen[user_id].add(tags[1])
    return [len(seen[pk]) for pk in user_pks]


def measure_recall(space, vectors, user_pks: list[int]) -> dict:
    started = time.perf_counter()
    ids, matrix = space_matrix(space)
    loaded_s = time.perf_counter() - started
    queries = np.stack(vectors)
    sims = queries @ matrix.T
    exact100 = np.argsort(-sims, axis=1)[:, :100]
    exact = [ids[row] for row in exact100]

    checks = min(3, len(vectors))
    agree = sum(
        set(exact_sql(space, vectors[i], 10)) == set(exact[i][:10].tolist()) for i in range(checks)
    )
    out: dict = {"loaded_s": loaded_s, "n": len(vectors), "sql_check": f"{agree}/{checks}"}
    for label, ef, k in (
        ("r10_ef40", 40, 10),
        ("r10_serving", EF[10], 10),
        ("r100_serving", EF[100], 100),
        ("r10_ef1000", 1000, 10),
    ):
        hits = [
            len(set(hnsw_top(space, v, k, ef)) & set(exact[i][:k].tolist())) / k
            for i, v in enumerate(vectors)
        ]
        out[label] = statistics.fmean(hits)
        out[label + "_min"] = min(hits)
        out[label + "_hits"] = hits
    # As served: the searches serving runs for the user (around their interests and
    # recent items, or the profile), without the exclusions; does their union hold the
    # profile's exact top-10?
    hits, times = served_recall(space, user_pks, vectors, exact)
    out["r10_as_served"] = statistics.fmean(hits)
    out["r10_as_served_min"] = min(hits)
    out["as_served_hits"] = hits
    out["as_served_times"] = times
    # The same with three interests searched instead of the profile (the option
    # RECOMMENDER_INTEREST_SEARCHES, off by default; docs/performance.md).
    from django.test import override_settings

    with override_settings(RECOMMENDER_INTEREST_SEARCHES=3):
        hits, times = served_recall(space, user_pks, vectors, exact)
    out["r10_interests"] = statistics.fmean(hits)
    out["interests_hits"] = hits
    out["interests_times"] = times
    # The trade-off behind RECOMMENDER_HNSW_EF_SEARCH: recall@10 and bare top-10 latency.
    out["sweep"] = []
    for ef in EF_SWEEP:
        times, hits = [], []
        for i, v in enumerate(vectors):
            started = time.perf_counter()
            found = hnsw_top(space, v, 10, ef)
            times.append(time.perf_counter() - started)
            hits.append(len(set(found) & set(exact[i][:10].tolist())) / 10)
        out["sweep"].append((ef, statistics.fmean(hits), pct(times, 50), pct(times, 99)))
    # The profile of a user with several interests lies between their clusters; split the
    # ef-40 recall by how many clusters the user engaged with.
    out["clusters"] = interests(user_pks)
    return out


def served_recall(space, user_pks, vectors, exact) -> tuple[list[float], list[float]]:
    """Per user: the share of the profile's exact top-10 in ``served_search_ids``, and the
    seconds those searches took."""
    hits, times = [], []
    for i, (pk, v) in enumerate(zip(user_pks, vectors, strict=True)):
        started = time.perf_counter()
        found = served_search_ids(space, pk, v)
        times.append(time.perf_counter() - started)
        hits.append(len(found & set(exact[i][:10].tolist())) / 10)
    return hits, times


def served_search_ids(space, user_pk: int, vector) -> set[int]:
    """The items serving's own vector searches find for the user (``candidates._searches``
    for a plain request, run as serving runs them, without the user's exclusions)."""
    from recommender.conf import conf
    from recommender.models import EndUser
    from recommender.serving import candidates, nearest
    from recommender.serving.pipeline import RecommendationRequest

    request = RecommendationRequest(user=EndUser(pk=user_pk), k=10, explain=False)
    recent = candidates.recent_items(
        user_pk, space, max_interests=candidates._interest_searches(request, None)
    )
    n = max(int(conf.CANDIDATES_PER_SOURCE), 30)
    searches = candidates._searches(request, space, n, None, np.asarray(vector), recent)
    rows = nearest.nearest_searches([search for _, search in searches], space=space, columns=False)
    return {row.item_id for found in rows for row in found}


def floors(n: int = 200) -> dict[str, list[float]]:
    """What any request pays per statement here: a SELECT 1 round trip through the ORM's
    cursor, and a one-row INSERT + COMMIT (the WAL flush every event POST waits for)."""
    from django.db import connection, transaction

    out: dict[str, list[float]] = {"select1": [], "commit": []}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_commit_probe "
            "(id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
        )
    for _ in range(n):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        out["select1"].append(time.perf_counter() - started)
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_commit_probe DEFAULT VALUES")
        out["commit"].append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_commit_probe")
    return out


# --- (c), (d) the API -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        # Like urllib3/requests: http.client sends a POST's headers and body in two writes,
        # and without TCP_NODELAY Nagle + the server's delayed ACK hold the body back.
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, data, time.perf_counter() - started


def start_server(args, port: int) -> testing.Process:
    """gunicorn on this benchmark's data, ready when its liveness probe answers."""
    env = testing.environ(RECSITE_DATA_DIR=str(DATA_DIR))
    return testing.start_gunicorn(
        env, DATA_DIR / "gunicorn.log", port=port, workers=args.workers, request_timeout=120
    )


def rec_path(external_id: str, query: str = "") -> str:
    """The list of 10 for a user; ``query`` adds parameters (``&filter=…``, encoded)."""
    return f"/api/v1/users/{external_id}/recommendations?k=10{query}"


def get_list(port: int, user: str, query: str = "", check=None) -> float:
    """One GET of ``user``'s list through gunicorn (stops the run unless it answers 200);
    its seconds. ``check`` sees the decoded answer."""
    status, body, elapsed = call(port, "GET", rec_path(user, query))
    if status != 200:
        raise SystemExit(f"recommendations answered {status}: {body[:300]!r}")
    if check is not None:
        check(json.loads(body))
    return elapsed


def time_live_recs(
    port: int, users: list[str], warmup: int, query: str = "", check=None
) -> list[float]:
    """Sequential GETs through gunicorn; ``check`` sees each decoded answer."""
    for user in users[:warmup]:
        get_list(port, user, query)
    return [get_list(port, user, query, check) for user in users]


def time_client_recs(
    client, users: list[str], warmup: int, each=None, query: str = "", check=None
) -> list[float]:
    """Sequential GETs through Django's test client; ``each`` runs after each timed one,
    ``check`` sees each decoded answer."""
    for user in users[:warmup]:
        client.get(rec_path(user, query), HTTP_ACCEPT="application/json")
    times = []
    for user in users:
        started = time.perf_counter()
        response = client.get(rec_path(user, query), HTTP_ACCEPT="application/json")
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(
                f"recommendations answered {response.status_code}: {response.content[:300]!r}"
            )
        if check is not None:
            check(response.json())
        if each is not None:
            each()
    return times


def compare_switch(client, users: list[str], setting: str) -> tuple[list[float], list[float]]:
    """The in-process endpoint with a boolean setting on and off, alternating per request
    so both see the same load: serving's helper connection (RECOMMENDER_PARALLEL_RETRIEVAL)
    or the served-list log (RECOMMENDER_LOG_SERVED_LISTS)."""
    from django.test import override_settings

    times: dict[bool, list[float]] = {True: [], False: []}
    for index, user in enumerate(users):
        order = (True, False) if index % 2 == 0 else (False, True)
        for flag in order:
            with override_settings(**{setting: flag}):  # recommender.conf reads it afresh
                started = time.perf_counter()
                response = client.get(rec_path(user), HTTP_ACCEPT="application/json")
                times[flag].append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"recommendations answered {response.status_code}")
    return times[True], times[False]


def event_body(user: str, item: str) -> dict:
    return {
        "user": user,
        "item": item,
        "kind": "view",
        "event_id": f"{EVENT_PREFIX}{uuid.uuid4().hex}",
    }


def time_live_posts(port: int, pairs: list[tuple[str, str]], warmup: int) -> list[float]:
    times = []
    for index, (user, item) in enumerate(pairs):
        status, body, elapsed = call(port, "POST", "/api/v1/behaviours", event_body(user, item))
        if status != 201:
            raise SystemExit(f"POST behaviours answered {status}: {body[:300]!r}")
        if index >= warmup:
            times.append(elapsed)
    return times


# --- Breakdown --------------------------------------------------------------------------


class StageTimer:
    """Wraps functions in timers; exclusive time per label (a stage's callees are theirs)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        # Time spent in other threads (serving's helper connection), overlapping the rest.
        self.helper: dict[str, float] = defaultdict(float)
        self._thread = threading.get_ident()
        self._stack: list[float] = []
        self._patches: list[tuple[object, str, object | None]] = []

    def wrap(self, owner, attr: str, label: str) -> None:
        own = not isinstance(owner, type) or attr in owner.__dict__
        original = inspect.getattr_static(owner, attr)
        is_classmethod = isinstance(original, classmethod)
        func = original.__func__ if is_classmethod else original
        timer = self

        def timed(*args, **kwargs):
            if threading.get_ident() != timer._thread:
                started = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    timer.helper[label] += time.perf_counter() - started
            timer._stack.append(0.0)
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                children = timer._stack.pop()
                timer.current[label] += elapsed - children
                timer.calls[label] += 1
                if timer._stack:
                    timer._stack[-1] += elapsed

        setattr(owner, attr, classmethod(timed) if is_classmethod else timed)
        self._patches.append((owner, attr, original if own else None))

    def take(self) -> dict[str, float]:
        taken = dict(self.current)
        self.current.clear()
        return taken

    def take_helper(self) -> dict[str, float]:
        taken = dict(self.helper)
        self.helper.clear()
        return taken

    def restore(self) -> None:
        for owner, attr, original in reversed(self._patches):
            if original is None:
                delattr(owner, attr)  # it was inherited
            else:
                setattr(owner, attr, original)
        self._patches.clear()


@contextmanager
def timed_stages(stages) -> Iterator[StageTimer]:
    """A StageTimer wrapping each (owner, attribute, label) of ``stages`` for the block."""
    timer = StageTimer()
    for owner, attr, label in stages:
        timer.wrap(owner, attr, label)
    try:
        yield timer
    finally:
        timer.restore()


def recommendation_stages():
    """The stages of the recommendations endpoint, timed (see ``timed_stages``)."""
    from recommender import spaces
    from recommender.api import access, views
    from recommender.serving import candidates, evidence, helper_connection, pipeline, profiles

    return timed_stages(
        (
            (access.ApiKeyRateThrottle, "allow_request", "DRF throttle (Redis get+set)"),
            (views.UserViewSet, "get_object", "user lookup (get_object)"),
            (
                helper_connection.Pending,
                "result",
                "waiting for the HNSW search (helper connection)",
            ),
            (views, "_list_response", "response serialisation"),
            (pipeline, "recommend", "recommend() glue"),
            (pipeline, "candidate_pool", "candidate_pool glue + feature loop"),
            (spaces, "serving_space", "active space (process cache, Redis token)"),
            (candidates.History, "load", "history load"),
            (profiles, "state_for", "profile load"),
            (
                candidates,
                "nearest_searches",
                "HNSW searches as served (one statement per breadth), rows + cosines",
            ),
            (candidates, "recent_items", "recent items and interests (one query, vectors)"),
            (evidence, "cooccurrence_proofs", "explanations: co-occurrence proofs (SQL)"),
            (evidence, "cooccurrence_shares", "explanations: co-occurrence shares"),
            (candidates, "cooccurrence_candidates", "co-occurrence candidates"),
            (candidates, "popularity", "popularity (per-minute cache)"),
            (candidates, "trending", "trending (per-minute cache)"),
            (candidates, "top_items_of", "popular and trending heads (filtered: one SQL check)"),
            (candidates, "new_items", "new items"),
            (pipeline, "load_items", "items returned + anchors, with vectors (binary)"),
            (pipeline, "item_vectors", "item vectors (binary fetch)"),
            (candidates, "candidate_rows", "other candidates' rows + cosine features (binary)"),
            (pipeline, "score", "scoring"),
            (pipeline, "mmr", "MMR"),
            (pipeline, "_explain", "explanations"),
        )
    )


def event_stages():
    """The stages of the event POST, timed (see ``timed_stages``)."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    from recommender import spaces
    from recommender.api import access, views
    from recommender.ingest import events
    from recommender.serving import profiles

    return timed_stages(
        (
            (access.ApiKeyRateThrottle, "allow_request", "DRF throttle (Redis get+set)"),
            (views.BehaviourViewSet, "create", "view: validate + serialise"),
            (events, "record_event", "record_event glue"),
            (BaseDatabaseWrapper, "commit", "COMMIT (WAL flush)"),
            (events, "_insert", "INSERT … SELECT user, item … ON CONFLICT DO NOTHING"),
            (spaces, "serving_space", "active space (process cache, Redis token)"),
            (profiles, "_stored", "profile + item vector SELECT … FOR UPDATE (binary)"),
            (profiles, "record", "profiles.record: apply + UPDATE"),
        )
    )


def print_stages(title: str, per_request: list[dict[str, float]], totals: list[float]) -> list:
    labels: list[str] = []
    for sample in per_request:
        for label in sample:
            if label not in labels:
                labels.append(label)
    mean_total = statistics.fmean(totals)
    rows = []
    for label in labels:
        values = [sample.get(label, 0.0) for sample in per_request]
        rows.append((label, statistics.fmean(values), pct(values, 50), pct(values, 99)))
    accounted = [sum(sample.values()) for sample in per_request]
    rest = [total - acc for total, acc in zip(totals, accounted, strict=True)]
    rows.append(
        (
            "rest (Django/DRF middleware, routing, test client)",
            statistics.fmean(rest),
            pct(rest, 50),
            pct(rest, 99),
        )
    )
    rows.sort(key=lambda row: -row[1])
    print(
        f"\n{title}: exclusive ms per request over {len(totals)} requests "
        f"(total mean {ms(mean_total):.2f} ms, p50 {ms(pct(totals, 50)):.2f} ms)"
    )
    print(f"  {'stage':<52} {'mean':>8} {'p50':>8} {'p99':>8} {'share':>6}")
    for label, mean, p50, p99 in rows:
        print(
            f"  {label:<52} {ms(mean):8.2f} {ms(p50):8.2f} {ms(p99):8.2f} {mean / mean_total:6.1%}"
        )
    return rows


def print_cprofile(profiler: cProfile.Profile, n: int, limit: int = 25) -> None:
    for key in ("tottime", "cumulative"):
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats(key).print_stats(limit)
        text = stream.getvalue()
        start = text.find("   ncalls")
        print(f"\ncProfile over {n} in-process requests, top {limit} by {key}:")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())


def explain_serving_query(space, user_pk: int, vector) -> str:
    """The plan of nearest_rows' query for one user (filters and exclusions as served)."""
    from recommender.conf import conf
    from recommender.serving import filters

    return explain_nearest(space, vector, conf.CANDIDATES_PER_SOURCE, filters.Filters(), user_pk)


@contextmanager
def captured_fetches() -> Iterator[list[tuple[str, Any]]]:
    """The statements ``vector_io.fetch`` is given in the block, instead of running them."""
    from recommender.spaces import vector_io

    captured: list[tuple[str, Any]] = []
    fetch = vector_io.fetch
    vector_io.fetch = lambda sql, params=(), **_kw: captured.append((sql, params)) or []
    try:
        yield captured
    finally:
        vector_io.fetch = fetch


def explain_nearest(
    space, vector, k: int, filters, user_pk: int | None = None, analyze: bool = True
) -> str:
    """The plan of ``nearest_rows``' statement, under the settings it runs with (iterative
    scan, ``ef_search(k)``): as served (history exclusion and cosine features) for
    ``user_pk``, else the bare query (``columns=False``)."""
    from django.db import connection, transaction

    from recommender.models import EndUser
    from recommender.serving import nearest
    from recommender.spaces import vector_io

    with captured_fetches() as captured:
        if user_pk is None:
            nearest.nearest_rows(vector, k, space=space, filters=filters, columns=False)
        else:
            user = EndUser.objects.get(pk=user_pk)
            exclusion = nearest.HistoryExclusion(user.pk)  # the user's items, in SQL
            cosine = nearest.CosineFeatures(vector, dislikes_of=user.pk)
            nearest.nearest_rows(
                vector, k, space=space, filters=filters, history=exclusion, cosine=cosine
            )
    sql, params = captured[-1]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [nearest.ef_search(k)])
        how = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        rows = vector_io.fetch(how + sql, params)
    plan = "\n".join(row[0] for row in rows)
    plan = re.sub(r"'\[[^']{60,}\]'", "'[...]'", plan)  # the query vector literal
    plan = re.sub(r"'\{[^']{60,}\}'", "'{...}'", plan)  # a long id list
    return "\n".join("    " + line for line in plan.splitlines())


# --- (e) filtered serving (business rules) ------------------------------------------------


@dataclass
class RuleFilter:
    """A rule filter of (e): its label, its text as the API takes it, the same test in
    Python (the answers are checked with it), and, once compiled, what passes."""

    label: str
    text: str
    passes: Callable[[Any], bool]
    filters: Any = None  # serving.filters.Filters with the compiled rule
    passing: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per vector
    share: float = 0.0  # of the space's vectors whose item passes

    @property
    def query(self) -> str:
        return "&" + urlencode({"filter": self.text})


@dataclass
class FilteredRun:
    """(e) for one filter in one index state; times in seconds."""

    state: str
    rule: RuleFilter
    plan: str  # the indexes the planner chose for the bare query
    before: list[float]  # bare top-10, before the endpoint runs
    served_k: int
    served: list[float]  # bare, at serving's k
    recall: dict  # see filtered_recall
    exact: list[float]  # the exact filtered query (enable_indexscan off)
    exact_plan: str
    in_process: list[float]
    answers: AnswerCheck
    live: list[float] = field(default_factory=list)
    live_answers: AnswerCheck | None = None
    after: list[float] = field(default_factory=list)  # bare top-10, after
    ahead: Ahead | None = None  # the endpoint with lists computed ahead (--ahead)
    ahead_answers: AnswerCheck | None = None

    @property
    def bare(self) -> list[float]:
        return self.before + self.after

    def ratio(self, endpoint: list[float]) -> float:
        return pct(endpoint, 50) / pct(self.bare, 50)

    @property
    def met(self) -> dict[str, bool]:
        met = {
            "recall": self.recall["mean"] >= FILTERED_TARGETS["recall"],
            "ratio in-process": self.ratio(self.in_process) <= FILTERED_TARGETS["ratio"],
        }
        if self.live:
            met["ratio live"] = self.ratio(self.live) <= FILTERED_TARGETS["ratio"]
        if self.ahead is not None:
            met["ratio ahead"] = self.ratio(self.ahead.recs) <= FILTERED_TARGETS["ratio"]
        return met


class AnswerCheck:
    """Counts the lists an endpoint answered and the items in them that break the rule."""

    def __init__(self, rule: RuleFilter):
        self.rule = rule
        self.lists = self.items = self.short = 0
        self.failing: list[tuple[str, Any]] = []

    def __call__(self, answer: dict) -> None:
        self.lists += 1
        self.items += len(answer["items"])
        self.short += len(answer["items"]) < 10
        for item in answer["items"]:
            price = (item.get("attributes") or {}).get("price")
            if not self.rule.passes(price):
                self.failing.append((item["id"], price))

    def __str__(self) -> str:
        verdict = (
            f"{len(self.failing)} BREAK THE RULE, e.g. {self.failing[:3]}"
            if self.failing
            else "all pass the rule"
        )
        return f"{self.items} items in {self.lists} lists ({self.short} short of 10), {verdict}"


_MATRIX: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def space_matrix(space) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of ``space``, L2-normalised, and their item ids (read once)."""
    from recommender.models import ItemVector

    if space.pk not in _MATRIX:
        with raw_connection() as conn, conn.cursor(binary=True) as cursor:
            cursor.execute(
                f"SELECT item_id, embedding FROM {table(ItemVector)} WHERE space_id = %s",
                [space.pk],
            )
            rows = cursor.fetchall()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        matrix = np.stack([row[1].to_numpy() for row in rows]).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        _MATRIX[space.pk] = (ids, matrix)
    return _MATRIX[space.pk]


def price_filters() -> list[RuleFilter]:
    """The selective (~1 %) and broad (~50 %) filters, from the data's own prices."""
    from django.db import connection

    from recommender.models import Item

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT recommender_attr_number(attributes -> 'price') FROM {table(Item)} "
            "WHERE is_active"
        )
        prices = np.array([row[0] for row in cursor.fetchall() if row[0] is not None])
    high = round(float(np.percentile(prices, 99)), 2)
    median = round(float(np.percentile(prices, 50)), 2)
    return [
        RuleFilter(
            "selective", f"price > {high}", lambda price: price is not None and price > high
        ),
        RuleFilter(
            "broad", f"price < {median}", lambda price: price is not None and price < median
        ),
    ]


def compile_filter(space, rule: RuleFilter) -> None:
    """``rule`` compiled as serving compiles a request's filter, and the space's vectors
    whose items pass it (the exact search's candidates)."""
    from django.db import connection

    from recommender.models import Item, ItemVector
    from recommender.serving import business
    from recommender.serving.filters import Filters, item_where

    rule.filters = business.with_rules(Filters(), [rule.text])
    where, params = item_where(rule.filters)
    item = table(Item)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.item_id FROM {table(ItemVector)} v JOIN {item} ON {item}.id = v.item_id "
            f"WHERE v.space_id = %s AND {where}",
            [space.pk, *params],
        )
        passing = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    ids, _ = space_matrix(space)
    rule.passing = np.isin(ids, passing)
    rule.share = float(rule.passing.mean())


@contextmanager
def price_index(on: bool) -> Iterator[str]:
    """The item table without an index on the price, or with the expression index
    ``tasks.index_attributes()`` builds for an indexed number attribute (settings
    overridden for the block, so that in-process requests see the same schema); ANALYZE
    either way, so the planner's statistics follow. Dropped again on leaving."""
    from django.db import connection
    from django.test import override_settings

    from recommender import attributes, tasks
    from recommender.models import Item

    name = attributes.index_name("price")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    if not on:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table(Item)}")
        yield "no index on the price"
        return
    with override_settings(RECOMMENDER_ITEM_ATTRIBUTES=PRICE_INDEXED):
        try:
            started = time.perf_counter()
            built = tasks.index_attributes()
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table(Item)}")
                cursor.execute("SELECT pg_relation_size(%s)", [name])
                size = cursor.fetchone()[0]
            print(
                f"(e) index_attributes() built {built['indexes']} index ({name}, "
                f"{size / 2**20:.1f} MiB) + ANALYZE in {time.perf_counter() - started:.1f}s"
            )
            yield "expression index on the price"
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                cursor.execute(f"ANALYZE {table(Item)}")


def filtered_top(space, vector, k: int, filters) -> list[int]:
    """The bare filtered query: ``nearest_rows`` (serving's SQL, iterative scan)."""
    from recommender.serving import nearest

    rows = nearest.nearest_rows(vector, k, space=space, filters=filters, columns=False)
    return [row.item_id for row in rows]


def time_filtered(space, vectors, k: int, filters, warmup: int = 20):
    """Times and results of the bare filtered query over ``vectors``."""
    for vector in vectors[:warmup]:
        filtered_top(space, vector, k, filters)
    times, found = [], []
    for vector in vectors:
        started = time.perf_counter()
        found.append(filtered_top(space, vector, k, filters))
        times.append(time.perf_counter() - started)
    return times, found


def exact_filtered_sql(space, vector, k: int, filters) -> list[int]:
    """The same statement with index scans off: PostgreSQL's exact filtered top-k."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
        return filtered_top(space, vector, k, filters)


def exact_filtered(space, rule: RuleFilter, vectors, k: int) -> tuple[list, np.ndarray]:
    """numpy brute force: the ``k`` passing items nearest to each vector, and the cosine
    of the k-th."""
    ids, matrix = space_matrix(space)
    sub_ids, sub = ids[rule.passing], matrix[rule.passing]
    sims = np.stack(vectors).astype(np.float32) @ sub.T
    k = min(k, sub.shape[0])
    top = np.argsort(-sims, axis=1)[:, :k]
    return [sub_ids[row] for row in top], np.take_along_axis(sims, top[:, -1:], axis=1)[:, 0]


def filtered_recall(space, rule, vectors, found, served, user_pks) -> dict:
    """recall@10 of the bare filtered query (``found``) and of the first 10 of serving's k
    (``served``) against exact filtered search; lists that came back short; recall by the
    user's number of interest clusters."""
    exact, kth = exact_filtered(space, rule, vectors, 10)
    hits = [
        len(set(got[:10]) & set(want.tolist())) / len(want)
        for got, want in zip(found, exact, strict=True)
    ]
    hits_served = [
        len(set(got[:10]) & set(want.tolist())) / len(want)
        for got, want in zip(served, exact, strict=True)
    ]
    ids, matrix = space_matrix(space)
    position = {int(item_id): index for index, item_id in enumerate(ids)}
    found_kth = [
        float(matrix[position[got[-1]]] @ np.asarray(vector, dtype=np.float32))
        for got, vector in zip(found, vectors, strict=True)
        if got
    ]
    by_interest: dict[int, list[float]] = defaultdict(list)
    for n_clusters, hit in zip(interests(user_pks), hits, strict=True):
        by_interest[n_clusters].append(hit)
    checks = min(3, len(vectors))
    agree = sum(
        set(exact_filtered_sql(space, vectors[i], 10, rule.filters)) == set(exact[i].tolist())
        for i in range(checks)
    )
    return {
        "mean": statistics.fmean(hits),
        "min": min(hits),
        "served": statistics.fmean(hits_served),
        "short": sum(len(got) < 10 for got in found),
        "n": len(hits),
        "sql_check": f"{agree}/{checks}",
        "exact_kth": float(np.mean(kth)),
        "found_kth": statistics.fmean(found_kth) if found_kth else float("nan"),
        "by_interest": {
            n: (len(values), statistics.fmean(values)) for n, values in sorted(by_interest.items())
        },
    }


def plan_indexes(space, vector, k: int, filters, exact: bool = False) -> str:
    """Which indexes the planner picks for the bare filtered query (EXPLAIN, no run)."""
    from django.db import connection, transaction

    from recommender import attributes, spaces

    if exact:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_indexscan = off")
            plan = explain_nearest(space, vector, k, filters, analyze=False)
    else:
        plan = explain_nearest(space, vector, k, filters, analyze=False)
    used = []
    if spaces.index_name(space) in plan:
        used.append("HNSW")
    if attributes.index_name("price") in plan:
        used.append("price index")
    if "Seq Scan" in plan:
        used.append("seq scan")
    if "Sort" in plan:
        used.append("sort")
    return " + ".join(used) or "?"


def summary95(values_s) -> str:
    values = [ms(v) for v in values_s]
    return (
        f"p50 {pct(values, 50):7.2f} ms   p95 {pct(values, 95):7.2f}   "
        f"p99 {pct(values, 99):7.2f}   (n={len(values)})"
    )


@dataclass
class Unfiltered:
    """(e)'s reference: the same queries and requests without a rule, in seconds, before
    and after the filtered ones."""

    bare: list[float]  # nearest_rows top-10, no rule
    in_process: list[float]  # the endpoint in-process, no filter
    bare_after: list[float] = field(default_factory=list)
    in_process_after: list[float] = field(default_factory=list)


def measure_unfiltered(space, vectors, users, client, when: str) -> tuple[list, list]:
    """(e)'s reference, once: the bare query without a rule, the endpoint without one."""
    from recommender.serving.filters import Filters

    bare, _ = time_filtered(space, vectors, 10, Filters())
    print(f"(e) reference ({when}): bare top-10 without a rule:   {summary95(bare)}")
    in_process = time_client_recs(client, users, warmup=20)
    print(f"(e) reference ({when}): endpoint in-process, no filter: {summary95(in_process)}")
    return bare, in_process


def measure_filtered(args, space, sample: Sample, client) -> tuple[Unfiltered, list[FilteredRun]]:
    """(e) Both filters without and with the price's expression index, after the same
    queries and requests without a rule (the reference)."""
    from recommender.conf import conf

    n = args.filtered_queries
    user_pks = sample.picked[:n]
    users = [sample.externals[pk] for pk in user_pks]
    vectors = sample.vectors[:n]
    served_k = max(int(conf.CANDIDATES_PER_SOURCE), 30)  # as candidate_pool asks for k=10
    rules = price_filters()
    runs: list[FilteredRun] = []
    print(
        f"\n(e) filtered serving: {n} profile queries / requests per filter and index state; "
        f"hnsw.max_scan_tuples {show('hnsw.max_scan_tuples')}, "
        f"hnsw.scan_mem_multiplier {show('hnsw.scan_mem_multiplier')}"
    )
    reference = Unfiltered(*measure_unfiltered(space, vectors, users, client, "before"))
    for on in (False, True):
        with price_index(on) as state:
            state_runs = []
            for rule in rules:
                compile_filter(space, rule)
                print(
                    f"(e) [{state}] {rule.label} filter {rule.text!r}: "
                    f"{rule.share:.2%} of the items pass"
                )
                state_runs.append(
                    measure_filter(space, rule, state, vectors, users, user_pks, client, served_k)
                )
            measure_filtered_live(args, state_runs, users)
            if args.ahead:
                measure_filtered_ahead(args, state_runs, sample, users)
            for run in state_runs:
                run.after, _ = time_filtered(space, vectors, 10, run.rule.filters)
                print(f"    [{state}] {run.rule.label}: bare top-10 after:  {summary95(run.after)}")
                print(f"    {verdict_line(run)}")
            if any(not all(run.met.values()) for run in state_runs) or args.profile:
                for run in state_runs:
                    investigate_filtered(client, space, run, sample, users)
            runs.extend(state_runs)
    reference.bare_after, reference.in_process_after = measure_unfiltered(
        space, vectors, users, client, "after"
    )
    return reference, runs


def show(setting: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return cursor.fetchone()[0]


def measure_filter(space, rule, state, vectors, users, user_pks, client, served_k) -> FilteredRun:
    """(e) One filter in one index state: bare, recall, exact, the endpoint in-process."""
    plan = plan_indexes(space, vectors[0], 10, rule.filters)
    before, found = time_filtered(space, vectors, 10, rule.filters)
    print(f"    bare top-10 (plan: {plan}):{'':<4} {summary95(before)}")
    served, served_found = time_filtered(space, vectors[:100], served_k, rule.filters)
    print(f"    bare top-{served_k} (serving's k):{'':<8} {summary95(served)}")
    served_found += [filtered_top(space, v, served_k, rule.filters) for v in vectors[100:]]
    recall = filtered_recall(space, rule, vectors, found, served_found, user_pks)
    print(
        f"    recall@10 {recall['mean']:.4f} (min {recall['min']:.1f}, "
        f"{recall['short']} lists short of 10; first 10 of serving's k: "
        f"{recall['served']:.4f}); numpy exact agrees with SQL on {recall['sql_check']}"
    )
    print(
        f"    by interest clusters: {by_interest(recall)}; cosine of the 10th: exact "
        f"{recall['exact_kth']:.3f}, found {recall['found_kth']:.3f}"
    )
    exact_plan = plan_indexes(space, vectors[0], 10, rule.filters, exact=True)
    exact = []
    for vector in vectors[:20]:
        started = time.perf_counter()
        exact_filtered_sql(space, vector, 10, rule.filters)
        exact.append(time.perf_counter() - started)
    print(f"    exact top-10 (index scans off: {exact_plan}): {summary95(exact)}")
    answers = AnswerCheck(rule)
    in_process = time_client_recs(client, users, warmup=20, query=rule.query, check=answers)
    print(f"    endpoint in-process:{'':<14} {summary95(in_process)}")
    print(f"    answers in-process: {answers}")
    return FilteredRun(
        state, rule, plan, before, served_k, served, recall, exact, exact_plan, in_process, answers
    )


def measure_filtered_live(args, runs: list[FilteredRun], users: list[str]) -> None:
    """(e) The filtered endpoint through gunicorn, both filters on one server."""
    from django.db import connection

    from recommender.serving import helper_connection

    connection.close()  # the helper's too: gunicorn must not inherit them
    helper_connection.shutdown()
    port = free_port()
    with testing.running(start_server(args, port)):
        for run in runs:
            run.live_answers = AnswerCheck(run.rule)
            run.live = time_live_recs(
                port, users, warmup=20, query=run.rule.query, check=run.live_answers
            )
            print(f"    [{run.state}] {run.rule.label}: endpoint live:  {summary95(run.live)}")
            print(f"    answers live: {run.live_answers}")


def measure_filtered_ahead(args, runs: list[FilteredRun], sample: Sample, users) -> None:
    """(e) The filtered endpoint with lists computed ahead after each event, both filters on
    one server (as (c'); the events are removed again)."""
    with ahead_servers(args) as port:
        for run in runs:
            run.ahead_answers = AnswerCheck(run.rule)
            run.ahead = time_ahead(port, sample, users, run.rule.query, run.ahead_answers)
            print(
                f"    [{run.state}] {run.rule.label}: endpoint, computed ahead: "
                f"{summary95(run.ahead.recs)}; ready after {summary(run.ahead.lag)}; "
                f"late {run.ahead.late}"
            )
            print(f"    answers computed ahead: {run.ahead_answers}")
    clean_up_events()


def verdict_line(run: FilteredRun) -> str:
    met = run.met
    live = (
        f", live {run.ratio(run.live):.2f}x {'PASS' if met['ratio live'] else 'MISS'}"
        if run.live
        else ""
    )
    if run.ahead is not None:
        live += (
            f", computed ahead {run.ratio(run.ahead.recs):.2f}x "
            f"{'PASS' if met['ratio ahead'] else 'MISS'}"
        )
    return (
        f"[{run.state}] {run.rule.label}: recall@10 {run.recall['mean']:.4f} "
        f"{'PASS' if met['recall'] else 'MISS'} (>= {FILTERED_TARGETS['recall']}); "
        f"endpoint/bare p50 in-process {run.ratio(run.in_process):.2f}x "
        f"{'PASS' if met['ratio in-process'] else 'MISS'}{live} "
        f"(<= {FILTERED_TARGETS['ratio']:.0f}x)"
    )


def investigate_filtered(client, space, run: FilteredRun, sample: Sample, users) -> None:
    """Why a filtered target is missed: the bare and the served statements under EXPLAIN
    ANALYZE, and the filtered endpoint broken down by stage."""
    from recommender.conf import conf

    rule = run.rule
    vector, user_pk = sample.vectors[0], sample.picked[0]
    print(f"\n(e) [{run.state}] {rule.label} filter {rule.text!r}: where the time goes")
    print(f"plan of the bare filtered query (k 10, ef_search {EF[10]}):")
    print(explain_nearest(space, vector, 10, rule.filters))
    k = int(conf.CANDIDATES_PER_SOURCE)
    print(f"plan of the served filtered query (k {k}, history exclusion, cosine features):")
    print(explain_nearest(space, vector, k, rule.filters, user_pk))
    break_down_endpoint(
        client,
        users[:60],
        query=rule.query,
        title=f"filtered endpoint breakdown [{run.state}, {rule.label}] (in-process)",
    )
    print(f"plan of top_items' filter check (popular head of {4 * k // 2}, this rule):")
    print(explain_top_items(rule.filters, 4 * k // 2))
    orm, raw = time_top_items(rule.filters, k // 2)
    print(
        f"popularity.top_items(popular, {k // 2}, filters) as it is (ORM over item_q()): "
        f"{summary95(orm)}\n"
        f"the same check as one precompiled statement (item_where, as candidate_rows): "
        f"{summary95(raw)}"
    )


def explain_top_items(filters, head: int) -> str:
    """The plan of ``popularity.top_items``' check of the popular head against the rule
    (the ORM query it runs when a filter narrows the items)."""
    from recommender.models import Item
    from recommender.serving import popularity

    ranked = popularity.popularity().head()
    ids = [item_id for item_id, _ in itertools.islice(ranked, head)]
    query = Item.objects.filter(filters.item_q()).filter(pk__in=ids).values_list("pk", flat=True)
    plan = query.explain(analyze=True, buffers=True)
    plan = re.sub(r"'\{[^']{60,}\}'", "'{...}'", plan)
    return "\n".join("    " + line for line in plan.splitlines())


def time_top_items(filters, k: int, n: int = 200) -> tuple[list[float], list[float]]:
    """``popularity.top_items`` with a narrowing filter (it checks 4k of the popular head
    through the ORM), against the same check with ``item_where``'s precompiled SQL."""
    from django.db import connection

    from recommender.models import Item
    from recommender.serving import popularity
    from recommender.serving.filters import item_where

    popular = popularity.popularity()
    orm, raw = [], []
    for _ in range(n):
        started = time.perf_counter()
        expected = popularity.top_items(popular, k, filters)
        orm.append(time.perf_counter() - started)
        started = time.perf_counter()
        head = [
            (item_id, score)
            for item_id, score in itertools.islice(popular.head(), 4 * k)
            if item_id not in filters.exclude_ids
        ]
        where, params = item_where(filters)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table(Item)} WHERE id = ANY(%s) AND {where}",
                [[item_id for item_id, _ in head], *params],
            )
            allowed = {row[0] for row in cursor.fetchall()}
        found = dict([(item_id, score) for item_id, score in head if item_id in allowed][:k])
        raw.append(time.perf_counter() - started)
        if found != expected:
            raise SystemExit("the precompiled top_items check differs from top_items")
    return orm, raw


def report_filtered(reference: Unfiltered, runs: list[FilteredRun]) -> None:
    """Print (e)'s summary table."""
    print(
        f"\nsummary (e): filtered serving, targets recall@10 >= {FILTERED_TARGETS['recall']} "
        f"and endpoint p50 <= {FILTERED_TARGETS['ratio']:.0f}x bare filtered p50"
    )
    both_bare = reference.bare + reference.bare_after
    both_in_process = reference.in_process + reference.in_process_after
    print(
        f"  reference, no rule: bare top-10 {summary95(both_bare)}; before / after p50 "
        f"{ms(pct(reference.bare, 50)):.2f} / {ms(pct(reference.bare_after, 50)):.2f} ms"
    )
    print(
        f"                      endpoint in-process {summary95(both_in_process)}; before / "
        f"after p50 {ms(pct(reference.in_process, 50)):.2f} / "
        f"{ms(pct(reference.in_process_after, 50)):.2f} ms"
    )
    base = pct(both_in_process, 50)
    for run in runs:
        rule, recall = run.rule, run.recall
        print(f"  [{run.state}] {rule.label} {rule.text!r} ({rule.share:.2%} pass)")
        rows = [
            (f"bare top-10 ({run.plan})", summary95(run.bare)),
            (
                "  before / after p50",
                f"{ms(pct(run.before, 50)):.2f} / {ms(pct(run.after, 50)):.2f} ms",
            ),
            (f"bare top-{run.served_k} (serving's k)", summary95(run.served)),
            (f"exact top-10 ({run.exact_plan})", summary95(run.exact)),
            (
                "recall@10 vs exact filtered",
                f"{recall['mean']:.4f} (min {recall['min']:.1f}, {recall['short']} short lists; "
                f"first 10 of serving's k {recall['served']:.4f})",
            ),
            ("endpoint in-process", summary95(run.in_process)),
            (
                "  vs no filter at p50",
                f"{ms(pct(run.in_process, 50) - base):+.2f} ms "
                f"({pct(run.in_process, 50) / base:.2f}x the unfiltered endpoint)",
            ),
            ("endpoint live (gunicorn)", summary95(run.live) if run.live else "not run"),
            (
                "endpoint, computed ahead",
                f"{summary95(run.ahead.recs)}; ready after {summary(run.ahead.lag)}, "
                f"late {run.ahead.late}"
                if run.ahead is not None
                else "not run",
            ),
            (
                "answers",
                f"in-process: {run.answers}; live: {run.live_answers}; "
                f"computed ahead: {run.ahead_answers}",
            ),
            ("verdict", verdict_line(run).split(": ", 1)[1]),
        ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            print(f"    {label:<{width}}  {value}")


# --- Stages -----------------------------------------------------------------------------


@dataclass
class Dataset:
    """The data the measures run on."""

    space: Any  # the active EncoderSpace
    marker: dict  # dataset.json
    reused: bool  # built by an earlier run


@dataclass
class Sample:
    """Random users with stored profiles, drawn once for every measure."""

    picked: list[int]  # user pks, --queries + 60 of them
    externals: dict[int, str]  # their external ids
    vectors: list  # their profile vectors, in the order of picked
    queries: int  # --queries: the timed measures use the first ones
    rng: np.random.Generator  # the later draws (the events to post) continue from it

    @property
    def users(self) -> list[str]:
        return [self.externals[pk] for pk in self.picked[: self.queries]]

    @property
    def query_vectors(self) -> list:
        return self.vectors[: self.queries]


@dataclass
class Bare:
    """(a) bare HNSW search times, in seconds."""

    before: list[float]  # top-10 at EF[10], before the endpoint runs
    ef40: list[float]  # top-10 at pgvector's default
    top100: list[float]  # top-100 at EF[100]
    after: list[float] = field(default_factory=list)  # top-10 at EF[10], after

    @property
    def both(self) -> list[float]:
        return self.before + self.after


@dataclass
class InProcess:
    """(c) the endpoint through Django's test client, in seconds."""

    times: list[float]
    helper_on: list[float]
    helper_off: list[float]
    logging_on: list[float]
    logging_off: list[float]


@dataclass
class Live:
    """(c) and (d) against gunicorn, in seconds, and the (user, item) pairs posted."""

    recs: list[float]
    posts: list[float]
    pairs: list[tuple[str, str]]


@dataclass
class Ahead:
    """(c') Lists computed ahead by a worker after each event, in seconds."""

    recs: list[float]  # the GET after the event, once its list was ready
    posts: list[float]  # the event POSTs that asked a worker for it
    lag: list[float]  # from the POST's answer until the list was in the cache
    late: int  # lists not ready within AHEAD_WAIT (their GET computed them itself)


@dataclass
class Verdict:
    """The targets, judged at serving's ef_search."""

    ratio_live: float
    ratio_in: float
    met: dict[str, bool]
    ratio_ahead: float | None = None


def refuse_outside_servers() -> None:
    """Stop here when the environment points at servers this benchmark would empty."""
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this benchmark empties its database "
            f"and uses its own embedded servers under {DATA_DIR}"
        )


def prepare_data(args) -> Dataset:
    """Migrate, remove what an interrupted run posted, and reuse or build the data set."""
    from django.core.management import call_command

    from recommender import spaces

    call_command("migrate", verbosity=0)
    removed = remove_bench_events()
    if removed:
        print(f"removed {removed} events left by an interrupted run")
    ready, why = (False, "--rebuild") if args.rebuild else dataset_ready(args)
    if ready:
        print(why)
    else:
        print(f"building the data set ({why}):")
        started = time.perf_counter()
        build_dataset(args)
        print(f"  data set built in {time.perf_counter() - started:.0f}s")
    marker = json.loads((DATA_DIR / "dataset.json").read_text())
    space = spaces.active_space()
    describe_data(args, space)
    return Dataset(space, marker, reused=ready)


def describe_data(args, space) -> None:
    """Print the data's size and the server settings that shape the figures."""
    from django.db import connection

    from recommender.models import EndUser, Item

    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        pgvector_version = cursor.fetchone()[0]
        cursor.execute("SHOW shared_buffers")
        shared_buffers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM recommender_itemcooccurrence")
        cooc_rows = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync_commit = cursor.fetchone()[0]
    print(
        f"data: {Item.objects.count():,} items, {EndUser.objects.count():,} users, "
        f"{args.users * args.events_per_user:,} events, {cooc_rows:,} co-occurrence rows; "
        f"space {space.name} ({space.plugin}, {space.dim}d); pgvector {pgvector_version}, "
        f"shared_buffers {shared_buffers}, synchronous_commit {sync_commit}, "
        f"DEBUG={os.environ['DEBUG']}"
    )


def measure_floors() -> dict[str, list[float]]:
    """The floors: a SELECT 1 round trip and a one-row INSERT + COMMIT."""
    floor = floors()
    print(f"floor: SELECT 1 via the ORM cursor   {summary(floor['select1'])}")
    print(f"floor: 1-row INSERT + COMMIT         {summary(floor['commit'])}")
    return floor


def draw_sample(args, space) -> Sample:
    """Draw the users whose profile vectors are the queries and who request recommendations."""
    from recommender.models import EndUser, UserProfile
    from recommender.serving import profiles

    rng = np.random.default_rng(args.seed + 1)
    # In key order: the table's physical order moves as profiles are rewritten, and the
    # draw must name the same users in every run of the same data set.
    user_pks = list(
        UserProfile.objects.filter(space=space)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    picked = [int(pk) for pk in rng.choice(user_pks, size=args.queries + 60, replace=False)]
    externals = dict(EndUser.objects.filter(pk__in=picked).values_list("pk", "external_id"))
    vectors = [profiles.load(pk, space).vector() for pk in picked]
    return Sample(picked, externals, vectors, args.queries, rng)


def ef_search_as_served() -> dict[int, int]:
    """The ef_search serving uses for top-10 and top-100 (``nearest.ef_search``)."""
    from recommender.serving import nearest

    return {10: nearest.ef_search(10), 100: nearest.ef_search(100)}


def measure_bare_search(space, sample: Sample) -> Bare:
    """(a) Bare HNSW top-10 at EF[10] and at ef 40, and top-100 at EF[100]; first half of
    the bracket around the endpoint."""
    from django.db import connection, transaction

    from recommender import spaces
    from recommender.serving import nearest

    q_vectors = sample.query_vectors
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = 40")
        plan = (
            nearest.vector_query(space, q_vectors[0])
            .values_list("item_id", "distance")[:10]
            .explain()
        )
    uses_index = spaces.index_name(space) in plan
    print(f"(a) plan uses {spaces.index_name(space)}: {uses_index}")

    before = time_bare(space, q_vectors, EF[10])
    print(f"(a) bare HNSW top-10 ef {EF[10]} (ORM, before):  {summary(before)}")
    bare40 = time_bare(space, q_vectors, 40)
    print(f"    bare HNSW top-10 ef 40 (pgvector default): {summary(bare40)}")
    serving_sql = []
    for vector in q_vectors[:100]:
        started = time.perf_counter()
        hnsw_top(space, vector, 100, EF[100])
        serving_sql.append(time.perf_counter() - started)
    print(f"    bare HNSW top-100 ef {EF[100]} (unfiltered): {summary(serving_sql)}")
    return Bare(before, bare40, serving_sql)


def measure_ann_recall(args, space, sample: Sample) -> dict:
    """(b) Recall of the HNSW search against exact search, and the ef_search sweep."""
    n = args.recall_queries
    recall = measure_recall(space, sample.vectors[:n], sample.picked[:n])
    print(
        f"(b) recall@10 ef 40 {recall['r10_ef40']:.4f} (min {recall['r10_ef40_min']:.1f}), "
        f"ef {EF[10]} {recall['r10_serving']:.4f} (min {recall['r10_serving_min']:.1f}); "
        f"recall@100 ef {EF[100]} {recall['r100_serving']:.4f} over {recall['n']} queries "
        f"(numpy exact agrees with SQL seq scan on {recall['sql_check']})"
    )
    print(
        f"    recall@10 ef 1000 {recall['r10_ef1000']:.4f}; ef 40 by the user's number of "
        f"interest clusters: {by_interest(recall)}"
    )
    print(
        f"    recall@10 as served (the profile's exact top-10 in what serving's searches "
        f"find): {recall['r10_as_served']:.4f} ± {ci95(recall['as_served_hits']):.4f} (95 % CI; "
        f"min {recall['r10_as_served_min']:.1f}, {sum(h == 0 for h in recall['as_served_hits'])} "
        f"users with none found); by "
        f"clusters: {by_interest(recall, 'as_served_hits')}; those searches "
        f"{summary(recall['as_served_times'])}"
    )
    print(
        f"    with RECOMMENDER_INTEREST_SEARCHES=3: {recall['r10_interests']:.4f}; by clusters: "
        f"{by_interest(recall, 'interests_hits')}; searches {summary(recall['interests_times'])}"
    )
    print("    ef_search sweep (top-10):  ef  recall@10  p50 ms  p99 ms")
    for ef, mean_recall, p50, p99 in recall["sweep"]:
        print(f"    {ef:>30}  {mean_recall:9.4f}  {ms(p50):6.2f}  {ms(p99):6.2f}")
    return recall


def measure_halfvec(args, space, sample: Sample) -> None:
    """(b') ``benchmarks/halfvec.py``'s vector-against-halfvec measure on the same profile
    queries as (b); its temporary indexes are dropped before it returns."""
    import halfvec

    print("(b') vector and halfvec HNSW indexes, the same queries (benchmarks/halfvec.py):")
    # The build memory of the serving index: at 1M items the default 1GB does not hold
    # the graph, and each build then takes the better part of an hour instead of minutes.
    result = halfvec.measure(
        space, sample.vectors[: args.recall_queries], maintenance_work_mem=args.maintenance_work_mem
    )
    halfvec.report(result, (40, 1000))


def by_interest(recall: dict, key: str = "r10_ef40_hits") -> str:
    """Mean recall (``key``: the per-query hits) by the user's number of clusters."""
    if "clusters" not in recall:  # filtered_recall's, grouped already
        return ", ".join(
            f"{n}: {mean:.3f} (n={count})" for n, (count, mean) in recall["by_interest"].items()
        )
    grouped: dict[int, list[float]] = defaultdict(list)
    for n_clusters, hit in zip(recall["clusters"], recall[key], strict=True):
        grouped[n_clusters].append(hit)
    return ", ".join(
        f"{n}: {statistics.fmean(hits):.3f} (n={len(hits)})" for n, hits in sorted(grouped.items())
    )


def measure_endpoint_in_process(client, sample: Sample) -> InProcess:
    """(c) The endpoint through Django's test client, then with the helper connection on
    and off (it needs no server)."""
    times = time_client_recs(client, sample.users, warmup=20)
    print(f"(c) endpoint in-process (Django test client): {summary(times)}")
    helper_on, helper_off = compare_switch(client, sample.users, "RECOMMENDER_PARALLEL_RETRIEVAL")
    print(f"    in-process, helper connection on  (interleaved): {summary(helper_on)}")
    print(f"    in-process, helper connection off (interleaved): {summary(helper_off)}")
    logging_on, logging_off = compare_switch(client, sample.users, "RECOMMENDER_LOG_SERVED_LISTS")
    print(f"    in-process, served-list log on  (interleaved): {summary(logging_on)}")
    print(f"    in-process, served-list log off (interleaved): {summary(logging_off)}")
    return InProcess(times, helper_on, helper_off, logging_on, logging_off)


def measure_live_server(args, sample: Sample) -> Live:
    """(c) The endpoint and (d) event POSTs against gunicorn started (and stopped) here."""
    from django.db import connection

    from recommender.serving import helper_connection

    connection.close()  # the helper's too: gunicorn must not inherit them
    helper_connection.shutdown()
    port = free_port()
    started = time.perf_counter()
    with testing.running(start_server(args, port)):
        print(
            f"    gunicorn ({args.workers} sync workers) answered health after "
            f"{time.perf_counter() - started:.1f}s on 127.0.0.1:{port}"
        )
        live = time_live_recs(port, sample.users, warmup=40)
        print(f"(c) endpoint live (gunicorn, HTTP):          {summary(live)}")
        pairs = draw_event_pairs(sample)
        posts = time_live_posts(port, pairs, warmup=20)
        print(f"(d) POST /api/v1/behaviours live:           {summary(posts)}")
    return Live(live, posts, pairs)


AHEAD_WAIT = 5.0  # seconds (c') waits for a list computed ahead


def measure_ahead(args, sample: Sample) -> Ahead:
    """(c') Lists computed ahead (RECOMMENDER_LIST_REFRESH_SECONDS): gunicorn with the list
    cache and the refresh on, and one Celery worker (``time_ahead``)."""
    with ahead_servers(args) as port:
        ahead = time_ahead(port, sample, sample.users)
    print(f"(c') endpoint, list computed ahead:         {summary(ahead.recs)}")
    print(f"     its event POST (asks the worker):      {summary(ahead.posts)}")
    print(f"     event answered → list ready:           {summary(ahead.lag)}; late: {ahead.late}")
    return ahead


@contextmanager
def ahead_servers(args) -> Iterator[int]:
    """gunicorn with the list cache and lists computed ahead, and one Celery worker; the
    port."""
    from django.db import connection

    from recommender.serving import helper_connection

    connection.close()  # the helper's too: gunicorn must not inherit them
    helper_connection.shutdown()
    port = free_port()
    env = testing.environ(
        RECSITE_DATA_DIR=str(DATA_DIR),
        RECOMMENDER_LIST_CACHE_SECONDS="600",
        RECOMMENDER_LIST_REFRESH_SECONDS="600",
    )
    worker = testing.start_worker(
        env, DATA_DIR / "worker-ahead.log", name="bench-ahead", pool="prefork", concurrency=1
    )
    server = testing.start_gunicorn(
        env, DATA_DIR / "gunicorn.log", port=port, workers=args.workers, request_timeout=120
    )
    with testing.running(server, worker):
        yield port


def time_ahead(port: int, sample: Sample, users: list[str], query: str = "", check=None) -> Ahead:
    """Per user: a GET (computed; how it was asked is kept), an event POST (a worker
    computes the next list), a wait until that list is in the cache (the lag), then the
    timed GET, which serves it (``check`` sees each answer)."""
    pk_of = {external: pk for pk, external in sample.externals.items()}
    pairs = draw_event_pairs(sample)
    recs, posts, lag, late = [], [], [], 0
    for index, user in enumerate(users):
        get_list(port, user, query)
        status, body, elapsed = call(
            port, "POST", "/api/v1/behaviours", event_body(user, pairs[index][1])
        )
        if status != 201:
            raise SystemExit(f"POST behaviours answered {status}: {body[:300]!r}")
        posts.append(elapsed)
        waited = wait_until_ready(pk_of[user])
        if waited is None:
            late += 1
        else:
            lag.append(waited)
        recs.append(get_list(port, user, query, check))
    return Ahead(recs, posts, lag, late)


def wait_until_ready(user_pk: int) -> float | None:
    """Seconds until every list ``user_pk`` asked for is in the list cache for what they
    did now (None: not within AHEAD_WAIT)."""
    from dataclasses import replace

    from recommender import sharedcache
    from recommender.models import EndUser
    from recommender.serving import list_cache

    started = time.perf_counter()
    user = EndUser.objects.get(pk=user_pk)
    while time.perf_counter() - started < AHEAD_WAIT:
        shapes = (sharedcache.get(list_cache.SHAPES + str(user_pk)) or {}).values()
        keys = [
            list_cache.key(replace(shape, user=user), scenario=scenario, variant=variant)
            for _, shape, scenario, variant, _, _ in shapes
        ]
        if keys and all(list_cache.lookup(key)[0] is not None for key in keys):
            return time.perf_counter() - started
        time.sleep(0.002)
    return None


def draw_event_pairs(sample: Sample) -> list[tuple[str, str]]:
    """(user, item) pairs for the event POSTs: sampled users, random items."""
    from recommender.models import Item

    rng = sample.rng
    items_ext = list(Item.objects.values_list("external_id", flat=True)[:50_000])
    post_users = [sample.externals[pk] for pk in sample.picked]
    return [
        (
            post_users[int(rng.integers(len(post_users)))],
            items_ext[int(rng.integers(len(items_ext)))],
        )
        for _ in range(sample.queries + 20)
    ]


def measure_bare_search_again(space, sample: Sample) -> list[float]:
    """(a) Bare HNSW top-10 at EF[10], second half of the bracket."""
    after = time_bare(space, sample.query_vectors, EF[10])
    print(f"(a) bare HNSW top-10 ef {EF[10]} (ORM, after):   {summary(after)}")
    return after


def judge(
    bare: Bare, in_process: InProcess, live: Live, recall: dict, ahead: Ahead | None
) -> Verdict:
    """The endpoint/bare ratios and whether each target is met (the ratio by lists computed
    ahead when they were measured: the endpoint as a shop with them on runs it)."""
    bare_p50 = pct(bare.ef40, 50)  # pgvector's default breadth: issue 20's base
    ratio_live = pct(live.recs, 50) / bare_p50
    ratio_in = pct(in_process.times, 50) / bare_p50
    ratio_ahead = pct(ahead.recs, 50) / bare_p50 if ahead is not None else None
    met = {
        "ratio": (ratio_ahead if ratio_ahead is not None else ratio_live) <= TARGETS["ratio"],
        "recall": recall["r10_as_served"] >= TARGETS["recall"],
        "post": ms(pct(live.posts, 50)) < TARGETS["post_ms"],
    }
    return Verdict(ratio_live, ratio_in, met, ratio_ahead)


def break_down(client, space, sample: Sample, live: Live) -> None:
    """Where the in-process endpoint's and event POST's time goes (a target missed, or
    --profile)."""
    n_b = min(sample.queries, 200)
    break_down_endpoint(client, sample.users[:n_b])
    profile_endpoint(client, sample.users[: min(50, sample.queries)])
    print("\nplan of nearest_rows' query (history exclusions, is_active filter):")
    print(explain_serving_query(space, sample.picked[0], sample.query_vectors[0]))
    break_down_events(client, live.pairs[:n_b])


def break_down_endpoint(
    client, users: list[str], query: str = "", title: str = "endpoint breakdown (in-process)"
) -> None:
    """Exclusive time per stage of the in-process endpoint, and its SQL statements."""
    from django.db import connection, reset_queries

    per_request, helper, counts = [], [], []
    connection.force_debug_cursor = True  # count statements even with DEBUG off
    with recommendation_stages() as timer:

        def collect():
            per_request.append(timer.take())
            helper.append(timer.take_helper())
            counts.append(len(connection.queries))
            reset_queries()

        timer.take()
        reset_queries()
        totals = time_client_recs(client, users, warmup=0, each=collect, query=query)
    connection.force_debug_cursor = False
    print_stages(title, per_request, totals)
    print(
        f"  SQL statements per request: median {statistics.median(counts):.0f}, "
        f"max {max(counts)} (on the request's connection)"
    )
    for label in sorted({label for sample in helper for label in sample}):
        values = [sample.get(label, 0.0) for sample in helper]
        mean, p50 = ms(statistics.fmean(values)), ms(pct(values, 50))
        print(f"  overlapped, helper thread: {label}: mean {mean:.2f}, p50 {p50:.2f} ms")


def profile_endpoint(client, users: list[str]) -> None:
    """cProfile over a few in-process requests."""
    profiler = cProfile.Profile()
    profiler.enable()
    time_client_recs(client, users, warmup=0)
    profiler.disable()
    print_cprofile(profiler, len(users))


def break_down_events(client, pairs: list[tuple[str, str]]) -> None:
    """Exclusive time per stage of the in-process event POST, and its SQL statements."""
    from django.db import connection, reset_queries

    per_event, event_totals, event_counts = [], [], []
    connection.force_debug_cursor = True
    with event_stages() as timer:
        timer.take()
        reset_queries()
        for user, item in pairs:
            started = time.perf_counter()
            response = client.post(
                "/api/v1/behaviours",
                event_body(user, item),
                content_type="application/json",
                HTTP_ACCEPT="application/json",
            )
            event_totals.append(time.perf_counter() - started)
            per_event.append(timer.take())
            event_counts.append(len(connection.queries))
            reset_queries()
            if response.status_code != 201:
                raise SystemExit(f"POST answered {response.status_code}")
    connection.force_debug_cursor = False
    print_stages("event POST breakdown (in-process)", per_event, event_totals)
    print(
        f"  SQL statements per event: median {statistics.median(event_counts):.0f} "
        "(SAVEPOINT/RELEASE included)"
    )


def clean_up_events() -> None:
    """Delete the posted events and recompute the profiles they touched."""
    removed = remove_bench_events()
    print(f"\nremoved the {removed} posted events and recomputed those users' profiles")


def report(
    args,
    load_start: str,
    data: Dataset,
    floor: dict,
    bare: Bare,
    recall: dict,
    in_process: InProcess,
    live: Live,
    ahead: Ahead | None,
    verdict: Verdict,
) -> None:
    """Print the summary table."""
    load_end = load()
    print("\nsummary")
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("load average", f"start {load_start}; end {load_end}"),
        *data_rows(args, data, floor),
        *search_rows(bare, recall),
        *endpoint_rows(in_process, live, ahead, verdict),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def data_rows(args, data: Dataset, floor: dict) -> list[tuple[str, str]]:
    """Summary rows: the data set, its build, and the floors."""
    build = ", ".join(
        f"{k.removeprefix('seconds_')} {v}"
        for k, v in data.marker.items()
        if k.startswith("seconds_")
    )
    return [
        (
            "data",
            f"{args.items:,} items, {args.users:,} users, "
            f"{args.users * args.events_per_user:,} events, {args.dim}d, "
            f"{args.clusters} clusters, noise {args.noise}",
        ),
        ("build (s)" if not data.reused else "build (s, earlier run)", build or "reused"),
        ("SELECT 1 round trip", summary(floor["select1"])),
        ("INSERT + COMMIT", summary(floor["commit"])),
    ]


def search_rows(bare: Bare, recall: dict) -> list[tuple[str, str]]:
    """Summary rows: (a) bare HNSW and (b) recall."""
    before_after = f"{ms(pct(bare.before, 50)):.2f} / {ms(pct(bare.after, 50)):.2f} ms"
    return [
        (f"bare HNSW top-10 ef{EF[10]}", summary(bare.both)),
        ("bare HNSW top-10 ef40", summary(bare.ef40)),
        ("  before / after p50", before_after),
        (f"bare HNSW top-100 ef{EF[100]}", summary(bare.top100)),
        (
            f"recall@10 ef40 / ef{EF[10]}",
            f"{recall['r10_ef40']:.4f} / {recall['r10_serving']:.4f}",
        ),
        (f"recall@100 ef{EF[100]}", f"{recall['r100_serving']:.4f}"),
        ("recall@10 ef1000", f"{recall['r10_ef1000']:.4f}"),
        ("recall@10 ef40 by clusters", by_interest(recall)),
        (
            "recall@10 as served",
            f"{recall['r10_as_served']:.4f}; by clusters "
            f"{by_interest(recall, 'as_served_hits')}; "
            f"searches {summary(recall['as_served_times'])}",
        ),
    ]


def logging_cost(on: list[float], off: list[float]) -> str:
    """What logging every list adds at p50 (target: at most 1.1x and 1 ms)."""
    p50_on, p50_off = statistics.median(on), statistics.median(off)
    ratio, added = p50_on / p50_off, (p50_on - p50_off) * 1000
    met = ratio <= 1.1 and added <= 1.0
    return (
        f"{ratio:.2f}x, {added:+.2f} ms (target <= 1.1x and <= 1 ms: {'met' if met else 'MISSED'})"
    )


def endpoint_rows(
    in_process: InProcess, live: Live, ahead: Ahead | None, verdict: Verdict
) -> list[tuple[str, str]]:
    """Summary rows: (c) the endpoint, (c') computed ahead, (d) the event POST, and the
    targets."""
    met = verdict.met
    computed_ahead = []
    if ahead is not None:
        computed_ahead = [
            ("endpoint, list computed ahead", summary(ahead.recs)),
            ("  its event POST", summary(ahead.posts)),
            ("  event answered → list ready", f"{summary(ahead.lag)}; late {ahead.late}"),
        ]
    ratio_ahead = (
        f"computed ahead {verdict.ratio_ahead:.1f}x, " if verdict.ratio_ahead is not None else ""
    )
    return [
        ("endpoint live (gunicorn)", summary(live.recs)),
        *computed_ahead,
        ("endpoint in-process", summary(in_process.times)),
        ("  helper connection on", summary(in_process.helper_on)),
        ("  helper connection off", summary(in_process.helper_off)),
        ("  served-list log on", summary(in_process.logging_on)),
        ("  served-list log off", summary(in_process.logging_off)),
        ("  log cost at p50", logging_cost(in_process.logging_on, in_process.logging_off)),
        ("event POST live", summary(live.posts)),
        (
            "ratio endpoint/bare ef40 p50",
            f"{ratio_ahead}live {verdict.ratio_live:.1f}x, in-process {verdict.ratio_in:.1f}x "
            f"(target <= {TARGETS['ratio']:.0f}x: "
            f"{'met' if met['ratio'] else 'MISSED'})",
        ),
        (
            "recall target >= 0.95",
            f"recall@10 as served: {'met' if met['recall'] else 'MISSED'}",
        ),
        (
            "event POST p50 < 15 ms",
            f"{ms(pct(live.posts, 50)):.2f} ms ({'met' if met['post'] else 'MISSED'})",
        ),
    ]


# --- Main -------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    use_data_dir(args.data_dir)
    refuse_outside_servers()
    with testing.own_services(DATA_DIR, keep=args.keep_servers):
        load_start = load()
        print(f"load average at start: {load_start}")
        import django

        django.setup()
        from django.db import connection
        from django.test import Client

        try:
            data = prepare_data(args)
            sample = draw_sample(args, data.space)
            EF.update(ef_search_as_served())
            client = Client()  # the in-process measures and the breakdowns share it
            if not args.only_filtered:
                floor = measure_floors()
                bare = measure_bare_search(data.space, sample)
                recall = measure_ann_recall(args, data.space, sample)
                if args.halfvec:
                    measure_halfvec(args, data.space, sample)
                in_process = measure_endpoint_in_process(client, sample)
                live = measure_live_server(args, sample)
                ahead = measure_ahead(args, sample) if args.ahead else None
                bare.after = measure_bare_search_again(data.space, sample)
                verdict = judge(bare, in_process, live, recall, ahead)
                if not all(verdict.met.values()) or args.profile:
                    break_down(client, data.space, sample, live)
                clean_up_events()
            filtered = measure_filtered(args, data.space, sample, client) if args.filtered else None
            if not args.only_filtered:
                report(
                    args, load_start, data, floor, bare, recall, in_process, live, ahead, verdict
                )
            if filtered is not None:
                print(f"\nload average: start {load_start}; end {load()}")
                report_filtered(*filtered)
        finally:
            connection.close()


if __name__ == "__main__":
    main()
