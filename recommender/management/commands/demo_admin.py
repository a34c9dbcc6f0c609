"""``manage.py demo_admin``: the demo's admin login (admin / recsite-demo), idempotent."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

USERNAME = "admin"
PASSWORD = "recsite-demo"  # noqa: S105 - a published demo credential, never for production


class Command(BaseCommand):
    help = "Create or reset the demo superuser admin / recsite-demo (for the local demo only)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="run against a database that is not the embedded demo one",
        )

    def handle(self, *args, force: bool = False, **options):
        # A published password on a real database would be a back door: only the embedded
        # demo database gets it unless asked for explicitly.
        if not settings.RECSITE_EMBEDDED_POSTGRES and not force:
            raise CommandError(
                "refusing to set the published demo password on a database given by "
                "DATABASE_URL; pass --force if this really is a demo"
            )
        user, created = get_user_model().objects.get_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        verb = "created" if created else "reset"
        self.stdout.write(f"demo admin {verb}: {USERNAME} / {PASSWORD}")
