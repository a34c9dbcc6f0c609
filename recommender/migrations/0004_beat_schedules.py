"""Install the periodic tasks (editable afterwards in the admin under Periodic tasks)."""

import json

from django.db import migrations

SCHEDULES = [
    # name, task, every (seconds) or crontab fields
    ("recsite: worker heartbeat", "recommender.heartbeat", {"every": 60}),
    ("recsite: refresh stale vectors", "recommender.refresh_stale_vectors", {"every": 300}),
    (
        "recsite: full re-embed of the active space",
        "recommender.reembed_space",
        {"crontab": {"minute": "30", "hour": "3", "day_of_week": "0"}},
    ),
]


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for name, task, when in SCHEDULES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue  # an operator may have edited it; never overwrite
        fields = {"name": name, "task": task, "kwargs": json.dumps({})}
        if "every" in when:
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=when["every"], period="seconds"
            )
        else:
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
                **when["crontab"], day_of_month="*", month_of_year="*", timezone="UTC"
            )
        PeriodicTask.objects.create(**fields)


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0003_encoder_spaces"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
