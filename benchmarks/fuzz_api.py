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
from pathlib import Path

from _production import load_average, manage, production_env, start_gunicorn

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-fuzz"
PORT = 8765


def _env() -> dict[str, str]:
    return production_env(DATA, RECOMMENDER_EMBED_ON_SAVE="0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--max-passes", type=int, default=8)
    args = parser.parse_args()

    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks
    from schemathesis.core.failures import FailureGroup

    manage(DATA, "migrate", "-v0")
    manage(DATA, "load_demo", "--no-embed")
    manage(DATA, "embed", "--no-progress")
    key = manage(DATA, "apikey", "create", "fuzzer", "--scope", "admin").splitlines()[-1]
    DATA.mkdir(parents=True, exist_ok=True)
    server = start_gunicorn(DATA, PORT)
    base = f"http://127.0.0.1:{PORT}"
    headers = {"Authorization": f"Api-Key {key}"}
    stats: Counter[str] = Counter()
    per_label: Counter[str] = Counter()
    # (label, what) -> (count, first reproduction)
    failures: dict[tuple[str, str], list] = {}
    load_before = load_average()
    try:
        schema = schemathesis.openapi.from_url(f"{base}/api/schema/", headers=headers, timeout=60)
        operations = [result.ok() for result in schema.get_all_operations()]
        active = list(operations)
        started = time.perf_counter()
        passes = 0
        while active and stats["requests"] < args.requests and passes < args.max_passes:
            passes += 1
            remaining = args.requests - stats["requests"]
            per_operation = max(1, -(-remaining // len(active)))  # ceiling
            exhausted = []
            for operation in active:
                label = operation.label
                before = stats["requests"]

                @given(case=operation.as_strategy())
                @settings(
                    max_examples=per_operation,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def run(case):
                    response = case.call(base_url=base, headers=headers, timeout=60)
                    stats["requests"] += 1
                    per_label[label] += 1  # noqa: B023  (run() is called in this iteration)
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
                        entry = failures.setdefault((label, what), [0, None])  # noqa: B023
                        entry[0] += 1
                        if entry[1] is None:
                            entry[1] = (
                                case.as_curl_command(headers=headers, base_url=base)
                                + f"\n      -> {response.status_code} {response.text[:300]!r}"
                            )

                run()
                sent = stats["requests"] - before
                if sent < per_operation:
                    exhausted.append(operation)
                print(
                    f"pass {passes} {label:<50} {sent:>5} sent, {stats['requests']:>6} so far",
                    flush=True,
                )
            active = [operation for operation in active if operation not in exhausted]
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    load_after = load_average()
    print()
    print(
        f"requests fuzzed:    {stats['requests']} in {elapsed:.0f}s over {len(operations)} "
        f"operations, {passes} passes; load average {load_before} -> {load_after}"
    )
    print(f"5xx responses:      {stats['5xx']} (target 0)")
    print(f"schema violations:  {stats['schema violations']} (target 0)")
    print(f"status classes:     {dict(sorted((k, v) for k, v in stats.items() if 'xx' in k))}")
    print(f"fewest requests:    {per_label.most_common()[-3:]}")
    for (label, what), (count, reproduction) in sorted(failures.items()):
        print(f"  {label}: {what} x{count}\n      {reproduction}")
    print("(the curl commands carry the key as [Filtered]: put an admin key back in)")


if __name__ == "__main__":
    main()
