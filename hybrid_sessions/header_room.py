"""The room the session cookie has in the request the browser sends next.

Front servers refuse a request whose headers outgrow their buffers (uWSGI's
``buffer-size``: 4096 bytes for all of them by default; gunicorn and nginx: 8 KB
a line), and the browser sends the session cookie beside every other cookie of
the site. A session cookie that pushes the request over that limit locks the
user out until it expires. So, before the session is saved, the middleware
works out how many bytes the cookie's value may take within
``HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES``: this request's line and headers,
a margin for the headers a later request adds, and the cookies the browser will
hold once this response is applied. The hybrid engine spills to fit it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http.cookies import Morsel
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.http import parse_http_date_safe

from .conf import SettingsCache, conf

__all__ = ["VARYING_HEADERS_MARGIN", "header_room"]

#: Bytes kept for headers a later request may carry that this one lacks. A form
#: POST adds ``Origin`` (about 40 bytes with its CRLF), ``Content-Type`` (49),
#: ``Content-Length`` (about 22) and ``X-CSRFToken`` (79): about 190. The other
#: 320 or so are for a ``Referer`` naming this page, or a longer path than this one.
VARYING_HEADERS_MARGIN = 512
#: ``Cookie: `` and the line's CRLF, and the empty line that ends the headers.
FRAMING = len("Cookie: \r\n") + len("\r\n")
#: The two headers WSGI and ASGI keep without the ``HTTP_`` prefix.
_BODY_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH")


class _Budget:
    """The settings read on every response, kept until a setting changes."""

    __slots__ = ("every_request", "limit", "name")

    def __init__(self) -> None:
        self.limit = conf.REQUEST_HEADERS_MAX_BYTES
        self.name: str = settings.SESSION_COOKIE_NAME
        self.every_request = bool(settings.SESSION_SAVE_EVERY_REQUEST)


_budget = SettingsCache(_Budget)


def header_room(request: HttpRequest, response: HttpResponseBase, session: Any) -> int | None:
    """Bytes the session cookie's value may take in the next request (maybe fewer than 0).

    ``None`` when there is no budget, or when the response cannot carry a new
    session cookie (the session was never used and is not saved on every request).
    """
    budget = _budget()
    if budget.limit is None or not (session.accessed or budget.every_request):
        return None
    used = VARYING_HEADERS_MARGIN + FRAMING + _request_line(request) + _headers(request.META)
    used += _other_cookies(request.COOKIES, response.cookies, budget.name)
    return budget.limit - used - len(budget.name) - 1  # and "name=" of our own cookie


def _request_line(request: HttpRequest) -> int:
    """``GET /path?query HTTP/1.1`` and its CRLF."""
    protocol = request.META.get("SERVER_PROTOCOL") or "HTTP/1.1"  # absent under ASGI
    return len(request.method or "") + len(request.get_full_path()) + len(protocol) + 4


def _headers(meta: Mapping[str, Any]) -> int:
    """The request's header lines but ``Cookie``, as ``Name: value`` and CRLF each."""
    size = 0
    for key, value in meta.items():
        if key.startswith("HTTP_"):
            if key != "HTTP_COOKIE" and isinstance(value, str):
                size += len(key) - 1 + len(value)  # the name is len(key) - 5; ": " and CRLF
        elif key in _BODY_HEADERS and value and isinstance(value, str):
            size += len(key) + 4 + len(value)
    return size


def _other_cookies(sent: Mapping[str, str], set_now: Mapping[str, Morsel[Any]], ours: str) -> int:
    """``name=value`` and the ``; `` after it, for each cookie but ours the browser will send.

    The cookies this request carried, with those the response sets replacing or
    adding to them and those it deletes dropped.
    """
    cookies: Mapping[str, str] = sent
    if set_now:
        merged = dict(sent)
        for name, morsel in set_now.items():
            if _deletes(morsel):
                merged.pop(name, None)
            else:
                merged[name] = morsel.coded_value
        cookies = merged
    return sum(len(name) + len(value) + 3 for name, value in cookies.items() if name != ours)


def _deletes(morsel: Morsel[Any]) -> bool:
    """Whether the browser drops the cookie: ``Max-Age`` of 0 or less, else a past ``Expires``."""
    max_age = morsel["max-age"]
    if max_age != "":
        try:
            return int(max_age) <= 0
        except (TypeError, ValueError):
            return False
    expires = morsel["expires"]
    if isinstance(expires, int):  # http.cookies: seconds from now
        return expires <= 0
    if not expires:
        return False
    at = parse_http_date_safe(str(expires))
    return at is not None and at <= time.time()
