"""DATABASE_PREPARED_STATEMENTS: server-side parameters and prepared statements, opt-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

ROOT = Path(__file__).resolve().parent.parent


def _options(**env: str) -> dict:
    """The default database's OPTIONS as recsite.settings builds them under ``env``."""
    code = (
        "import json, recsite.settings as s; "
        "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {})))"
    )
    environ = {**os.environ, "DEBUG": "1", "DATABASE_URL": "postgres://u@h/db"}
    environ.pop("DATABASE_PREPARED_STATEMENTS", None)
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_off_by_default_and_on_when_asked():
    assert "server_side_binding" not in _options()
    on = _options(DATABASE_PREPARED_STATEMENTS="1", DATABASE_PREPARE_THRESHOLD="3")
    assert on == {"server_side_binding": True, "prepare_threshold": 3}


@pytest.mark.django_db
def test_with_the_options_a_repeated_statement_is_prepared_once():
    settings = {**connection.settings_dict}
    settings["OPTIONS"] = {
        **settings.get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": 2,
    }
    prepared = DatabaseWrapper(settings, alias=connection.alias)  # a second connection
    try:
        with prepared.cursor() as cursor:
            for n in range(4):
                cursor.execute("SELECT count(*) FROM recommender_item WHERE id > %s", [n])
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            statements = [row[0] for row in cursor.fetchall()]
    finally:
        prepared.close()
    assert any("recommender_item" in statement for statement in statements), statements


@pytest.mark.django_db
def test_the_nearest_neighbour_searches_are_never_prepared(space, make_items, monkeypatch):
    from recommender.serving import filters, nearest
    from recommender.spaces import embedding, vector_io

    items = make_items(5)
    embedding.embed_items(space, [item.pk for item in items])
    calls = []
    real = vector_io.fetch

    def fetch(sql, params=(), **kwargs):
        calls.append((sql, kwargs.get("prepare")))
        return real(sql, params, **kwargs)

    monkeypatch.setattr(vector_io, "fetch", fetch)
    vector = embedding.encoder_for(space).encode([items[0].title])[0]
    assert nearest.nearest_items(vector, 3, space=space, filters=filters.Filters())
    searches = [prepare for sql, prepare in calls if "ORDER BY distance" in sql]
    assert searches == [False]
