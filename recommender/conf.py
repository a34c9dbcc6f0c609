"""Every ``RECOMMENDER_*`` setting in one place: its default, its type and what it does.

Code reads ``conf.CANDIDATES_PER_SOURCE``, never ``getattr(settings, "…", 50)``: the value
in Django's settings (``RECOMMENDER_CANDIDATES_PER_SOURCE``) when the project sets one,
else the default below. Reads go to Django's settings each time, so ``override_settings``
and pytest-django's ``settings`` fixture work as they do for Django's own settings.

A project takes them from the environment with :func:`from_environment` (recsite/settings.py
does), which parses ``RECOMMENDER_<NAME>`` by the setting's type. docs/getting-started.md
lists them all; ``tests/test_conf.py`` keeps the two in step.

This module imports nothing from Django at import time, so the settings module can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed

PREFIX = "RECOMMENDER_"


def _bool(raw: str) -> bool:
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be a boolean (1/0, true/false), not {raw!r}")


def _names(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _float_pair(raw: str) -> tuple[float, float]:
    low, high = (float(part) for part in raw.split(",", 1))
    if low > high:
        raise ValueError(f"must be 'low,high' with low <= high, not {raw!r}")
    return (low, high)


MODEL_SCALINGS = ("zscore", "minmax")


def _model_scaling(raw: str) -> str:
    if raw not in MODEL_SCALINGS:
        raise ValueError(f"must be one of {', '.join(MODEL_SCALINGS)}, not {raw!r}")
    return raw


def _optional_str(raw: str) -> str | None:
    return raw or None


@dataclass(frozen=True)
class Setting:
    """One setting: ``RECOMMENDER_<name>``, its default, how to read it from the
    environment (None: not from the environment, e.g. dicts), and a one-line doc."""

    name: str
    default: Any
    parse: Callable[[str], Any] | None
    doc: str

    @property
    def setting_name(self) -> str:
        return PREFIX + self.name


# The defaults of the encoder aliases live with the encoders (which import nothing of ours).
_DEFAULT_ENCODERS = {"default": {"PLUGIN": "use-multilingual", "OPTIONS": {}}}

SETTINGS: tuple[Setting, ...] = (
    # --- Access and limits -------------------------------------------------------------
    Setting(
        "REQUIRE_API_KEY",
        True,
        _bool,
        "API calls need a key (servers) or a shopper token (browsers); off only for the local demo",
    ),
    Setting(
        "PUBLIC_API_DOCS",
        False,
        _bool,
        "the API schema and Swagger UI open to anyone, not only to keys and staff "
        "(recsite's settings: on while DEBUG is on)",
    ),
    Setting(
        "THROTTLE_RATES",
        {
            "api": "3000/min",
            "recommendations": "1200/min",
            "events": "6000/min",
            "batch": "60/min",
            "bulk": "60/min",
            "admin": "60/min",
            "tokens": "6000/min",
            "health": "120/min",
        },
        None,
        "per-caller request budgets by endpoint scope (the environment sets them "
        "one by one: RECOMMENDER_API_RATE, RECOMMENDER_RECOMMENDATIONS_RATE …)",
    ),
    Setting(
        "THROTTLE_FAIL_OPEN",
        True,
        _bool,
        "when the throttle's cache fails, let requests through (else 503 + Retry-After)",
    ),
    Setting("SHOPPER_TOKEN_TTL", 3600, int, "lifetime of a shopper token, in seconds"),
    Setting(
        "HEALTH_CACHE_SECONDS", 10.0, float, "how long /api/v1/health/detail reuses its report"
    ),
    Setting(
        "REPLICA_MAX_LAG_SECONDS",
        5.0,
        float,
        "a standby (DATABASE_REPLICA_URL) further behind the primary than this serves no "
        "reads; a user's reads stay on the primary this long plus the check interval after "
        "they write (docs/scaling.md)",
    ),
    Setting(
        "REPLICA_CHECK_SECONDS",
        2.0,
        float,
        "how long each process trusts its last health and lag check of the standby",
    ),
    Setting(
        "MAX_K_EXPLAINED",
        50,
        int,
        "the longest list with explanations or a text query (explain=false: 200)",
    ),
    Setting(
        "PUBLIC_ATTRIBUTES",
        ["price", "brand", "category_zh", "category_en"],
        _names,
        "item attributes recommendation lists return ('*': all)",
    ),
    Setting(
        "ITEM_ATTRIBUTES",
        {"price": {"type": "number", "indexed": True}, "brand": "string"},
        None,
        "typed item attributes, name → number | string | set | boolean | timestamp "
        "(or {type, required, indexed}); the admin declares more",
    ),
    Setting(
        "MAX_ATTRIBUTES_BYTES",
        16384,
        int,
        "the largest item or user `attributes`, in bytes of compact JSON",
    ),
    Setting(
        "MAX_CONTEXT_BYTES", 4096, int, "the largest event `context`, in bytes of compact JSON"
    ),
    Setting(
        "MAX_CLOCK_SKEW_SECONDS", 300, int, "how far in the future an event's `occurred_at` may lie"
    ),
    Setting(
        "RATING_RANGE",
        (0.0, 10.0),
        _float_pair,
        "the rating scale, 'low,high'; a rating outside it is refused",
    ),
    Setting(
        "FORGET_GRACE_SECONDS",
        7 * 86400,
        int,
        "after a user is forgotten, events for their id are refused this long",
    ),
    Setting(
        "FORGET_INLINE_LIMIT",
        10000,
        int,
        "users with more events than this are forgotten by a task (202)",
    ),
    # --- Behaviour and profiles -----------------------------------------------------------
    Setting(
        "BEHAVIOUR_WEIGHTS",
        {
            "view": 1.0,
            "click": 1.5,
            "share": 2.0,
            "like": 3.0,
            "cart": 4.0,
            "purchase": 6.0,
            "rating": 1.0,
            "review": 2.0,
            "search": 0.0,
            "dislike": -3.0,
        },
        None,
        "how much each kind of event says about interest (dislike pushes away)",
    ),
    Setting(
        "RATING_WEIGHT",
        2.0,
        float,
        "how far a rating above or below the user's mean moves the profile",
    ),
    Setting(
        "RATING_SCALE",
        2.0,
        float,
        "the rating distance from the user's mean that counts one RATING_WEIGHT",
    ),
    Setting(
        "RATING_PRIOR",
        3.0,
        float,
        "the rating a user's mean is shrunk towards (as two ratings' worth)",
    ),
    Setting(
        "PROFILE_HALF_LIFE_DAYS",
        30.0,
        float,
        "after this many days an event counts half in a profile",
    ),
    Setting(
        "PROFILE_TEXT_WEIGHT", 0.3, float, "the share of searches and reviews in a profile vector"
    ),
    Setting(
        "BEHAVIOUR_RETENTION_DAYS",
        None,
        int,
        "events older than this stop counting for profiles and co-occurrence (empty: forever)",
    ),
    Setting(
        "DELETE_EXPIRED_BEHAVIOURS",
        False,
        _bool,
        "the nightly task deletes events older than the retention (never without one)",
    ),
    Setting(
        "SEEN_WINDOW",
        1000,
        int,
        "how many of a user's latest events say what they have seen and disliked",
    ),
    # --- Encoders and spaces --------------------------------------------------------------
    Setting(
        "ENCODERS",
        _DEFAULT_ENCODERS,
        None,
        "encoder aliases like CACHES; 'default' seeds a new site's first space",
    ),
    Setting("EMBED_ON_SAVE", True, _bool, "queue an item's embedding when a save changes its text"),
    Setting(
        "JIEBA_USER_DICT", None, _optional_str, "a jieba user dictionary for your shop's words"
    ),
    # --- Serving --------------------------------------------------------------------------
    Setting(
        "HNSW_EF_SEARCH",
        1000,
        int,
        "HNSW search breadth (pgvector's hnsw.ef_search, at least 2k, at most 1000)",
    ),
    Setting(
        "INDEX_BUILD_MEMORY",
        "1GB",
        str,
        "PostgreSQL maintenance_work_mem for building a space's HNSW index (the graph is "
        "built in it; empty: the server's setting, 64MB by default)",
    ),
    Setting(
        "RECENT_EF_SEARCH",
        100,
        int,
        "HNSW search breadth of the searches around the user's recent items and interests "
        "(at least 2k): their vectors lie near a few items, where a narrow search already "
        "finds the true neighbours",
    ),
    Setting(
        "INTEREST_SEARCHES",
        0,
        int,
        "at most this many interests (groups of the user's last 20 positively engaged "
        "items) each searched narrowly instead of the profile at full breadth; 0: the "
        "profile (docs/performance.md has both measured)",
    ),
    Setting(
        "IN_PROCESS_SEARCH_ITEMS",
        5000,
        int,
        "while a space holds at most this many vectors, each process keeps them in memory "
        "and searches them exactly there instead of in SQL (unless a request narrows the "
        "items); 0: always in SQL",
    ),
    Setting(
        "CANDIDATES_PER_SOURCE",
        50,
        int,
        "candidates the vector search and co-occurrence each offer (popular: half)",
    ),
    Setting(
        "MODEL_CANDIDATES",
        100,
        int,
        "candidates each trained behaviour model (EASE, ALS, SASRec) offers: its best items "
        "for the user (at least half of CANDIDATES_PER_SOURCE)",
    ),
    Setting(
        "MODEL_SCORE_SCALING",
        "zscore",
        _model_scaling,
        "how each behaviour model's scores become a feature over the candidate pool: zscore "
        "(mean 0, deviation 1) or minmax (0..1); run tune and train_ranker after a change",
    ),
    Setting(
        "PARALLEL_RETRIEVAL",
        True,
        _bool,
        "run the HNSW search on a second connection while other sources are gathered",
    ),
    Setting(
        "INTENT_WEIGHT", 0.7, float, "the share of a request's free-text intent in the query vector"
    ),
    Setting(
        "EXPLAIN_MIN_SIMILARITY",
        0.8,
        float,
        'the cosine to a recent item above which a reason may name it ("Because you viewed '
        'X"), for a space without a calibration (`manage.py calibrate_explanations`)',
    ),
    Setting(
        "EXPLAIN_MIN_COOCCURRENCE",
        3,
        int,
        "the fewest shoppers behind a co-occurrence for its reason to name the item "
        '("Shoppers who viewed X also viewed this")',
    ),
    Setting(
        "WARM_UP",
        True,
        _bool,
        "each server process loads the encoders, jieba and the trained models before it "
        "answers (recsite/wsgi.py), so the first lists after a start do not wait for them",
    ),
    Setting(
        "LIST_CACHE_SECONDS",
        0,
        int,
        "keep each user's finished list this long in the shared cache, until anything they "
        "do (other than an impression) or an item, scenario or model changes, and no longer "
        "than until one of its items leaves its availability window or a filter comparing "
        "with now() may change its verdict on one of them; 0: off",
    ),
    Setting(
        "LIST_REFRESH_SECONDS",
        0,
        int,
        "after each event of a user who asked for a list within this many seconds, a worker "
        "computes their next list ahead into the list cache (needs LIST_CACHE_SECONDS); 0: off",
    ),
    Setting(
        "EXPLAIN_CACHE_SECONDS",
        60,
        int,
        "how long each serving process keeps a co-occurrence reason's proof (its shoppers "
        "and what they did) before reading it again; 0: read it every request",
    ),
    Setting(
        "BLEND_WEIGHTS",
        {},
        None,
        "overrides of the fixed blend's feature weights (recommender/serving/ranking.py)",
    ),
    Setting(
        "LOG_SERVED_LISTS",
        True,
        _bool,
        "log every served list (its recommendation_id in the response), in batches off the "
        "request path",
    ),
    Setting(
        "EXPOSURE_WINDOW_DAYS",
        7,
        int,
        "the days of impressions a scenario's rotation (demote_after) counts",
    ),
    Setting(
        "ATTRIBUTION_WINDOW_SECONDS",
        86400,
        int,
        "a cart or purchase naming no list is attributed to the user's latest list-naming "
        "event on the item this long before it",
    ),
    Setting(
        "USE_LEARNED_RANKER", True, _bool, "serve with the latest trained ranker when there is one"
    ),
    Setting("POPULAR_WINDOW_DAYS", 30, int, "the days popularity counts"),
    Setting(
        "POPULARITY_REFRESH_SECONDS",
        60,
        float,
        "the age at which the live popular and trending tables are recomputed by a worker "
        "(requests keep serving the previous ones meanwhile)",
    ),
    Setting(
        "SEGMENT_ATTRIBUTE",
        "segment,age_band,language",
        str,
        "the end-user attributes (comma-separated) whose values group users for the "
        "segment_category_affinity ranking feature (averaged over those a user has)",
    ),
    Setting(
        "COOCCURRENCE_WINDOW",
        10,
        int,
        "events apart that still count as co-occurring in a user's history",
    ),
    Setting(
        "COOCCURRENCE_INCREMENTAL",
        True,
        _bool,
        "the hourly co-occurrence refresh recomputes only the rows that new events changed "
        "(a full refresh still runs every COOCCURRENCE_FULL_HOURS)",
    ),
    Setting(
        "COOCCURRENCE_FULL_HOURS",
        24,
        float,
        "the age of the last full co-occurrence refresh after which the next one is full",
    ),
    Setting(
        "POSITIVE_RATING",
        3.5,
        float,
        "the lowest rating that counts as a positive engagement (co-occurrence, "
        "evaluation targets, fine-tuning pairs)",
    ),
    # --- Learning -------------------------------------------------------------------------
    Setting(
        "RANKER",
        "lambdarank",
        str,
        "the learned ranker train_ranker and the nightly task train: lambdarank (LightGBM), "
        "fm or logistic; it serves only when it beats the blend on validation",
    ),
    Setting(
        "RANKER_LOSS",
        "pairwise",
        str,
        "the fm and logistic rankers' loss: pairwise (BPR) or pointwise",
    ),
    # Behaviour models (train_models; recommender/serving/behaviour_models.py serves them)
    Setting("EASE_LAMBDA", 200.0, float, "EASE's L2 weight λ (larger: smoother item-item weights)"),
    Setting(
        "EASE_MAX_ITEMS",
        20000,
        int,
        "EASE models at most this many items, the most engaged (memory 4·n² bytes, time n³)",
    ),
    Setting("EASE_TOP_N", 200, int, "EASE weights kept per target item in the saved model"),
    Setting("ALS_FACTORS", 64, int, "implicit ALS: latent factors per item"),
    Setting("ALS_REGULARIZATION", 1.0, float, "implicit ALS: L2 weight λ"),
    Setting("ALS_ALPHA", 5.0, float, "implicit ALS: confidence per unit of event weight"),
    Setting("ALS_ITERATIONS", 15, int, "implicit ALS: alternating passes"),
    Setting("SASREC_DIM", 64, int, "SASRec: embedding and hidden size"),
    Setting("SASREC_BLOCKS", 2, int, "SASRec: self-attention blocks"),
    Setting("SASREC_MAX_LENGTH", 50, int, "SASRec: most recent items it reads"),
    Setting(
        "SASREC_NEGATIVES",
        1024,
        int,
        "SASRec: items sampled per batch as the softmax's negatives (0: all items, slower)",
    ),
    Setting(
        "SASREC_EPOCHS",
        30,
        int,
        "SASRec: most epochs (training stops earlier when validation stops improving)",
    ),
    Setting(
        "BEHAVIOUR_MODEL_THREADS",
        0,
        int,
        "CPU threads for training ALS and SASRec (0: every core)",
    ),
    # --- Monitoring -----------------------------------------------------------------------
    Setting(
        "METRICS_ENABLED",
        False,
        _bool,
        "serve Prometheus metrics at /metrics (off: 404), to the token below or an "
        "admin-scope API key (docs/operations.md)",
    ),
    Setting(
        "METRICS_TOKEN",
        None,
        _optional_str,
        "the bearer token a Prometheus scrape sends to /metrics (empty: admin-scope API keys only)",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def default(name: str) -> Any:
    """The default of setting ``name`` (without the prefix)."""
    return _BY_NAME[name].default


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """``RECOMMENDER_*`` settings given in ``environ``, parsed by their types (for a
    project's settings module). Raises ``ValueError`` naming the variable on bad input."""
    found = {}
    for setting in SETTINGS:
        raw = environ.get(setting.setting_name)
        if setting.parse is None or raw is None or raw == "":
            continue
        try:
            found[setting.setting_name] = setting.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{setting.setting_name}: {exc}") from None
    return found


class RecommenderSettings:
    """Attribute access to the settings: the project's value, else the default.

    A value read is remembered (as an attribute, so that the next read is a plain one)
    until any setting changes: Django's ``setting_changed``, which ``override_settings``
    and pytest-django's ``settings`` fixture send. Reading through ``django.conf.settings``
    cost ~4 µs a read (its lazy object's lookups, and a raised and caught AttributeError
    for a setting left at its default), and a list reads twenty to fifty of them."""

    def __getattr__(self, name: str) -> Any:  # only for a name not remembered
        setting = _BY_NAME.get(name)
        if setting is None:
            raise AttributeError(f"no recommender setting {name!r} (see recommender/conf.py)")
        from django.conf import settings

        value = getattr(settings, setting.setting_name, setting.default)
        self.__dict__[name] = value
        return value

    def forget(self, **_kwargs) -> None:
        """Read every setting afresh (a ``setting_changed`` receiver)."""
        self.__dict__.clear()

    def __dir__(self):
        return sorted(_BY_NAME)


conf = RecommenderSettings()
setting_changed.connect(conf.forget, dispatch_uid="recommender.conf.forget")


# --- The settings table in docs/getting-started.md -----------------------------------------

DOC_START = "<!-- settings table: generated by `python -m recommender.conf --write` -->"
DOC_END = "<!-- end of settings table -->"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, list | tuple):
        return (
            "`"
            + ",".join(f"{part:g}" if isinstance(part, float) else str(part) for part in value)
            + "`"
        )
    if isinstance(value, dict):
        return "see recommender/conf.py" if len(str(value)) > 60 else f"`{value}`"
    return (
        "unset" if value is None else f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
    )


def markdown_table() -> str:
    """The settings as the Markdown table docs/getting-started.md holds."""
    rows = [
        "| setting (environment variable) | default | meaning |",
        "|---|---|---|",
    ]
    for setting in SETTINGS:
        env = "" if setting.parse is not None else " (settings only)"
        rows.append(
            f"| `{setting.setting_name}`{env} | {_shown(setting.default)} | {setting.doc} |"
        )
    return "\n".join(rows)


def _write(path: str) -> None:
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text()
    start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
    doc.write_text(text[:start] + "\n" + markdown_table() + "\n" + text[end:])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        _write(sys.argv[2] if len(sys.argv) > 2 else "docs/getting-started.md")
    else:
        print(markdown_table())
