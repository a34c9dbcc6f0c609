"""Fuzz the live API with requests generated from its own OpenAPI schema.

Run by hand:  .venv/bin/python benchmarks/fuzz_api.py [--requests 5000]

Starts the app with gunicorn on 127.0.0.1 under the production settings (DEBUG off, a
generated SECRET_KEY, keys required, docs for keys only; HTTPS redirect and secure cookies
off for plain HTTP; every throttle scope raised so that the fuzzer measures correctness,
not request budgets: benchmarks/_production.py), against its own embedded servers
(.recsite/bench-fuzz, loaded with the demo shop). It reads the schema with an admin key,
sends schema-generated requests to every operation with that key, in passes until at least
--requests have been sent (Hypothesis stops early on operations whose input space it has
exhausted; those sit out the later passes), and prints the number of requests, 5xx
responses (target 0) and responses that break the schema (target 0), each failure with a
curl command that reproduces it. Server tracebacks go to .recsite/bench-fuzz/gunicorn.log.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _production import load_average, manage, start_gunicorn

from recsite import testing

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-fuzz"
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
# Item writes queue no embedding (no worker runs here), as when this script ran gunicorn and
# manage.py with an environment of its own.
NO_EMBED_ON_SAVE = {"RECOMMENDER_EMBED_ON_SAVE": "0"}


@dataclass
class Tally:
    """What the fuzzer sent and saw."""

    stats: Counter[str] = field(default_factory=Counter)
    per_label: Counter[str] = field(default_factory=Counter)
    # (label, what) -> [count, first reproduction]
    failures: dict[tuple[str, str], list] = field(default_factory=dict)
    operations: int = 0
    passes: int = 0
    elapsed: float = 0.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--max-passes", type=int, default=8)
    return parser.parse_args()


def prepare_data() -> str:
    """Migrate, load and embed the demo shop, and create an admin key; the key."""
    manage(DATA, "migrate", "-v0", **NO_EMBED_ON_SAVE)
    manage(DATA, "load_demo", "--no-embed", **NO_EMBED_ON_SAVE)
    manage(DATA, "embed", "--no-progress", **NO_EMBED_ON_SAVE)
    key = manage(DATA, "apikey", "create", "fuzzer", "--scope", "admin", **NO_EMBED_ON_SAVE)
    return key.splitlines()[-1]


def fuzz(args, headers: dict[str, str]) -> Tally:
    """Passes over every operation of the schema until --requests have been sent (or
    --max-passes), leaving out those whose input space Hypothesis has exhausted."""
    import schemathesis

    tally = Tally()
    schema = schemathesis.openapi.from_url(f"{BASE}/api/schema/", headers=headers, timeout=60)
    operations = [result.ok() for result in schema.get_all_operations()]
    tally.operations = len(operations)
    active = list(operations)
    started = time.perf_counter()
    while active and tally.stats["requests"] < args.requests and tally.passes < args.max_passes:
        tally.passes += 1
        remaining = args.requests - tally.stats["requests"]
        per_operation = max(1, -(-remaining // len(active)))  # ceiling
        exhausted = []
        for operation in active:
            before = tally.stats["requests"]
            fuzz_operation(operation, per_operation, headers, tally)
            sent = tally.stats["requests"] - before
            if sent < per_operation:
                exhausted.append(operation)
            print(
                f"pass {tally.passes} {operation.label:<50} {sent:>5} sent, "
                f"{tally.stats['requests']:>6} so far",
                flush=True,
            )
        active = [operation for operation in active if operation not in exhausted]
    tally.elapsed = time.perf_counter() - started
    return tally


def fuzz_operation(operation, examples: int, headers: dict[str, str], tally: Tally) -> None:
    """Up to ``examples`` schema-generated requests to one operation, each checked."""
    from hypothesis import HealthCheck, given, settings

    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=BASE, headers=headers, timeout=60)
        check(operation.label, case, response, headers, tally)

    run()


def check(label: str, case, response, headers: dict[str, str], tally: Tally) -> None:
    """Count one response; a 5xx or a break of the schema is a failure, with a curl
    command that reproduces the first of its kind."""
    from schemathesis import checks
    from schemathesis.core.failures import FailureGroup

    stats = tally.stats
    stats["requests"] += 1
    tally.per_label[label] += 1
    stats[f"{response.status_code // 100}xx"] += 1
    problems = []
    if response.status_code >= 500:
        problems.append(f"HTTP {response.status_code}")
    try:
        case.validate_response(
            response,
            headers=headers,
            checks=[
                checks.response_schema_conformance,
                checks.status_code_conformance,
                checks.content_type_conformance,
            ],
        )
    except FailureGroup as exc:
        stats["schema violations"] += 1
        problems += [failure.title for failure in exc.exceptions]
    for what in problems:
        entry = tally.failures.setdefault((label, what), [0, None])
        entry[0] += 1
        if entry[1] is None:
            entry[1] = (
                case.as_curl_command(headers=headers, base_url=BASE)
                + f"\n      -> {response.status_code} {response.text[:300]!r}"
            )


def report(tally: Tally, load_before: list[str], load_after: list[str]) -> None:
    """Print the requests sent, 5xx and schema violations, and each failure's reproduction."""
    stats = tally.stats
    print()
    print(
        f"requests fuzzed:    {stats['requests']} in {tally.elapsed:.0f}s over "
        f"{tally.operations} operations, {tally.passes} passes; "
        f"load average {load_before} -> {load_after}"
    )
    print(f"5xx responses:      {stats['5xx']} (target 0)")
    print(f"schema violations:  {stats['schema violations']} (target 0)")
    print(f"status classes:     {dict(sorted((k, v) for k, v in stats.items() if 'xx' in k))}")
    print(f"fewest requests:    {tally.per_label.most_common()[-3:]}")
    for (label, what), (count, reproduction) in sorted(tally.failures.items()):
        print(f"  {label}: {what} x{count}\n      {reproduction}")
    print("(the curl commands carry the key as [Filtered]: put an admin key back in)")


def main() -> None:
    args = parse_args()
    with testing.own_services(DATA):  # stops the servers this run started
        key = prepare_data()
        headers = {"Authorization": f"Api-Key {key}"}
        server = start_gunicorn(DATA, PORT, env=NO_EMBED_ON_SAVE)
        load_before = load_average()
        with testing.running(server):
            tally = fuzz(args, headers)
    report(tally, load_before, load_average())


if __name__ == "__main__":
    main()
