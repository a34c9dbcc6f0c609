"""Periodic co-occurrence refresh and exact profile recomputation (editable in the admin)."""

import json

from django.db import migrations

SCHEDULES = [
    ("recsite: refresh co-occurrence", "recommender.refresh_cooccurrence", 3600),
    ("recsite: recompute profiles", "recommender.recompute_profiles", 6 * 3600),
]


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    for name, task, every in SCHEDULES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
        PeriodicTask.objects.create(name=name, task=task, interval=interval, kwargs=json.dumps({}))


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("recommender", "0005_profiles_cooccurrence")]

    operations = [migrations.RunPython(install, uninstall)]
