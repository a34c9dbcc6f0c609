"""Encoder spaces: creation, activation, retirement, a switch of index precision, coverage,
and the active space that serving asks for on every request. Each space's HNSW index:
``spaces.indexes``."""

from __future__ import annotations

import re
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.db.models.base import ModelState
from django.utils import timezone

from encoders.registry import get_encoder
from recommender import sharedcache
from recommender.conf import conf
from recommender.models import (
    DEFAULT_TEXT_TEMPLATE,
    LANGUAGE_CODE,
    EncoderSpace,
    IndexPrecision,
    Item,
    ItemVector,
    Scenario,
    SpaceStatus,
)
from recommender.spaces.indexes import (  # noqa: F401 (the package's API)
    Graph,
    check_graph,
    check_precision,
    create_index,
    drop_index,
    drop_named,
    graph_of,
    index_exists,
    index_name,
    index_names,
    index_size,
    index_valid,
    space_lock,
    vector_cast,
    vector_field,
)

TEMPLATE_FIELDS = ("title", "category", "tags", "description")
# Translated texts a template may name: ``{title[en]}``, ``{description[ja]}``.
_TRANSLATED = re.compile(r"(title|description)\[([^\]]*)\]")


class NoActiveSpace(ImproperlyConfigured):
    """No encoder space is active yet; run ``manage.py encoder_space ensure-default``."""


def check_template(template: str) -> str:
    """Reject templates naming fields the text hash does not cover: only
    ``{title}``, ``{category}``, ``{tags}``, ``{description}`` and translated texts,
    ``{title[en]}`` / ``{description[en]}`` (any language code in brackets)."""
    problem = None
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is None:
                continue
            if name in TEMPLATE_FIELDS:
                pass
            elif match := _TRANSLATED.fullmatch(name):
                if not re.fullmatch(LANGUAGE_CODE, match[2]):
                    problem = f"{match[2]!r} in {{{name}}} is not a language code"
                    break
            else:
                problem = f"unknown field {{{name}}}"
                break
            if spec and "{" in spec:
                problem = "nested fields in a format spec"
                break
        else:
            template.format(
                **{name: TranslatedText("", lambda lang: "") for name in TEMPLATE_FIELDS}
            )
    except (KeyError, IndexError, ValueError) as exc:
        problem = str(exc) or type(exc).__name__
    if problem:
        raise ValidationError(
            f"text template {template!r} is not valid ({problem}): use only "
            + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
            + ", and translations like {title[en]}, {description[en]}"
        )
    return template


class TranslatedText(str):
    """A text field for ``str.format``: itself for ``{title}``, its translation for
    ``{title[en]}`` (``translate(lang)``, called only when the template asks)."""

    def __new__(cls, text: str, translate):
        instance = super().__new__(cls, text)
        instance._translate = translate
        return instance

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._translate(key)
        return str.__getitem__(self, key)


@transaction.atomic
def create_space(
    name: str,
    plugin: str,
    options: dict[str, Any] | None = None,
    *,
    text_template: str = DEFAULT_TEXT_TEMPLATE,
    activate: bool = False,
    index_precision: str = IndexPrecision.VECTOR,
    graph: Graph | None = None,
) -> EncoderSpace:
    """Create a space (status ``building``); with ``activate``, also its HNSW index, in
    ``index_precision`` (``vector``, or ``halfvec`` for an index of half the size) with
    ``graph``'s ``m`` and ``ef_construction`` (default: pgvector's 16 and 64).

    A space that does not serve yet gets its index when its build completes
    (``mark_ready_if_complete``): one bulk build is several times cheaper than inserting
    every vector into the graph as it arrives. The encoder is built once here to learn
    its dimension and to fail early on a bad plugin name or option, before any worker
    tries.
    """
    if EncoderSpace.objects.filter(name=name).exists():
        raise ValidationError(f"an encoder space named {name!r} already exists")
    options = dict(options or {})
    graph = check_graph(graph.m, graph.ef_construction) if graph is not None else Graph()
    check_precision(index_precision)
    encoder = get_encoder(plugin, options)
    space = EncoderSpace.objects.create(
        name=name,
        plugin=plugin,
        options=options,
        dim=encoder.dim,
        text_template=check_template(text_template),
        index_precision=index_precision,
        index_m=graph.m,
        index_ef_construction=graph.ef_construction,
    )
    if activate:
        activate_space(space)
    return space


