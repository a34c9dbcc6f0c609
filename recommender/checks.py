"""System checks that keep a reachable site closed (``manage.py check``, ``check --deploy``,
``migrate``, and the WSGI start-up in recsite/wsgi.py).

The two conveniences of the local demo, ``DEBUG`` on and API keys off, open the site to
anyone who can reach it; they are refused as soon as ``ALLOWED_HOSTS`` names a host other
than this machine.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.checks import Error, register

from recommender.conf import conf

# Hosts that only this machine reaches (Django's test client sends "testserver").
_LOCAL_NAMES = {"localhost", "testserver"}


def is_local_host(host: str) -> bool:
    """Whether an ``ALLOWED_HOSTS`` entry can only be this machine."""
    name = host.strip().lower().strip("[]")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a domain name, ".example.com" or "*"


def public_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` entries that other machines may reach."""
    return [host for host in settings.ALLOWED_HOSTS if not is_local_host(host)]


@register("security")
def open_site_check(app_configs=None, **kwargs) -> list[Error]:
    """DEBUG on, or API keys off, with a host others can reach: an error."""
    reachable = public_hosts()
    if not reachable:
        return []
    errors = []
    shown = ", ".join(reachable[:3])
    if settings.DEBUG:
        errors.append(
            Error(
                f"DEBUG is on while ALLOWED_HOSTS admits {shown}: the debug page would show "
                "settings and code to anyone.",
                hint="Unset DEBUG (it is off by default); only the local demo sets DEBUG=1.",
                id="recommender.E001",
            )
        )
    if not conf.REQUIRE_API_KEY:
        errors.append(
            Error(
                f"RECOMMENDER_REQUIRE_API_KEY is off while ALLOWED_HOSTS admits {shown}: "
                "anyone could read, rewrite and delete the site's data through the API.",
                hint="Unset RECOMMENDER_REQUIRE_API_KEY (keys are required by default); "
                "browsers use shopper tokens (docs/deploy.md).",
                id="recommender.E002",
            )
        )
    return errors


@register()
def list_refresh_check(app_configs=None, **kwargs) -> list[Error]:
    """Lists computed ahead go into the list cache: without it the setting would do nothing."""
    if int(conf.LIST_REFRESH_SECONDS) > 0 and float(conf.LIST_CACHE_SECONDS) <= 0:
        return [
            Error(
                "RECOMMENDER_LIST_REFRESH_SECONDS is set but RECOMMENDER_LIST_CACHE_SECONDS "
                "is 0: lists computed ahead would be kept nowhere.",
                hint="Set RECOMMENDER_LIST_CACHE_SECONDS (e.g. 60), or unset "
                "RECOMMENDER_LIST_REFRESH_SECONDS.",
                id="recommender.E003",
            )
        ]
    return []
