"""The project's AppConfig: starts the embedded PostgreSQL and Redis once per process when
the settings use them (no DATABASE_URL / CELERY_BROKER_URL), before any app touches them.

It lives in the project, not in the recommender app: the app never imports ``recsite``.
"""

import sys

from django.apps import AppConfig
from django.conf import settings


class RecsiteConfig(AppConfig):
    name = "recsite"
    verbose_name = "recsite"

    def ready(self) -> None:
        # `manage.py services ...` manages the servers itself (and `stop` must not start them).
        if sys.argv[1:2] == ["services"] or not settings.RECSITE_AUTOSTART_SERVICES:
            return
        wants_pg = settings.RECSITE_EMBEDDED_POSTGRES
        wants_redis = settings.RECSITE_EMBEDDED_REDIS
        if wants_pg or wants_redis:
            from recsite import services

            services.ensure_running(settings.RECSITE_DATA_DIR, postgres=wants_pg, redis=wants_redis)
