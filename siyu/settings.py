"""Django settings for siyu: one module, every production knob read from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from siyu.env import env_bool, env_int, env_list, env_str, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SIYU_VAR_DIR", str(BASE_DIR / "var")))
load_env_file(VAR_DIR / "siyu.env")

TESTING = "pytest" in sys.modules or env_bool("SIYU_TESTING")

SECRET_KEY = env_str("SIYU_SECRET_KEY") or ("insecure-test-key" if TESTING else "")
DEBUG = env_bool("SIYU_DEBUG", default=False)
ALLOWED_HOSTS = env_list("SIYU_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("SIYU_CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1:8000", "http://localhost:8000"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",  # serves the API docs page's Swagger UI from local static files, never a CDN
    "django_tasks",
    "django_tasks_db",
    "django_rq",
    "django_tasks_rq",
    "siyu.core",
    "siyu.customers",
    "siyu.tags",
    "siyu.analytics",
    "siyu.commerce",
    "siyu.groups",
    "siyu.inheritance",
    "siyu.channels",
    "siyu.storecodes",
    "siyu.campaigns",
    "siyu.privacy",
    "siyu.leads",
    "siyu.wecom",
    "siyu.emulator",
    "siyu.api",
    "siyu.console",
    "siyu.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "siyu.console.middleware.ConsoleLocaleMiddleware",  # zh-hans unless the user switched
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "siyu.console.middleware.ConsoleTenantMiddleware",
]

ROOT_URLCONF = "siyu.urls"
WSGI_APPLICATION = "siyu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "siyu.console.context.console",
            ],
        },
    },
]

# SQLite (WAL) is the zero-set-up default; DATABASE_URL switches to PostgreSQL (what CI and production use).
_default_sqlite = f"sqlite:///{VAR_DIR / 'siyu.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL") or _default_sqlite, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    }

elif TESTING:
    # One test database per process, so parallel runs on one machine (developers, CI) never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
if TESTING:
    # Hashing the fixed personas' passwords with full PBKDF2 would dominate the suite's run time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "siyu" / "locale"]
TIME_ZONE = env_str("SIYU_TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Front-end packages come from npm (`make setup` copies them here); nothing is fetched from a CDN at run time.
STATICFILES_DIRS = (
    [BASE_DIR / "siyu" / "console" / "vendor"] if (BASE_DIR / "siyu" / "console" / "vendor").exists() else []
)
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

# Personal data: AES-256-GCM key and a separate HMAC key for lookup hashes (both base64, 32 bytes).
SIYU_PII_KEY = env_str("SIYU_PII_KEY") or ("dGVzdC1waWkta2V5LXRlc3QtcGlpLWtleS10ZXN0LTE=" if TESTING else "")
SIYU_PII_HASH_KEY = env_str("SIYU_PII_HASH_KEY") or ("dGVzdC1oYXNoLWtleS10ZXN0LWhhc2gta2V5LXRlc3Q=" if TESTING else "")

# Jobs: django-tasks (Django 6's tasks API); database backend by default, Redis (RQ) for scale-out workers.
# Switching to Redis is only SIYU_TASKS_BACKEND=rq (+ REDIS_URL); `siyu worker` follows this setting.
# "immediate" runs each job inside the request that enqueued it (after commit): for demos, never production.
SIYU_TASKS_BACKEND = env_str("SIYU_TASKS_BACKEND", "db")
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
_TASK_QUEUES = ["default", "fast"]
_TASK_BACKENDS = {
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": _TASK_QUEUES},
    "rq": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": _TASK_QUEUES},
    "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": _TASK_QUEUES},
}
if SIYU_TASKS_BACKEND not in _TASK_BACKENDS:
    raise ImproperlyConfigured(
        f"SIYU_TASKS_BACKEND must be one of {', '.join(_TASK_BACKENDS)}, got {SIYU_TASKS_BACKEND!r}"
    )
TASKS = {"default": _TASK_BACKENDS[SIYU_TASKS_BACKEND]}
# Exports of a large brand run for many minutes; RQ kills a job that outlives its queue's timeout.
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("SIYU_JOB_TIMEOUT", 3600)},
    "fast": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60},
}
# django-tasks-rq's Job runs the django-tasks Task behind each RQ job; every worker and queue must use it.
RQ = {"JOB_CLASS": "django_tasks_rq.Job"}
# Every `siyu worker` looks for work a crash left behind at start and then every this many seconds (0: at start
# only): jobs of dead workers, callbacks whose job was lost. A callback is re-enqueued once it is this old.
SIYU_WORKER_SWEEP_SECONDS = env_int("SIYU_WORKER_SWEEP_SECONDS", 60)
# How long an idle `siyu worker` (database backend) waits before looking for new jobs, in seconds.
SIYU_WORKER_POLL_SECONDS = float(os.environ.get("SIYU_WORKER_POLL_SECONDS", "0.1"))
# Finished background jobs are kept this long (days), then pruned by the workers.
SIYU_JOB_RETENTION_DAYS = env_int("SIYU_JOB_RETENTION_DAYS", 7)
SIYU_FAILED_JOB_RETENTION_DAYS = env_int("SIYU_FAILED_JOB_RETENTION_DAYS", 30)
# CSV exports of personal data are deleted this many days after they were made (siyu.core.exports).
SIYU_EXPORT_RETENTION_DAYS = env_int("SIYU_EXPORT_RETENTION_DAYS", 7)

SIYU_PAGE_SIZE = env_int("SIYU_PAGE_SIZE", 25)

# WeCom: a callback whose timestamp is further than this from our clock (seconds) is refused as a replay;
# API calls time out after SIYU_WECOM_TIMEOUT seconds (WeCom answers in well under one).
SIYU_WECOM_CALLBACK_MAX_SKEW = env_int("SIYU_WECOM_CALLBACK_MAX_SKEW", 300)
SIYU_WECOM_TIMEOUT = env_int("SIYU_WECOM_TIMEOUT", 10)
# The offline WeCom emulator the demo brand is connected to; `siyu serve` starts it when a brand points at it.
SIYU_EMULATOR_URL = os.environ.get("SIYU_EMULATOR_URL", "http://127.0.0.1:8001")
# Where shoppers reach siyu's public pages (QR landing pages, posters, invitations): the address links are built on.
SIYU_PUBLIC_URL = env_str("SIYU_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Simulated customer actions per second on the demo brand while `siyu serve` runs (0 = no live activity).
SIYU_DEMO_SIMULATE_RATE = float(os.environ.get("SIYU_DEMO_SIMULATE_RATE", "0.5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("SIYU_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request URL at INFO; WeCom URLs carry the app secret (gettoken) or the access token.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

os.makedirs(VAR_DIR, exist_ok=True)
os.makedirs(STATIC_ROOT, exist_ok=True)  # whitenoise warns on every start before the first collectstatic
