"""The database goes away under a running server, then comes back.

Run by hand:  .venv/bin/python benchmarks/db_outage.py

Own embedded servers (.recsite/bench-outage) with the demo shop; gunicorn on 127.0.0.1.
Phases: before (database up), during (PostgreSQL stopped), after (restarted). Prints the
status codes seen in each phase: during the outage requests must fail fast and cleanly
(503 with a Retry-After, no hang), and after it every request must succeed again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".recsite" / "bench-outage"
PORT = 8767


def main() -> None:
    import requests

    sys.path.insert(0, str(ROOT))
    from recsite import services

    env = {
        **os.environ,
        "RECSITE_DATA_DIR": str(DATA),
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
    }
    for args in (["migrate", "-v0"], ["load_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
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
            "30",
        ],
        cwd=ROOT,
        env={**env, "RECSITE_AUTOSTART_SERVICES": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{PORT}/api/v1"
    paths = ["/health", "/users/u-0001/recommendations?k=5", "/items?limit=5"]

    def phase(name: str, rounds: int = 10) -> Counter:
        seen: Counter = Counter()
        slowest = 0.0
        for _ in range(rounds):
            for path in paths:
                started = time.perf_counter()
                try:
                    code = requests.get(base + path, timeout=30).status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                slowest = max(slowest, time.perf_counter() - started)
                seen[(path.split("?")[0], code)] += 1
        print(
            f"{name:<8} slowest {slowest * 1000:.0f} ms: "
            + ", ".join(f"{p} {c}×{n}" for (p, c), n in sorted(seen.items(), key=str))
        )
        return seen

    try:
        for _ in range(240):
            try:
                if requests.get(base + "/health", timeout=10).ok:
                    break
            except requests.RequestException:  # still booting
                time.sleep(0.5)
        before = phase("before")
        services.stop_postgres(DATA)
        during = phase("during")
        services.start_postgres(DATA)
        time.sleep(1)
        after = phase("after")
    finally:
        server.terminate()
        server.wait(timeout=30)
    ok_before = all(code == 200 for (_, code) in before)
    clean_during = all(code == 503 for (_, code) in during)
    ok_after = all(code == 200 for (_, code) in after)
    print(
        f"before all 200: {ok_before}; during failed cleanly (503, no hang): {clean_during}; "
        f"after all 200: {ok_after}"
    )


if __name__ == "__main__":
    main()
