"""What one request of the load mix costs, measured in-process (no HTTP server, no client
threads): quick and steady enough to compare two versions of the code on a busy machine.

Run by hand:  .venv/bin/python benchmarks/request_cost.py [--requests 300] [--kind recommend]
                                                          [--profile out.prof]

Uses its own embedded servers (.recsite/bench-cost, loaded with the demo shop on the first
run) under the production settings of the other benchmarks, creates a write key and one
shopper token per demo user, then sends ``benchmarks/load.py``'s mix of requests (or only
``--kind``) through Django's test client, one at a time, as those users. Prints p50 and
mean per kind, the CPU this process spent per request (Django, DRF and the toolkit's own
Python, the helper thread included) and the CPU PostgreSQL spent per request. The
Celery worker is not running: what a request enqueues waits in the broker, and the
popular and trending tables are refreshed once before measuring, as the worker's
periodic task would. ``--profile``
writes a cProfile file of the measured requests (``python -m pstats`` reads it).

To compare with an older commit: ``git worktree add /tmp/before <commit>`` and run this
script from there with ``PYTHONPATH=/tmp/before`` (each checkout keeps its own data).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

from _production import manage, production_env, server_cpu

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-cost"
KINDS = ("recommend", "recommend+intent", "impressions", "click", "event", "search")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests")
    parser.add_argument("--warm", type=int, default=40, help="requests before measuring")
    parser.add_argument("--kind", choices=KINDS, help="only this kind (default: the mix)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured part")
    parser.add_argument(
        "--prepared-statements",
        action="store_true",
        help="DATABASE_PREPARED_STATEMENTS=1 (off, the default: as Django)",
    )
    args = parser.parse_args()
    if args.requests < 1 or args.warm < 0:
        parser.error("--requests must be at least 1 and --warm at least 0")
    return args


class Session:
    """``requests.Session``'s get/post, as ``load.send`` calls them, on Django's client."""

    def __init__(self, client, base: str):
        self.client, self.base = client, base

    def _path(self, url: str) -> str:
        return url.replace(self.base, "/api/v1")

    def get(self, url, params=None, headers=None, timeout=None):
        return self.client.get(
            self._path(url), params or {}, HTTP_AUTHORIZATION=headers["Authorization"]
        )

    def post(self, url, headers=None, timeout=None, json=None):  # noqa: A002 - requests' name
        return self.client.post(
            self._path(url),
            data=_dumps(json),
            content_type="application/json",
            HTTP_AUTHORIZATION=headers["Authorization"],
        )


def _dumps(value) -> str:
    return json.dumps(value)


def main() -> None:
    args = parse_args()
    if not (DATA / "pgdata").exists():
        print(f"building the demo shop in {DATA} (once)…", flush=True)
        manage(DATA, "migrate", "-v0")
        manage(DATA, "load_demo")
    else:
        manage(DATA, "migrate", "-v0")  # a shop built by older code gains new columns
    key = manage(DATA, "apikey", "create", f"cost-{uuid.uuid4().hex[:6]}", "--scope", "write")
    key = key.splitlines()[-1]
    os.environ.update(production_env(DATA))
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["DATABASE_PREPARED_STATEMENTS"] = "1" if args.prepared_statements else "0"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import load  # the mix, its users, items and texts
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    tokens = {}
    for user in load.USERS:
        response = client.post(
            "/api/v1/tokens",
            data=_dumps({"user": user}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {key}",
        )
        tokens[user] = {"Authorization": f"Shopper {response.json()['token']}"}
    session = Session(client, load.BASE)
    rng = random.Random(args.seed)
    last: dict = {"user": None, "rid": None, "items": []}

    def one() -> tuple[str, float]:
        kind = args.kind or load.kind_of(rng.random())
        user = rng.choice(load.USERS)
        if kind in ("impressions", "click"):
            if last["user"] is None:
                kind = "recommend"  # nothing listed yet to see or click
            else:
                user = last["user"]
        started = time.perf_counter()
        response = load.send(session, rng, kind, user, tokens[user], last)
        if response.status_code >= 300:
            raise SystemExit(f"{kind} answered {response.status_code}: {response.content[:300]}")
        return kind, (time.perf_counter() - started) * 1000

    from django.utils import timezone

    since = timezone.now()
    for _ in range(args.warm):
        one()
    # What the worker's periodic task does (no worker runs here): young popular and
    # trending tables, so that requests do not ask for a refresh on every call.
    from recommender.serving import popularity

    popularity.refresh_live()
    profile = cProfile.Profile() if args.profile else None
    timings: dict[str, list[float]] = {}
    postgres_before = server_cpu(DATA)["postgres"]
    cpu_before = time.process_time()
    if profile:
        profile.enable()
    for _ in range(args.requests):
        kind, ms = one()
        timings.setdefault(kind, []).append(ms)
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    python_cpu = time.process_time() - cpu_before
    postgres_cpu = server_cpu(DATA)["postgres"] - postgres_before
    print(f"{'kind':18s} {'requests':>8s} {'p50 ms':>8s} {'mean ms':>8s}")
    for kind in KINDS:
        if kind in timings:
            values = timings[kind]
            print(
                f"{kind:18s} {len(values):8d} {statistics.median(values):8.2f} "
                f"{statistics.mean(values):8.2f}"
            )
    n = args.requests
    print(
        f"CPU per request: this process {python_cpu / n * 1000:.2f} ms (Python), "
        f"PostgreSQL {postgres_cpu / n * 1000:.2f} ms; load average {os.getloadavg()[0]:.2f}"
    )
    if profile:
        print(f"profile: {args.profile}")
    clean_up(since)


def clean_up(since) -> None:
    """Delete the events this run posted and recompute what they touched (the profiles,
    the co-occurrence table): the next run measures the same shop."""
    from recommender import spaces
    from recommender.models import Behaviour
    from recommender.serving import profiles
    from recommender.serving.cooccurrence import refresh_cooccurrence

    events = Behaviour.objects.filter(occurred_at__gte=since)
    users = set(events.values_list("user_id", flat=True))
    deleted, _ = events.delete()
    space = spaces.current_space()
    for user_id in users:
        profiles.save(user_id, space, profiles.recompute(user_id, space))
    refresh_cooccurrence()
    print(f"removed the {deleted} events this run posted; recomputed {len(users)} profiles")


if __name__ == "__main__":
    main()
