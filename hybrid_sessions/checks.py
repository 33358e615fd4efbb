"""System checks for mistakes a site can make in its settings (``hybrid_sessions.E001``...)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeGuard

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .conf import DEFAULT_COOKIE_KEYS, conf
from .tokens import HMAC_ALGORITHMS

#: Browsers drop a cookie whose name, value and attributes exceed this (RFC 6265 §6.1).
BROWSER_COOKIE_LIMIT = 4096
ALLOWED_ALGORITHMS = tuple(HMAC_ALGORITHMS)
HYBRID = "hybrid_sessions.backends.hybrid"
FEED_MODES = ("versions", "revocations", "off")
DJANGO_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
#: Below this no session cookie of ours fits: a spilled hybrid cookie with a
#: signed-in user's keys, and its attributes, takes about 450 bytes.
MIN_COOKIE_BUDGET = 512
OUR_ENGINES = ("hybrid_sessions.backends.db", "hybrid_sessions.backends.cache")
#: Django cache backends whose data is private to one process.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _int_setting(name: str, minimum: int, check_id: str) -> list[CheckMessage]:
    try:
        value = getattr(conf, name)
    except (TypeError, ValueError):
        value = None
    if value is None or value < minimum:
        return [
            Error(
                f"HYBRID_SESSIONS_{name} must be an integer of at least {minimum}.",
                id=check_id,
            )
        ]
    return []


def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Every configuration check of the app, in id order."""
    errors: list[CheckMessage] = []
    if conf.JWT_ALGORITHM not in ALLOWED_ALGORITHMS:
        errors.append(
            Error(
                f"HYBRID_SESSIONS_JWT_ALGORITHM is {conf.JWT_ALGORITHM!r}.",
                hint=f"Use one of {', '.join(ALLOWED_ALGORITHMS)}: session tokens are signed "
                "with the site's secret, so only HMAC algorithms apply.",
                id="hybrid_sessions.E001",
            )
        )
    budget_errors = _int_setting("COOKIE_MAX_BYTES", MIN_COOKIE_BUDGET, "hybrid_sessions.E002")
    errors += budget_errors
    if not budget_errors and conf.COOKIE_MAX_BYTES > BROWSER_COOKIE_LIMIT:
        errors.append(
            Warning(
                f"HYBRID_SESSIONS_COOKIE_MAX_BYTES is {conf.COOKIE_MAX_BYTES}, above the "
                f"{BROWSER_COOKIE_LIMIT} bytes browsers accept.",
                hint="Browsers silently drop larger cookies, which logs users out. "
                f"Use at most {BROWSER_COOKIE_LIMIT}.",
                id="hybrid_sessions.W003",
            )
        )
    inline_errors = _int_setting("INLINE_MAX_BYTES", 0, "hybrid_sessions.E004")
    errors += inline_errors
    if not (inline_errors or budget_errors) and conf.INLINE_MAX_BYTES > conf.COOKIE_MAX_BYTES:
        errors.append(
            Error(
                f"HYBRID_SESSIONS_INLINE_MAX_BYTES ({conf.INLINE_MAX_BYTES}) is above "
                f"HYBRID_SESSIONS_COOKIE_MAX_BYTES ({conf.COOKIE_MAX_BYTES}).",
                hint="Inline sessions would be refused at save time; lower the inline budget.",
                id="hybrid_sessions.E005",
            )
        )
    if conf.SPILL_ENGINE not in OUR_ENGINES:
        errors.append(
            Error(
                f"HYBRID_SESSIONS_SPILL_ENGINE is {conf.SPILL_ENGINE!r}.",
                hint=f"Use one of {', '.join(OUR_ENGINES)}.",
                id="hybrid_sessions.E006",
            )
        )
    errors += _cache_checks()
    if conf.ON_STORE_ERROR not in ("raise", "empty"):
        errors.append(
            Error(
                f"HYBRID_SESSIONS_ON_STORE_ERROR is {conf.ON_STORE_ERROR!r}.",
                hint="Use 'raise' (the default) or 'empty'.",
                id="hybrid_sessions.E009",
            )
        )
    errors += _int_setting("REVALIDATE_SECONDS", 0, "hybrid_sessions.E010")
    errors += _int_setting("CLEAR_EXPIRED_BATCH_SIZE", 1, "hybrid_sessions.E011")
    errors += _int_setting("SAVE_MAX_RETRIES", 1, "hybrid_sessions.E012")
    errors += _hybrid_checks()
    errors += _max_per_user_checks()
    errors += _masked_keys_checks()
    errors += _timeout_checks()
    errors += _header_budget_checks()
    errors += _sealing_checks()
    return errors


