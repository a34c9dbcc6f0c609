"""Test settings: the project's settings with their own embedded servers.

The test data dir is separate from the demo's, so a running demo worker never takes a
test's tasks. ``RECSITE_DATABASE_NAME`` lets a worker subprocess use pytest's test database.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "RECSITE_DATA_DIR", str(Path(__file__).resolve().parent.parent / ".recsite" / "test")
)

from recsite.settings import *  # noqa: E402,F403
from recsite.settings import DATABASES  # noqa: E402

if os.environ.get("RECSITE_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["RECSITE_DATABASE_NAME"]
    DATABASES["default"]["TEST"] = {"NAME": os.environ["RECSITE_DATABASE_NAME"]}
else:
    # One test database per pytest run, so two runs on one machine do not collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_recsite_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
RECOMMENDER_USE_LEARNED_RANKER = False  # tests opt in explicitly