@transaction.atomic
def activate_space(space: EncoderSpace) -> EncoderSpace:
    """Make ``space`` the one that serves, in one transaction."""
    if space.status == SpaceStatus.RETIRED:
        raise ValidationError(f"space {space.name!r} is retired; create a new one")
    create_index(space)  # a space activated before its build completed has none yet
    EncoderSpace.objects.select_for_update().filter(is_active=True).exclude(pk=space.pk).update(
        is_active=False
    )
    space.is_active = True
    space.activated_at = timezone.now()
    space.save(update_fields=["is_active", "activated_at"])
    return space


@transaction.atomic
def retire_space(space: EncoderSpace) -> EncoderSpace:
    """Stop maintaining a space: drop its index and vectors. The active space cannot retire."""
    if space.is_active:
        raise ValidationError(f"space {space.name!r} is active; activate another space first")
    space.status = SpaceStatus.RETIRED
    space.save(update_fields=["status"])
    drop_index(space)
    ItemVector.objects.filter(space=space).delete()
    return space


@dataclass(frozen=True)
class Reindexed:
    """What ``reindex_space`` did: the index that serves now, the one it replaced (None
    when nothing changed or the space had no index yet), and the build."""

    space: EncoderSpace
    index: str | None  # None: a space still building gets its index when the build ends
    replaced: str | None
    seconds: float
    size_bytes: int


def needs_index(space: EncoderSpace) -> bool:
    """Whether the space has (or must have) an HNSW index now: it serves, is ready, or has
    one; a space still building gets its index when its build completes."""
    if space.status == SpaceStatus.RETIRED:
        return False
    return space.is_active or space.status == SpaceStatus.READY or bool(index_names(space))


def reindex_space(
    space: EncoderSpace, precision: str | None = None, graph: Graph | None = None
) -> Reindexed:
    """Rebuild the space's HNSW index in ``precision`` (``vector`` or ``halfvec``) with
    ``graph``'s ``m`` and ``ef_construction`` (each default: what the space has now),
    never leaving it without one: the new index is built (concurrently, outside a
    transaction) beside the old one, which serves meanwhile; only once it is valid do the
    space's fields change, and the old index is dropped after every process has seen a
    change of precision (``CHECK_S``; a new graph alone is searched by the same queries,
    so either index serves them).

    Under the space's advisory lock (``space_lock``), so a worker finishing the space's
    build cannot build an index meanwhile. Run again with the same arguments, it completes
    a switch that was interrupted (an invalid half-built index, or two indexes left).
    """
    space = EncoderSpace.objects.get(pk=space.pk)
    precision = check_precision(space.index_precision if precision is None else precision)
    graph = graph_of(space) if graph is None else check_graph(graph.m, graph.ef_construction)
    if space.status == SpaceStatus.RETIRED:
        raise ValidationError(f"space {space.name!r} is retired; it has no index")
    with space_lock(space) as acquired:
        if not acquired:
            raise ValidationError(
                f"space {space.name!r} is being indexed by another process; try again later"
            )
        old_precision = space.index_precision
        old_name = index_name(space)
        new_name = index_name(space, precision, graph)
        serves = index_exists(space)
        started = time.perf_counter()
        if needs_index(space):
            if index_exists(space, precision, graph) and not index_valid(space, precision, graph):
                drop_index(space, precision, graph)  # left by an interrupted concurrent build
            create_index(space, precision, graph)
            if not index_valid(space, precision, graph):  # never switch to an unused index
                raise ValidationError(f"the new index of {space.name!r} ({new_name}) is not valid")
        seconds = time.perf_counter() - started
        if (old_precision, graph_of(space)) != (precision, graph):
            EncoderSpace.objects.filter(pk=space.pk).update(
                index_precision=precision,
                index_m=graph.m,
                index_ef_construction=graph.ef_construction,
            )
            space.index_precision = precision
            space.index_m, space.index_ef_construction = graph.m, graph.ef_construction
            spaces_changed()
            if (
                serves
                and old_precision != precision
                and not transaction.get_connection().in_atomic_block
            ):
                # Other processes keep their copy of the space (and its cast) for up to
                # CHECK_S: the old index serves them until then.
                time.sleep(CHECK_S + 0.1)
        for other in index_names(space):
            if other != new_name:
                drop_named(other)
    built = index_exists(space)
    return Reindexed(
        space=space,
        index=new_name if built else None,
        replaced=old_name if serves and old_name != new_name else None,
        seconds=seconds,
        size_bytes=index_size(space) if built else 0,
    )


