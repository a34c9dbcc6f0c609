"""Fuzz the live API with requests generated from its own OpenAPI schema.

Run by hand:  .venv/bin/python benchmarks/fuzz_api.py [--requests 5000]

Starts the app with gunicorn on 127.0.0.1 against its own embedded servers
(.recsite/bench-fuzz, loaded with the demo shop), sends schema-generated requests to every
operation with an admin API key, and prints the number of requests, 5xx responses
(target 0) and responses that break the schema (target 0).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-fuzz"
PORT = 8765


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "RECSITE_DATA_DIR": str(DATA),
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "RECOMMENDER_REQUIRE_API_KEY": "1",
        "RECOMMENDER_EMBED_ON_SAVE": "0",
        "RECOMMENDER_API_RATE": "1000000/min",
    }


def _manage(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()

    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks
    from schemathesis.core.failures import FailureGroup

    _manage("migrate", "-v0")
    _manage("load_demo", "--no-embed")
    _manage("embed", "--no-progress")
    key = _manage("apikey", "create", "fuzzer", "--scope", "admin").splitlines()[-1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "recsite.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            "2",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(120):
            try:
                if requests.get(f"{base}/api/v1/health", timeout=10).ok:
                    break
            except requests.RequestException:  # still booting
                time.sleep(0.5)
        schema = schemathesis.openapi.from_url(f"{base}/api/schema/")
        operations = [result.ok() for result in schema.get_all_operations()]
        per_operation = max(1, -(-args.requests // len(operations)))  # ceiling
        stats: Counter[str] = Counter()
        failures: list[str] = []
        headers = {"Authorization": f"Api-Key {key}"}
        started = time.perf_counter()
        for operation in operations:
            label = operation.label

            @given(case=operation.as_strategy())
            @settings(
                max_examples=per_operation,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call(base_url=base, headers=headers, timeout=30)
                stats["requests"] += 1
                stats[f"{response.status_code // 100}xx"] += 1
                if response.status_code >= 500:
                    # run() is called within this iteration, so late binding is safe.
                    failures.append(f"{label}: {response.status_code}")  # noqa: B023
                try:
                    case.validate_response(
                        response,
                        checks=[
                            checks.response_schema_conformance,
                            checks.status_code_conformance,
                            checks.content_type_conformance,
                        ],
                    )
                except FailureGroup as exc:
                    stats["schema violations"] += 1
                    failures.append(f"{label}: {exc.exceptions[0].title}")  # noqa: B023

            run()
            print(f"{operation.label:<55} {stats['requests']:>6} requests so far", flush=True)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    print()
    print(
        f"requests fuzzed:    {stats['requests']} in {elapsed:.0f}s over {len(operations)} "
        "operations"
    )
    print(f"5xx responses:      {stats['5xx']} (target 0)")
    print(f"schema violations:  {stats['schema violations']} (target 0)")
    print(f"status classes:     {dict(sorted((k, v) for k, v in stats.items() if 'xx' in k))}")
    for line in sorted(set(failures))[:20]:
        print("  ", line)


if __name__ == "__main__":
    main()
