"""Error reports that do not leak connection strings.

Django's ``SafeExceptionReporterFilter`` masks settings whose *names* look secret (KEY,
PASS, TOKEN…). ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``,
``CACHE_URL`` and ``CACHES[…]["LOCATION"]`` carry passwords under names that do not, and
would be printed in clear on the DEBUG page and in admin error emails.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter

# A URL with a user part (scheme://user[:password]@host…), wherever it appears.
_URL_WITH_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.\-]*://)[^/@\s]*@", re.IGNORECASE)


def mask_urls(text: str, substitute: str = "********") -> str:
    """``text`` with the credentials of every URL in it replaced."""
    return _URL_WITH_CREDENTIALS.sub(lambda m: f"{m.group(1)}{substitute}@", text)


class SecretURLFilter(SafeExceptionReporterFilter):
    """Masks URL-, broker-, backend- and location-named settings whole, and the
    credentials of any URL in any other setting or variable."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|BROKER|BACKEND|LOCATION|DSN",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key, value):
        if isinstance(key, str) and key.upper().endswith("_BACKEND") and _is_dotted(value):
            return value  # e.g. SESSION_ENGINE-style dotted class paths: not secrets
        value = super().cleanse_setting(key, value)
        return mask_urls(value, self.cleansed_substitute) if isinstance(value, str) else value

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, mask_urls(value, self.cleansed_substitute) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _is_dotted(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[\w.]+", value) is not None
