"""``manage.py demo_admin``: the demo's admin login (admin / recsite-demo), idempotent."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"
PASSWORD = "recsite-demo"  # noqa: S105 - a published demo credential, never for production


class Command(BaseCommand):
    help = "Create or reset the demo superuser admin / recsite-demo (for the local demo only)."

    def handle(self, *args, **options):
        user, created = get_user_model().objects.get_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        verb = "created" if created else "reset"
        self.stdout.write(f"demo admin {verb}: {USERNAME} / {PASSWORD}")
