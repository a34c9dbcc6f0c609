"""Fixtures shared by the suite: a real Celery worker on the embedded Redis, hashing-encoder
spaces, items."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_django.fixtures

from recsite import testing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process using pytest's test database and the test broker.

    Tests that use it must be ``transaction=True`` so the worker sees their rows.
    """
    from django.db import connection

    from recsite.celery import app

    app.control.purge()
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
    )
    log = ROOT / ".recsite" / "test" / "worker.log"
    log.unlink(missing_ok=True)
    process = testing.start_worker(env, log, name=f"pytest-{os.getpid()}")
    yield process.popen
    process.stop()


def pytest_collection_modifyitems(config, items):
    """Tests that use the real worker are marked ``worker`` (the fast loop skips them)."""
    for item in items:
        if "celery_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.worker)


def pytest_sessionfinish(session, exitstatus):
    """Leave no process running: stop the embedded test servers if this run started them
    (tests/settings.py noted whether they were running before)."""
    from django.conf import settings

    if not settings.configured or getattr(settings, "RECSITE_TEST_SERVICES_WERE_RUNNING", True):
        return
    if not (settings.RECSITE_EMBEDDED_POSTGRES and settings.RECSITE_EMBEDDED_REDIS):
        return
    from django.db import connections

    from recommender.serving import helper_connection

    helper_connection.shutdown()
    connections.close_all()
    testing.stop_services(settings.RECSITE_DATA_DIR)


@pytest.fixture
def admin_client_zh(client, admin_user):
    client.force_login(admin_user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    return client


# --- Spaces and items ----------------------------------------------------------------------


@pytest.fixture
def make_space(db):
    """``make_space(name, dim=64, activate=True, text_template=…)``: a space of the hashing
    encoder (no model weights), active unless ``activate=False``."""
    from recommender import spaces

    def make(name: str = "hashing", *, dim: int = 64, activate: bool = True, **kwargs):
        return spaces.create_space(name, "hashing", {"dim": dim}, activate=activate, **kwargs)

    return make


@pytest.fixture
def hashing_space(make_space):
    """An active hashing space named "hashing", dim 64: for tests that need one and do not
    care which (tests/spaces/test_spaces.py's index test relies on the 64)."""
    return make_space()


@pytest.fixture
def space(make_space, settings):
    """The serving tests' space: active, hashing, dim 48, named "fast"; saving an item does
    not embed it (a test embeds what it needs)."""
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return make_space("fast", dim=48)


@pytest.fixture
def make_items(db):
    """``make_items(n, **fields)``: ``n`` new items sku-0 … sku-(n-1) with Chinese titles,
    each given ``fields``."""
    from recommender.models import Item

    def make(n: int, **fields) -> list[Item]:
        return [
            Item.objects.create(
                external_id=f"sku-{i}", title=f"商品 {i} 羽绒服 款{i % 7}", **fields
            )
            for i in range(n)
        ]

    return make


def _delete_and_announce(self, attr: str) -> None:
    """pytest-django's ``del settings.X``, then ``setting_changed`` as ``override_settings``
    sends it (pytest-django sends none for a deletion): what remembers settings
    (``recommender.conf``, Django's own receivers) reads them again."""
    from django.conf import settings as django_settings
    from django.core.signals import setting_changed

    _pytest_django_delattr(self, attr)
    setting_changed.send(
        sender=type(django_settings._wrapped), setting=attr, value=None, enter=True
    )


_pytest_django_delattr = pytest_django.fixtures.Settings.__delattr__
pytest_django.fixtures.Settings.__delattr__ = _delete_and_announce


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty shared cache (per-minute aggregates, throttles)."""
    from django.core.cache import cache

    from recommender import attributes, spaces
    from recommender.conf import conf

    conf.forget()  # a test's deleted setting, restored without a signal
    cache.clear()
    spaces.spaces_changed()
    attributes._cached = None
    from recommender.serving import memory_search, scenarios, segmentation

    scenarios.changed()  # a rolled-back test's scenarios sent no signal
    memory_search._snapshots.clear()  # nor its items
    memory_search._cooccurrences = None  # nor its co-occurrence rows
    segmentation._shared_retry_at = 0.0  # a test with the cache down leaves a back-off


@pytest.fixture(scope="session", autouse=True)
def _close_helper_connection(django_db_setup, django_db_blocker):
    """Serving's helper thread keeps a connection to the test database; close it before
    the database is dropped."""
    yield
    from recommender.serving import helper_connection

    with django_db_blocker.unblock():
        helper_connection.shutdown()
