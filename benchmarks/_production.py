"""The production settings the benchmarks run under, for plain HTTP on 127.0.0.1.

DEBUG off with a SECRET_KEY generated once per run (so that every process of the run, and
the shopper tokens it issues, share it), API keys required, the API docs for keys only,
HTTPS redirects and secure cookies off (no TLS on 127.0.0.1), and every throttle scope
raised so that a benchmark measures the API, not its request budgets.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SECRET_KEY = secrets.token_urlsafe(50)
HIGH_RATE = "1000000/min"
THROTTLE_SCOPES = ("API", "RECOMMENDATIONS", "EVENTS", "BATCH", "BULK", "ADMIN", "TOKENS", "HEALTH")


def production_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment for manage.py, gunicorn and Celery: production defaults, own data."""
    env = {
        **os.environ,
        "RECSITE_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "recsite.settings",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "RECOMMENDER_REQUIRE_API_KEY": "1",
        "RECOMMENDER_PUBLIC_API_DOCS": "0",
        "RECOMMENDER_THROTTLE_FAIL_OPEN": "1",
        **{f"RECOMMENDER_{scope}_RATE": HIGH_RATE for scope in THROTTLE_SCOPES},
    }
    # Whatever the caller's shell says, the benchmark talks to its own embedded servers.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        env.pop(name, None)
    env.update(overrides)
    return env


def wait_until_up(url: str, seconds: float = 180) -> None:
    """Poll the liveness probe until it answers 200; raise if it never does."""
    import requests

    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=10)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:  # still booting
            last = type(exc).__name__
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer 200 within {seconds:.0f}s (last: {last})")


def load_average() -> list[str]:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[:3]
