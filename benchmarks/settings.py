"""Settings of one case per process, ``HYBRID_SESSIONS_BENCH_CASE`` (default ``none``).

The stores are the benchmarks' own: the database ``hybrid_sessions_bench``, Redis database 8
(keys prefixed ``hybrid_sessions_bench``), a temporary SQLite file;
``HYBRID_SESSIONS_BENCH_{DB_NAME,REDIS,SQLITE,PG_HOST,MARIADB_HOST}`` point them elsewhere.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from benchmarks.cases import BY_NAME

_env = os.environ.get

CASE = BY_NAME[_env("HYBRID_SESSIONS_BENCH_CASE", "none")]
DB_NAME = _env("HYBRID_SESSIONS_BENCH_DB_NAME", "hybrid_sessions_bench")
REDIS_URL = _env("HYBRID_SESSIONS_BENCH_REDIS", "redis://127.0.0.1:6379/8")
KEY_PREFIX = "hybrid_sessions_bench"

SECRET_KEY = "hybrid-sessions-benchmarks-" + "k" * 40
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

_DATABASES: dict[str, dict[str, Any]] = {
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _env("HYBRID_SESSIONS_BENCH_SQLITE")
        or os.path.join(tempfile.gettempdir(), "hybrid_sessions_bench.sqlite3"),
        "OPTIONS": {"timeout": 20},  # two gunicorn workers share the file
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": "postgres",
        "HOST": _env("HYBRID_SESSIONS_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": "5432",
        "CONN_MAX_AGE": None,
    },
    "mariadb": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": DB_NAME,
        "USER": "root",
        "PASSWORD": "",
        "HOST": _env("HYBRID_SESSIONS_BENCH_MARIADB_HOST", "127.0.0.1"),
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
        "CONN_MAX_AGE": None,
    },
}
# The case's database is the default one; the others are there for the harness to prepare.
DATABASES = {"default": _DATABASES[CASE.database or "sqlite"], **_DATABASES}

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": KEY_PREFIX,
    },
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "hybrid_sessions",
]
# Our middleware for every engine: it is Django's, and also sends the hybrid's signed cookie.
MIDDLEWARE = ["hybrid_sessions.middleware.SessionMiddleware"] if CASE.engine else []
ROOT_URLCONF = "benchmarks.app"
TEMPLATES: list[dict[str, Any]] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None
globals().update(CASE.session_settings())
