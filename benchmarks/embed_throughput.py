"""Embedding throughput: the encoder alone vs the whole pipeline through a real worker.

Run by hand:
    .venv/bin/python benchmarks/embed_throughput.py [--n 5000] [--plugin use-multilingual]
        [--concurrency 2] [--repeat 3] [--experiments]

Uses its own embedded PostgreSQL and Redis under .recsite/bench-embed, whose items,
vectors and encoder spaces it empties (it refuses to run with DATABASE_URL or
CELERY_BROKER_URL set). It imports MovieLens latest-small (9,742 movies), keeps the first N
active, then measures:

raw       ``encoder.encode`` in this process on the N item texts, in batches of 256 (one
          process; the plugin's own BLAS thread setting), before the worker starts and
          again after it stopped, so the two bracket the pipeline runs.
pipeline  a fresh space (same plugin and options) built by a real ``celery worker``
          subprocess: from enqueueing (``build_space.delay``) until the space is ready
          (N vectors and its HNSW index, built once the vectors are in), polled every
          0.2 s. The space is not the active one (a blue/green build). Each worker
          child is warmed up first on a throwaway space (it loads the model on its first
          task); that is not timed.
peak RSS  the worker's main process plus its children, summed, sampled every 0.2 s
          during the timed runs (pages shared after the fork count in every process, so
          the PSS after each run, which splits them, is printed too).

DEBUG defaults to 0 here (production); ``DEBUG=1`` measures the development default, in
which Django keeps every query's SQL and the worker's memory grows with each batch.

Knobs for investigating (not what the library does; each is labelled in the output):
``--enqueue direct --batch K`` queues ``embed_items`` per K ids from here,
``--pool``/``--options`` change the worker pool and the plugin options (e.g. threads),
``--experiments`` times the stages of the per-batch work in this process (fetch, encode,
the binary upsert with and without the HNSW index, the ready check).

The worker is stopped with SIGTERM at the end (killed if it does not exit in 60 s), and
the embedded servers are stopped too if this script started them (``--keep-servers``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".recsite" / "bench-embed"
sys.path.insert(0, str(ROOT))
from recsite import testing  # noqa: E402

# Production's DEBUG=0 unless asked: with DEBUG on, Django keeps the SQL of every query in
# each worker child (~2.6 MiB per 256-vector upsert), which inflates the memory measured.
testing.use_data_dir(DATA_DIR, DEBUG="0", SECRET_KEY="bench-embed-not-a-secret")

POLL_S = 0.2
QUEUES = ("embed", "default")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="items to embed (default 5000)")
    parser.add_argument("--plugin", default="use-multilingual")
    parser.add_argument(
        "--options", type=json.loads, default={}, help='plugin options as JSON, e.g. {"threads": 2}'
    )
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (-c)")
    parser.add_argument("--pool", default="prefork", help="worker pool (-P): prefork, solo, ...")
    parser.add_argument("--repeat", type=int, default=3, help="timed pipeline runs (default 3)")
    parser.add_argument("--raw-repeat", type=int, default=2, help="raw runs before and after")
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/movielens-latest-small"
    )
    parser.add_argument(
        "--enqueue",
        choices=["build_space", "direct"],
        default="build_space",
        help="build_space.delay (the library's path) or embed_items.delay per batch from here",
    )
    parser.add_argument(
        "--batch", type=int, default=256, help="ids per task with --enqueue direct (experiment)"
    )
    parser.add_argument(
        "--experiments", action="store_true", help="time the stages of a batch in this process"
    )
    parser.add_argument("--keep-servers", action="store_true")
    args = parser.parse_args()
    if args.n < 1 or args.concurrency < 1 or args.repeat < 1 or args.batch < 1:
        parser.error("--n, --concurrency, --repeat and --batch must be positive")
    if args.batch != 256 and args.enqueue != "direct":
        parser.error("--batch only applies with --enqueue direct")
    return args


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


# --- The database -------------------------------------------------------------------------


def reset_database() -> None:
    """Empty items, vectors and spaces, including the per-space HNSW indexes."""
    from django.db import connection

    from recommender.models import EncoderSpace, Item, ItemVector

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s "
            "AND indexname LIKE 'itemvector_hnsw_space_%%'",
            [ItemVector._meta.db_table],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    ItemVector.objects.all().delete()
    EncoderSpace.objects.all().delete()
    Item.objects.all().delete()
    vacuum()


def vacuum() -> None:
    from django.db import connection

    from recommender.models import Item, ItemVector

    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        cursor.execute(f"VACUUM ANALYZE {ItemVector._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {Item._meta.db_table}")


def load_items(data: Path, n: int) -> list[int]:
    """Import MovieLens and keep the first ``n`` items (by pk) active; return their ids."""
    from recommender.ingest import movielens
    from recommender.ingest.items import import_items
    from recommender.models import Item

    report = import_items(movielens.movielens_items(data))
    print(f"imported {report.rows:,} MovieLens items in {report.seconds:.1f}s")
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True)[:n])
    if len(ids) < n:
        raise SystemExit(
            f"--n {n} is larger than the catalogue ({len(ids):,} items); "
            "this benchmark does not duplicate items"
        )
    Item.objects.exclude(pk__in=ids).update(is_active=False)
    return ids


def drop_space(space) -> None:
    from recommender import spaces
    from recommender.models import ItemVector

    spaces.drop_index(space)
    ItemVector.objects.filter(space=space).delete()
    space.delete()


# --- Raw encoder ----------------------------------------------------------------------


def texts_for(space) -> list[str]:
    from recommender.models import Item
    from recommender.spaces import embedding

    items = Item.objects.filter(is_active=True).order_by("pk")
    return [embedding.item_text(item, space.text_template) for item in items]


def time_raw(encoder, texts: list[str]) -> tuple[float, float]:
    """Texts per second, and CPU milliseconds per text (all threads of this process)."""
    from recommender.spaces.embedding import EMBED_BATCH

    cpu = time.process_time()
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        encoder.encode(texts[start : start + EMBED_BATCH])
    elapsed = time.perf_counter() - started
    return len(texts) / elapsed, 1000 * (time.process_time() - cpu) / len(texts)


def tree_cpu(pid: int | None) -> float:
    """CPU seconds used so far by a process and all its children, live or already reaped."""
    import psutil

    if not pid:
        return 0.0
    try:
        main = psutil.Process(pid)
        times = main.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = main.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:  # reaped meanwhile: now in the parent's children_*
            continue
        total += times.user + times.system
    return total


# --- The worker -----------------------------------------------------------------------


def purge_queues(app) -> None:
    with app.connection_for_write() as conn:
        for queue in QUEUES:
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that never existed
                pass


def start_worker(args, log_path: Path, app) -> tuple[testing.Process, float]:
    """The worker under test, in its own session (a Ctrl-C here reaches only this script,
    which then stops it); and the seconds until it answered a ping."""
    started = time.perf_counter()
    worker = testing.start_worker(
        dict(os.environ),
        log_path,
        name=f"bench-embed-{os.getpid()}",
        queues=",".join(QUEUES),
        pool=args.pool,
        concurrency=args.concurrency,
        app=app,
        timeout=120,
        new_session=True,
        loglevel="warning",
    )
    return worker, time.perf_counter() - started


def stop_worker(worker: testing.Process) -> None:
    """A warm shutdown (the harness kills it after 60 s), then its own children reaped."""
    import psutil

    try:
        children = psutil.Process(worker.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    worker.stop(timeout=60)
    for child in children:  # only the worker's own children, by pid
        try:
            child.wait(timeout=10)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def worker_processes(worker: testing.Process):
    import psutil

    main = psutil.Process(worker.pid)
    return [main, *main.children(recursive=True)]


def children_uss(worker: testing.Process) -> dict[int, int]:
    """Unique memory of each pool process by pid (the worker itself with -P solo/threads)."""
    import psutil

    processes = worker_processes(worker)
    sizes = {}
    for child in processes[1:] or processes:
        try:
            sizes[child.pid] = child.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return sizes


def warm_up(worker, args, item_ids: list[int]) -> tuple[float, str]:
    """Have every worker child load the model, on a throwaway space.

    ``concurrency`` small tasks are sent at once: a child busy loading the model takes no
    second task, so each child gets one. That is checked by the children's own memory
    (a model adds tens of MiB to each), with more rounds if one did not grow.
    """
    from recommender import spaces, tasks

    started = time.perf_counter()
    space = spaces.create_space(
        f"bench-warmup-{int(time.time())}", args.plugin, args.options, activate=False
    )
    baseline = children_uss(worker)
    sample = item_ids[:8]
    note = "not confirmed: a child's memory did not grow (a small model?)"
    for _round in range(5):
        results = [tasks.embed_items.delay(space.pk, sample, True) for _ in range(args.concurrency)]
        for result in results:
            result.get(timeout=300)
        grown = {pid: size - baseline.get(pid, size) for pid, size in children_uss(worker).items()}
        if grown and min(grown.values()) >= 20 * 2**20:
            note = "each child +" + "/".join(f"{mib(g):.0f}" for g in grown.values()) + " MiB"
            break
    drop_space(space)
    return time.perf_counter() - started, note


class RssSampler(threading.Thread):
    """Peak of the summed RSS of the worker and its children, every POLL_S seconds."""

    def __init__(self, worker: testing.Process) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.peak = 0
        self._halt = threading.Event()

    def sample(self) -> int:
        import psutil

        total = 0
        try:
            processes = worker_processes(self.worker)
        except psutil.NoSuchProcess:
            return 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.sample())
            self._halt.wait(POLL_S)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, self.sample())
        return self.peak


def pss_now(worker: testing.Process) -> int:
    """Summed proportional set size (shared pages split between processes), or 0."""
    import psutil

    total = 0
    for process in worker_processes(worker):
        try:
            total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
            return 0
    return total


@dataclass
class PipelineRun:
    """One timed build of a fresh space by the worker."""

    rate: float  # texts/s
    seconds: float
    enqueue_s: float
    first_store_s: float  # the first and last vectors stored, after the enqueueing began
    last_store_s: float
    peak_rss: int  # bytes, the worker and its children summed
    pss: int  # bytes, after the run
    cpu_worker_ms: float  # per text
    cpu_postgres_ms: float  # per text
    indexed: bool
    status: str
    space: Any  # the EncoderSpace built


def time_pipeline(args, worker, run: int, n: int) -> PipelineRun:
    """Build a new space through the worker, from enqueueing until the space is ready."""
    from django.db import connection

    from recommender import spaces
    from recommender.models import Item
    from recsite import services

    # A new space built in the background while another serves (blue/green): it gets its
    # HNSW index when the build completes, and the run ends when the space is ready.
    space = spaces.create_space(f"bench-{int(time.time())}-{run}", args.plugin, args.options)
    ids = list(Item.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    postmaster = services.postgres_status(DATA_DIR).pid
    sampler = RssSampler(worker)
    sampler.start()
    cpu_worker, cpu_postgres = tree_cpu(worker.pid), tree_cpu(postmaster)
    wall_start = datetime.now(UTC)
    started = time.perf_counter()
    enqueue(args, space, ids)
    enqueued = time.perf_counter() - started
    try:
        wait_until_ready(worker, space, n)
    except RuntimeError:
        sampler.stop()
        raise
    elapsed = time.perf_counter() - started
    cpu_worker = tree_cpu(worker.pid) - cpu_worker
    cpu_postgres = tree_cpu(postmaster) - cpu_postgres
    peak = sampler.stop()
    pss = pss_now(worker)
    first, last = stored_between(space, n)
    indexed = spaces.index_exists(space)
    space.refresh_from_db()
    connection.close()
    return PipelineRun(
        rate=n / elapsed,
        seconds=elapsed,
        enqueue_s=enqueued,
        first_store_s=(first - wall_start).total_seconds(),
        last_store_s=(last - wall_start).total_seconds(),
        peak_rss=peak,
        pss=pss,
        cpu_worker_ms=1000 * cpu_worker / n,
        cpu_postgres_ms=1000 * cpu_postgres / n,
        indexed=indexed,
        status=space.status,
        space=space,
    )


def enqueue(args, space, ids: list[int]) -> None:
    """``build_space.delay`` (the library's path), or ``embed_items.delay`` per --batch ids."""
    from recommender import tasks
    from recommender.spaces import embedding

    if args.enqueue == "build_space":
        tasks.build_space.delay(space.pk)
    else:
        for batch in embedding.batches(ids, args.batch):
            tasks.embed_items.delay(space.pk, batch, False)


def wait_until_ready(worker: testing.Process, space, n: int) -> None:
    """Poll every POLL_S seconds until the space is ready; fail if the worker dies or the
    build outlasts its deadline."""
    from recommender.models import EncoderSpace, ItemVector

    deadline = time.monotonic() + 120 + n / 20
    count = 0
    while True:
        if EncoderSpace.objects.filter(pk=space.pk, status="ready").exists():
            return
        count = ItemVector.objects.filter(space=space).count()
        if not worker.alive():
            raise RuntimeError("the worker died during the run")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count}/{n} vectors after the deadline")
        time.sleep(POLL_S)


