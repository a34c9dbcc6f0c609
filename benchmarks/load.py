"""Bounded load against the demo served by gunicorn + a Celery worker, on 127.0.0.1 only.

Run by hand:  .venv/bin/python benchmarks/load.py [--clients 50] [--seconds 60] [--list-cache S]
    [--list-refresh S] [--only KIND]

Uses its own embedded servers (.recsite/bench-load, loaded with the demo shop), starts
gunicorn and a worker, then runs N client threads for S seconds, each looping over a mix
of requests (45% recommendations, 10% with free-text intent, 10% impressions (a batch for
the client's last list), 10% clicks naming that list (recommendation_id and position),
15% other behaviour events, 10% search), and stops by itself. Prints errors (target 0),
p50/p99 per kind and throughput, and the CPU each server (gunicorn, the worker, PostgreSQL,
Redis) spent per request: on this shared machine other jobs move the latencies and the
throughput far more than they move the CPU a request costs.

On a larger catalogue: ``--data-dir .recsite/bench-serving`` runs the same mix against
the data set ``benchmarks/serving.py`` built there (100,000 items, 10,000 users by
default; build it first): the clients act as ``--users`` (1,000) of its users drawn at
random, on all of its items, and the events the run posts (those after its start) are
deleted again at the end, with the profiles they touched recomputed.

Production settings (benchmarks/_production.py: DEBUG off, a generated SECRET_KEY, keys
required; HTTPS redirect and secure cookies off for plain HTTP; throttle rates raised so
that the budgets do not shape the figures). As a shop would: the script, playing the shop's
backend, creates a write key (`manage.py apikey create load --scope write`) and issues one
shopper token per demo user with it (POST /api/v1/tokens, before the clock starts); the
clients then call as browsers, each request with its user's token
(`Authorization: Shopper st_…`). k=10 (at most 50 with explanations or a query).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from _production import load_average, manage, server_cpu, start_gunicorn, start_worker

from recsite import testing

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-load"
PORT = 8766
BASE = f"http://127.0.0.1:{PORT}/api/v1"
USERS = [f"u-{n:04d}" for n in range(1, 73)]
ITEMS = [f"sku-{n:05d}" for n in range(1, 341)]
INTENTS = [
    "我最近在找一件外套，性价比高且质量好的",
    "women's long down jacket",
    "机械键盘",
    "绿茶礼盒",
]


@dataclass
class Tally:
    """What the clients saw: latencies (ms) and errors per kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_kinds: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, elapsed: float, ok: bool, outcome: str) -> None:
        with self.lock:
            self.latencies[kind].append(elapsed)
            if not ok:
                self.errors[kind] += 1
                self.error_kinds[(kind, outcome)] += 1


@dataclass
class Run:
    """The timed run: its tally, wall-clock seconds and the load average around it."""

    tally: Tally
    wall: float
    load_before: list[str]
    load_after: list[str]
    cpu: dict[str, float]  # CPU seconds each server used during the run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    # The deployment docs/deploy.md recommends on two cores: two sync workers. Measured
    # (docs/performance.md, 2026-12-01): 3 workers x 4 threads cost 21.9 ms of server CPU
    # per request against 17.7 ms, and served 83 requests/s against 92.
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument(
        "--prepared-statements",
        action="store_true",
        help="DATABASE_PREPARED_STATEMENTS=1 for the server (off, the default: as Django)",
    )
    parser.add_argument(
        "--list-cache",
        type=int,
        default=0,
        metavar="SECONDS",
        help="RECOMMENDER_LIST_CACHE_SECONDS for the server (0, the default: off)",
    )
    parser.add_argument(
        "--list-refresh",
        type=int,
        default=0,
        metavar="SECONDS",
        help="RECOMMENDER_LIST_REFRESH_SECONDS for the server: the worker computes lists ahead "
        "after events (0, the default: off; needs --list-cache)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="run on the data set benchmarks/serving.py built in this directory instead of "
        "the demo shop (e.g. .recsite/bench-serving)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=1000,
        help="with --data-dir: how many of its users the clients act as (default 1000)",
    )
    parser.add_argument(
        "--only",
        choices=KINDS,
        help="send only this kind of request (to measure what one kind costs); default: the mix",
    )
    args = parser.parse_args()
    if args.list_refresh and not args.list_cache:
        parser.error("--list-refresh needs --list-cache (the lists computed ahead are kept there)")
    if args.data_dir is not None and not (args.data_dir / "dataset.json").exists():
        parser.error(
            f"--data-dir {args.data_dir}: no data set there (run benchmarks/serving.py "
            f"--data-dir {args.data_dir} first)"
        )
    return args


