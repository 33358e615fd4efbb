"""Settings of the demo site: SQLite, no Redis, every hybrid_sessions face switched on.

For trying the package out on one's own machine, not for deployment: the
secret key is public and DEBUG is on.

Environment variables:

- ``DEMO_SESSION_ENGINE``: the session engine, by short name (``hybrid``, the default;
  ``hybrid-redis``, ``db``, ``cache``, ``signed_cookies``; see ``demo/engines.py``) or
  by the dotted path of any ``SESSION_ENGINE``. ``cache`` and ``hybrid-redis`` need
  Redis at ``DEMO_REDIS_URL``. An unknown value fails the ``demo.E001`` system check.
- ``DEMO_REDIS_URL``: a Redis URL (default ``redis://127.0.0.1:6379/0``); used only by
  engines that need Redis.
- ``DEMO_REDIS_KEY_PREFIX``: a prefix for the demo's Redis keys (default none).
- ``DEMO_DATABASE``: the SQLite file (default ``testproject/db.sqlite3``).
"""

from __future__ import annotations

import os
from pathlib import Path

from demo import engines

BASE_DIR = Path(__file__).resolve().parent.parent

# A fixed, public key: fine for a local demo, never for a real site.
SECRET_KEY = os.environ.get(
    "DEMO_SECRET_KEY", "demo-only-insecure-secret-key-do-not-deploy-0123456789abcdefghijklmn"
)
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before hybrid_sessions, so the demo's templates win over the package's.
    "demo",
    "hybrid_sessions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Django's SessionMiddleware, sending the hybrid's signed cookie (and, when a site
    # opts in, handing the client's IP address and User-Agent to the engine).
    "hybrid_sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

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
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}

DEMO_SESSION_ENGINE = os.environ.get("DEMO_SESSION_ENGINE", engines.DEFAULT)
# An unknown name runs nothing: the default engine stands in until the demo.E001
# check, which runs before the server starts, stops with the list of choices.
_engine = engines.resolve(DEMO_SESSION_ENGINE) or engines.CHOICES[engines.DEFAULT]
SESSION_ENGINE = _engine.path
globals().update(_engine.settings)
REDIS_URL = os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": (
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("DEMO_REDIS_KEY_PREFIX", ""),
        }
        if _engine.needs_redis
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Personal data, off by default in the package: on here so the sessions page and
# the admin show where each session comes from.
HYBRID_SESSIONS_TRACK_IP_ADDRESS = True
HYBRID_SESSIONS_TRACK_USER_AGENT = True
# DEMO_ENCRYPT_SERVER_DATA=1: the server's copy of each session is encrypted under a key
# only its cookie holds; the admin then shows sizes and metadata, not data.
HYBRID_SESSIONS_ENCRYPT_SERVER_DATA = os.environ.get("DEMO_ENCRYPT_SERVER_DATA", "") == "1"
# The "your sessions" page extends the demo's layout (menu, messages).
HYBRID_SESSIONS_BASE_TEMPLATE = "demo/base.html"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
