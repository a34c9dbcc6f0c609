"""Fixtures shared by the suite: a real Celery worker on the embedded Redis, users, items."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process using pytest's test database and the test broker.

    Tests that use it must be ``transaction=True`` so the worker sees their rows.
    """
    from django.db import connection

    from recsite.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RECSITE_DATABASE_NAME": connection.settings_dict["NAME"],
    }
    log = open(ROOT / ".recsite" / "test" / "worker.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "recsite",
            "worker",
            "-Q",
            "default,embed",
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"pytest-{os.getpid()}@%h",
            "-l",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early; see {log.name}")
        if app.control.ping(timeout=0.5):
            break
    else:
        process.kill()
        raise RuntimeError(f"celery worker did not answer a ping in 90 s; see {log.name}")
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def admin_client_zh(client, admin_user):
    client.force_login(admin_user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty shared cache (per-minute aggregates, throttles)."""
    from django.core.cache import cache

    from recommender import spaces

    cache.clear()
    spaces.spaces_changed()


@pytest.fixture(scope="session", autouse=True)
def _close_helper_connection(django_db_setup, django_db_blocker):
    """Serving's helper thread keeps a connection to the test database; close it before
    the database is dropped."""
    yield
    from recommender.serving import helper_connection

    with django_db_blocker.unblock():
        helper_connection.shutdown()
