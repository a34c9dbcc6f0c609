"""recommender.conf: one home for the settings, its docs table, and environment parsing."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from recommender import conf as conf_module
from recommender.conf import conf

ROOT = Path(__file__).resolve().parent.parent


def test_a_project_value_wins_over_the_default(settings):
    assert conf.CANDIDATES_PER_SOURCE == 50
    settings.RECOMMENDER_CANDIDATES_PER_SOURCE = 7
    assert conf.CANDIDATES_PER_SOURCE == 7


def test_an_unknown_setting_is_an_error():
    with pytest.raises(AttributeError, match="recommender/conf.py"):
        conf.CANDIDATES_PER_SOURSE  # noqa: B018 - the typo is the point


def test_settings_are_parsed_from_the_environment_by_type():
    parsed = conf_module.from_environment(
        {
            "RECOMMENDER_SEEN_WINDOW": "250",
            "RECOMMENDER_EMBED_ON_SAVE": "off",
            "RECOMMENDER_RATING_RANGE": "1,5",
            "RECOMMENDER_PUBLIC_ATTRIBUTES": "price, brand",
            "RECOMMENDER_BEHAVIOUR_WEIGHTS": "ignored: settings only",
            "UNRELATED": "x",
        }
    )
    assert parsed == {
        "RECOMMENDER_SEEN_WINDOW": 250,
        "RECOMMENDER_EMBED_ON_SAVE": False,
        "RECOMMENDER_RATING_RANGE": (1.0, 5.0),
        "RECOMMENDER_PUBLIC_ATTRIBUTES": ["price", "brand"],
    }


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="RECOMMENDER_SEEN_WINDOW"):
        conf_module.from_environment({"RECOMMENDER_SEEN_WINDOW": "many"})
    with pytest.raises(ValueError, match="RECOMMENDER_RATING_RANGE"):
        conf_module.from_environment({"RECOMMENDER_RATING_RANGE": "5,1"})


def test_the_settings_module_refuses_a_bad_value_with_one_line(monkeypatch):
    import importlib

    import recsite.settings

    monkeypatch.setenv("RECOMMENDER_HNSW_EF_SEARCH", "wide")
    monkeypatch.setenv("DEBUG", "1")
    with pytest.raises(ImproperlyConfigured, match="RECOMMENDER_HNSW_EF_SEARCH"):
        importlib.reload(recsite.settings)


def test_the_docs_list_every_setting_as_conf_defines_it():
    doc = (ROOT / "docs" / "getting-started.md").read_text()
    start = doc.index(conf_module.DOC_START) + len(conf_module.DOC_START)
    table = doc[start : doc.index(conf_module.DOC_END)].strip()
    assert table == conf_module.markdown_table(), (
        "docs/getting-started.md's settings table is out of date: run "
        "`.venv/bin/python -m recommender.conf --write`"
    )


def test_code_reads_settings_through_conf():
    offenders = []
    for path in (ROOT / "recommender").rglob("*.py"):
        text = path.read_text()
        for pattern in ('getattr(settings, "RECOMMENDER_', "settings.RECOMMENDER_"):
            if pattern in text and path.name != "conf.py":
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert not offenders, offenders


def test_a_setting_read_once_follows_every_change(settings):
    settings.RECOMMENDER_PUBLIC_ATTRIBUTES = ["brand"]
    assert conf.PUBLIC_ATTRIBUTES == ["brand"]
    assert conf.PUBLIC_ATTRIBUTES == ["brand"]  # now remembered
    with override_settings(RECOMMENDER_PUBLIC_ATTRIBUTES="*"):
        assert conf.PUBLIC_ATTRIBUTES == "*"
    assert conf.PUBLIC_ATTRIBUTES == ["brand"]
    del settings.RECOMMENDER_PUBLIC_ATTRIBUTES  # back to the default
    assert conf.PUBLIC_ATTRIBUTES == conf_module.default("PUBLIC_ATTRIBUTES")
    with pytest.raises(AttributeError, match="no recommender setting 'NOT_A_SETTING'"):
        conf.NOT_A_SETTING  # noqa: B018 - the read is the test
