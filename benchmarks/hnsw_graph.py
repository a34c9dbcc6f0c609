"""HNSW graph shapes compared on the serving benchmark's data set, rebuilt in place the way
an operator would (``manage.py encoder_space reindex NAME --m M --ef-construction E``):
build time, index size, and per search breadth the bare top-10's latency and recall@10
against exact search.

Run by hand, after ``benchmarks/serving.py`` has built its data set (this script never
builds it):
    .venv/bin/python benchmarks/hnsw_graph.py [--graphs 16:64,32:128] [--efs 40,100,200,400,1000]
        [--queries 200] [--seed 0] [--data-dir .recsite/bench-serving] [--keep]

Uses the embedded PostgreSQL and Redis of ``--data-dir`` (100,000 items x 384 d in the
active ``bench-serving`` space by default) with DEBUG=0. For each graph ``m:ef_construction``
in turn, ``spaces.reindex_space`` rebuilds the serving index with it (``CREATE INDEX
CONCURRENTLY`` beside the old one, with ``RECOMMENDER_INDEX_BUILD_MEMORY``, then the old one
dropped: the path the command takes, timed as it reports it); then, for each ``--efs``
breadth, the bare top-10 of every query (``nearest.vector_query(space, v)[:10]`` under
``SET LOCAL hnsw.ef_search``, as ``benchmarks/halfvec.py`` runs it, after one untimed
pass at ef 1000 to warm the index) and its recall@10 against numpy exact search over every
stored vector (cross-checked with PostgreSQL's exact search on 3 queries). Queries: the
stored profiles of ``--queries`` users drawn as ``benchmarks/serving.py`` draws them.

A graph that is the space's own at that moment is searched as it serves, not rebuilt
(its build time is then not measured: list it after another to time its build). At the
end the space gets back the graph it had at the start (one more rebuild), unless
``--keep`` leaves it with the last graph measured. Each graph is measured on one build of
it: two builds of the same graph differ a little by themselves (pgvector's graph depends
on the insertion order of a parallel build), so read a difference of a few thousandths in
recall as noise.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import halfvec  # noqa: E402  (its exact search, queries and bare top-10)

from recsite import testing  # noqa: E402

DATA_DIR = ROOT / ".recsite" / "bench-serving"


def graph_list(text: str) -> list[tuple[int, int]]:
    """``16:64,32:128`` → [(16, 64), (32, 128)]."""
    graphs = []
    for part in text.split(","):
        m, sep, ef = part.strip().partition(":")
        if not sep or not m.isdigit() or not ef.isdigit():
            raise argparse.ArgumentTypeError(f"{part!r}: expected M:EF_CONSTRUCTION, e.g. 32:128")
        graphs.append((int(m), int(ef)))
    return graphs


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers, e.g. 40,100,1000") from None
    if any(value < 10 or value > 1000 for value in values):
        raise argparse.ArgumentTypeError("each ef_search must be from 10 to 1000")
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=graph_list, default=graph_list("16:64,32:128"))
    parser.add_argument("--efs", type=int_list, default=int_list("40,100,200,400,1000"))
    parser.add_argument("--queries", type=int, default=200, help="profile vectors searched")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--keep", action="store_true", help="leave the space with the last graph measured"
    )
    args = parser.parse_args()
    if args.queries < 2:
        parser.error("--queries must be at least 2 (recall's interval needs two)")
    return args


def ci95(values: list[float]) -> float:
    """Half-width of the normal 95 % interval of the mean of ``values``."""
    return 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def measure_graph(space, graph, queries, exact, efs) -> dict:
    """Rebuild the space's index with ``graph`` in place, then search it at each breadth."""
    from recommender import spaces

    rebuilt = spaces.graph_of(space) != graph  # the serving graph is searched as it is
    done = spaces.reindex_space(space, graph=graph)
    space.refresh_from_db()
    plan = halfvec.plan_index(space, queries[0])
    for vector in queries:  # warm the new index
        halfvec.top10(space, vector, halfvec.WARMUP_EF)
    per_ef = {}
    for ef in efs:
        times, hits = [], []
        for vector, want in zip(queries, exact, strict=True):
            started = time.perf_counter()
            found = halfvec.top10(space, vector, ef)
            times.append(time.perf_counter() - started)
            hits.append(len(set(found) & set(want[:10])) / 10)
        per_ef[ef] = {
            "p50_ms": halfvec.pct(times, 50) * 1000,
            "p99_ms": halfvec.pct(times, 99) * 1000,
            "recall10": statistics.fmean(hits),
            "ci95": ci95(hits),
            "missed_all": sum(1 for hit in hits if hit == 0),
        }
    return {
        "index": done.index,
        "plan_index": plan,
        "build_s": done.seconds if rebuilt else None,
        "size_bytes": done.size_bytes,
        "efs": per_ef,
    }


