"""Test settings; HYBRID_SESSIONS_TEST_DB chooses the database: sqlite, postgres, mariadb."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

from tests.django_suite import ensure_django_tests

sys.path.insert(0, str(ensure_django_tests()))

DB = os.environ.get("HYBRID_SESSIONS_TEST_DB", "sqlite")
SUFFIX = os.environ.get("HYBRID_SESSIONS_TEST_SUFFIX", "")
REDIS_URL = os.environ.get("HYBRID_SESSIONS_TEST_REDIS", "redis://127.0.0.1:6379/1")
#: This run's own namespace in Redis. The Redis database may be shared (by default
#: db 1 of a developer's server): tests write and remove only keys under this
#: prefix, never anything else. Child processes inherit it through the environment.
RUN_ID = os.environ.setdefault(
    "HYBRID_SESSIONS_TEST_RUN", f"{os.getpid()}-{secrets.token_hex(4)}"
)
REDIS_KEY_PREFIX = f"hstest{SUFFIX}-{RUN_ID}"

SECRET_KEY = "hybrid-sessions-tests-" + "x" * 40
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

_DATABASES = {
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": f"/tmp/hybrid_sessions_test{SUFFIX}.sqlite3"},
        # A file shared by the concurrency tests' threads and processes: SQLite
        # lets one writer at a time, the others wait up to this many seconds.
        "OPTIONS": {"timeout": 20},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "TEST": {"NAME": f"test_hybrid_sessions{SUFFIX}"},
    },
    "mariadb": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "test",
        "USER": "root",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": f"test_hybrid_sessions{SUFFIX}", "CHARSET": "utf8mb4"},
    },
}
DATABASES = {"default": _DATABASES[DB]}

CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    },
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "sessions_tests",
    "hybrid_sessions",
]
MIDDLEWARE = [
    "hybrid_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
SESSION_ENGINE = "hybrid_sessions.backends.db"
# The suite exercises the PostgreSQL feed, and stops it before the test database is
# dropped (conftest.py); a site's own suite needs neither.
HYBRID_SESSIONS_FEED_IN_TESTS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The browser tests' live server serves the admin's styles from the apps' static files.
STATIC_URL = "/static/"
LOGGING_CONFIG = None
