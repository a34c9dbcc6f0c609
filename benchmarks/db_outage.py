"""The database, or Redis, goes away under a running server, then comes back.

Run by hand:  .venv/bin/python benchmarks/db_outage.py [--scenarios database redis-open
                  redis-closed] [--rounds 10]
              .venv/bin/python benchmarks/db_outage.py --redis      (the two Redis ones)

Own embedded servers (.recsite/bench-outage) with the demo shop; gunicorn on 127.0.0.1
under the production settings (benchmarks/_production.py: DEBUG off, a generated
SECRET_KEY, keys required, plain HTTP; throttle rates raised but throttling still on, so
every request goes through the throttle's Redis), not starting embedded servers itself
(RECSITE_AUTOSTART_SERVICES=0). Each round sends: the liveness probe (no key),
recommendations, the items list (a write key) and one behaviour event (a new event_id).

Scenarios, each with a fresh gunicorn and three phases: before (all up), during (one
server stopped), after (restarted):

- ``database``: PostgreSQL stopped. During: every request fails fast and cleanly, 503 with
  a Retry-After (no hang, no 500).
- ``redis-open``: Redis (cache, throttle counters, broker) stopped, the default
  RECOMMENDER_THROTTLE_FAIL_OPEN=1. During: every request still succeeds (200, the event
  201): throttling lets requests through and caches fall back to the database.
- ``redis-closed``: the same with RECOMMENDER_THROTTLE_FAIL_OPEN=0. During: every request
  answers 503 with a Retry-After.

After the restart every request must succeed again (200/201). Prints the status codes per
path and phase, the slowest response of each phase, and a verdict per scenario. Server
logs go to .recsite/bench-outage/gunicorn-<scenario>.log.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from _production import load_average, manage, production_env

from recsite import testing

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-outage"
PORT = 8767
SCENARIOS = ("database", "redis-open", "redis-closed")
# What a request answers when all is well.
SUCCESS = {"event": 201}


def _start_gunicorn(scenario: str):
    """gunicorn for one scenario (its own log), on servers this script starts and stops."""
    env = {"RECSITE_AUTOSTART_SERVICES": "0"}
    if scenario == "redis-closed":
        env["RECOMMENDER_THROTTLE_FAIL_OPEN"] = "0"
    log = DATA / f"gunicorn-{scenario}.log"
    return testing.start_gunicorn(production_env(DATA, **env), log, port=PORT, request_timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--redis", action="store_true", help="only the two Redis scenarios")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of requests per phase")
    args = parser.parse_args()
    scenarios = ["redis-open", "redis-closed"] if args.redis else args.scenarios

    import requests

    sys.path.insert(0, str(ROOT))
    from recsite import services

    manage(DATA, "migrate", "-v0")
    manage(DATA, "load_demo")
    key = manage(DATA, "apikey", "create", "outage", "--scope", "write").splitlines()[-1]
    auth = {"Authorization": f"Api-Key {key}"}
    base = f"http://127.0.0.1:{PORT}/api/v1"

    def send(kind: str) -> requests.Response:
        if kind == "health":
            return requests.get(f"{base}/health", timeout=30)
        if kind == "recommendations":
            return requests.get(
                f"{base}/users/u-0001/recommendations", params={"k": 5}, headers=auth, timeout=30
            )
        if kind == "items":
            return requests.get(f"{base}/items", params={"limit": 5}, headers=auth, timeout=30)
        return requests.post(
            f"{base}/behaviours",
            json={
                "user": "u-0001",
                "item": "sku-00001",
                "kind": "view",
                "event_id": f"outage-{uuid.uuid4()}",
            },
            headers=auth,
            timeout=30,
        )

    kinds = ("health", "recommendations", "items", "event")

    def phase(scenario: str, name: str) -> Counter:
        seen: Counter = Counter()
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                started = time.perf_counter()
                try:
                    response = send(kind)
                    code = str(response.status_code)
                    if response.status_code == 503 and "Retry-After" not in response.headers:
                        code += " without Retry-After"
                except requests.RequestException as exc:
                    code = type(exc).__name__
                times[kind].append((time.perf_counter() - started) * 1000)
                seen[(kind, code)] += 1
        slowest_kind = max(kinds, key=lambda kind: max(times[kind]))
        print(
            f"{scenario:<13}{name:<7} slowest {max(times[slowest_kind]):>5.0f} ms "
            f"({slowest_kind}): " + ", ".join(f"{k} {c}x{n}" for (k, c), n in sorted(seen.items())),
            flush=True,
        )
        print(
            f"{'':<20}median / max ms: "
            + ", ".join(
                f"{kind} {statistics.median(times[kind]):.0f} / {max(times[kind]):.0f}"
                for kind in kinds
            ),
            flush=True,
        )
        return seen

    def all_ok(seen: Counter) -> bool:
        return all(code == str(SUCCESS.get(kind, 200)) for (kind, code) in seen)

    def all_503(seen: Counter) -> bool:
        return all(code == "503" for (_, code) in seen)

    verdicts = []
    print(f"load average {load_average()}")
    for scenario in scenarios:
        services.ensure_running(DATA, postgres=True, redis=True)
        server = _start_gunicorn(scenario)
        try:
            for kind in kinds:  # warm both workers
                for _ in range(2):
                    send(kind)
            before = phase(scenario, "before")
            if scenario == "database":
                services.stop_postgres(DATA)
            else:
                services.stop_redis(DATA)
            during = phase(scenario, "during")
            if scenario == "database":
                services.start_postgres(DATA)
            else:
                services.start_redis(DATA)
            time.sleep(1)
            after = phase(scenario, "after")
        finally:
            server.stop()
            services.ensure_running(DATA, postgres=True, redis=True)
        if scenario == "redis-open":
            during_ok, expected = all_ok(during), "all 200/201"
        else:
            during_ok, expected = all_503(during), "all 503 with Retry-After"
        verdicts.append(
            f"{scenario}: before all 200/201: {all_ok(before)}; during {expected}: "
            f"{during_ok}; after all 200/201: {all_ok(after)}"
        )
    print(f"load average {load_average()}")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
