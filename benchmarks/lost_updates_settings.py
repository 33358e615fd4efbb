"""Settings of the lost-updates benchmark: one database per run, chosen by environment.

``LOST_UPDATES_DB`` is ``sqlite``, ``postgres`` or ``mariadb``; the SQL databases
are the dedicated ``bench_lost_updates`` (created by the benchmark if missing),
SQLite is the file ``LOST_UPDATES_SQLITE_PATH``. Redis is
``LOST_UPDATES_REDIS`` (default ``redis://127.0.0.1:6379/13``), keys prefixed
``lost-updates``.
"""

from __future__ import annotations

import os
import tempfile

DB = os.environ.get("LOST_UPDATES_DB", "sqlite")
SQLITE_PATH = os.environ.get(
    "LOST_UPDATES_SQLITE_PATH", os.path.join(tempfile.gettempdir(), "bench_lost_updates.sqlite3")
)
REDIS_URL = os.environ.get("LOST_UPDATES_REDIS", "redis://127.0.0.1:6379/13")
NAME = "bench_lost_updates"

SECRET_KEY = "lost-updates-benchmark-" + "x" * 40
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

_DATABASES = {
    # A file, not :memory:, so that threads and processes share it; a generous
    # busy timeout because SQLite lets one writer at a time and makes the others wait.
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        "OPTIONS": {"timeout": 20},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": NAME,
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    },
    "mariadb": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": NAME,
        "USER": "root",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
    },
}
DATABASES = {"default": _DATABASES[DB]}

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "lost-updates",
    }
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "hybrid_sessions",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None
