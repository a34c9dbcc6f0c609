"""The embedded PostgreSQL (with pgvector) and Redis, and settings read from the environment."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from recsite import services
from recsite.settings import database_from_url

pytestmark = pytest.mark.django_db


def test_embedded_servers_run_in_the_data_dir():
    pg = services.postgres_status(settings.RECSITE_DATA_DIR)
    redis = services.redis_status(settings.RECSITE_DATA_DIR)
    assert pg.running and redis.running
    assert settings.CELERY_BROKER_URL.startswith("redis+socket://")
    assert str(settings.RECSITE_DATA_DIR) in settings.CELERY_BROKER_URL


def test_pgvector_orders_vectors_by_cosine_distance():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE probe (name text, embedding vector(3))")
        cursor.execute(
            "INSERT INTO probe VALUES ('same', '[1,0,0]'), ('close', '[0.9,0.1,0]'),"
            " ('orthogonal', '[0,1,0]'), ('opposite', '[-1,0,0]')"
        )
        cursor.execute(
            "SELECT name, embedding <=> '[2,0,0]' FROM probe ORDER BY embedding <=> '[2,0,0]'"
        )
        rows = cursor.fetchall()
    assert [name for name, _ in rows] == ["same", "close", "orthogonal", "opposite"]
    assert rows[0][1] == pytest.approx(0.0, abs=1e-6)
    assert rows[-1][1] == pytest.approx(2.0, abs=1e-6)


def test_starting_twice_is_a_no_op():
    before = services.redis_status(settings.RECSITE_DATA_DIR).pid
    services.ensure_running(settings.RECSITE_DATA_DIR, postgres=True, redis=True)
    assert services.redis_status(settings.RECSITE_DATA_DIR).pid == before


def test_services_status_command_reports_both_servers():
    result = subprocess.run(
        [sys.executable, "manage.py", "services", "status"],
        capture_output=True,
        text=True,
        check=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
    )
    assert "postgresql" in result.stdout and "running" in result.stdout
    assert "redis" in result.stdout


def test_database_url_is_parsed():
    entry = database_from_url("postgres://shop:s%40cret@db.example:6543/recs?sslmode=require")
    assert entry["NAME"] == "recs"
    assert entry["USER"] == "shop"
    assert entry["PASSWORD"] == "s@cret"
    assert entry["HOST"] == "db.example"
    assert entry["PORT"] == "6543"
    assert entry["OPTIONS"] == {"sslmode": "require"}


def test_database_url_rejects_other_engines():
    with pytest.raises(ImproperlyConfigured, match="postgres://"):
        database_from_url("mysql://u@h/db")


def test_secret_key_is_required_without_debug():
    result = subprocess.run(
        [sys.executable, "-c", "import recsite.settings"],
        capture_output=True,
        text=True,
        env={"DEBUG": "0", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_embedded_postgres_stops_and_starts_again_in_one_process(tmp_path):
    data = tmp_path / "pg"
    try:
        assert services.start_postgres(data).running
        services.stop_postgres(data)
        assert not services.postgres_status(data).running
        assert services.start_postgres(data).running  # not the cached, stopped handle
    finally:
        services.stop_postgres(data)
