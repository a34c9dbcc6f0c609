"""Finding, building and caching encoder plugins.

Plugins are classes registered under the entry-point group ``recommender.encoders``; a
third-party package adds one by declaring it in its own ``pyproject.toml``. A dotted path
``"package.module:Class"`` works too, for a plugin that is not packaged.

Configured encoders are named in settings, like Django's ``CACHES``::

    RECOMMENDER_ENCODERS = {
        "default": {"PLUGIN": "use-multilingual", "OPTIONS": {}},
        "minilm": {"PLUGIN": "sentence-transformers", "OPTIONS": {"device": "cuda"}},
    }

and ``encoders["default"]`` builds that encoder on first use and keeps it for the life of
the process, so a worker loads a model once, not per task.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Hashable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from encoders import textprep
from encoders.base import Encoder

ENTRY_POINT_GROUP = "recommender.encoders"
DEFAULT_ENCODERS: dict[str, dict[str, Any]] = {
    "default": {"PLUGIN": "use-multilingual", "OPTIONS": {}},
}

# Keyed both by (name as asked, options as given), the fast path of every call, and by
# (class, options with defaults filled in), which makes equivalent configurations share.
_instances: dict[tuple[Any, Hashable], Encoder] = {}
# One lock for all builds: two threads asking for the same model must not load it twice,
# and builds are rare enough (once per process and configuration) not to contend.
_build_lock = threading.RLock()
_text_setup_done = False


def available_plugins() -> dict[str, EntryPoint]:
    """Installed plugins by name, from the ``recommender.encoders`` entry points."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def plugin_class(name: str) -> type[Encoder]:
    """The encoder class registered as ``name``, or at the dotted path ``"module:Class"``."""
    if ":" in name:
        entry_point = EntryPoint(name=name, value=name, group=ENTRY_POINT_GROUP)
    else:
        plugins = available_plugins()
        if name not in plugins:
            raise ImproperlyConfigured(
                f"No encoder plugin named {name!r}. Available: {', '.join(sorted(plugins))}. "
                f"A plugin is an entry point in the {ENTRY_POINT_GROUP!r} group of an installed "
                "package (for this project's own plugins run `pip install -e .`), or a "
                "'package.module:Class' path."
            )
        entry_point = plugins[name]
    try:
        cls = entry_point.load()
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(
            f"Encoder plugin {name!r} ({entry_point.value}) could not be imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Encoder)):
        raise ImproperlyConfigured(
            f"Encoder plugin {name!r} ({entry_point.value}) is not a subclass of "
            "encoders.base.Encoder."
        )
    return cls


def create_encoder(plugin: str, options: Mapping[str, Any] | None = None) -> Encoder:
    """Build a new encoder instance (uncached): ``plugin`` by name or dotted path."""
    return plugin_class(plugin)(**dict(options or {}))


def get_encoder(plugin: str, options: Mapping[str, Any] | None = None) -> Encoder:
    """The process-wide encoder for ``plugin`` and ``options``, built on first request.

    Use it for encoder spaces stored in the database (``describe()`` output). Equivalent
    configurations share one instance, whichever alias or space asked for it: options
    equal to the plugin's defaults, spelled out or left out, build the model once.
    """
    options = dict(options or {})
    key = (plugin, _freeze(options))
    encoder = _instances.get(key)
    if encoder is None:
        with _build_lock:
            encoder = _instances.get(key)
            if encoder is None:
                cls = plugin_class(plugin)
                canonical = (cls, _freeze({**_option_defaults(cls), **options}))
                encoder = _instances.get(canonical)
                if encoder is None:
                    configure_text_processing()
                    encoder = cls(**options)
                _instances[key] = _instances[canonical] = encoder
    return encoder


def clear_cache() -> None:
    """Forget built encoders (tests, or a worker told to reload its models)."""
    with _build_lock:
        _instances.clear()


class EncoderHandler:
    """Encoders by alias, from ``settings.RECOMMENDER_ENCODERS`` or an explicit dict.

    ``handler["default"]`` is built lazily and reused, thread-safely; it is the same
    instance that ``get_encoder`` returns for the same plugin and options.
    """

    def __init__(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._config = config

    @property
    def config(self) -> Mapping[str, Mapping[str, Any]]:
        """The alias table: the one given to the constructor, else the Django setting."""
        if self._config is None:
            return _setting("RECOMMENDER_ENCODERS", DEFAULT_ENCODERS)
        return self._config

    def __getitem__(self, alias: str) -> Encoder:
        # No cache of its own: get_encoder's is the single one, so clear_cache() and
        # changed settings (override_settings in tests) take effect here too.
        plugin, options = self._entry(alias)
        return get_encoder(plugin, options)

    def __contains__(self, alias: object) -> bool:
        return alias in self.config

    def __iter__(self) -> Iterator[str]:
        return iter(self.config)

    def all(self) -> list[Encoder]:
        """Every configured encoder, building those not built yet."""
        return [self[alias] for alias in self.config]

    def _entry(self, alias: str) -> tuple[str, Mapping[str, Any]]:
        config = self.config
        if alias not in config:
            raise ImproperlyConfigured(
                f"No encoder alias {alias!r} in RECOMMENDER_ENCODERS; configured: "
                f"{', '.join(sorted(config)) or 'none'}."
            )
        entry = config[alias]
        if "PLUGIN" not in entry:
            raise ImproperlyConfigured(
                f"RECOMMENDER_ENCODERS[{alias!r}] needs a 'PLUGIN' (a plugin name such as "
                f"'hashing', or 'package.module:Class')."
            )
        return entry["PLUGIN"], entry.get("OPTIONS", {})


encoders = EncoderHandler()


def configure_text_processing() -> None:
    """Apply ``RECOMMENDER_JIEBA_USER_DICT`` once per process.

    Called before the first encoder is built; code that segments text without an encoder
    (keyword extraction for explanations) can call it at start-up, e.g. in
    ``AppConfig.ready()``.
    """
    global _text_setup_done
    if _text_setup_done:
        return
    path = _setting("RECOMMENDER_JIEBA_USER_DICT", None)
    if path:
        try:
            textprep.load_user_dict(path)
        except FileNotFoundError as exc:
            raise ImproperlyConfigured(
                f"RECOMMENDER_JIEBA_USER_DICT={path!r} does not exist; fix the path or unset it."
            ) from exc
    _text_setup_done = True


def _setting(name: str, default: Any) -> Any:
    """A Django setting, or ``default`` when Django settings are not configured at all.

    The one place this package reads ``django.conf.settings``: encoders also run in plain
    scripts and tests that have no settings module.
    """
    from django.conf import settings

    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default


def _option_defaults(cls: type[Encoder]) -> dict[str, Any]:
    """Default option values of a plugin, from the signatures of its ``__init__`` chain."""
    defaults: dict[str, Any] = {}
    # Base classes first, so a plugin's own default overrides an inherited one.
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.default is not param.empty:
                defaults[param.name] = param.default
    return defaults


def _freeze(value: Any) -> Hashable:
    """A hashable, order-independent form of an options value (dicts, lists, scalars)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        frozen = tuple(_freeze(v) for v in value)
        return tuple(sorted(frozen, key=repr)) if isinstance(value, set | frozenset) else frozen
    return value