def _sealing_checks() -> list[CheckMessage]:
    """Encryption of server data asked for where nothing of ours stores it."""
    if not conf.ENCRYPT_SERVER_DATA or settings.SESSION_ENGINE in (*OUR_ENGINES, HYBRID):
        return []
    return [
        Warning(
            "HYBRID_SESSIONS_ENCRYPT_SERVER_DATA is on, but SESSION_ENGINE is "
            f"{settings.SESSION_ENGINE!r}, which it does not apply to.",
            hint="It seals the data of hybrid_sessions.backends.db, .cache and .hybrid; "
            "for the cookie engine, HYBRID_SESSIONS_ENCRYPT encrypts the cookie.",
            id="hybrid_sessions.W026",
        )
    ]


def _hybrid_checks() -> list[CheckMessage]:
    """The hybrid engine's own settings, and the middleware that sends its cookie."""
    if getattr(settings, "SESSION_ENGINE", "") != HYBRID:
        return []
    errors: list[CheckMessage] = []
    if DJANGO_SESSION_MIDDLEWARE in getattr(settings, "MIDDLEWARE", ()):
        errors.append(
            Warning(
                "The hybrid session engine is used with Django's SessionMiddleware.",
                hint="Django's middleware sends the bare session key as the cookie, so every "
                "request reads the session from the server. Use "
                "'hybrid_sessions.middleware.SessionMiddleware' instead: it sends the signed "
                "copy that saves those reads.",
                id="hybrid_sessions.W018",
            )
        )
    if conf.FEED not in FEED_MODES:
        errors.append(
            Error(
                f"HYBRID_SESSIONS_FEED is {conf.FEED!r}.",
                hint=f"Use one of {', '.join(repr(m) for m in FEED_MODES)}.",
                id="hybrid_sessions.E019",
            )
        )
    server_keys = getattr(settings, "HYBRID_SESSIONS_SERVER_KEYS", ())
    if not isinstance(server_keys, list | tuple) or not all(
        isinstance(k, str) for k in server_keys
    ):
        errors.append(
            Error(
                "HYBRID_SESSIONS_SERVER_KEYS must be a list of session keys (strings).",
                id="hybrid_sessions.E017",
            )
        )
    elif set(server_keys) & set(DEFAULT_COOKIE_KEYS):
        errors.append(
            Error(
                "HYBRID_SESSIONS_SERVER_KEYS names keys that request.user needs: "
                + ", ".join(sorted(set(server_keys) & set(DEFAULT_COOKIE_KEYS))) + ".",
                hint="Keeping them off the cookie would cost every request a round trip.",
                id="hybrid_sessions.E017",
            )
        )
    return errors


#: Below this not even a bare spilled hybrid cookie (about 220 characters, signed
#: or encrypted) fits beside the 512 bytes kept for varying headers and the least
#: headers a browser sends.
MIN_REQUEST_HEADERS_BUDGET = 1024


def _header_budget_checks() -> list[CheckMessage]:
    """``HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES``: ``None``, or room for a spilled cookie."""
    value = getattr(settings, "HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES", 4096)
    if value is None or _is_count(value, MIN_REQUEST_HEADERS_BUDGET):
        return []
    return [
        Error(
            f"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES is {value!r}.",
            hint="Use None (no budget) or a number of bytes of at least "
            f"{MIN_REQUEST_HEADERS_BUDGET}: the request headers your front servers accept "
            "(4096 fits uWSGI's default buffer-size; a site served by nginx or gunicorn "
            "alone may use 8190).",
            id="hybrid_sessions.E024",
        )
    ]


def _max_per_user_checks() -> list[CheckMessage]:
    value = getattr(settings, "HYBRID_SESSIONS_MAX_PER_USER", None)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return []
    return [
        Error(
            f"HYBRID_SESSIONS_MAX_PER_USER is {value!r}.",
            hint="Use None (no limit) or an integer of at least 1.",
            id="hybrid_sessions.E014",
        )
    ]


def _masked_keys_checks() -> list[CheckMessage]:
    value = getattr(settings, "HYBRID_SESSIONS_ADMIN_MASKED_KEYS", None)
    if value is None:
        return []
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        return [
            Error(
                f"HYBRID_SESSIONS_ADMIN_MASKED_KEYS is not a regular expression: {exc}.",
                hint="Use a pattern such as 'token|secret|password', or None for Django's.",
                id="hybrid_sessions.E015",
            )
        ]
    return []


