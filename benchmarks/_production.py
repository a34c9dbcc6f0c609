"""The production settings the benchmarks run under, for plain HTTP on 127.0.0.1.

DEBUG off with a SECRET_KEY generated once per run (so that every process of the run, and
the shopper tokens it issues, share it), API keys required, the API docs for keys only,
HTTPS redirects and secure cookies off (no TLS on 127.0.0.1), and every throttle scope
raised so that a benchmark measures the API, not its request budgets.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from recsite import testing

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


def manage(data_dir: Path, *args: str, **overrides: str) -> str:
    """``manage.py`` under the production settings with ``data_dir`` (and ``overrides``);
    its stdout."""
    return testing.manage(*args, env=production_env(data_dir, **overrides))


def start_gunicorn(data_dir: Path, port: int, **options) -> testing.Process:
    """gunicorn under the production settings, ready when its liveness probe answers
    (the harness fails loudly with the end of ``data_dir/gunicorn.log`` otherwise)."""
    env = production_env(data_dir, **options.pop("env", {}))
    return testing.start_gunicorn(env, data_dir / "gunicorn.log", port=port, **options)


def start_worker(data_dir: Path, name: str, **options) -> testing.Process:
    """A Celery worker under the production settings, ready when it answers a ping on the
    benchmark's own broker."""
    from celery import Celery

    from recsite import services

    ping = Celery(broker=services.redis_url(data_dir), set_as_current=False)
    env = production_env(data_dir)
    log = data_dir / f"worker-{name}.log"
    return testing.start_worker(env, log, name=name, app=ping, **options)


def load_average() -> list[str]:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[:3]


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every process: pid → (parent pid, CPU clock ticks, command line), from /proc. The
    ticks are its own and those of its children that ended (reaped: a database backend
    that closed, a recycled worker), so a tree's sum loses nothing that exited."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        table[int(entry)] = (int(fields[1]), ticks, command)
    return table


def server_cpu(data_dir: Path, **roots: int) -> dict[str, float]:
    """CPU seconds used so far by each server of a run, with all its descendants:
    ``roots`` (name → pid, e.g. gunicorn's master and the worker's), and the embedded
    PostgreSQL and Redis of ``data_dir``. Compared before and after a run, this is what
    each request cost in CPU, a figure that other jobs on a shared machine disturb far
    less than latencies. Linux only (/proc)."""
    table = _processes()
    named = dict(roots)
    for pid, (_, _, command) in table.items():
        program = command.split(" ", 1)[0]
        if program.endswith("/postgres") and f"-D {data_dir}/pgdata " in command:
            named["postgres"] = pid
        elif program.endswith("/redis-server") and f"{data_dir}/redis/" in command:
            named["redis"] = pid
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, root in named.items():
        total, stack = 0, [root]
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children.get(pid, []))
        used[name] = total / ticks
    return used
