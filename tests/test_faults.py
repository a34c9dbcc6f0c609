"""Fault injection: a worker killed mid-batch, a broker restarted with queued tasks."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from recommender import spaces
from recommender.models import Item, ItemVector
from recommender.spaces import embedding
from recsite import services, testing
from recsite.testing import wait_for

pytestmark = pytest.mark.worker

ROOT = Path(__file__).resolve().parent.parent


def start_worker(broker: str, log: Path) -> subprocess.Popen:
    """A worker on the private broker, in its own process group (killed whole below)."""
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        CELERY_VISIBILITY_TIMEOUT="4",
    )
    name = f"faults-{time.monotonic_ns()}"
    return testing.start_worker(env, log, name=name, wait=False, new_session=True).popen


@pytest.fixture
def private_broker(tmp_path):
    """A Redis of its own, so the suite's shared worker cannot take these tasks."""
    data = tmp_path / "b"
    services.start_redis(data)
    yield services.redis_url(data)
    services.stop_redis(data)


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_and_duplicates_nothing(private_broker, tmp_path, settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = spaces.create_space(
        "slow", "tests.slow_encoder:SlowEncoder", {"dim": 32, "delay": 0.4}, activate=True
    )
    Item.objects.bulk_create(Item(external_id=f"k{n}", title=f"商品 {n}") for n in range(1200))
    ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
    sender = Celery(broker=private_broker, set_as_current=False)  # keep recsite current
    for batch in embedding.batches(ids, 100):
        sender.send_task("recommender.embed_items", args=[space.pk, batch, False], queue="embed")

    log = tmp_path / "worker.log"
    first = start_worker(private_broker, log)
    try:
        wait_for(lambda: ItemVector.objects.filter(space=space).exists(), 90, "a first batch")
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker, mid-way
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    at_kill = ItemVector.objects.filter(space=space).count()
    assert 0 < at_kill < len(ids)

    second = start_worker(private_broker, log)
    try:
        wait_for(
            lambda: ItemVector.objects.filter(space=space).count() == len(ids),
            120,
            f"all vectors after the restart (had {at_kill}); see {log}",
        )
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    vectors = ItemVector.objects.filter(space=space)
    assert vectors.values("item").distinct().count() == len(ids) == vectors.count()
    assert spaces.coverage(space).stale == 0


def test_broker_restart_keeps_queued_tasks(tmp_path):
    data = tmp_path / "b"
    services.start_redis(data)
    url = services.redis_url(data)
    sender = Celery(broker=url, set_as_current=False)
    try:
        for n in range(25):
            sender.send_task("recommender.heartbeat", queue="default", kwargs={}, task_id=f"t{n}")
        import redis

        client = redis.Redis(unix_socket_path=str(services.redis_socket(data)))
        assert client.llen("default") == 25
        client.close()
        services.stop_redis(data)
        assert not services.redis_status(data).running
        services.start_redis(data)
        client = redis.Redis(unix_socket_path=str(services.redis_socket(data)))
        assert client.llen("default") == 25  # replayed from the append-only file
        client.close()
    finally:
        services.stop_redis(data)
