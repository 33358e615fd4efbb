"""Session cookies as browsers see them: the size of a ``Set-Cookie``, and refused cookies.

Every engine measures the cookie it is about to send against
``HYBRID_SESSIONS_COOKIE_MAX_BYTES`` exactly as ``SessionMiddleware`` will build
it, and logs a refused cookie where Django logs suspicious sessions.
"""

from __future__ import annotations

import logging
import re
import time
from http.cookies import SimpleCookie
from typing import Any

from django.conf import settings
from django.utils.http import http_date

from . import metrics
from .conf import SettingsCache, conf
from .exceptions import ExpiredToken, TokenError
from .signals import emit, token_refused

__all__ = ["cookie_budget", "log_rejected", "set_cookie_size"]

security_logger = logging.getLogger("django.security.SuspiciousSession")

#: Characters that ``http.cookies`` never quotes in a value (all a token uses).
_PLAIN_COOKIE_VALUE = re.compile(r"[A-Za-z0-9._-]*")


class CookieSettings:
    """The ``SESSION_COOKIE_*`` settings and the budget, kept until a setting changes."""

    __slots__ = ("attributes", "budget", "cookie")

    def __init__(self) -> None:
        self.budget = conf.COOKIE_MAX_BYTES
        self.cookie = (
            settings.SESSION_COOKIE_PATH,
            settings.SESSION_COOKIE_DOMAIN,
            settings.SESSION_COOKIE_SECURE,
            settings.SESSION_COOKIE_HTTPONLY,
            settings.SESSION_COOKIE_SAMESITE,
        )
        #: Bytes of the attributes, by the number of digits of ``Max-Age``.
        self.attributes: dict[int, int] = {}


_cookie_settings = SettingsCache(CookieSettings)


def log_rejected(exc: TokenError, sender: Any = None) -> None:
    """Log a refused session cookie where Django logs suspicious sessions.

    An expired cookie is routine (a browser kept a session cookie): ``INFO``.
    Anything else was not minted by this site for this cookie: ``WARNING``.
    The token itself is never logged. ``sender`` (the engine's class) is sent
    :data:`~hybrid_sessions.signals.token_refused`.
    """
    level = logging.INFO if isinstance(exc, ExpiredToken) else logging.WARNING
    reason = type(exc).__name__
    security_logger.log(level, "Session cookie rejected (%s): %s", reason, exc)
    if token_refused.receivers:
        emit(token_refused, sender, reason=reason, error=exc)
    if metrics.recorder is not None:
        metrics.recorder.counter(metrics.TOKENS_REFUSED, reason=reason)


def _cookie_string(name: str, value: str, max_age: int | None) -> str:
    """The cookie as ``HttpResponse.set_cookie`` builds it for ``SessionMiddleware``."""
    path, domain, secure, httponly, samesite = _cookie_settings().cookie
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    if max_age is not None:
        morsel["expires"] = http_date(time.time() + max_age)
        morsel["max-age"] = int(max_age)
    if path is not None:
        morsel["path"] = path
    if domain is not None:
        morsel["domain"] = domain
    if secure:
        morsel["secure"] = True
    if httponly:
        morsel["httponly"] = True
    if samesite:
        morsel["samesite"] = samesite
    return morsel.OutputString()


def cookie_budget() -> int:
    """``HYBRID_SESSIONS_COOKIE_MAX_BYTES``, cached like the rest of the configuration."""
    return _cookie_settings().budget


def set_cookie_size(name: str, value: str, *, max_age: int | None) -> int:
    """Bytes of the cookie (name, value, attributes) ``SessionMiddleware`` would set.

    Built the way ``HttpResponse.set_cookie`` builds it from the ``SESSION_COOKIE_*``
    settings, so the figure is what browsers measure against their 4096-byte
    limit. The attributes' length depends only on the settings and the number of
    digits of ``Max-Age`` (``expires`` is always 29 characters), so it is cached.
    """
    if not _PLAIN_COOKIE_VALUE.fullmatch(value):
        return len(_cookie_string(name, value, max_age).encode())
    digits = -1 if max_age is None else len(str(int(max_age)))
    attributes = _cookie_settings().attributes
    size = attributes.get(digits)
    if size is None:
        size = attributes[digits] = len(_cookie_string("n", "v", max_age).encode()) - 3
    return len(name.encode()) + 1 + len(value) + size