def prepare_data(args) -> str:
    """Migrate, load the demo shop (or, with --data-dir, draw the users and items of that
    data set) and create the shop's write key; the key."""
    manage(DATA, "migrate", "-v0")
    if args.data_dir is None:
        manage(DATA, "load_demo")
    else:
        USERS[:], ITEMS[:] = draw_catalogue(args.users)
    return manage(DATA, "apikey", "create", "load", "--scope", "write").splitlines()[-1]


# Run in the data set's own manage.py shell: ids printed one per line.
_DRAW = """
from recommender.models import EndUser, Item
users = EndUser.objects.filter(profiles__isnull=False).distinct().order_by("?")
print("\\n".join(users.values_list("external_id", flat=True)[:{n}]))
print("--")
print("\\n".join(Item.objects.filter(is_active=True).values_list("external_id", flat=True)))
"""

_CLEAN = """
from recommender import spaces
from recommender.models import Behaviour
from recommender.serving import profiles
events = Behaviour.objects.filter(occurred_at__gte="{since}")
users = set(events.values_list("user_id", flat=True))
deleted, _ = events.delete()
space = spaces.current_space()
for user_id in users:
    profiles.save(user_id, space, profiles.recompute(user_id, space))
if {refresh_cooccurrence}:
    from recommender.serving.cooccurrence import refresh_cooccurrence
    refresh_cooccurrence()
print(deleted, len(users))
"""


def draw_catalogue(n: int) -> tuple[list[str], list[str]]:
    """``n`` random users with profiles, and every active item, of the --data-dir set."""
    out = manage(DATA, "shell", "-v", "0", "-c", _DRAW.format(n=n))
    users, items = out.split("\n--\n")
    return users.split(), items.split()


def clean_up(since: str, *, refresh_cooccurrence: bool = False) -> None:
    """Delete the events posted since ``since`` and recompute the profiles they touched
    (and the co-occurrence table, on the demo shop: seconds there, a minute at 100k)."""
    script = _CLEAN.format(since=since, refresh_cooccurrence=refresh_cooccurrence)
    out = manage(DATA, "shell", "-v", "0", "-c", script)
    deleted, users = out.split()[-2:]  # the shell may print notices first
    print(f"removed the {deleted} events this run posted; recomputed {users} users' profiles")


def start_servers(args) -> list[testing.Process]:
    """gunicorn (--workers x --threads) and one Celery worker, each ready when it answers."""
    return [
        start_gunicorn(
            DATA,
            PORT,
            workers=args.workers,
            timeout=240,
            extra=["--threads", str(args.threads)],
            env={
                "RECOMMENDER_LIST_CACHE_SECONDS": str(args.list_cache),
                "RECOMMENDER_LIST_REFRESH_SECONDS": str(args.list_refresh),
                "DATABASE_PREPARED_STATEMENTS": "1" if args.prepared_statements else "0",
            },
        ),
        start_worker(DATA, "load", pool="prefork", concurrency=1),
    ]


