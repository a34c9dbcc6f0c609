"""The catalogue (items), the people using the site (end users) and what they do (behaviours)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import MD5, Cast, Coalesce, Concat, NullIf, Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField


class EndUser(models.Model):
    """A shopper/reader/viewer of the client site, identified by the site's own id."""

    external_id = models.CharField(_("external id"), max_length=200, unique=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("end user")
        verbose_name_plural = _("end users")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.external_id


class KeywordBigrams(models.Func):
    """``recommender_bigrams(text)``: the distinct two-character substrings of a text
    (an IMMUTABLE SQL function created by migration 0010).

    A keyword of two or more characters can only occur in a text holding all of its
    bigrams, so ``bigrams(text) @> bigrams(word)`` on a GIN index finds the few
    candidate rows for ``text LIKE '%word%'`` without scanning the table: what pg_trgm
    does, for any language (Chinese has no spaces) and on a stock PostgreSQL.
    """

    function = "recommender_bigrams"
    output_field = ArrayField(models.TextField())


# The text the keyword source matches: title and tags, upper-cased (case-insensitive).
KEYWORD_TEXT = Upper(
    Concat(
        "title",
        models.Value(" "),
        Cast("tags", models.TextField()),
        output_field=models.TextField(),
    ),
    output_field=models.TextField(),
)


# A language code as ``Item.translations`` keys it: ``en``, ``ja``, ``zh-Hant``, ``en-GB``.
LANGUAGE_CODE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"

# ``Item.translations`` as the text hash reads it: "" while empty (so an item without
# translations keeps the hash it had before the field existed), else a separator and the
# jsonb text (canonical: jsonb orders keys and spacing itself). Not ``Concat``, which
# would turn the NULL of an empty object into "" and keep the separator.
_TRANSLATIONS_TEXT = Coalesce(
    models.Func(
        models.Value("\x1f"),
        NullIf(Cast("translations", models.TextField()), models.Value("{}")),
        template="(%(expressions)s)",
        arg_joiner=" || ",
        output_field=models.TextField(),
    ),
    models.Value(""),
    output_field=models.TextField(),
)


class Item(models.Model):
    """Something that can be recommended: a product, an article, a video.

    ``title`` and ``description`` are in the site's main language; ``translations`` holds
    the same texts in other languages, ``{"en": {"title": …, "description": …}}``
    (:meth:`text_in` reads them with fallbacks).
    """

    external_id = models.CharField(_("external id"), max_length=200, unique=True)
    title = models.CharField(_("title"), max_length=500)
    description = models.TextField(_("description"), blank=True)
    category = models.CharField(_("category"), max_length=200, blank=True, db_index=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    attributes = models.JSONField(
        _("attributes"), default=dict, blank=True, help_text=_("e.g. price, brand")
    )
    translations = models.JSONField(
        _("translations"),
        default=dict,
        blank=True,
        help_text=_('the texts in other languages: {"en": {"title": "…", "description": "…"}}'),
    )
    is_active = models.BooleanField(_("active"), default=True, db_index=True)
    # Lifecycle: outside its window an item is never recommended (nor found by search),
    # without a re-index; a hidden item stays searchable but is never recommended.
    available_from = models.DateTimeField(
        _("available from"), null=True, blank=True, help_text=_("empty: from now on")
    )
    available_until = models.DateTimeField(
        _("available until"), null=True, blank=True, help_text=_("empty: without end")
    )
    is_hidden = models.BooleanField(
        _("hidden from recommendations"),
        default=False,
        help_text=_("searchable, but never in a recommended list"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Computed by PostgreSQL from the fields encoders read, so every write path (ORM save,
    # bulk upsert, COPY, raw SQL) keeps it right; vectors store the hash they were made
    # from, and stale vectors are the ones whose hash differs.
    text_hash = models.GeneratedField(
        expression=MD5(
            Concat(
                "title",
                models.Value("\x1f"),
                "category",
                models.Value("\x1f"),
                Cast("tags", models.TextField()),
                models.Value("\x1f"),
                "description",
                _TRANSLATIONS_TEXT,
                output_field=models.TextField(),
            )
        ),
        output_field=models.CharField(max_length=32),
        db_persist=True,
    )

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["-created_at"]
        indexes = [
            # The keyword source's index: the character bigrams of the title and tags
            # (``retrieval.keyword_matches``); stock PostgreSQL has no pg_trgm everywhere.
            GinIndex(KeywordBigrams(KEYWORD_TEXT), name="item_keyword_bigrams"),
            # Rule filters on string and set attributes compile to ``attributes @> …``.
            GinIndex(
                fields=["attributes"], name="item_attributes_path", opclasses=["jsonb_path_ops"]
            ),
            GinIndex(fields=["tags"], name="item_tags_path", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return self.title

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_text = instance.text_snapshot()
        return instance

    _loaded_text: tuple | None = None

    def text_snapshot(self) -> tuple | None:
        """The encoder-facing fields as loaded, to tell whether a save changed the text."""
        if self.get_deferred_fields() & {
            "title", "category", "tags", "description", "translations"
        }:  # fmt: skip
            return None  # loaded with .only(): unknown, so a save counts as a change
        return (
            self.title,
            self.category,
            tuple(self.tags or ()),
            self.description,
            repr(self.translations),
        )

    def text_in(self, lang: str | None) -> tuple[str, str]:
        """``(title, description)`` in ``lang``: ``translations[lang]``, then the
        translation of its primary language (``en-GB`` → ``en``), then the main texts,
        field by field (a missing or empty translated text falls back)."""
        title, description = self.title, self.description
        translations = self.translations
        if not lang or not isinstance(translations, dict) or not translations:
            return title, description
        primary = lang.split("-", 1)[0].lower()
        found_title = found_description = None
        for code in dict.fromkeys((lang, primary)):
            texts = translations.get(code)
            if not isinstance(texts, dict):
                continue
            if found_title is None and isinstance(texts.get("title"), str) and texts["title"]:
                found_title = texts["title"]
            if found_description is None and isinstance(texts.get("description"), str):
                found_description = texts["description"] or None
        return found_title or title, found_description or description


class BehaviourKind(models.TextChoices):
    VIEW = "view", _("view")
    CLICK = "click", _("click")
    CART = "cart", _("add to cart")
    PURCHASE = "purchase", _("purchase")
    RATING = "rating", _("rating")
    LIKE = "like", _("like")
    DISLIKE = "dislike", _("dislike")
    SEARCH = "search", _("search")
    REVIEW = "review", _("review")
    SHARE = "share", _("share")
    # The client saw the item in a served list (recommendation_id): no signal of interest.
    IMPRESSION = "impression", _("impression")


class Behaviour(models.Model):
    """One event: a user did something, usually to an item (searches have no item)."""

    user = models.ForeignKey(
        EndUser, on_delete=models.CASCADE, related_name="behaviours", verbose_name=_("user")
    )
    # PROTECT: behaviour history is training and evaluation data; an item leaves the
    # catalogue by ``is_active=False``, never by erasing what users did with it.
    item = models.ForeignKey(
        Item,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="behaviours",
        verbose_name=_("item"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=BehaviourKind.choices)
    value = models.FloatField(_("value"), null=True, blank=True, help_text=_("e.g. a rating"))
    text = models.TextField(_("text"), blank=True, help_text=_("a search query or a review"))
    context = models.JSONField(_("context"), default=dict, blank=True)
    # Unique per user when given, so a client can retry an event without it counting twice
    # (and one client's ids never collide with, or reveal, another user's events). NULL,
    # not "", for "no id": NULLs never conflict in the unique constraint.
    event_id = models.CharField(  # noqa: DJ001
        _("event id"), max_length=200, null=True, blank=True
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    created_at = models.DateTimeField(_("received at"), default=timezone.now, editable=False)
    # The served list this event came from (its recommendation_id), and the item's
    # 1-based position in it, when the client says so: the key of attribution.
    recommendation_id = models.UUIDField(_("recommendation id"), null=True, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), null=True, blank=True)

    class Meta:
        verbose_name = _("behaviour")
        verbose_name_plural = _("behaviours")
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["user", "-occurred_at"], name="behaviour_user_time"),
            models.Index(fields=["item", "-occurred_at"], name="behaviour_item_time"),
            models.Index(fields=["kind", "-occurred_at"], name="behaviour_kind_time"),
            models.Index(
                fields=["recommendation_id"],
                name="behaviour_recommendation",
                condition=models.Q(recommendation_id__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(item__isnull=False) | models.Q(kind__in=["search"]),
                name="behaviour_item_required_unless_search",
            ),
            models.UniqueConstraint(fields=["user", "event_id"], name="behaviour_event_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.item_id or self.text[:30]}"


class ForgottenUser(models.Model):
    """A tombstone: the SHA-256 of a forgotten user's external id, so an event still in
    flight when the user was forgotten does not silently recreate them."""

    id_hash = models.CharField(_("id hash"), max_length=64, unique=True)
    forgotten_at = models.DateTimeField(_("forgotten at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("forgotten user")
        verbose_name_plural = _("forgotten users")

    def __str__(self) -> str:
        return f"{self.id_hash[:12]}… @ {self.forgotten_at:%Y-%m-%d}"


class WorkerHeartbeat(models.Model):
    """The last time each Celery worker proved it can reach the database."""

    hostname = models.CharField(_("worker"), max_length=255, unique=True)
    seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class SpaceStatus(models.TextChoices):
    BUILDING = "building", _("building")
    READY = "ready", _("ready")
    RETIRED = "retired", _("retired")


class IndexPrecision(models.TextChoices):
    """The type a space's HNSW index holds its vectors in (the stored vectors stay full
    precision): ``halfvec`` (pgvector >= 0.7) halves the index at a small loss of recall."""

    VECTOR = "vector", _("vector (4 bytes a dimension)")
    HALFVEC = "halfvec", _("halfvec (2 bytes a dimension)")


DEFAULT_TEXT_TEMPLATE = "{title}\n{category}\n{tags}\n{description}"

# pgvector's defaults for an HNSW graph: what a space's index is built with unless its
# ``index_m`` / ``index_ef_construction`` say otherwise.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


class EncoderSpace(models.Model):
    """One configured encoder with its own item vectors and its own HNSW index.

    Changing the model means a new space, filled in the background while the active one
    keeps serving; exactly one space is active at a time.
    """

    name = models.SlugField(_("name"), max_length=100, unique=True)
    plugin = models.CharField(_("plugin"), max_length=200)
    options = models.JSONField(_("options"), default=dict, blank=True)
    dim = models.PositiveIntegerField(_("dimensions"))
    text_template = models.TextField(
        _("text template"),
        default=DEFAULT_TEXT_TEMPLATE,
        help_text=_("fields: {title} {category} {tags} {description}"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=SpaceStatus.choices, default=SpaceStatus.BUILDING
    )
    is_active = models.BooleanField(_("active"), default=False)
    index_precision = models.CharField(
        _("index precision"),
        max_length=8,
        choices=IndexPrecision.choices,
        default=IndexPrecision.VECTOR,
        help_text=_("change with `manage.py encoder_space reindex NAME --precision …`"),
    )
    # The HNSW graph's shape (pgvector's ``m`` and ``ef_construction``): a denser graph
    # finds more of the true neighbours at the same search breadth, and costs a longer
    # build, a larger index and a slower search at that breadth (docs/performance.md).
    index_m = models.PositiveSmallIntegerField(
        _("index m"),
        default=HNSW_M,
        validators=[MinValueValidator(2), MaxValueValidator(100)],
        help_text=_(
            "links per node of the HNSW graph (pgvector's m, 2–100); change with "
            "`manage.py encoder_space reindex NAME --m …`"
        ),
    )
    index_ef_construction = models.PositiveSmallIntegerField(
        _("index ef_construction"),
        default=HNSW_EF_CONSTRUCTION,
        validators=[MinValueValidator(4), MaxValueValidator(1000)],
        help_text=_(
            "candidates kept while the HNSW graph is built (pgvector's ef_construction, "
            "4–1000, at least 2 × m); change with `manage.py encoder_space reindex NAME "
            "--ef-construction …`"
        ),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)

    class Meta:
        verbose_name = _("encoder space")
        verbose_name_plural = _("encoder spaces")
        ordering = ["-is_active", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_space"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.plugin}, {self.dim}d)"


class ItemVector(models.Model):
    """An item's vector in one space, with the hash of the text it was made from."""

    space = models.ForeignKey(EncoderSpace, on_delete=models.CASCADE, related_name="vectors")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="vectors")
    # No fixed dimension: spaces of different sizes share the table, each with its own
    # partial HNSW index over ``embedding::vector(dim)`` or, for a space whose
    # ``index_precision`` is halfvec, ``embedding::halfvec(dim)`` (see recommender.spaces).
    # The column itself stays full precision either way.
    embedding = VectorField()
    text_hash = models.CharField(max_length=32)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("item vector")
        verbose_name_plural = _("item vectors")
        constraints = [
            models.UniqueConstraint(fields=["space", "item"], name="one_vector_per_space_item"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} in {self.space_id}"


class UserProfile(models.Model):
    """A user's interest vector in one space, kept as decayed sums for O(dim) updates.

    ``item_sum`` is the behaviour-weighted sum of the vectors of items the user touched and
    ``text_sum`` the sum of vectors of their own texts (searches, reviews), both decayed
    exponentially to ``ref_time``; the profile vector blends their directions
    (see ``recommender.serving.profiles``).
    """

    user = models.ForeignKey(EndUser, on_delete=models.CASCADE, related_name="profiles")
    space = models.ForeignKey(EncoderSpace, on_delete=models.CASCADE, related_name="profiles")
    item_sum = VectorField(null=True)
    text_sum = VectorField(null=True)
    ref_time = models.DateTimeField()
    rating_sum = models.FloatField(default=0.0)
    rating_count = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")
        constraints = [
            models.UniqueConstraint(fields=["user", "space"], name="one_profile_per_space_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.space_id}"


class ItemCooccurrence(models.Model):
    """How strongly engaging with ``item`` predicts engaging with ``other`` (precomputed)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="cooccurrences")
    other = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    count = models.PositiveIntegerField()

    class Meta:
        verbose_name = _("item co-occurrence")
        verbose_name_plural = _("item co-occurrences")
        constraints = [
            models.UniqueConstraint(fields=["item", "other"], name="one_cooccurrence_per_pair"),
        ]
        indexes = [models.Index(fields=["item", "-score"], name="cooccurrence_item_score")]

    def __str__(self) -> str:
        return f"{self.item_id} → {self.other_id} ({self.score:.3f})"


class CooccurrenceRefresh(models.Model):
    """One refresh of the co-occurrence table: a full one rewrites it from the whole log;
    an incremental one recomputes only the rows of items near events added since the
    last refresh (``last_event_id``: the newest event the table is known to include); a
    replay (evaluation, a past ``as_of``) leaves a table no later refresh may build on."""

    class Kind(models.TextChoices):
        FULL = "full", _("full")
        INCREMENTAL = "incremental", _("incremental")
        REPLAY = "replay", _("replay (evaluation)")

    finished_at = models.DateTimeField(_("finished at"), default=timezone.now, db_index=True)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    last_event_id = models.BigIntegerField(_("included events up to id"), null=True)
    # The newest event when it ran, and how many events had ids up to it: fewer later
    # means some were deleted (a forgotten user, expired events), which only a full
    # refresh takes out.
    newest_event_id = models.BigIntegerField(_("newest event id"), null=True)
    events_up_to = models.BigIntegerField(_("events up to the newest"), null=True)
    items = models.PositiveIntegerField(_("items recomputed"), default=0)
    rows = models.PositiveIntegerField(_("rows written"), default=0)
    seconds = models.FloatField(_("seconds"), default=0.0)

    class Meta:
        verbose_name = _("co-occurrence refresh")
        verbose_name_plural = _("co-occurrence refreshes")
        ordering = ["-finished_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.finished_at:%Y-%m-%d %H:%M}"


class EvaluationRun(models.Model):
    """One offline evaluation: protocol, settings, metrics per recommender, report folder."""

    created_at = models.DateTimeField(_("run at"), default=timezone.now, db_index=True)
    protocol = models.CharField(_("protocol"), max_length=100)
    space = models.CharField(_("encoder space"), max_length=100, blank=True)
    params = models.JSONField(_("parameters"), default=dict)
    cases = models.PositiveIntegerField(_("cases"), default=0)
    metrics = models.JSONField(_("metrics"), default=dict)
    report_dir = models.CharField(_("report folder"), max_length=500, blank=True)
    seconds = models.FloatField(_("seconds"), default=0.0)

    class Meta:
        verbose_name = _("evaluation run")
        verbose_name_plural = _("evaluation runs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.protocol} @ {self.created_at:%Y-%m-%d %H:%M}"

    def headline(self, metric: str = "ndcg@10") -> dict[str, float]:
        """``metric`` per recommender, e.g. {"popular": 0.03, "full": 0.08}."""
        return {
            name: values.get(metric)
            for name, values in self.metrics.get("overall", {}).items()
            if metric in values
        }


class ApiScope(models.TextChoices):
    READ = "read", _("read")
    EVENTS = "events", _("events (ingestion only)")
    WRITE = "write", _("write (includes read and events)")
    ADMIN = "admin", _("admin (everything)")


class ApiKey(models.Model):
    """A key an application uses to call the API. Only a hash of the secret is stored."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    scope = models.CharField(_("scope"), max_length=8, choices=ApiScope.choices)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.prefix}…)"


class Scenario(models.Model):
    """A named placement (``home``, ``item_page``, ``cart``, ``search``, ``email`` …) and
    the defaults of the lists it serves. A request's own parameters win over these; a
    request without ``scenario=`` gets the default scenario, when one is marked."""

    name = models.SlugField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    is_default = models.BooleanField(
        _("default"), default=False, help_text=_("used by requests that name no scenario")
    )
    k = models.PositiveSmallIntegerField(
        _("list length"), null=True, blank=True, help_text=_("empty: the request's (10)")
    )
    sources = models.JSONField(
        _("candidate sources"),
        default=list,
        blank=True,
        help_text=_(
            "empty: all; else some of history, positive, query, keyword, co_occurrence, "
            "popular, trending, new"
        ),
    )
    blend_weights = models.JSONField(
        _("blend weights"),
        default=dict,
        blank=True,
        help_text=_('feature weights of the fixed blend, e.g. {"popularity": 0.5}'),
    )
    use_learned_ranker = models.BooleanField(
        _("use the learned ranker"),
        default=True,
        help_text=_("off, or blend weights given: the fixed blend ranks this placement"),
    )
    diversity = models.FloatField(
        _("diversity"), null=True, blank=True, help_text=_("0 to 1; empty: the request's")
    )
    category_cap = models.PositiveSmallIntegerField(_("items per category"), null=True, blank=True)
    exclude_seen = models.BooleanField(
        _("exclude seen items"), null=True, blank=True, help_text=_("empty: the request's")
    )
    demote_after = models.PositiveSmallIntegerField(
        _("demote after impressions"),
        null=True,
        blank=True,
        help_text=_(
            "an item shown to a user this many times without an engagement is demoted "
            "(empty: never)"
        ),
    )
    demotion = models.FloatField(
        _("demotion"), default=0.5, help_text=_("the share of its score a demoted item keeps")
    )
    space = models.ForeignKey(
        "EncoderSpace",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("encoder space"),
        help_text=_("empty: the active space"),
    )
    filter = models.TextField(
        _("filter"),
        blank=True,
        help_text=_('a rule every item must pass, e.g. price < 300 and "organic" in tags'),
    )
    boost = models.TextField(
        _("booster"),
        blank=True,
        help_text=_('multiplies each score, e.g. if(brand == "Lumetra", 1.2, 1.0)'),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("scenario")
        verbose_name_plural = _("scenarios")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_scenario",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Promotion(models.Model):
    """Slots of a scenario's lists kept for items matching a filter (a campaign, the
    shop's own brand), ranked by the same model and labelled in the response."""

    scenario = models.ForeignKey(
        Scenario, on_delete=models.CASCADE, related_name="promotions", verbose_name=_("scenario")
    )
    name = models.SlugField(_("name"), max_length=64)
    filter = models.TextField(_("filter"), help_text=_('e.g. "autumn" in tags'))
    share = models.FloatField(
        _("share of slots"), default=0.2, help_text=_("0 to 1: e.g. 0.2 keeps 2 of 10 slots")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("promotion")
        verbose_name_plural = _("promotions")
        ordering = ["scenario", "name"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="promotion_per_scenario"),
        ]

    def __str__(self) -> str:
        return self.name


class AttributeType(models.TextChoices):
    NUMBER = "number", _("number")
    STRING = "string", _("string")
    SET = "set", _("set of strings")
    BOOLEAN = "boolean", _("boolean")
    TIMESTAMP = "timestamp", _("timestamp")


class ItemAttribute(models.Model):
    """One typed item attribute: checked on every write, typed in rule expressions.
    ``RECOMMENDER_ITEM_ATTRIBUTES`` declares more in settings; attributes declared in
    neither stay free-form."""

    name = models.CharField(
        _("name"),
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z_][A-Za-z0-9_]*\Z", _("letters, digits and _, not starting with a digit")
            )
        ],
    )
    type = models.CharField(_("type"), max_length=16, choices=AttributeType.choices)
    required = models.BooleanField(_("required"), default=False)
    indexed = models.BooleanField(
        _("indexed"),
        default=False,
        help_text=_("a number or timestamp compared in filters on a large catalogue"),
    )
    description = models.CharField(_("description"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("item attribute")
        verbose_name_plural = _("item attributes")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class ServedList(models.Model):
    """One list the API served: the trace an online loop needs (what was shown, to whom,
    where, in which order, and why). Its ``id`` is the ``recommendation_id`` the response
    carries. Rows arrive in batches from a buffer (``serving.served_lists``), so the user is
    a relation without a database constraint: a row written after its user was forgotten
    must not fail the batch (forgetting deletes the user's rows through this relation)."""

    id = models.UUIDField(primary_key=True, editable=False)
    user = models.ForeignKey(
        EndUser,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_constraint=False,
        related_name="served_lists",
        verbose_name=_("user"),
    )
    endpoint = models.CharField(_("endpoint"), max_length=32)
    scenario = models.CharField(_("scenario"), max_length=64, blank=True)
    variant = models.CharField(_("variant"), max_length=64, blank=True)
    items = models.JSONField(
        _("items"), default=list, help_text=_("item, position, score, sources")
    )
    context = models.JSONField(_("context"), default=dict, blank=True)
    served_at = models.DateTimeField(_("served at"), db_index=True)

    class Meta:
        verbose_name = _("served list")
        verbose_name_plural = _("served lists")
        ordering = ["-served_at"]
        indexes = [models.Index(fields=["user", "-served_at"], name="servedlist_user_time")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.id}"


class Experiment(models.Model):
    """An A/B test on a scenario: while it runs, each user is assigned one variant (by a
    hash of the user and the experiment, the same in every request and process), and the
    variant's configuration serves instead of the scenario's own."""

    name = models.SlugField(_("name"), max_length=64, unique=True)
    scenario = models.ForeignKey(
        Scenario, on_delete=models.CASCADE, related_name="experiments", verbose_name=_("scenario")
    )
    is_running = models.BooleanField(_("running"), default=False)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scenario"],
                condition=models.Q(is_running=True),
                name="one_running_experiment_per_scenario",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm of an experiment: a share of the traffic and the scenario configuration it
    serves with (the first variant, by position, is the control)."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="variants", verbose_name=_("experiment")
    )
    name = models.SlugField(_("name"), max_length=64)
    share = models.PositiveIntegerField(_("traffic share"), default=1)
    configuration = models.ForeignKey(
        Scenario,
        on_delete=models.PROTECT,
        related_name="as_variant",
        verbose_name=_("configuration"),
        help_text=_("the scenario whose settings this variant serves with"),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["experiment", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name"], name="variant_name_per_experiment"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name}/{self.name}"
