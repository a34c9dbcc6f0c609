"""Django settings, all read from the environment.

Safe by default: ``DEBUG`` is off and API keys are required unless the environment says
otherwise (``make demo`` opts in to ``DEBUG=1`` and keyless calls for the local demo).
With ``DATABASE_URL`` and ``CELERY_BROKER_URL`` unset, the embedded PostgreSQL (pgvector)
and Redis servers under ``RECSITE_DATA_DIR`` are used. Production sets ``SECRET_KEY``,
``ALLOWED_HOSTS`` and the two URLs: docs/deploy.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from recommender import conf as recommender_conf
from recsite import services

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def database_from_url(url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/name?opt=v`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            "DATABASE_URL must be a postgres:// URL (PostgreSQL with pgvector), "
            f"not {parts.scheme!r}"
        )
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": int(os.environ.get("CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
    }


DEBUG = _env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

RECSITE_DATA_DIR = Path(os.environ.get("RECSITE_DATA_DIR") or BASE_DIR / ".recsite").resolve()

INSTALLED_APPS = [
    "recsite.apps.RecsiteConfig",  # first: starts the embedded servers the others use
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # intcomma in the dashboard, localised per language
    "django.contrib.postgres",  # index expressions with operator classes (OpClass)
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "recommender.apps.RecommenderConfig",
]

MIDDLEWARE = [
    "recsite.metrics.RequestMetricsMiddleware",  # Prometheus: outermost, times all
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "recsite.urls"
WSGI_APPLICATION = "recsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: a URL, or the embedded PostgreSQL + pgvector ---------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
RECSITE_EMBEDDED_POSTGRES = not DATABASE_URL
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": services.DATABASE_NAME,
            "USER": "postgres",
            "PASSWORD": "",
            # A unix socket in the data dir: no TCP port to collide with.
            "HOST": str(services.postgres_dir(RECSITE_DATA_DIR)),
            "PORT": "",
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }
# A streaming-replication standby for serving reads (docs/scaling.md); writes, and reads
# of users who just wrote, stay on the primary. Unset: one database, nothing routed.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = database_from_url(DATABASE_REPLICA_URL)
    # A standby that is down must fail fast: reads then go to the primary.
    DATABASES["replica"]["OPTIONS"].setdefault("connect_timeout", "2")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests never create it
    DATABASE_ROUTERS = ["recommender.dbroute.ReplicaRouter"]
    MIDDLEWARE.append("recommender.dbroute.ReplicaReadsMiddleware")

# Server-side parameters and prepared statements: a statement run a few times on a
# connection is parsed and planned once (measured one request at a time: PostgreSQL's CPU of the
# load mix 6.8-7.5 → 4.7-4.8 ms). Off by default, as in Django: a pooler in transaction
# mode must support protocol-level prepared statements (PgBouncer ≥ 1.21 with
# max_prepared_statements) before it is switched on.
if _env_bool("DATABASE_PREPARED_STATEMENTS", False):
    for _database in DATABASES.values():
        _database.setdefault("OPTIONS", {})
        _database["OPTIONS"]["server_side_binding"] = True
        _database["OPTIONS"]["prepare_threshold"] = int(
            os.environ.get("DATABASE_PREPARE_THRESHOLD", "5")
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery: a URL, or the embedded Redis ----------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
RECSITE_EMBEDDED_REDIS = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = services.redis_url(RECSITE_DATA_DIR)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# A task taken by a worker that dies (SIGKILL, power loss) is redelivered after this long.
# Embedding tasks are idempotent, so a redelivery while the first run lives is harmless.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ROUTES = {"recommender.embed_items": {"queue": "embed"}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Start the embedded servers from the app-ready hook (once per process, cheap when they
# already run). Set to 0 to require `manage.py services start` instead.
RECSITE_AUTOSTART_SERVICES = _env_bool("RECSITE_AUTOSTART_SERVICES", True)

# The shared cache (API throttles, popularity lists) lives in Redis: database 1 of the
# embedded server, or CACHE_URL / the broker's Redis.
CACHE_URL = os.environ.get("CACHE_URL", "")
if not CACHE_URL:
    if RECSITE_EMBEDDED_REDIS:
        CACHE_URL = f"unix://{services.redis_socket(RECSITE_DATA_DIR).resolve()}?db=1"
    elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        CACHE_URL = CELERY_BROKER_URL
CACHES = {
    "default": (
        {"BACKEND": "recsite.cache.ReusedClientRedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Auth, i18n, static ----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
# The one catalogue (zh-hans): makemessages run from the repository root also collects the
# project templates/ (the admin index, base_site) into it. LocaleMiddleware picks the
# language: the django_language cookie set by the admin header's switcher (set_language),
# else Accept-Language.
LOCALE_PATHS = [BASE_DIR / "recommender" / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Messages live in the session, not a cookie: one carries a new API key (shown once).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Error reports (the DEBUG page, admin emails) mask URL-shaped secrets too: DATABASE_URL,
# the broker, the result backend and cache locations carry passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "recsite.reporting.SecretURLFilter"

STATIC_URL = "static/"
STATIC_ROOT = RECSITE_DATA_DIR / "static"
STATICFILES_DIRS = [("recsite-client", BASE_DIR / "clients" / "js")]  # the browser snippet

# --- Recommender settings: defaults, types and docs in recommender/conf.py; any of them
# can be set here or from the environment (RECOMMENDER_<NAME>, parsed by its type).
try:
    globals().update(recommender_conf.from_environment(os.environ))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The API docs are open while DEBUG is on (the local demo), else for keys and staff.
RECOMMENDER_PUBLIC_API_DOCS = _env_bool("RECOMMENDER_PUBLIC_API_DOCS", DEBUG)
# Per-endpoint request budgets, per caller (API key, shopper, staff user or address):
# RECOMMENDER_<SCOPE>_RATE in the environment, e.g. RECOMMENDER_BATCH_RATE=120/min.
RECOMMENDER_THROTTLE_RATES = {
    scope: os.environ.get(f"RECOMMENDER_{scope.upper()}_RATE", rate)
    for scope, rate in recommender_conf.default("THROTTLE_RATES").items()
}
# How many reverse proxies sit in front of the app: their X-Forwarded-For entries are
# trusted to find the client address that keyless calls are throttled by (0: none,
# REMOTE_ADDR is the client).
NUM_PROXIES = int(os.environ.get("NUM_PROXIES", "0"))
# The demo storefront at / (it issues shopper tokens for any demo shopper): mounted with
# DEBUG on, or when RECSITE_STOREFRONT=1.
RECSITE_STOREFRONT = _env_bool("RECSITE_STOREFRONT", DEBUG)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "recommender.api.access.ApiKeyAuthentication",
        "recommender.api.access.ShopperTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # JSON only in production; the browsable API (HTML forms) only while DEBUG is on.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PERMISSION_CLASSES": ["recommender.api.access.ScopedAccess"],
    "DEFAULT_PARSER_CLASSES": ["recommender.api.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "recommender.api.errors.handle_exception",
    "DEFAULT_THROTTLE_CLASSES": ["recommender.api.access.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": RECOMMENDER_THROTTLE_RATES,
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_PAGINATION_CLASS": "recommender.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "recsite recommendation API",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Who may read them: recommender.api.access.DocsAccess (RECOMMENDER_PUBLIC_API_DOCS).
    "SERVE_PERMISSIONS": ["recommender.api.access.DocsAccess"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recommender.api.schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Django's request log names the raw path ("Not Found: /api/v1/users/<id>/…"): the
    # filter writes the route pattern instead, so logs hold no user ids.
    "filters": {"route_paths": {"()": "recommender.logfilters.RoutePathFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["route_paths"]}},
    # Django's own default handlers on "django" would print the raw path under DEBUG:
    # drop them, so its records reach only the filtered console (via the root).
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", True)
    # Trust the proxy's X-Forwarded-Proto (it must overwrite the client's): docs/deploy.md.
    if _env_bool("SECURE_PROXY_SSL_HEADER", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
