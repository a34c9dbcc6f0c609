"""App configuration: text processing, system checks and signal receivers."""

from django.apps import AppConfig
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
