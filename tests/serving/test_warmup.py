"""A server process loads the encoders, jieba and the trained models before it answers."""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest
from django.db import connection

from encoders import registry
from recommender.serving import warmup
from recsite import testing


@pytest.mark.django_db
def test_warm_up_builds_the_encoder_of_the_space_serving_reads(hashing_space):
    registry.clear_cache()
    took = warmup.warm_up()
    assert set(took) == {"encoders", "segmentation", "models"}
    assert all(isinstance(seconds, float) for seconds in took.values()), took
    assert registry._instances, "the hashing space's encoder was not built"


def test_a_failing_step_is_logged_and_the_rest_still_run(monkeypatch, caplog):
    ran = []

    def broken() -> None:
        raise RuntimeError("model file missing")

    monkeypatch.setattr(warmup, "STEPS", {"broken": broken, "after": lambda: ran.append("after")})
    with caplog.at_level(logging.WARNING, logger="recommender.serving.warmup"):
        took = warmup.warm_up()
    assert took["broken"] is None and isinstance(took["after"], float) and ran == ["after"]
    assert "warm-up step 'broken' failed" in caplog.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("enabled", ["1", "0"])
def test_every_gunicorn_worker_warms_up_before_it_answers_unless_switched_off(tmp_path, enabled):
    port = _free_port()
    env = testing.environ(
        DJANGO_SETTINGS_MODULE="tests.settings",
        RECSITE_DATABASE_NAME=connection.settings_dict["NAME"],
        RECOMMENDER_WARM_UP=enabled,
        LOG_LEVEL="INFO",
    )
    log = tmp_path / "gunicorn.log"
    process = testing.start_gunicorn(env, log, port=port, workers=2)
    with testing.running(process):
        url = f"http://127.0.0.1:{port}/api/v1/health"
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - local
            assert response.status == 200
    warmed = log.read_text().count("warmed up: encoders")
    assert warmed == (2 if enabled == "1" else 0), log.read_text()[-2000:]
