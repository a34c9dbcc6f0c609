"""One process harness for tests and benchmarks: start a Celery worker, gunicorn or the
embedded servers, wait until they answer (or fail loudly with the end of their log), and
stop them. The test fixtures (tests/conftest.py) and every benchmark use it, in the way
``celery.contrib.testing.worker`` gives Celery's own tests one worker fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class NotReady(RuntimeError):
    """A process exited early or did not answer in time; the message ends with its log."""


@dataclass
class Process:
    """A started server process and the file its output goes to."""

    name: str
    popen: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def fail(self, why: str) -> NotReady:
        return NotReady(f"{self.name} {why}; the end of {self.log}:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a warm shutdown for Celery and gunicorn), then SIGKILL after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def _start(
    name: str, args: list[str], env: Mapping[str, str], log: Path, *, new_session: bool = False
) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:  # the child keeps its own descriptor
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    return Process(name, popen, log)


def wait_until(process: Process, ready: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``ready`` until it is true; seconds it took. Raises :class:`NotReady` if the
    process exits first or ``timeout`` passes."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not process.alive():
            raise process.fail(f"exited early (code {process.popen.returncode})")
        try:
            if ready():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - not up yet (refused connection, broker busy)
            pass
        time.sleep(0.2)
    process.stop()
    raise process.fail(f"did not {what} within {timeout:.0f} s")


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, message: str = "it") -> None:
    """Poll ``condition`` every 0.2 s until it holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message}")


def start_worker(
    env: Mapping[str, str],
    log: Path,
    *,
    name: str,
    queues: str = "default,embed",
    pool: str = "solo",
    concurrency: int | None = None,
    app=None,
    timeout: float = 90,
    extra: list[str] | None = None,
    wait: bool = True,
    new_session: bool = False,
    loglevel: str = "INFO",
) -> Process:
    """A real ``celery worker`` for the ``recsite`` app, ready when it answers a ping
    (``app``: the Celery app to ping with; the project's by default). ``wait=False``
    returns at once; ``new_session`` puts it in a process group of its own (to kill the
    worker with its children, as a power loss would)."""
    args = [
        sys.executable, "-m", "celery", "-A", "recsite", "worker",
        "-Q", queues, "-P", pool, "--without-gossip", "--without-mingle",
        "-n", f"{name}@%h", "-l", loglevel,
    ]  # fmt: skip
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    process = _start(
        f"celery worker {name}", args + list(extra or []), env, log, new_session=new_session
    )
    if not wait:
        return process
    if app is None:
        from recsite.celery import app
    wait_until(process, lambda: bool(app.control.ping(timeout=0.5)), timeout, "answer a ping")
    return process


def start_gunicorn(
    env: Mapping[str, str],
    log: Path,
    *,
    port: int,
    workers: int = 2,
    timeout: float = 120,
    request_timeout: int = 60,
    extra: list[str] | None = None,
) -> Process:
    """gunicorn serving the project on 127.0.0.1:``port``, ready when the liveness probe
    answers 200."""
    args = [
        sys.executable, "-m", "gunicorn", "recsite.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--timeout", str(request_timeout),
    ]  # fmt: skip
    process = _start(f"gunicorn :{port}", args + list(extra or []), env, log)
    url = f"http://127.0.0.1:{port}/api/v1/health"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    wait_until(process, up, timeout, "answer /api/v1/health")
    return process


@contextmanager
def running(*processes: Process) -> Iterator[tuple[Process, ...]]:
    """Stop the processes however the block ends."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def services_running(data_dir: Path) -> bool:
    """Whether the embedded PostgreSQL and Redis of ``data_dir`` both run now."""
    from recsite import services

    return services.postgres_status(data_dir).running and services.redis_status(data_dir).running


def stop_services(data_dir: Path) -> None:
    """Stop the embedded servers of ``data_dir`` (a no-op for those not running)."""
    from recsite import services

    services.stop_redis(data_dir)
    services.stop_postgres(data_dir)


@contextmanager
def own_services(data_dir: Path, *, keep: bool = False) -> Iterator[None]:
    """On leaving the block, stop those embedded servers of ``data_dir`` that were not
    running on entering it (none with ``keep``). Enter it before ``django.setup()``,
    which starts them."""
    from recsite import services

    was_up = (services.postgres_status(data_dir).running, services.redis_status(data_dir).running)
    try:
        yield
    finally:
        if not keep:
            if not was_up[0]:
                services.stop_postgres(data_dir)
            if not was_up[1]:
                services.stop_redis(data_dir)


def manage(*args: str, env: Mapping[str, str], check: bool = True) -> str:
    """``manage.py`` in a subprocess with ``env``; its stdout."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()


def use_data_dir(data_dir: Path, **defaults: str) -> None:
    """Point this process at a benchmark's own embedded servers (before ``django.setup()``),
    with no embedding queued by item saves; ``defaults`` fill variables the caller's shell
    did not set (DEBUG, SECRET_KEY…)."""
    os.environ["RECSITE_DATA_DIR"] = str(data_dir)
    os.environ["RECOMMENDER_EMBED_ON_SAVE"] = "0"
    for name, value in {"DJANGO_SETTINGS_MODULE": "recsite.settings", **defaults}.items():
        os.environ.setdefault(name, value)


def environ(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides`` (None values removed)."""
    env = {**os.environ, **overrides}
    return {key: value for key, value in env.items() if value is not None}
