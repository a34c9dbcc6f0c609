"""Test settings: the project's settings with their own embedded servers.

The test data dir is separate from the demo's, so a running demo worker never takes a
test's tasks. ``RECSITE_DATABASE_NAME`` lets a worker subprocess use pytest's test database.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "RECSITE_DATA_DIR", str(Path(__file__).resolve().parent.parent / ".recsite" / "test")
)
# The production defaults (DEBUG off), with what plain-HTTP test clients need.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-any-real-site-0123456789")
for _name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(_name, "0")
os.environ.setdefault("RECSITE_STOREFRONT", "1")

from recsite.settings import *  # noqa: E402,F403
from recsite.settings import DATABASES, RECSITE_DATA_DIR  # noqa: E402
from recsite.testing import services_running  # noqa: E402

# Whether the embedded test servers ran before this process started them: a pytest run
# that started them stops them when it ends (tests/conftest.py), so `make test` leaves no
# process behind while a second concurrent run keeps its servers.
RECSITE_TEST_SERVICES_WERE_RUNNING = services_running(RECSITE_DATA_DIR)

if os.environ.get("RECSITE_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["RECSITE_DATABASE_NAME"]
    DATABASES["default"]["TEST"] = {"NAME": os.environ["RECSITE_DATABASE_NAME"]}
else:
    # One test database per pytest run, so two runs on one machine do not collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_recsite_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
RECOMMENDER_USE_LEARNED_RANKER = False  # tests opt in explicitly
# Most tests call the API keyless; tests/api/test_access.py and the browser tests require keys
# (the default) with ``settings.RECOMMENDER_REQUIRE_API_KEY = True``.
RECOMMENDER_REQUIRE_API_KEY = False
# Each test sees a fresh health report (test_access.py tests the reuse itself).
RECOMMENDER_HEALTH_CACHE_SECONDS = 0
# Explanations read their proofs every request (tests/serving/test_proof_cache.py
# switches the cache on).
RECOMMENDER_EXPLAIN_CACHE_SECONDS = 0
