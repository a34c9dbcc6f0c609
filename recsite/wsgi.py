"""WSGI entry point for gunicorn.

It refuses to start when the security checks fail (DEBUG on or API keys off on a host
others can reach: recommender/checks.py), as ``manage.py check`` would; then it loads the
models the first lists would wait for (``recommender.serving.warmup``, unless
``RECOMMENDER_WARM_UP`` is off).
"""

import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
application = get_wsgi_application()

from recommender.checks import open_site_check  # noqa: E402  (needs the app registry)

_errors = open_site_check()
if _errors:
    raise ImproperlyConfigured("; ".join(f"{e.id}: {e.msg}" for e in _errors))

from recommender.conf import conf  # noqa: E402

if conf.WARM_UP:
    from recommender.serving.warmup import warm_up  # noqa: E402

    warm_up()
