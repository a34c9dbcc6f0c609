"""App configuration; starts the embedded servers once per process when they are used."""

import sys

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class RecommenderConfig(AppConfig):
    name = "recommender"
    verbose_name = _("Recommender")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from encoders.registry import configure_text_processing

        # The jieba user dictionary must apply to keyword extraction too, not only encoders.
        configure_text_processing()
        from recommender import checks, signals  # noqa: F401  (registers checks, receivers)
        from recommender.learning.ranker import load_latest_scorer
        from recommender.serving.ranking import set_learned_scorer_loader

        set_learned_scorer_loader(load_latest_scorer)
        # `manage.py services ...` manages the servers itself (and `stop` must not start them).
        if sys.argv[1:2] == ["services"] or not settings.RECSITE_AUTOSTART_SERVICES:
            return
        wants_pg = settings.RECSITE_EMBEDDED_POSTGRES
        wants_redis = settings.RECSITE_EMBEDDED_REDIS
        if wants_pg or wants_redis:
            from recsite import services

            services.ensure_running(settings.RECSITE_DATA_DIR, postgres=wants_pg, redis=wants_redis)