def stored_between(space, n: int):
    """When the space's first and last vectors were stored; fails unless it holds ``n``."""
    from django.db.models import Max, Min

    from recommender.models import ItemVector

    stamps = ItemVector.objects.filter(space=space).aggregate(
        first=Min("updated_at"), last=Max("updated_at")
    )
    count = ItemVector.objects.filter(space=space).count()
    if count != n:
        raise RuntimeError(f"the space is ready with {count}/{n} vectors")
    return stamps["first"], stamps["last"]


# --- Experiments (in this process, worker stopped) --------------------------------------

ITEM_FIELDS = ("pk", "title", "category", "tags", "description", "text_hash")


def experiments(args, encoder, n: int) -> None:
    """Where a batch's time goes: each stage of ``embedding.embed_items``, timed alone."""
    from django.db import connection

    from recommender.models import Item
    from recommender.spaces import embedding
    from recommender.spaces.embedding import EMBED_BATCH

    print("\nEXPERIMENT: stages of the pipeline's per-batch work, in this process")
    ids = list(Item.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    batches = list(embedding.batches(ids, EMBED_BATCH))
    time_batch_stages(args, encoder, batches, n)
    time_task_queries(args, batches)
    time_upserts(args, encoder, batches, n)
    connection.close()


def experiment_space(args, label: str, *, hnsw: bool):
    """A throwaway space; with ``hnsw``, indexed as if it were serving already."""
    from recommender import spaces

    space = spaces.create_space(f"bench-exp-{label}-{int(time.time())}", args.plugin, args.options)
    if hnsw:  # as if it were serving already: vectors go into the graph one by one
        spaces.create_index(space)
    return space


def time_batch_stages(args, encoder, batches: list[list[int]], n: int) -> None:
    """Fetch + freshness + encode + store + ready check per batch, to split encode from DB
    work (HNSW index present)."""
    from recommender import spaces
    from recommender.models import Item, ItemVector
    from recommender.spaces import embedding

    space = experiment_space(args, "stages", hnsw=True)
    t_fetch = t_fresh = t_encode = t_store = t_ready = 0.0
    for batch in batches:
        t0 = time.perf_counter()
        items = list(Item.objects.filter(pk__in=batch, is_active=True).only(*ITEM_FIELDS))
        t1 = time.perf_counter()
        fresh = dict(
            ItemVector.objects.filter(space=space, item__in=items).values_list(
                "item_id", "text_hash"
            )
        )
        todo = [item for item in items if fresh.get(item.pk) != item.text_hash]
        t2 = time.perf_counter()
        vectors = encoder.encode([embedding.item_text(item, space.text_template) for item in todo])
        t3 = time.perf_counter()
        embedding.store_vectors(space, todo, vectors)
        t4 = time.perf_counter()
        spaces.mark_ready_if_complete(space)
        t5 = time.perf_counter()
        t_fetch += t1 - t0
        t_fresh += t2 - t1
        t_encode += t3 - t2
        t_store += t4 - t3
        t_ready += t5 - t4
    print_batch_stages(
        [
            ("fetch items", t_fetch),
            ("freshness query", t_fresh),
            ("encode", t_encode),
            ("store_vectors (upsert)", t_store),
            ("mark_ready_if_complete", t_ready),
        ],
        len(batches),
        n,
    )
    drop_space(space)
    vacuum()


def print_batch_stages(stages: list[tuple[str, float]], batches: int, n: int) -> None:
    from recommender.spaces.embedding import EMBED_BATCH

    total = sum(seconds for _, seconds in stages)
    print(f"  {batches} batches of {EMBED_BATCH}, {n} texts, HNSW index present:")
    for label, seconds in stages:
        print(
            f"    {label:<24} {seconds:6.2f}s  {1000 * seconds / batches:7.1f} ms/batch "
            f"{100 * seconds / total:5.1f}%"
        )
    t_encode = dict(stages)["encode"]
    print(
        f"    {'total':<24} {total:6.2f}s  = {n / total:,.0f} texts/s in one process "
        f"(encode alone {n / t_encode:,.0f}/s)"
    )


def time_task_queries(args, batches: list[list[int]]) -> None:
    """A task's own queries without encode/store, on a kept and on a new connection."""
    from django.db import connection

    from recommender import spaces
    from recommender.models import EncoderSpace, Item, ItemVector

    # Celery's Django fixup closes the database connection before and after every task
    # (CELERY_DB_REUSE_MAX unset), so each task's queries start on a new backend.
    space = experiment_space(args, "reconnect", hnsw=True)
    for reconnect in (False, True):
        started = time.perf_counter()
        for batch in batches:
            if reconnect:
                connection.close()
            task_space = EncoderSpace.objects.filter(pk=space.pk).first()
            items = list(Item.objects.filter(pk__in=batch, is_active=True).only(*ITEM_FIELDS))
            dict(
                ItemVector.objects.filter(space=task_space, item__in=items).values_list(
                    "item_id", "text_hash"
                )
            )
            spaces.mark_ready_if_complete(task_space)
        seconds = time.perf_counter() - started
        print(
            f"  a task's queries without encode/store, "
            f"{'new connection per task' if reconnect else 'connection kept      '}: "
            f"{1000 * seconds / len(batches):.1f} ms/batch"
        )
    drop_space(space)


def time_upserts(args, encoder, batches: list[list[int]], n: int) -> None:
    """The upsert alone, with and without the space's HNSW index, same vectors."""
    from recommender import spaces
    from recommender.models import DEFAULT_TEXT_TEMPLATE, Item
    from recommender.spaces import embedding
    from recommender.spaces.embedding import EMBED_BATCH

    items = list(Item.objects.filter(is_active=True).order_by("pk").only(*ITEM_FIELDS))
    # The experiment spaces' template (create_space's default).
    texts = [embedding.item_text(item, DEFAULT_TEXT_TEMPLATE) for item in items]
    vectors = encoder.encode(texts)
    for label, hnsw in (("store_vectors, HNSW on ", True), ("store_vectors, HNSW off", False)):
        space = experiment_space(args, "store", hnsw=hnsw)
        started = time.perf_counter()
        for start in range(0, len(items), EMBED_BATCH):
            embedding.store_vectors(
                space, items[start : start + EMBED_BATCH], vectors[start : start + EMBED_BATCH]
            )
        seconds = time.perf_counter() - started
        extra = ""
        if not hnsw:
            index_started = time.perf_counter()
            spaces.create_index(space)
            extra = f"; CREATE INDEX afterwards {time.perf_counter() - index_started:.2f}s"
        print(
            f"  {label}: {seconds:6.2f}s = {n / seconds:,.0f} rows/s, "
            f"{1000 * seconds / len(batches):.0f} ms/batch{extra}"
        )
        drop_space(space)
        vacuum()


# --- Stages -------------------------------------------------------------------------------


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def refuse_outside_servers() -> None:
    """Stop here when the environment points at servers this benchmark would empty."""
    if os.environ.get("DATABASE_URL") or os.environ.get("CELERY_BROKER_URL"):
        raise SystemExit(
            "unset DATABASE_URL and CELERY_BROKER_URL: this benchmark empties its database "
            "and uses its own embedded servers under .recsite/bench-embed"
        )


def prepare_data(args) -> list[int]:
    """Migrate, empty the catalogue, import MovieLens and keep --n items active; their ids."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    reset_database()
    ids = load_items(args.data, args.n)
    print(
        f"N = {len(ids):,} active items, plugin {args.plugin} {json.dumps(args.options)}, "
        f"DEBUG={os.environ['DEBUG']}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return ids


def load_encoder(args) -> tuple[Any, list[str]]:
    """The plugin's encoder, loaded in this process, and the active items' texts."""
    from recommender import spaces
    from recommender.spaces import embedding

    # Raw, before the worker exists. create_space loads the model in this process.
    probe = spaces.create_space(f"bench-raw-{int(time.time())}", args.plugin, args.options)
    encoder = embedding.encoder_for(probe)
    texts = texts_for(probe)
    drop_space(probe)
    print(f"texts: {statistics.mean(map(len, texts)):,.0f} characters on average")
    return encoder, texts


def measure_raw(encoder, texts: list[str], repeat: int, when: str) -> list[tuple[float, float]]:
    """``encoder.encode`` alone, ``repeat`` times: texts/s and CPU ms/text of each run."""
    raw = [time_raw(encoder, texts) for _ in range(repeat)]
    print(
        f"{f'raw encode ({when}):':<27} {', '.join(f'{r:,.0f}' for r, _ in raw)} texts/s, "
        f"{', '.join(f'{c:.2f}' for _, c in raw)} CPU ms/text"
    )
    return raw


@contextmanager
def running_worker(args, ids: list[int]) -> Iterator[testing.Process]:
    """The worker under test, started and warmed up; stopped on leaving the block."""
    from django.db import connection

    from recsite.celery import app

    purge_queues(app)
    connection.close()  # nothing of ours open while the worker forks its children
    worker, ping_s = start_worker(args, DATA_DIR / "worker.log", app)
    try:
        warm_s, warmed = warm_up(worker, args, ids)
        print(
            f"worker: -P {args.pool} -c {args.concurrency}, answered ping after {ping_s:.1f}s, "
            f"warm-up (model load in each child, not timed) {warm_s:.1f}s, {warmed}"
        )
        yield worker
    finally:
        stop_worker(worker)


def measure_pipeline(args, worker: testing.Process, n: int) -> list[PipelineRun]:
    """--repeat timed builds of a fresh space by the worker."""
    runs = []
    for run in range(1, args.repeat + 1):
        vacuum()
        result = time_pipeline(args, worker, run, n)
        runs.append(result)
        extra = "" if result.indexed else ", NO HNSW INDEX"
        print(
            f"pipeline run {run}: {n:,} vectors in {result.seconds:.2f}s = "
            f"{result.rate:,.0f} texts/s (first batch stored at "
            f"+{result.first_store_s:.2f}s, last at +{result.last_store_s:.2f}s; "
            f"CPU ms/text worker {result.cpu_worker_ms:.2f} + PostgreSQL "
            f"{result.cpu_postgres_ms:.2f}; space {result.status}; "
            f"peak RSS {mib(result.peak_rss):,.0f} MiB, "
            f"PSS after {mib(result.pss):,.0f} MiB{extra})"
        )
        drop_space(result.space)
    return runs


def report(args, n: int, raw: list[tuple[float, float]], runs: list[PipelineRun]) -> None:
    """Print the summary table: raw and pipeline rates, their ratio, CPU and memory."""
    raw_rates = [rate for rate, _ in raw]
    raw_cpu = statistics.median(cpu for _, cpu in raw)
    raw_rate = statistics.median(raw_rates)
    rates = [r.rate for r in runs]
    pipe = statistics.median(rates)
    ratios = [rate / raw_rate for rate in rates]
    cpu_worker = statistics.median(r.cpu_worker_ms for r in runs)
    cpu_postgres = statistics.median(r.cpu_postgres_ms for r in runs)
    peak = max(r.peak_rss for r in runs)
    labels = []
    if args.enqueue == "direct":
        labels.append(f"EXPERIMENT direct enqueue, {args.batch} ids/task")
    print("\nsummary" + (f" ({'; '.join(labels)})" if labels else ""))
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end"),
        ("N", f"{n:,}"),
        ("plugin", f"{args.plugin} {json.dumps(args.options)}"),
        ("worker", f"-P {args.pool} -c {args.concurrency}, DEBUG={os.environ['DEBUG']}"),
        ("raw texts/s (1 process)", spread(raw_rates)),
        ("pipeline texts/s", spread(rates)),
        (
            "ratio pipeline/raw",
            f"{pipe / raw_rate:.2f}"
            + (f" (min {min(ratios):.2f}, max {max(ratios):.2f})" if len(ratios) > 1 else ""),
        ),
        (
            "CPU ms per text",
            f"raw {raw_cpu:.2f}; pipeline {cpu_worker + cpu_postgres:.2f} = worker "
            f"{cpu_worker:.2f} + PostgreSQL {cpu_postgres:.2f}",
        ),
        ("CPU ratio raw/pipeline", f"{raw_cpu / (cpu_worker + cpu_postgres):.2f}"),
        ("worker peak RSS (sum)", f"{mib(peak):,.0f} MiB"),
        ("worker PSS after run", f"{mib(max(r.pss for r in runs)):,.0f} MiB"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


# --- Main -------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    # Ctrl-C or a plain kill still runs the clean-up below (worker and servers stopped).
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    refuse_outside_servers()
    with testing.own_services(DATA_DIR, keep=args.keep_servers):
        import django

        django.setup()
        from django.db import connection

        try:
            ids = prepare_data(args)
            encoder, texts = load_encoder(args)
            raw = measure_raw(encoder, texts, args.raw_repeat, "before worker")
            with running_worker(args, ids) as worker:
                runs = measure_pipeline(args, worker, len(ids))
            raw += measure_raw(encoder, texts, args.raw_repeat, "after worker")
            if args.experiments:
                experiments(args, encoder, len(ids))
            report(args, len(ids), raw, runs)
        finally:
            connection.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        raise SystemExit(f"interrupted ({exc}); worker stopped") from None
