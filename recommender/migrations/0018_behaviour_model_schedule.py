"""Retrain the behaviour models (EASE, ALS, SASRec) nightly, before the ranker (editable)."""

import json

from django.db import migrations

SCHEDULES = [
    (
        "recsite: retrain behaviour models",
        "recommender.train_behaviour_models",
        {"hour": "1", "minute": "30"},
    ),
]


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for name, task, when in SCHEDULES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            **when, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.create(name=name, task=task, crontab=crontab, kwargs=json.dumps({}))


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("recommender", "0017_localized_texts")]

    operations = [migrations.RunPython(install, uninstall)]
