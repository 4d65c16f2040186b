"""Settings for the service desk, read from the environment (see `.env.example`).

Development (`DJANGO_DEBUG=1`) runs with a throwaway secret key. Production (`DJANGO_DEBUG` unset or 0) refuses to start
without `DJANGO_SECRET_KEY` and turns on the HTTPS and cookie protections that `manage.py check --deploy` asks for.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from itsm.env import database_from_url, env_bool, env_int, env_list, env_str, redis_url_with_db

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off (production). "
            "Set it to a long random value, or set DJANGO_DEBUG=1 for development."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "security",
    "tickets",
    "sla",
    "capacity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Datetimes render in the signed-in user's own zone (User.time_zone).
    "security.middleware.TimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # request.htmx: views answer an htmx request with a page fragment, anything else with the full page.
    "django_htmx.middleware.HtmxMiddleware",
    # RateLimit-* headers on every /api/ response (security/ratelimit.py).
    "security.ratelimit.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "itsm.urls"
WSGI_APPLICATION = "itsm.wsgi.application"

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
                "security.context_processors.roles",
            ],
        },
    },
]

# --- Data stores -----------------------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/itsm")
DATABASES = {"default": database_from_url(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["TEST"] = {"NAME": env_str("DJANGO_TEST_DATABASE_NAME", "test_itsm")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Its own Redis database, so clearing the cache never touches queued Celery messages.
        "LOCATION": env_str("REDIS_CACHE_URL", redis_url_with_db(REDIS_URL, 1)),
        "KEY_PREFIX": env_str("DJANGO_CACHE_PREFIX", "itsm"),
    }
}

# --- Celery (Redis only carries messages; Postgres is the truth) ---------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "sla.fire_*": {"queue": "timers"},
    "sla.reconcile": {"queue": "timers"},
    "reports.*": {"queue": "reports"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late, a task the broker has not seen acknowledged within this window is delivered again (a worker killed
# mid-task); an eta task waits unacknowledged in its worker until its eta, so this must stay above the SLA timer
# horizon plus the reconciler period, or Redis re-delivers eta tasks early (harmless duplicates, but wasted work).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 300)}
# Publishing gives up quickly when the broker is down instead of hanging a web request (see itsm/queue.py).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Re-plans the SLA timers from Postgres: a lost eta message costs at most one period (DESIGN.md §3 step 4).
    "sla-reconcile": {
        "task": "sla.reconcile",
        "schedule": float(env_int("SLA_RECONCILE_SECONDS", 30)),
        "options": {"queue": "timers", "expires": max(env_int("SLA_RECONCILE_SECONDS", 30) - 5, 1)},
    },
    "sla-escalation-notifications": {"task": "sla.deliver_due_escalation_notifications", "schedule": 60.0},
    "tickets-idempotency-cleanup": {"task": "tickets.idempotency_cleanup", "schedule": 3600.0},
    # Folds the dashboards' rollup rows (sla/rollups.py); readers sum whatever is not folded yet, so this only
    # keeps the rollups small.
    "reports-compact-rollups": {
        "task": "reports.compact_rollups",
        "schedule": float(env_int("REPORT_ROLLUP_COMPACT_SECONDS", 300)),
        "options": {"queue": "reports", "expires": 240},
    },
}
# The SLA dashboard and report API run their outcome statement (compliance, percentiles) on a second database
# connection while the request's own connection reads live clocks, lists and backlog: a view takes about as long as
# its slowest half instead of the sum (sla/reports.py, `beside`). Each such view opens one short-lived connection.
REPORT_CONCURRENT_STATEMENTS = env_bool("REPORT_CONCURRENT_STATEMENTS", default=True)
CELERY_TIMEZONE = "UTC"
# SLA deadlines this close get a Celery task with an eta; later ones wait for the reconciler to bring them in range.
# Keep it well under the broker's visibility timeout, or Redis re-delivers eta tasks early.
SLA_TIMER_HORIZON_SECONDS = env_int("SLA_TIMER_HORIZON_SECONDS", 120)

# --- Webhooks (docs/webhooks.md) ------------------------------------------------------------------------------------
# Signing secrets are derived from this key and a per-subscription salt; changing it changes every secret.
WEBHOOK_SIGNING_KEY = env_str("WEBHOOK_SIGNING_KEY", SECRET_KEY)
# SSRF guard: receivers on loopback, private, link-local, reserved or multicast addresses are refused unless allowed
# here, all of them or by network (e.g. "127.0.0.1/32,10.20.0.0/16").
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# A claimed delivery is not sent by anyone else for this long (timeout + margin); after a crash it is retried then.
WEBHOOK_LEASE_SECONDS = env_int("WEBHOOK_LEASE_SECONDS", 60)
WEBHOOK_RETRY_HOURS = env_int("WEBHOOK_RETRY_HOURS", 24)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES = env_int("WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES", 5)
# Delivered and failed deliveries (with their attempts) are kept this long in the delivery log.
WEBHOOK_LOG_RETENTION_DAYS = env_int("WEBHOOK_LOG_RETENTION_DAYS", 30)
CELERY_BEAT_SCHEDULE["webhooks-sweep"] = {
    "task": "webhooks.sweep",
    "schedule": 30.0,
    "options": {"queue": "default", "expires": 25},
}
CELERY_BEAT_SCHEDULE["webhooks-prune"] = {
    "task": "webhooks.prune",
    "schedule": 3600.0,
    "options": {"queue": "default", "expires": 3000},
}

# --- Auth ------------------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "security.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Failed logins are counted in the cache per account and per client address; past the limit the form refuses to
# check the password at all until the window has passed.
SECURITY_LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("SECURITY_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
SECURITY_LOGIN_MAX_FAILURES_PER_IP = env_int("SECURITY_LOGIN_MAX_FAILURES_PER_IP", 30)
SECURITY_LOGIN_WINDOW_SECONDS = env_int("SECURITY_LOGIN_WINDOW_SECONDS", 900)
# Only trust X-Forwarded-For when a reverse proxy we control sets it.
SECURITY_TRUST_X_FORWARDED_FOR = env_bool("SECURITY_TRUST_X_FORWARDED_FOR", default=False)

# --- Tickets ---------------------------------------------------------------------------------------------------------
TICKETS_REOPEN_DAYS = env_int("TICKETS_REOPEN_DAYS", 7)
TICKETS_TITLE_MAX_CHARS = 200
TICKETS_TEXT_MAX_CHARS = env_int("TICKETS_TEXT_MAX_CHARS", 50_000)
TICKETS_ATTACHMENT_MAX_BYTES = env_int("TICKETS_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
TICKETS_ATTACHMENT_CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".log": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".zip": "application/zip",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# --- I18N, time ------------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files ---------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Development and tests serve static files straight from the finders, with no collectstatic step.
WHITENOISE_USE_FINDERS = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    # Uploaded files are never served directly: attachments are streamed by a view that checks permission.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env_str("ITSM_MEDIA_ROOT", str(BASE_DIR / ".run" / "media"))},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- E-mail ----------------------------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "service-desk@localhost")

# --- HTTPS and cookies (on by default in production) -----------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_PROXY") else None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

# --- REST framework defaults (the full API is its own issue) ---------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer tokens first: an unauthenticated request gets 401 with `WWW-Authenticate: Bearer` (docs/api-tokens.md).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "security.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "security.scopes.HasRequiredScopes",
    ],
    "EXCEPTION_HANDLER": "itsm.api.exception_handler",
    # Fixed-window counters in the Redis cache, per token, per user and per anonymous address (security/ratelimit.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "security.ratelimit.TokenRateThrottle",
        "security.ratelimit.UserRateThrottle",
        "security.ratelimit.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_str("API_RATE_LIMIT_PER_TOKEN", "600/minute"),
        "user": env_str("API_RATE_LIMIT_PER_USER", "1200/minute"),
        "anon": env_str("API_RATE_LIMIT_ANONYMOUS", "60/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "tickets.api.schema.ScopedAutoSchema",
}
# API tokens: the longest lifetime a token may be given, and how often its last-used time is written.
API_TOKEN_MAX_LIFETIME_DAYS = env_int("API_TOKEN_MAX_LIFETIME_DAYS", 366)
API_TOKEN_LAST_USED_INTERVAL_SECONDS = env_int("API_TOKEN_LAST_USED_INTERVAL_SECONDS", 60)
# OpenAPI 3 schema at /api/v1/schema/, Swagger UI at /api/v1/docs/ from local static files (no CDN), see docs/api.md.
SPECTACULAR_SETTINGS = {
    "TITLE": "Service desk API",
    "DESCRIPTION": "Tickets, comments, attachments, the directory and SLA clocks. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVERS": [{"url": "/", "description": "This service desk"}],
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tickets.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "LevelEnum": "tickets.state.Level",
        "TicketTypeEnum": "tickets.state.TicketType",
        "TicketStateEnum": "tickets.state.TicketState",
        "WebhookDeliveryStateEnum": "security.models.WebhookDelivery.State",
    },
}
# JSON bodies above this are refused with 413 before they are parsed; uploads have TICKETS_ATTACHMENT_MAX_BYTES.
API_MAX_JSON_BYTES = env_int("API_MAX_JSON_BYTES", 256 * 1024)
# An Idempotency-Key and the response it stands for are kept at least this long (a periodic task deletes older ones).
API_IDEMPOTENCY_KEY_TTL_SECONDS = env_int("API_IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
