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
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
from _production import load_average, manage, production_env

from recsite import services, testing

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-outage"
PORT = 8767
BASE = f"http://127.0.0.1:{PORT}/api/v1"
SCENARIOS = ("database", "redis-open", "redis-closed")
# What a request answers when all is well.
SUCCESS = {"event": 201}
KINDS = ("health", "recommendations", "items", "event")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--redis", action="store_true", help="only the two Redis scenarios")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of requests per phase")
    args = parser.parse_args()
    if args.redis:
        args.scenarios = ["redis-open", "redis-closed"]
    return args


def prepare_data() -> dict[str, str]:
    """Migrate, load the demo shop and create a write key; the headers that carry it."""
    manage(DATA, "migrate", "-v0")
    manage(DATA, "load_demo")
    key = manage(DATA, "apikey", "create", "outage", "--scope", "write").splitlines()[-1]
    return {"Authorization": f"Api-Key {key}"}


def run_scenario(scenario: str, rounds: int, auth: dict[str, str]) -> str:
    """Before, during and after the outage, on a fresh gunicorn; the scenario's verdict."""
    services.ensure_running(DATA, postgres=True, redis=True)
    server = _start_gunicorn(scenario)
    try:
        for kind in KINDS:  # warm both workers
            for _ in range(2):
                send(kind, auth)
        before = phase(scenario, "before", rounds, auth)
        stop_server_of(scenario)
        during = phase(scenario, "during", rounds, auth)
        start_server_of(scenario)
        time.sleep(1)
        after = phase(scenario, "after", rounds, auth)
    finally:
        server.stop()
        services.ensure_running(DATA, postgres=True, redis=True)
    return verdict(scenario, before, during, after)


def _start_gunicorn(scenario: str) -> testing.Process:
    """gunicorn for one scenario (its own log), on servers this script starts and stops."""
    env = {"RECSITE_AUTOSTART_SERVICES": "0"}
    if scenario == "redis-closed":
        env["RECOMMENDER_THROTTLE_FAIL_OPEN"] = "0"
    log = DATA / f"gunicorn-{scenario}.log"
    return testing.start_gunicorn(production_env(DATA, **env), log, port=PORT, request_timeout=30)


def stop_server_of(scenario: str) -> None:
    """The outage: PostgreSQL or Redis stopped."""
    if scenario == "database":
        services.stop_postgres(DATA)
    else:
        services.stop_redis(DATA)


def start_server_of(scenario: str) -> None:
    """The end of the outage: the stopped server started again."""
    if scenario == "database":
        services.start_postgres(DATA)
    else:
        services.start_redis(DATA)


def send(kind: str, auth: dict[str, str]) -> requests.Response:
    """One request of ``kind``."""
    if kind == "health":
        return requests.get(f"{BASE}/health", timeout=30)
    if kind == "recommendations":
        return requests.get(
            f"{BASE}/users/u-0001/recommendations", params={"k": 5}, headers=auth, timeout=30
        )
    if kind == "items":
        return requests.get(f"{BASE}/items", params={"limit": 5}, headers=auth, timeout=30)
    return requests.post(
        f"{BASE}/behaviours",
        json={
            "user": "u-0001",
            "item": "sku-00001",
            "kind": "view",
            "event_id": f"outage-{uuid.uuid4()}",
        },
        headers=auth,
        timeout=30,
    )


def phase(scenario: str, name: str, rounds: int, auth: dict[str, str]) -> Counter:
    """``rounds`` rounds of every kind of request; the (kind, status) counts, printed with
    the slowest and median times."""
    seen: Counter = Counter()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            started = time.perf_counter()
            try:
                response = send(kind, auth)
                code = str(response.status_code)
                if response.status_code == 503 and "Retry-After" not in response.headers:
                    code += " without Retry-After"
            except requests.RequestException as exc:
                code = type(exc).__name__
            times[kind].append((time.perf_counter() - started) * 1000)
            seen[(kind, code)] += 1
    slowest_kind = max(KINDS, key=lambda kind: max(times[kind]))
    print(
        f"{scenario:<13}{name:<7} slowest {max(times[slowest_kind]):>5.0f} ms "
        f"({slowest_kind}): " + ", ".join(f"{k} {c}x{n}" for (k, c), n in sorted(seen.items())),
        flush=True,
    )
    print(
        f"{'':<20}median / max ms: "
        + ", ".join(
            f"{kind} {statistics.median(times[kind]):.0f} / {max(times[kind]):.0f}"
            for kind in KINDS
        ),
        flush=True,
    )
    return seen


def all_ok(seen: Counter) -> bool:
    return all(code == str(SUCCESS.get(kind, 200)) for (kind, code) in seen)


def all_503(seen: Counter) -> bool:
    return all(code == "503" for (_, code) in seen)


def verdict(scenario: str, before: Counter, during: Counter, after: Counter) -> str:
    """Whether each phase answered as the scenario expects."""
    if scenario == "redis-open":
        during_ok, expected = all_ok(during), "all 200/201"
    else:
        during_ok, expected = all_503(during), "all 503 with Retry-After"
    return (
        f"{scenario}: before all 200/201: {all_ok(before)}; during {expected}: "
        f"{during_ok}; after all 200/201: {all_ok(after)}"
    )


def main() -> None:
    args = parse_args()
    auth = prepare_data()
    print(f"load average {load_average()}")
    verdicts = [run_scenario(scenario, args.rounds, auth) for scenario in args.scenarios]
    print(f"load average {load_average()}")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
