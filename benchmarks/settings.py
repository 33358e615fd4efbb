"""Django settings of the benchmarks: every store the cases run on, side by side.

One settings module serves both halves of the harness:

- in process, the harness switches cases between batches: the router below
  sends the session models to the case's database alias, and the case's
  session settings are applied with ``override_settings``;
- under gunicorn, ``HYBRID_SESSIONS_BENCH_CASE`` names the one case the server
  runs, with Django's own, unmodified ``SessionMiddleware`` (or none at all for
  the no-session baseline).

The stores are dedicated to benchmarks: the ``bench`` database on PostgreSQL and
MariaDB, Redis database 8 and a temporary SQLite file. Environment variables
``HYBRID_SESSIONS_BENCH_{SQLITE,PG_HOST,PG_PORT,MARIADB_HOST,MARIADB_PORT,REDIS}``
point them elsewhere.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from benchmarks.cases import BY_NAME

_env = os.environ.get

CASE = BY_NAME[_env("HYBRID_SESSIONS_BENCH_CASE", "django.db.sqlite")]
SQLITE_PATH = _env("HYBRID_SESSIONS_BENCH_SQLITE") or os.path.join(
    tempfile.gettempdir(), f"hybrid_sessions_bench_{os.getpid()}.sqlite3"
)
REDIS_URL = _env("HYBRID_SESSIONS_BENCH_REDIS", "redis://127.0.0.1:6379/8")

SECRET_KEY = "hybrid-sessions-benchmarks-" + "k" * 40
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        # Two gunicorn workers write to one file: wait for the lock, as a site would.
        "OPTIONS": {"timeout": 20},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "bench",
        "USER": "postgres",
        "HOST": _env("HYBRID_SESSIONS_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": _env("HYBRID_SESSIONS_BENCH_PG_PORT", "5432"),
        "CONN_MAX_AGE": None,
    },
    "mariadb": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "bench",
        "USER": "root",
        "PASSWORD": "",
        "HOST": _env("HYBRID_SESSIONS_BENCH_MARIADB_HOST", "127.0.0.1"),
        "PORT": _env("HYBRID_SESSIONS_BENCH_MARIADB_PORT", "3306"),
        "OPTIONS": {"charset": "utf8mb4"},
        "CONN_MAX_AGE": None,
    },
}
DATABASE_ROUTERS = ["benchmarks.routing.CaseRouter"]

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "bench",
    },
}
SESSION_CACHE_ALIAS = "default"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "hybrid_sessions",
]
# Only what the measurement needs: the session middleware, or nothing for the baseline.
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"] if CASE.engine else []
ROOT_URLCONF = "benchmarks.app"
TEMPLATES: list[dict[str, Any]] = []
if CASE.engine:
    SESSION_ENGINE = CASE.engine
for _name, _value in CASE.settings.items():
    globals()[_name] = _value
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None
