"""Finding plugins through entry points and building them from settings-style config."""

import threading

import pytest
from django.core.exceptions import ImproperlyConfigured

from encoders.base import Encoder
from encoders.hashing import HashingEncoder
from encoders.registry import (
    EncoderHandler,
    available_plugins,
    create_encoder,
    get_encoder,
    plugin_class,
)

EXAMPLE_INSTALL = "pip install -e examples/encoder_plugin"


def test_builtin_plugins_are_registered_entry_points():
    assert {"hashing", "bert", "sentence-transformers", "use-multilingual"} <= set(
        available_plugins()
    )
    assert plugin_class("hashing") is HashingEncoder


def test_third_party_plugin_is_found_by_name():
    assert "example-charcount" in available_plugins(), f"run `{EXAMPLE_INSTALL}`"
    encoder = create_encoder("example-charcount", {"dim": 16})
    assert isinstance(encoder, Encoder)
    assert encoder.encode(["abc", "羽绒服"]).shape == (2, 16)


def test_dotted_path_is_an_escape_hatch():
    assert plugin_class("encoders.hashing:HashingEncoder") is HashingEncoder


def test_unknown_plugin_lists_available_names():
    with pytest.raises(ImproperlyConfigured, match="no-such-plugin.*hashing.*use-multilingual"):
        plugin_class("no-such-plugin")


def test_a_class_that_is_not_an_encoder_is_refused():
    with pytest.raises(ImproperlyConfigured, match="not a subclass"):
        plugin_class("collections:OrderedDict")


def test_create_encoder_passes_options():
    assert create_encoder("hashing", {"dim": 48}).dim == 48


def test_handler_builds_one_instance_per_alias():
    handler = EncoderHandler(
        {
            "small": {"PLUGIN": "hashing", "OPTIONS": {"dim": 24}},
            "large": {"PLUGIN": "hashing", "OPTIONS": {"dim": 40}},
        }
    )
    assert handler["small"] is handler["small"]
    assert handler["small"] is not handler["large"]
    assert handler["large"].dim == 40


def test_handler_is_thread_safe():
    handler = EncoderHandler({"default": {"PLUGIN": "hashing", "OPTIONS": {"dim": 28}}})
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(handler["default"])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(encoder) for encoder in seen}) == 1


def test_equal_configurations_share_an_instance():
    handler = EncoderHandler({"default": {"PLUGIN": "hashing", "OPTIONS": {"dim": 36}}})
    stored = get_encoder("hashing", {"dim": 36})
    assert handler["default"] is stored
    assert get_encoder("hashing", {"dim": 36, "max_chars": 2000}) is stored
    assert get_encoder("encoders.hashing:HashingEncoder", {"dim": 36}) is stored
    assert get_encoder("hashing", {"dim": 36, "max_chars": 100}) is not stored


def test_encoder_can_be_rebuilt_from_its_description():
    original = get_encoder("hashing", {"dim": 20, "max_chars": 500})
    described = original.describe()
    rebuilt = get_encoder(described["plugin"], described["options"])
    assert rebuilt.dim == described["dim"] == 20
    assert rebuilt.encode(["羽绒服"]).tobytes() == original.encode(["羽绒服"]).tobytes()


def test_unknown_alias_is_improperly_configured():
    handler = EncoderHandler({"default": {"PLUGIN": "hashing"}})
    with pytest.raises(ImproperlyConfigured, match="'minilm'.*default"):
        handler["minilm"]


def test_alias_without_plugin_is_improperly_configured():
    with pytest.raises(ImproperlyConfigured, match="PLUGIN"):
        EncoderHandler({"default": {"OPTIONS": {}}})["default"]


def test_default_handler_reads_recommender_encoders_setting():
    from django.conf import settings
    from django.test import override_settings

    from encoders import encoders

    if not settings.configured:  # running without the project's settings (-p no:django)
        settings.configure()
    config = {"default": {"PLUGIN": "hashing", "OPTIONS": {"dim": 44}}}
    with override_settings(RECOMMENDER_ENCODERS=config):
        assert encoders["default"].dim == 44
        assert encoders["default"] is encoders["default"]
