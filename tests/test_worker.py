"""A real Celery worker takes a task from the embedded Redis and answers."""

import pytest

from recommender.models import Item, WorkerHeartbeat
from recommender.tasks import heartbeat


@pytest.mark.django_db(transaction=True)
def test_task_round_trip_through_a_real_worker(celery_worker):
    Item.objects.create(external_id="sku-1", title="女士加长款保暖羽绒服")
    result = heartbeat.delay().get(timeout=60)
    assert result["items"] == 1
    assert WorkerHeartbeat.objects.filter(hostname=result["hostname"]).exists()
