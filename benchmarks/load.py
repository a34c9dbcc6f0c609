"""Bounded load against the demo served by gunicorn + a Celery worker, on 127.0.0.1 only.

Run by hand:  .venv/bin/python benchmarks/load.py [--clients 50] [--seconds 60]

Uses its own embedded servers (.recsite/bench-load, loaded with the demo shop), starts
gunicorn and a worker, then runs N client threads for S seconds, each looping over a mix
of requests (60% recommendations, 10% with free-text intent, 20% behaviour events, 10%
search), and stops by itself. Prints errors (target 0), p50/p99 per kind and throughput.

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
import random
import statistics
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

from _production import load_average, manage, production_env, start_gunicorn, start_worker

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-load"
PORT = 8766
INTENTS = [
    "我最近在找一件外套，性价比高且质量好的",
    "women's long down jacket",
    "机械键盘",
    "绿茶礼盒",
]


def _env() -> dict[str, str]:
    return production_env(DATA)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    args = parser.parse_args()
    import requests

    manage(DATA, "migrate", "-v0")
    manage(DATA, "load_demo")
    key = manage(DATA, "apikey", "create", "load", "--scope", "write").splitlines()[-1]
    processes = [
        start_gunicorn(DATA, PORT, workers=args.workers, timeout=240, extra=["--threads", "4"]),
        start_worker(DATA, "load", pool="prefork", concurrency=1),
    ]
    base = f"http://127.0.0.1:{PORT}/api/v1"
    try:
        users = [f"u-{n:04d}" for n in range(1, 73)]
        items = [f"sku-{n:05d}" for n in range(1, 341)]
        # The shop's backend issues each shopper a token (with its write key).
        shopper: dict[str, dict[str, str]] = {}
        for user in users:
            response = requests.post(
                f"{base}/tokens",
                json={"user": user},
                headers={"Authorization": f"Api-Key {key}"},
                timeout=30,
            )
            response.raise_for_status()
            shopper[user] = {"Authorization": f"Shopper {response.json()['token']}"}
        # Warm every gunicorn worker (model load) before the clock starts.
        for _ in range(args.workers * 3):
            requests.get(
                f"{base}/users/u-0001/recommendations",
                params={"k": 10},
                headers=shopper["u-0001"],
                timeout=120,
            ).raise_for_status()
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        error_kinds: dict[tuple[str, str], int] = defaultdict(int)
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client(seed: int) -> None:
            rng = random.Random(seed)
            session = requests.Session()
            while time.monotonic() < stop_at:
                roll = rng.random()
                user = rng.choice(users)
                headers = shopper[user]
                started = time.perf_counter()
                try:
                    if roll < 0.6:
                        kind = "recommend"
                        response = session.get(
                            f"{base}/users/{user}/recommendations",
                            params={"k": 10},
                            headers=headers,
                            timeout=30,
                        )
                    elif roll < 0.7:
                        kind = "recommend+intent"
                        response = session.get(
                            f"{base}/users/{user}/recommendations",
                            params={"k": 10, "q": rng.choice(INTENTS)},
                            headers=headers,
                            timeout=30,
                        )
                    elif roll < 0.9:
                        kind = "event"
                        response = session.post(
                            f"{base}/behaviours",
                            headers=headers,
                            timeout=30,
                            json={
                                "user": user,
                                "item": rng.choice(items),
                                "kind": rng.choice(["view", "click", "cart", "like"]),
                                "event_id": f"load-{uuid.uuid4()}",
                            },
                        )
                    else:
                        kind = "search"
                        response = session.get(
                            f"{base}/search",
                            headers=headers,
                            timeout=30,
                            params={"q": rng.choice(INTENTS), "user": user},
                        )
                    outcome = str(response.status_code)
                    ok = response.status_code < 400
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies[kind].append(elapsed)
                    if not ok:
                        errors[kind] += 1
                        error_kinds[(kind, outcome)] += 1

        load_before = load_average()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        load_after = load_average()
    finally:
        for process in processes:
            process.stop()
    total = sum(len(v) for v in latencies.values())
    print(
        f"{args.clients} clients for {wall:.0f}s against gunicorn ({args.workers} workers x 4 "
        f"threads) + 1 Celery worker on 127.0.0.1; load average {load_before} → {load_after}"
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
    print(f"throughput: {total / wall:.1f} requests/s; errors: {sum(errors.values())} (target 0)")
    for (kind, outcome), count in sorted(error_kinds.items()):
        print(f"  {kind}: {outcome} x{count}")


if __name__ == "__main__":
    main()