def _is_count(value: object, minimum: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _timeout_checks() -> list[CheckMessage]:
    """The idle and absolute timeouts: whole seconds, and activity recorded often enough."""
    errors: list[CheckMessage] = []
    for name, check_id in (("IDLE_TIMEOUT", "E020"), ("ABSOLUTE_TIMEOUT", "E021")):
        value = getattr(settings, f"HYBRID_SESSIONS_{name}", None)
        if value is not None and not _is_count(value, 1):
            errors.append(
                Error(
                    f"HYBRID_SESSIONS_{name} is {value!r}.",
                    hint="Use None (no timeout) or a number of seconds of at least 1.",
                    id=f"hybrid_sessions.{check_id}",
                )
            )
    interval = getattr(settings, "HYBRID_SESSIONS_ACTIVITY_INTERVAL", 60)
    if not _is_count(interval, 0):
        errors.append(
            Error(
                f"HYBRID_SESSIONS_ACTIVITY_INTERVAL is {interval!r}.",
                hint="Use a number of seconds of at least 0.",
                id="hybrid_sessions.E022",
            )
        )
        return errors
    idle = getattr(settings, "HYBRID_SESSIONS_IDLE_TIMEOUT", None)
    if _is_count(idle, 1) and interval >= idle:
        errors.append(
            Warning(
                f"HYBRID_SESSIONS_ACTIVITY_INTERVAL ({interval}) is not shorter than "
                f"HYBRID_SESSIONS_IDLE_TIMEOUT ({idle}).",
                hint="Activity would be recorded too rarely to keep an active session alive: "
                "sessions would end after the idle timeout however they are used. Record it "
                "well within the timeout, for example every tenth of it.",
                id="hybrid_sessions.W023",
            )
        )
    return errors


def _uses_redis_store() -> bool:
    engine = getattr(settings, "SESSION_ENGINE", "")
    if engine == "hybrid_sessions.backends.cache":
        return True
    return engine == "hybrid_sessions.backends.hybrid" and (
        conf.SPILL_ENGINE == "hybrid_sessions.backends.cache"
    )


def _cache_checks() -> list[CheckMessage]:
    if not _uses_redis_store():
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    caches: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {})
    backend = caches.get(alias, {}).get("BACKEND", "")
    if alias not in caches:
        return [
            Error(
                f"SESSION_CACHE_ALIAS {alias!r} is not in CACHES.",
                id="hybrid_sessions.E007",
            )
        ]
    if backend in PROCESS_LOCAL_CACHES:
        return [
            Warning(
                f"The session cache {alias!r} uses {backend}, which is not shared between "
                "processes.",
                hint="Each worker would see its own sessions. Point SESSION_CACHE_ALIAS at a "
                "django-redis cache.",
                id="hybrid_sessions.W008",
            )
        ]
    if not backend.startswith("django_redis."):
        return [
            Error(
                f"The session cache {alias!r} uses {backend}; the Redis session store needs "
                "django-redis.",
                hint="Use BACKEND 'django_redis.cache.RedisCache'.",
                id="hybrid_sessions.E016",
            )
        ]
    return _redis_time_bound_checks(alias)


def _redis_time_bound_checks(alias: str) -> list[CheckMessage]:
    """Warn when a Redis outage would hold a session call beyond one socket timeout.

    Inspects a connection built from the pool's settings, without connecting, so
    URL query options (``?retry_on_timeout=true``) and pool kwargs both count.
    """
    try:
        from django_redis import get_redis_connection

        pool = get_redis_connection(alias).connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
    except Exception:  # e.g. a sharded client: no single pool to inspect
        return []
    retries = int(getattr(getattr(conn, "retry", None), "_retries", 0))
    problems = []
    if conn.socket_timeout is None or conn.socket_connect_timeout is None:
        problems.append("no socket timeout, so a hung server blocks a request indefinitely")
    if retries:
        times = "without limit" if retries < 0 else f"retries: {retries}"
        problems.append(f"connections that retry failed commands ({times})")
    if not problems:
        return []
    return [
        Warning(
            f"The session cache {alias!r} has " + " and ".join(problems) + ".",
            hint="A Redis outage should cost each session call at most one timeout. Set "
            "OPTIONS SOCKET_CONNECT_TIMEOUT and SOCKET_TIMEOUT (for example 0.5 and 1), and "
            "pass no retry, retry_on_timeout or retry_on_error in CONNECTION_POOL_KWARGS or "
            "LOCATION.",
            id="hybrid_sessions.W013",
        )
    ]