def active_space() -> EncoderSpace:
    space = EncoderSpace.objects.filter(is_active=True).first()
    if space is None:
        raise NoActiveSpace("no active encoder space; run `manage.py encoder_space ensure-default`")
    return space


def current_space() -> EncoderSpace | None:
    """The active space, or None on a site that has none yet."""
    return EncoderSpace.objects.filter(is_active=True).first()


# The serving path asks for the active space on every request and every event. It changes
# only when a space is saved or deleted, so each process keeps it, checked at most every
# CHECK_S seconds against a version token in the shared cache that every save bumps. A
# switch made in this process is seen at once, one made elsewhere within CHECK_S.
# Bumped whenever items or their vectors change (``catalogue_changed``): what a process
# keeps of a small catalogue (``serving.memory_search``) is read again after it.
CATALOGUE_VERSION_KEY = "recommender:catalogue-version"


_catalogue_changes = 0  # made by this process (its own changes show at once)


def catalogue_changes() -> int:
    """How many times this process changed items or their vectors."""
    return _catalogue_changes


def catalogue_changed(**_kwargs) -> None:
    """Items or their vectors changed: what a process keeps of them is read again (now,
    and once more after the transaction commits, as another process may read the old rows
    in between). A signal receiver too."""
    global _catalogue_changes
    _catalogue_changes += 1
    sharedcache.new_version(CATALOGUE_VERSION_KEY)


_VERSION_KEY = "recsite:spaces-version"
CHECK_S = 1.0
_served: tuple[str, EncoderSpace | None] | None = None
_checked_at = 0.0


def _spaces_version() -> str:
    # With the cache down every check sees a new version: the space is read from the
    # database once per CHECK_S, which is slower but right.
    version = sharedcache.get(_VERSION_KEY)
    if version is None:
        version = uuid.uuid4().hex
        sharedcache.add(_VERSION_KEY, version, None)
        version = sharedcache.get(_VERSION_KEY) or version
    return version


def spaces_changed() -> None:
    """Forget the active space everywhere (called on every space save and delete)."""
    global _served, _profiled
    _served = None
    _profiled = None
    sharedcache.set(_VERSION_KEY, uuid.uuid4().hex, None)


def serving_space() -> EncoderSpace | None:
    """``current_space()`` for the hot path, cached per process (see ``CHECK_S``).
    Returns a copy, so callers cannot change the cached instance."""
    global _served, _checked_at
    now = time.monotonic()
    if _served is None or now - _checked_at >= CHECK_S:
        version = _spaces_version()
        if _served is None or _served[0] != version:
            _served = (version, current_space())
        _checked_at = now
    space = _served[1]
    return _copy(space) if space is not None else None


def _copy(space: EncoderSpace) -> EncoderSpace:
    """A copy of a kept space, its field values shared (plain values) and its state its own.
    ``copy.copy`` of a model goes through pickling's ``__reduce__`` and finds the model
    class again by name: 0.1-0.2 ms a copy, and a kept list's answer makes two (py-spy on
    a gunicorn worker)."""
    clone = EncoderSpace.__new__(EncoderSpace)
    clone.__dict__.update(space.__dict__)
    clone._state = ModelState()
    clone._state.db = space._state.db
    clone._state.adding = space._state.adding
    return clone


_profiled: tuple[str, dict[int, EncoderSpace]] | None = None


