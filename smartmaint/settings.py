"""Smart Maintenance settings: one module, every value from the environment.

Each external service switches on by its own variable and falls back to an
embedded default (SQLite, local-memory cache, console mail) when it is unset.
``.env.example`` documents every variable read here.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from smartmaint.environment import cache_config, database_config, parse_min_time, require

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

# Local state of the embedded defaults: the SQLite database, media, the local MLflow store.
VAR_DIR = env.path("DJANGO_VAR_DIR", default=BASE_DIR / "var")

# The quick start's own settings (DJANGO_DEBUG=true), written there by `make run`, so that the README's
# manage.py commands run as written afterwards. Read only on the embedded SQLite default (no DATABASE_URL),
# and after the environment and .env, which win: a deployment (a DATABASE_URL always; var/ is never in the
# image nor in .env, which docker compose reads) cannot pick it up by accident.
QUICKSTART_ENV = Path(VAR_DIR) / "quickstart.env"
if not env.str("DATABASE_URL", default="") and QUICKSTART_ENV.is_file():
    env.read_env(QUICKSTART_ENV)

# --- Core ------------------------------------------------------------------
# Production mode is the default: a forgotten variable never exposes debug
# pages or an insecure key. `make run` and the test suite turn debug on.
DEBUG = env.bool("DJANGO_DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production-8f3k2")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
else:
    require(
        env,
        ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"],
        reason="when DJANGO_DEBUG is false (production mode); to run locally, set DJANGO_DEBUG=true or run "
        "`make run` first (it turns debug on for the manage.py commands run after it too)",
    )
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "smartmaint",
    # Django's admin with the console's site (dashboard index, readings browser) as admin.site.
    "readings.admin_apps.FleetAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Figures with thousands separators in the console (intcomma), without USE_THOUSAND_SEPARATOR, which would
    # also group ids written into links and form values.
    "django.contrib.humanize",
    # Counts failed sign-ins and locks out an account or address (admin and the JWT token endpoint).
    "axes",
    "rest_framework",
    "rest_framework_api_key",
    # Refresh tokens on record, so that used, logged-out and revoked ones are refused.
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    # Schedules of the periodic jobs, stored in the database and changed in the admin; task results and failures.
    "django_celery_beat",
    "django_celery_results",
    "sensors",
    "readings",
    "mlops",
    "maintenance",
]

MIDDLEWARE = [
    # First: health probes by IP address must not meet the ALLOWED_HOSTS check.
    "smartmaint.health.HealthCheckMiddleware",
    # Outermost of the rest: a streamed body that fails halfway resets the connection (smartmaint/streaming.py).
    "smartmaint.streaming.AbortBrokenStreamsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # A database outage: a plain 503 page for the console (the API answers in its own error shape).
    "smartmaint.middleware.DatabaseUnavailableMiddleware",
    # Static files straight from gunicorn (production has no separate static server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smartmaint.urls"
WSGI_APPLICATION = "smartmaint.wsgi.application"
ASGI_APPLICATION = "smartmaint.asgi.application"

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
# Inputs and selects written in Python, in the markup of Django's widget templates (smartmaint/form_renderer.py).
FORM_RENDERER = "smartmaint.form_renderer.DirectRenderer"

# --- Database ----------------------------------------------------------------
# Seconds one statement may run (0: no limit); the server enforces it, and this side gives up
# DATABASE_CLIENT_GRACE seconds later if the server has stopped answering altogether (a frozen host).
DATABASE_STATEMENT_TIMEOUT = env.int("DATABASE_STATEMENT_TIMEOUT", default=30)
DATABASE_CLIENT_GRACE = env.int("DATABASE_CLIENT_GRACE", default=5)
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {
        "default": database_config(
            DATABASE_URL,
            conn_max_age=env.int("DATABASE_CONN_MAX_AGE", default=60),
            # Seconds to wait for a connection: a database that does not answer fails the request
            # (503, see smartmaint.api.exceptions) instead of holding a worker.
            connect_timeout=env.int("DATABASE_CONNECT_TIMEOUT", default=5),
            # manage.py sets DATABASE_STATEMENT_TIMEOUT to 0 unless it is given: migrations, seeding and
            # training legitimately run longer than a web request.
            statement_timeout=DATABASE_STATEMENT_TIMEOUT,
        )
    }
else:
    Path(VAR_DIR).mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": database_config(f"sqlite:///{Path(VAR_DIR) / 'smartmaint.sqlite3'}")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django records applied migrations here instead of `django_migrations`, so the
# app can share a database with MLflow (Alembic's `alembic_version`) and others.
MIGRATIONS_TABLE = env.str("MIGRATIONS_TABLE", default="smartmaint_migrations")

# auto: use TimescaleDB where the server has it, plain tables otherwise;
# required: refuse to migrate without it; off: never use it.
TIMESCALEDB = env.str("TIMESCALEDB", default="auto").lower()
TIMESCALEDB_MODES = ("auto", "required", "off")
if TIMESCALEDB not in TIMESCALEDB_MODES:
    raise ImproperlyConfigured(f"TIMESCALEDB must be one of {', '.join(TIMESCALEDB_MODES)}, not {TIMESCALEDB!r}.")

READINGS_CHUNK_INTERVAL = env.str("READINGS_CHUNK_INTERVAL", default="1 day")
READINGS_COMPRESS_AFTER = env.str("READINGS_COMPRESS_AFTER", default="7 days")
READINGS_RETENTION_DAYS = env.int("READINGS_RETENTION_DAYS", default=None)

# --- Cache -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": cache_config(
        REDIS_URL,
        key_prefix=env.str("CACHE_KEY_PREFIX", default="smartmaint"),
        # Seconds a Redis command may take; past it the request goes on without the cache.
        socket_timeout=env.float("CACHE_SOCKET_TIMEOUT", default=1.0),
        # Seconds requests skip Redis after it failed, before trying it again (it is logged once, not per request).
        retry_seconds=env.float("CACHE_RETRY_SECONDS", default=5.0),
    )
}

# --- Object storage (S3) -------------------------------------------------------
# Unset bucket: no object storage in use (`manage.py doctor` skips it). Credentials
# come from boto3's standard chain (AWS_ACCESS_KEY_ID..., a profile, an instance role).
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
# S3-compatible stores (MinIO, ...): their URL; empty for AWS itself.
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="")
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="")

# --- REST API ------------------------------------------------------------------
# Proxies (load balancers) in front of the app that append the address they received a request from to
# X-Forwarded-For. 0: clients connect directly, the TCP peer is the client and the header is ignored (a
# client can write anything into it). N: the N-th address from the right is the client. Throttles and
# sign-in lockouts count per client address (smartmaint.client_address).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "sensors.api.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        # Unknown fields are a 400, not silently another order (smartmaint.api.filters).
        "smartmaint.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "smartmaint.api.pagination.LimitOffsetPagination",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["smartmaint.api.throttling.ClientRateThrottle"],
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER_RATE", default="1200/min"),
        "key": env.str("API_THROTTLE_KEY_RATE", default="6000/min"),
    },
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "smartmaint.api.schema.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
DRF_STANDARDIZED_ERRORS = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
    # Database outages, timeouts and deadlocks: 503 with Retry-After instead of 500.
    "EXCEPTION_HANDLER_CLASS": "smartmaint.api.exceptions.ExceptionHandler",
}
# Seconds a client is told to wait (Retry-After) when the database or another dependency is unavailable.
RETRY_AFTER_SECONDS = env.int("RETRY_AFTER_SECONDS", default=5)
SPECTACULAR_SETTINGS = {
    "TITLE": "Smart Maintenance API",
    "DESCRIPTION": "Fleet, readings and health of plant equipment. Authenticate with a JWT (people) or an API key "
    "(`Authorization: Api-Key <key>`, gateways).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response shapes apart: request strings the server refuses blank get minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI and its assets come from drf-spectacular-sidecar: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ValidationErrorEnum": "drf_standardized_errors.openapi_serializers.ValidationErrorEnum.choices",
        "ClientErrorEnum": "drf_standardized_errors.openapi_serializers.ClientErrorEnum.choices",
        "ServerErrorEnum": "drf_standardized_errors.openapi_serializers.ServerErrorEnum.choices",
        "ErrorCode401Enum": "drf_standardized_errors.openapi_serializers.ErrorCode401Enum.choices",
        "ErrorCode403Enum": "drf_standardized_errors.openapi_serializers.ErrorCode403Enum.choices",
        "ErrorCode404Enum": "drf_standardized_errors.openapi_serializers.ErrorCode404Enum.choices",
        "ErrorCode405Enum": "drf_standardized_errors.openapi_serializers.ErrorCode405Enum.choices",
        "ErrorCode406Enum": "drf_standardized_errors.openapi_serializers.ErrorCode406Enum.choices",
        "ErrorCode415Enum": "drf_standardized_errors.openapi_serializers.ErrorCode415Enum.choices",
        "ErrorCode429Enum": "drf_standardized_errors.openapi_serializers.ErrorCode429Enum.choices",
        "ErrorCode500Enum": "drf_standardized_errors.openapi_serializers.ErrorCode500Enum.choices",
        # A work order's status, and the from/to statuses of its timeline's events: one enum.
        "WorkOrderStatusEnum": "maintenance.choices.WorkOrderStatus",
    },
    "POSTPROCESSING_HOOKS": ["drf_standardized_errors.openapi_hooks.postprocess_schema_enums"],
}

SIMPLE_JWT = {
    # Falls back to SECRET_KEY so development needs no extra variable; set it in production.
    "SIGNING_KEY": env.str("JWT_SECRET", default="") or SECRET_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=1)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Each refresh hands out a new refresh token and blacklists the one used: a stolen refresh token
    # works once at most, and its reuse is refused. POST /auth/token/blacklist logs out.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Tokens carry a digest of the password hash: once the password changes (by any path), access
    # tokens are refused by simplejwt, refresh tokens by smartmaint.api.jwt (simplejwt checks access
    # tokens only). Outstanding refresh tokens are also blacklisted then (password_validation below).
    "CHECK_REVOKE_TOKEN": True,
    "TOKEN_REFRESH_SERIALIZER": "smartmaint.api.jwt.TokenRefreshSerializer",
}

# Ingest: readings per request, request body size (refused with 413 before
# parsing), and how far in the future a reading may be stamped.
INGEST_MAX_BATCH = env.int("INGEST_MAX_BATCH", default=10_000)
INGEST_MAX_BODY_BYTES = env.int("INGEST_MAX_BODY_BYTES", default=4 * 1024 * 1024)
INGEST_MAX_FUTURE_SKEW = timedelta(seconds=env.int("INGEST_MAX_FUTURE_SKEW", default=300))
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INGEST_MAX_BODY_BYTES, 2_621_440)
# The oldest reading time accepted, and shown: older times are clock faults (a gateway whose clock reset to
# the Unix or GPS epoch, or year 1), not history. 1990 still admits backfills from plant historians.
READINGS_MIN_TIME = parse_min_time(env.str("READINGS_MIN_TIME", default="1990-01-01T00:00:00Z"))
# Streamed CSV exports one server process serves at once (0: no limit); more are answered 503 with
# Retry-After. Keep it below GUNICORN_THREADS so slow downloads always leave threads for everything else.
EXPORT_MAX_STREAMS = env.int("EXPORT_MAX_STREAMS", default=4)

# --- MLflow and anomaly detection ------------------------------------------------
# Unset: a local MLflow store under var/ (SQLite tracking and registry, local artifacts).
MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default="") or f"sqlite:///{Path(VAR_DIR) / 'mlflow.db'}"
MLFLOW_REGISTRY_URI = env.str("MLFLOW_REGISTRY_URI", default="")
# Artifact root for experiments this app creates when the tracking store has no
# server-side default (the local store); a server uses its own (e.g. s3://...).
MLFLOW_ARTIFACT_ROOT = env.str("MLFLOW_ARTIFACT_ROOT", default="") or (Path(VAR_DIR) / "mlartifacts").as_uri()
MLFLOW_EXPERIMENT = env.str("MLFLOW_EXPERIMENT", default="smartmaint-anomaly")
# Where staff can open a run in the MLflow UI (links on the registry pages); empty: no links.
MLFLOW_UI_URL = env.str("MLFLOW_UI_URL", default="")
# Registered model name per sensor type: "<prefix>-<sensor type>".
MLFLOW_MODEL_PREFIX = env.str("MLFLOW_MODEL_PREFIX", default="smartmaint-anomaly")
# Seconds a resolved "champion" alias is trusted before asking the registry again (a type without a
# champion is remembered as long, so its 409 costs no registry call either).
MLFLOW_ALIAS_TTL = env.int("MLFLOW_ALIAS_TTL", default=30)
# Seconds one HTTP call to the MLflow server may wait (to connect, and for each read of the answer), and
# its retries, in web requests (scoring API, admin registry pages): a frozen MLflow holds a worker at most
# (retries + 1) x timeout. Management commands (train_models, score_readings) are batch jobs that would
# rather wait than fail: they use the COMMAND values. These replace MLflow's MLFLOW_HTTP_REQUEST_*.
MLFLOW_REQUEST_TIMEOUT = env.int("MLFLOW_REQUEST_TIMEOUT", default=3)
MLFLOW_REQUEST_MAX_RETRIES = env.int("MLFLOW_REQUEST_MAX_RETRIES", default=0)
MLFLOW_COMMAND_REQUEST_TIMEOUT = env.int("MLFLOW_COMMAND_REQUEST_TIMEOUT", default=30)
MLFLOW_COMMAND_REQUEST_MAX_RETRIES = env.int("MLFLOW_COMMAND_REQUEST_MAX_RETRIES", default=2)
# Seconds after MLflow failed to answer before a model's alias is asked again. Meanwhile the champion in
# memory keeps scoring, and a type with none answers 503 at once with this Retry-After.
MLFLOW_RETRY_AFTER = env.int("MLFLOW_RETRY_AFTER", default=10)
# Anomaly probability from which a scored window becomes an Anomaly, and an Alert.
ANOMALY_THRESHOLD = env.float("ANOMALY_THRESHOLD", default=0.5)
ANOMALY_ALERT_THRESHOLD = env.float("ANOMALY_ALERT_THRESHOLD", default=0.8)
# A departure below ANOMALY_ALERT_THRESHOLD that lasts opens an alert too (a warning): its sensor's anomalies in at
# least this many of its latest 2 x this many windows (mlops.services._persisting). 0: only the threshold alerts.
ANOMALY_ALERT_PERSISTENCE = env.int("ANOMALY_ALERT_PERSISTENCE", default=3)
# Scheduled scoring (score_readings): seconds after its end that a window with some of its readings missing
# waits for them before it is scored as it is; and how far back a sensor never scored
# starts, in hours (older readings, e.g. a backfill, are scored only on request: score_readings --from).
SCORING_GRACE_SECONDS = env.int("SCORING_GRACE_SECONDS", default=600)
SCORING_FIRST_RUN_HOURS = env.int("SCORING_FIRST_RUN_HOURS", default=24)
# A value frozen part-way through a window is flagged by the scheduled run that sees its repeated readings, as a
# provisional anomaly settled when the window ends (mlops.scoring.early_flats), not a whole window later.
SCORING_EARLY_FLATS = env.bool("SCORING_EARLY_FLATS", default=True)
# The normal-behaviour models (mlops.normal): the false-alarm rate per window their thresholds are calibrated
# for on the baseline (1e-4: about one false anomaly per asset every 10 weeks of 10-minute windows), and how many
# days of an asset's latest history they learn from when neither --baseline nor the asset's baseline is set.
NORMAL_FALSE_ALARM_RATE = env.float("NORMAL_FALSE_ALARM_RATE", default=1e-4)
NORMAL_BASELINE_DAYS = env.int("NORMAL_BASELINE_DAYS", default=14)
# Consecutive readings outside the normal range that open an alert.
ALERT_OUT_OF_RANGE_READINGS = env.int("ALERT_OUT_OF_RANGE_READINGS", default=5)
# Seconds after which an alert claimed for mailing by a run that never finished (it died) is mailed again by the
# next run. Longer than a run takes to send its mail: a run stops starting new messages after half of it.
ALERT_MAIL_CLAIM_TIMEOUT = env.int("ALERT_MAIL_CLAIM_TIMEOUT", default=600)
# More alerts than this for one subscriber in one mail run (a site gone stale, an SMTP outage's backlog): one
# digest mail listing them, instead of one mail each.
ALERT_DIGEST_THRESHOLD = env.int("ALERT_DIGEST_THRESHOLD", default=10)
# An alert whose mail failed (SMTP down, hung, an address refused for now) is tried again by the next mail run
# after its first failure, then after ALERT_MAIL_RETRY_BACKOFF seconds, doubling with each failure up to
# ALERT_MAIL_RETRY_BACKOFF_MAX; every attempt is counted and its error kept on the alert.
ALERT_MAIL_RETRY_BACKOFF = env.int("ALERT_MAIL_RETRY_BACKOFF", default=60)
ALERT_MAIL_RETRY_BACKOFF_MAX = env.int("ALERT_MAIL_RETRY_BACKOFF_MAX", default=3600)

# --- Work orders (maintenance) ----------------------------------------------------
# Service levels: hours from a work order's creation to its due date, by priority, as "priority=hours" pairs.
# A priority left out keeps its default (urgent 4, high 24, medium 72, low 168).
WORK_ORDER_SERVICE_LEVELS = {"urgent": 4, "high": 24, "medium": 72, "low": 168} | {
    key.strip(): int(value)
    for key, value in (pair.split("=", 1) for pair in env.list("WORK_ORDER_SERVICE_LEVELS", default=[]) if "=" in pair)
}
# Attachments: the largest file accepted, in bytes, and the content types accepted (photos and PDFs by default).
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
ATTACHMENT_CONTENT_TYPES = env.list(
    "ATTACHMENT_CONTENT_TYPES", default=["image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"]
)
# How often the overdue work order reminder runs (seconds); each overdue work order is reminded once.
JOBS_OVERDUE_REMINDER_SECONDS = env.int("JOBS_OVERDUE_REMINDER_SECONDS", default=900)

# --- Auth --------------------------------------------------------------------
# django-axes first: it refuses a locked-out account or address before any password is hashed
# (so a password-guessing loop costs no CPU once locked out), then Django checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Brute-force protection (django-axes), for the admin login and POST /api/v1/auth/token alike: after
# LOGIN_FAILURE_LIMIT failed sign-ins for one username, or from one client address, further attempts
# are refused until LOGIN_COOLOFF_MINUTES have passed without a failure (each failure while locked out
# restarts the wait). Either alone locks: by account against guessing one user's password from many
# addresses, by address against trying many users from one. Failures are counted in the database (not
# the cache, so a cache outage does not lift the protection). A success does not reset the counts: it
# would let an attacker with one valid account clear the counter of the address it guesses from.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_FORM_FIELD = "username"  # the login form's and the token endpoint's field
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "smartmaint.lockout.lockout_response"
# No startup banner on every process (manage.py commands print one clear line on stderr when they fail).
AXES_VERBOSE = False
# The same client address as the API's throttles (TRUSTED_PROXY_COUNT), not django-ipware's guess.
AXES_CLIENT_IP_CALLABLE = "smartmaint.client_address.client_address"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: its password_changed() hook blacklists the user's refresh tokens after any password change.
    {"NAME": "smartmaint.password_validation.RevokeTokensOnPasswordChange"},
]

# First admin login, created by `manage.py ensure_admin` (run by `make run`)
# when no superuser exists; without a password one is generated and printed once.
BOOTSTRAP_ADMIN = {
    "username": env.str("DJANGO_ADMIN_USERNAME", default="admin"),
    "email": env.str("DJANGO_ADMIN_EMAIL", default=""),
    "password": env.str("DJANGO_ADMIN_PASSWORD", default=""),
}

# --- I18N --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
# One date format across the console: ISO dates, 24-hour times (smartmaint/formats/en/formats.py).
FORMAT_MODULE_PATH = ["smartmaint.formats"]
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Production serves collected files (collectstatic at image build) through WhiteNoise, with
# content-hashed names (cached forever) and compressed copies; debug keeps plain names.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# A name missing from the manifest (collectstatic not run) falls back to the plain name instead of a 500.
WHITENOISE_MANIFEST_STRICT = False
# Development (DJANGO_DEBUG, even when a test runner turns settings.DEBUG off): files straight from the
# apps and static/, no collectstatic; production: the collected files, indexed once at startup.
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=Path(VAR_DIR) / "media")
# Uploaded files (work order attachments): S3 (django-storages) when AWS_STORAGE_BUCKET_NAME is set, under the
# prefix MEDIA_S3_PREFIX, with links signed for ATTACHMENT_URL_SECONDS; MEDIA_ROOT on the local disk otherwise.
# They are never served from MEDIA_URL: a view checks who asks first (maintenance.views).
ATTACHMENT_URL_SECONDS = env.int("ATTACHMENT_URL_SECONDS", default=300)
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL or None,
            "region_name": AWS_S3_REGION_NAME or None,
            "location": env.str("MEDIA_S3_PREFIX", default="media"),
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "signature_version": "s3v4",
            "querystring_expire": ATTACHMENT_URL_SECONDS,
        },
    }

# --- Mail ----------------------------------------------------------------------
# Every mail setting has a default, so a missing one never stops startup;
# without a host, mail is written to the console.
EMAIL_HOST = env.str("EMAIL_SMTP_HOST", default="")
EMAIL_PORT = env.int("EMAIL_SMTP_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_SMTP_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_SMTP_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_SMTP_USE_TLS", default=True)
EMAIL_USE_SSL = env.bool("EMAIL_SMTP_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_SMTP_TIMEOUT", default=10)
if EMAIL_USE_SSL:
    EMAIL_USE_TLS = False  # Django refuses both; implicit TLS wins when asked for.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Smart Maintenance <noreply@localhost>")
# Where staff open the console, for the links in alert mail (the quick start's address by default).
SITE_URL = env.str("DJANGO_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Background work (Celery) -------------------------------------------------------
# Workers run scoring, alert checks, mail and retraining (smartmaint/celery.py, each app's tasks.py; docs/deploy.md).
# Broker: CELERY_BROKER_URL, else REDIS_URL (a deployment gives Redis; see docs/deploy.md for a database of its own).
# Neither (the quick start): kombu's filesystem transport, messages as files under VAR_DIR/celery. It needs no
# server and no package beyond Celery, so `make run` starts web, worker and beat with nothing to install; unlike
# kombu's SQLAlchemy transport it also carries broadcasts, so `celery inspect ping` and `manage.py doctor` see the
# worker. It serves the processes of one machine only: more machines need Redis.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem:"):
    _broker_dir = Path(VAR_DIR) / "celery"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Each task's outcome, a failure with its error and traceback, in the database (django-celery-results: the admin's
# "Task results"), with its task name, arguments, worker and periodic job; removed after CELERY_RESULT_EXPIRES_DAYS
# by the daily cleanup beat runs.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = timedelta(days=env.int("CELERY_RESULT_EXPIRES_DAYS", default=7))
CELERY_TASK_TRACK_STARTED = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Seconds a task may run: past the soft limit it is interrupted (its transaction rolls back, the next run redoes
# the work), past the hard one its worker process is replaced. Retraining has its own, longer limit.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
TRAINING_TIME_LIMIT = env.int("TRAINING_TIME_LIMIT", default=4 * 3600)
# Threads that grow a supervised detector's trees (scikit-learn's n_jobs for fitting). 0: one per CPU this process
# may use. The trees are the same for any number (each tree's seed is drawn before they are shared out), and
# predictions always add the trees in one order, so the model and its scores do not depend on it.
TRAINING_JOBS = env.int("TRAINING_JOBS", default=0)
# Queues per kind of work, so that a retraining never delays scoring or mail: a worker serves the queues it is
# given (`celery -A smartmaint worker -Q scoring`), several workers on several machines share a queue.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "mlops.readings_score_pending": {"queue": "scoring"},
    "mlops.alerts_notify": {"queue": "mail"},
    "mlops.models_retrain": {"queue": "training"},
    "maintenance.work_orders_remind_overdue": {"queue": "mail"},
    # Ingest side: after readings arrive, a scoring run is queued within SCORING_AFTER_INGEST_SECONDS.
    "mlops.readings_ingested": {"queue": "ingest"},
}
# One task at a time per worker process: a long one never holds others that another process could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task meeting a transient error (database, MLflow, SMTP unreachable) is retried up to TASK_RETRY_MAX times,
# waiting TASK_RETRY_BACKOFF seconds, then twice as long each time (with jitter) up to TASK_RETRY_BACKOFF_MAX.
# Bad data is never retried: the task fails at once and its error is recorded.
TASK_RETRY_MAX = env.int("TASK_RETRY_MAX", default=5)
TASK_RETRY_BACKOFF = env.int("TASK_RETRY_BACKOFF", default=10)
TASK_RETRY_BACKOFF_MAX = env.int("TASK_RETRY_BACKOFF_MAX", default=600)
# Redis broker: a task taken by a worker that then dies whole (killed, its machine gone) before acknowledging it
# (scoring, rule alerts and mail acknowledge late) goes back on its queue once CELERY_BROKER_VISIBILITY_TIMEOUT
# seconds have passed since it was taken; a surviving worker checks every min(10, timeout / 4) s. Keep it above the
# longest such task (CELERY_TASK_TIME_LIMIT) and the longest countdown (TASK_RETRY_BACKOFF_MAX: a retry waiting
# that long is held unacknowledged too), or a task still running or waiting is handed to a second worker as well
# (harmless here, the tasks are idempotent, but work done twice). Default: the longer of the two plus 5 minutes
# (900 s; Celery's own default is an hour). A worker that dies alone in its pool (its main process alive) puts
# the task back at once (reject_on_worker_lost), whatever this is.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int(
    "CELERY_BROKER_VISIBILITY_TIMEOUT", default=max(CELERY_TASK_TIME_LIMIT, TASK_RETRY_BACKOFF_MAX) + 300
)
if CELERY_BROKER_URL.startswith("redis"):  # redis:, rediss:, redis+socket:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, min(10, CELERY_BROKER_VISIBILITY_TIMEOUT // 4)),
        "unacked_restore_throttle": 1,  # a scan at every check (kombu's default: every 10th), one small query
    }
# Default schedules of the periodic jobs, written to the database when migrate first creates each job; from then
# on staff change them in the admin (Periodic tasks) and these no longer apply. Seconds between runs; retraining
# as a crontab (minute hour day-of-month month day-of-week, in DJANGO_TIME_ZONE): Sundays at 03:00.
JOBS_SCORING_SECONDS = env.int("JOBS_SCORING_SECONDS", default=60)
JOBS_ALERT_RULES_SECONDS = env.int("JOBS_ALERT_RULES_SECONDS", default=60)
JOBS_ALERT_MAIL_SECONDS = env.int("JOBS_ALERT_MAIL_SECONDS", default=60)
JOBS_RETRAINING_CRONTAB = env.str("JOBS_RETRAINING_CRONTAB", default="0 3 * * 0")
# Pruning the logs, daily at 04:30: scoring runs older than SCORING_RUNS_KEEP_DAYS (mlops.scoring_runs_prune).
# Task results older than CELERY_RESULT_EXPIRES_DAYS go by Celery's own cleanup, which beat runs daily at 04:00.
JOBS_PRUNE_CRONTAB = env.str("JOBS_PRUNE_CRONTAB", default="30 4 * * *")
SCORING_RUNS_KEEP_DAYS = env.int("SCORING_RUNS_KEEP_DAYS", default=30)
# Seconds after readings arrive through the API within which a scoring run is queued (the ingest queue's
# mlops.readings_ingested; one per this many seconds however many batches come), so that a window a reading
# completes is scored then, not at the next scheduled run. 0: scheduled runs only.
SCORING_AFTER_INGEST_SECONDS = env.int("SCORING_AFTER_INGEST_SECONDS", default=10)
# Health of the background side (manage.py doctor, the worker and beat containers' health checks): seconds to wait
# for workers to answer a ping; beat counts as stopped when no job was sent for BEAT_STALE_SECONDS (beat records
# the jobs' last runs every 3 minutes, so keep it above that and above the shortest job's period).
WORKER_PING_TIMEOUT = env.float("WORKER_PING_TIMEOUT", default=5.0)
BEAT_STALE_SECONDS = env.int("BEAT_STALE_SECONDS", default=600)

# --- Security (production) -----------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
# One year in production: browsers then never try plain HTTP for this host (the policy is remembered
# that long, so set it lower, e.g. 3600, only while first trying HTTPS on a new host).
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): everything from this origin only, no inline script or style, no
# eval, no plugins, no framing. The admin console (Django's templates and ours) has no inline code, and
# Swagger UI gets its start-up script as a file (smartmaint.api.views.SwaggerUIView), so no nonce or
# 'unsafe-inline' is needed; data: images are Swagger UI's icons. A new page with inline code breaks
# visibly (tests/admin/test_browser.py watches for violations). Django's debug error page is unstyled.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Logging -------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
