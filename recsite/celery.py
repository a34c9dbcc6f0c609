"""The Celery application; tasks are discovered in the installed apps."""

import os

from celery import Celery

from recommender import counters

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

app = Celery("recsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
counters.track_celery_tasks()  # Prometheus: tasks run, by name and state