def scenario_spaces() -> dict[int, EncoderSpace]:
    """The ready spaces scenarios serve from (id → space), besides the active one; cached
    per process like ``serving_space`` (a scenario save bumps the same version token)."""
    global _profiled
    serving_space()  # refreshes the version check
    version = _served[0] if _served is not None else ""
    if _profiled is None or _profiled[0] != version:
        found = EncoderSpace.objects.filter(
            status=SpaceStatus.READY, is_active=False, pk__in=Scenario.objects.values("space_id")
        )
        _profiled = (version, {space.pk: space for space in found})
    return {pk: _copy(space) for pk, space in _profiled[1].items()}


def profile_spaces() -> list[EncoderSpace]:
    """Where user profiles are kept current: the active space and every ready space a
    scenario serves from (events fold into each)."""
    serving = serving_space()
    return ([serving] if serving is not None else []) + list(scenario_spaces().values())


def space_for(space_id: int | None) -> EncoderSpace | None:
    """The space a scenario names when it can serve (ready, profiles kept), else the
    active one: a scenario never serves from a half-built or retired space."""
    if space_id is not None:
        space = scenario_spaces().get(space_id)
        if space is not None:
            return space
    return serving_space()


def ensure_default_space() -> EncoderSpace:
    """The active space, creating ``default`` from ``RECOMMENDER_ENCODERS`` on a new site."""
    existing = EncoderSpace.objects.filter(is_active=True).first()
    if existing is not None:
        return existing
    config = conf.ENCODERS.get("default")
    if not config:
        raise ImproperlyConfigured("RECOMMENDER_ENCODERS has no 'default' encoder")
    space = EncoderSpace.objects.filter(name="default").first()
    if space is None:
        space = create_space("default", config["PLUGIN"], config.get("OPTIONS", {}))
    return activate_space(space)


def maintained_spaces():
    """Spaces whose vectors are kept fresh: the active one and those being built."""
    return EncoderSpace.objects.exclude(status=SpaceStatus.RETIRED)


# --- Coverage and staleness (by query, from the text hashes) ------------------------------


def missing_items(space: EncoderSpace):
    """Active items with no vector in ``space``."""
    return Item.objects.filter(is_active=True).exclude(vectors__space=space)


def stale_vectors(space: EncoderSpace):
    return ItemVector.objects.filter(space=space).exclude(text_hash=F("item__text_hash"))


@dataclass(frozen=True)
class Coverage:
    space: str
    active_items: int
    vectors: int
    stale: int
    missing: int

    @property
    def ratio(self) -> float:
        if self.active_items == 0:
            return 1.0
        return (self.active_items - self.missing) / self.active_items


def coverage(space: EncoderSpace) -> Coverage:
    return Coverage(
        space=space.name,
        active_items=Item.objects.filter(is_active=True).count(),
        vectors=ItemVector.objects.filter(space=space, item__is_active=True).count(),
        stale=stale_vectors(space).filter(item__is_active=True).count(),
        missing=missing_items(space).count(),
    )


def items_needing_vectors(space: EncoderSpace):
    """Ids of active items whose vector is missing or stale in ``space``: those without a
    vector of their current text. One anti-join (``NOT EXISTS``): ``IN`` / ``NOT IN``
    sub-selects over a million ids rescanned the whole id list for every item (a 5-minute
    stall in ``benchmarks/serving.py``'s one-million-item build)."""
    fresh = ItemVector.objects.filter(
        space=space, item_id=OuterRef("pk"), text_hash=OuterRef("text_hash")
    )
    return (
        Item.objects.filter(is_active=True)
        .filter(~Exists(fresh))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def mark_ready_if_complete(space: EncoderSpace) -> bool:
    """A building space becomes ready once every active item has a fresh vector; its HNSW
    index is built then, in one go, before the status says ready."""
    if space.status != SpaceStatus.BUILDING:
        return space.status == SpaceStatus.READY
    if items_needing_vectors(space).exists():
        return False
    with space_lock(space) as acquired:
        if not acquired:  # another worker is finishing this space right now
            return False
        # Read under the lock: a precision switch (``reindex_space``) may have changed it.
        space.index_precision = (
            EncoderSpace.objects.filter(pk=space.pk).values_list("index_precision", flat=True).get()
        )
        create_index(space)
        EncoderSpace.objects.filter(pk=space.pk, status=SpaceStatus.BUILDING).update(
            status=SpaceStatus.READY
        )
    space.status = SpaceStatus.READY
    spaces_changed()
    return True