def report(results: dict, efs: list[int], n: int, vectors: int) -> None:
    graphs = list(results)
    header = " | ".join(f"m {m}, ef_construction {ef}" for m, ef in graphs)
    print(f"\n| {n} queries, {vectors:,} vectors | {header} |")
    print("|---|" + "---|" * len(graphs))
    print(
        "| build (CONCURRENTLY, in place) | "
        + " | ".join(
            "serving index, not rebuilt"
            if results[g]["build_s"] is None
            else f"{results[g]['build_s']:.1f} s"
            for g in graphs
        )
        + " |"
    )
    print(
        "| index size | "
        + " | ".join(f"{results[g]['size_bytes'] / 2**20:,.1f} MiB" for g in graphs)
        + " |"
    )
    for ef in efs:
        cells = [results[g]["efs"][ef] for g in graphs]
        print(
            f"| ef_search {ef}: top-10 p50 / p99 | "
            + " | ".join(f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f} ms" for c in cells)
            + " |"
        )
        print(
            f"| ef_search {ef}: recall@10 ± 95 % (queries with none) | "
            + " | ".join(
                f"{c['recall10']:.3f} ± {c['ci95']:.3f} ({c['missed_all']})" for c in cells
            )
            + " |"
        )
    searched = "; ".join(f"m {m}/{ef}: {results[(m, ef)]['plan_index']}" for m, ef in graphs)
    print(f"\nsearched through: {searched}")


def main() -> None:
    args = parse_args()
    testing.use_data_dir(args.data_dir, DEBUG="0", SECRET_KEY="bench-graph-not-a-secret")
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this benchmark uses the embedded "
            f"servers of {args.data_dir}"
        )
    if not (args.data_dir / "dataset.json").exists():
        raise SystemExit(
            f"no serving data set in {args.data_dir}: build it first with "
            "`.venv/bin/python benchmarks/serving.py` (this benchmark does not build it)"
        )
    with testing.own_services(args.data_dir):
        import django

        django.setup()
        from django.core.exceptions import ValidationError
        from django.db import connection

        from recommender import spaces
        from recommender.conf import conf

        try:
            graphs = [spaces.check_graph(m, ef) for m, ef in args.graphs]
        except ValidationError as exc:
            raise SystemExit(f"--graphs: {exc.messages[0]}") from None
        try:
            space = halfvec.serving_space(args.data_dir)
            start_graph = spaces.graph_of(space)
            print(halfvec.describe(space, str(conf.INDEX_BUILD_MEMORY) or "the server's"))
            print(f"load average at start: {halfvec.load()}")
            queries = halfvec.draw_queries(space, args.queries, args.seed)
            ids, matrix = halfvec.space_matrix(space)
            exact = halfvec.exact_top(ids, matrix, queries, 10)
            agree = sum(
                set(halfvec.exact_sql(space, queries[i], 10)) == set(exact[i]) for i in range(3)
            )
            print(f"numpy exact agrees with PostgreSQL's on {agree}/3 queries")
            results = {}
            started = time.perf_counter()
            try:
                for graph in graphs:
                    print(f"rebuilding with m {graph.m}, ef_construction {graph.ef_construction}…")
                    results[(graph.m, graph.ef_construction)] = measure_graph(
                        space, graph, queries, exact, args.efs
                    )
            finally:
                if not args.keep and spaces.graph_of(space) != start_graph:
                    print(
                        f"restoring m {start_graph.m}, ef_construction "
                        f"{start_graph.ef_construction}…"
                    )
                    spaces.reindex_space(space, graph=start_graph)
            print(
                f"measured in {time.perf_counter() - started:.0f}s; load average: {halfvec.load()}"
            )
            report(results, args.efs, len(queries), len(ids))
        finally:
            connection.close()


if __name__ == "__main__":
    main()
