"""The feedback loop: retrain the ranker and re-evaluate on a schedule (editable)."""

import json

from django.db import migrations

SCHEDULES = [
    ("recsite: retrain ranker", "recommender.train_ranker", {"hour": "2", "minute": "0"}),
    ("recsite: re-evaluate", "recommender.evaluate", {"hour": "2", "minute": "45"}),
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
    dependencies = [("recommender", "0007_evaluation_runs")]

    operations = [migrations.RunPython(install, uninstall)]
