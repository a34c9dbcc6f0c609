"""``manage.py services start|status|stop``: the embedded PostgreSQL and Redis servers."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recsite import services


class Command(BaseCommand):
    help = (
        "Start, inspect or stop the embedded PostgreSQL (pgvector) and Redis servers. "
        "Servers configured by DATABASE_URL / CELERY_BROKER_URL are not managed here."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "status", "stop"])

    def handle(self, *args, action: str, **options):
        data_dir = settings.RECSITE_DATA_DIR
        pg = settings.RECSITE_EMBEDDED_POSTGRES
        redis = settings.RECSITE_EMBEDDED_REDIS
        try:
            if action == "start":
                services.ensure_running(data_dir, postgres=pg, redis=redis)
            elif action == "stop":
                if redis:
                    services.stop_redis(data_dir)
                if pg:
                    services.stop_postgres(data_dir)
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self._report(data_dir, pg, redis)

    def _report(self, data_dir, pg: bool, redis: bool) -> None:
        if pg:
            self._line(services.postgres_status(data_dir))
        else:
            self.stdout.write("postgresql  external (DATABASE_URL)")
        if redis:
            self._line(services.redis_status(data_dir))
        else:
            self.stdout.write("redis       external (CELERY_BROKER_URL)")

    def _line(self, status: services.ServiceStatus) -> None:
        state = f"running (pid {status.pid})" if status.running else "stopped"
        self.stdout.write(f"{status.name:<11} {state:<22} {status.address}")