def issue_tokens(key: str) -> dict[str, dict[str, str]]:
    """The shop's backend issues each shopper a token (with its write key); their headers."""
    shopper: dict[str, dict[str, str]] = {}
    for user in USERS:
        response = requests.post(
            f"{BASE}/tokens",
            json={"user": user},
            headers={"Authorization": f"Api-Key {key}"},
            timeout=30,
        )
        response.raise_for_status()
        shopper[user] = {"Authorization": f"Shopper {response.json()['token']}"}
    return shopper


def warm_up(args, shopper: dict[str, dict[str, str]]) -> None:
    """Warm every gunicorn worker (model load) before the clock starts."""
    for _ in range(args.workers * 3):
        requests.get(
            f"{BASE}/users/{USERS[0]}/recommendations",
            params={"k": 10},
            headers=shopper[USERS[0]],
            timeout=120,
        ).raise_for_status()


def run_clients(args, shopper: dict[str, dict[str, str]], servers) -> Run:
    """--clients threads, each looping over the mix of requests for --seconds."""
    tally = Tally()
    roots = {"gunicorn": servers[0].pid, "celery": servers[1].pid}
    cpu_before = server_cpu(DATA, **roots)
    client_before = sum(os.times()[:2])
    stop_at = time.monotonic() + args.seconds
    load_before = load_average()
    threads = [
        threading.Thread(target=client, args=(n, shopper, stop_at, tally, args.only))
        for n in range(args.clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    cpu_after = server_cpu(DATA, **roots)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    cpu["load client"] = sum(os.times()[:2]) - client_before
    return Run(tally, wall, load_before, load_average(), cpu)


def client(
    seed: int, shopper: dict[str, dict[str, str]], stop_at: float, tally: Tally, only: str | None
) -> None:
    """One client: random requests of the mix (or only of kind ``only``) as random shoppers
    until ``stop_at``."""
    rng = random.Random(seed)
    session = requests.Session()
    last: dict = {}  # the client's last list: what impressions and clicks name
    while time.monotonic() < stop_at:
        roll = rng.random()
        kind = only or kind_of(roll)
        if kind in ("impressions", "click") and last:
            user = last["user"]
        else:
            user = rng.choice(USERS)
            if kind in ("impressions", "click"):
                kind = "recommend"  # nothing shown yet to report
        started = time.perf_counter()
        try:
            response = send(session, rng, kind, user, shopper[user], last)
            outcome = str(response.status_code)
            ok = response.status_code < 400
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            ok = False
        tally.add(kind, (time.perf_counter() - started) * 1000, ok, outcome)


KINDS = ("recommend", "recommend+intent", "impressions", "click", "event", "search")


def kind_of(roll: float) -> str:
    """The mix: 45% recommendations, 10% with free-text intent, 10% impressions, 10% clicks
    naming their list, 15% other events, 10% search."""
    for share, kind in (
        (0.45, "recommend"),
        (0.55, "recommend+intent"),
        (0.65, "impressions"),
        (0.75, "click"),
        (0.90, "event"),
    ):
        if roll < share:
            return kind
    return "search"


def send(session, rng: random.Random, kind: str, user: str, headers: dict[str, str], last: dict):
    """One request of ``kind`` as ``user``; ``last`` keeps the client's last list."""
    if kind in ("recommend", "recommend+intent"):
        params: dict = {"k": 10}
        if kind == "recommend+intent":
            params["q"] = rng.choice(INTENTS)
        response = session.get(
            f"{BASE}/users/{user}/recommendations", params=params, headers=headers, timeout=30
        )
        if response.status_code == 200:
            body = response.json()
            ids = [item["id"] for item in body["items"]]
            last.update(user=user, rid=body["recommendation_id"], items=ids)
        return response
    if kind == "impressions":
        events = [
            {"user": user, "item": item, "kind": "impression",
             "recommendation_id": last["rid"], "position": n}
            for n, item in enumerate(last["items"], start=1)
        ]  # fmt: skip
        return session.post(
            f"{BASE}/behaviours/batch", headers=headers, timeout=30, json={"events": events}
        )
    if kind == "click":
        position = rng.randrange(len(last["items"])) + 1 if last["items"] else None
        item = last["items"][position - 1] if position else rng.choice(ITEMS)
        event = {"user": user, "item": item, "kind": "click", "event_id": f"load-{uuid.uuid4()}"}
        if position:
            event.update(recommendation_id=last["rid"], position=position)
        return session.post(f"{BASE}/behaviours", headers=headers, timeout=30, json=event)
    if kind == "event":
        return session.post(
            f"{BASE}/behaviours",
            headers=headers,
            timeout=30,
            json={
                "user": user,
                "item": rng.choice(ITEMS),
                "kind": rng.choice(["view", "click", "cart", "like"]),
                "event_id": f"load-{uuid.uuid4()}",
            },
        )
    return session.get(
        f"{BASE}/search",
        headers=headers,
        timeout=30,
        params={"q": rng.choice(INTENTS), "user": user},
    )


def report(args, run: Run) -> None:
    """Print requests, errors, p50/p99 per kind and the throughput."""
    latencies, errors = run.tally.latencies, run.tally.errors
    total = sum(len(v) for v in latencies.values())
    catalogue = (
        f"the data set in {args.data_dir} ({len(ITEMS):,} items, {len(USERS):,} of its users)"
        if args.data_dir is not None
        else "the demo shop"
    )
    print(
        f"{catalogue}: {args.clients} clients for {run.wall:.0f}s against gunicorn "
        f"({args.workers} workers x "
        f"{args.threads} threads) + 1 Celery worker on 127.0.0.1, "
        f"{'only ' + args.only if args.only else 'the mix'}, list cache "
        f"{args.list_cache} s, list refresh {args.list_refresh} s, prepared statements "
        f"{'on' if args.prepared_statements else 'off'}; "
        f"load average {run.load_before} → {run.load_after}"
    )
    print(f"{'kind':<18}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for kind, values in sorted(latencies.items()):
        print(
            f"{kind:<18}{len(values):>9}{errors[kind]:>8}{percentile(values, 0.5):>9.0f}"
            f"{percentile(values, 0.99):>9.0f}"
        )
    all_values = [v for values in latencies.values() for v in values]
    print(
        f"{'all':<18}{total:>9}{sum(errors.values()):>8}{statistics.median(all_values):>9.0f}"
        f"{percentile(all_values, 0.99):>9.0f}"
    )
    print(
        f"throughput: {total / run.wall:.1f} requests/s; errors: {sum(errors.values())} (target 0)"
    )
    for (kind, outcome), count in sorted(run.tally.error_kinds.items()):
        print(f"  {kind}: {outcome} x{count}")
    # CPU per request: what the servers spent, a figure other jobs on the machine disturb
    # far less than the latencies and the throughput above.
    servers = {k: v for k, v in run.cpu.items() if k != "load client"}
    per_request = ", ".join(f"{k} {v * 1000 / total:.1f}" for k, v in sorted(servers.items()))
    print(
        f"server CPU per request: {sum(servers.values()) * 1000 / total:.1f} ms ({per_request}); "
        f"the load client used {run.cpu['load client']:.1f} CPU s"
    )


def main() -> None:
    global DATA
    args = parse_args()
    if args.data_dir is not None:
        DATA = args.data_dir.resolve()
    with testing.own_services(DATA):  # stops the servers this run started
        key = prepare_data(args)
        since = datetime.now(UTC).isoformat()
        try:
            servers = start_servers(args)
            with testing.running(*servers):
                shopper = issue_tokens(key)
                warm_up(args, shopper)
                run = run_clients(args, shopper, servers)
        finally:
            # Every run leaves the data as it found it: events left behind piled up run
            # after run (123,000 on the demo shop by 2026-12-01, twenty times its own),
            # and each run then measured a heavier shop than the one before.
            clean_up(since, refresh_cooccurrence=args.data_dir is None)
    report(args, run)


if __name__ == "__main__":
    main()
