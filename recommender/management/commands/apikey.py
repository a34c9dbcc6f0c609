"""``manage.py apikey create|list|revoke``: keys for applications calling the API."""

from django.core.management.base import BaseCommand, CommandError

from recommender import apikeys
from recommender.models import ApiKey


class Command(BaseCommand):
    help = "Create (the key is printed once), list or revoke API keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("name")
        create.add_argument("--scope", choices=apikeys.SCOPES, default="read")
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args, action: str, **options):
        if action == "create":
            key, plain = apikeys.create_key(options["name"], options["scope"])
            self.stderr.write(f"created {key}; store it now, it is not shown again:")
            self.stdout.write(plain)
        elif action == "list":
            for key in ApiKey.objects.all():
                state = "active" if key.is_active else "revoked"
                used = key.last_used_at.isoformat() if key.last_used_at else "never used"
                self.stdout.write(f"{key.prefix}  {key.scope:<6} {state:<8} {key.name}  ({used})")
        else:
            updated = ApiKey.objects.filter(prefix=options["prefix"]).update(is_active=False)
            if not updated:
                raise CommandError(f"no API key with prefix {options['prefix']!r}")
            self.stdout.write(f"revoked {options['prefix']}")
