"""Django's session middleware, with the hybrid's cookie and the client's metadata.

The hybrid engine's cookie is a signed copy of the session, not its
``session_key``: this middleware sends it (Django's would send the bare key,
which works but costs every request a round trip; check ``hybrid_sessions.W018``
says so). It also marks unsafe requests, which the hybrid verifies with the
server when no feed vouches for the cookie.

Both are personal data, so nothing is passed unless the site opts in with
``HYBRID_SESSIONS_TRACK_IP_ADDRESS`` and/or ``HYBRID_SESSIONS_TRACK_USER_AGENT``.
The IP address is ``REMOTE_ADDR``, never a forwarded header, since an
``X-Forwarded-For`` value is whatever the client chose to send. Behind a
reverse proxy, let one component that knows the proxy rewrite ``REMOTE_ADDR``
(see docs/operations.rst).

Before the session is saved, the hybrid is told how much room its cookie has
in the headers of the browser's next request (:mod:`.header_room`), so that it
spills rather than push that request past what front servers accept.
"""

from __future__ import annotations

import inspect
import ipaddress
import time
from collections.abc import Awaitable
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

from . import metrics
from .conf import USER_AGENT_MAX_LENGTH, conf
from .header_room import header_room

__all__ = ["SessionMiddleware"]

#: Requests that change nothing (RFC 9110): the others may be guarded.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _accepted_kwargs(session_store: Any) -> frozenset[str]:
    """Which of ``ip_address``/``user_agent`` the engine's constructor takes."""
    try:
        parameters = inspect.signature(session_store).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return frozenset({"ip_address", "user_agent"})
    return frozenset(p.name for p in parameters) & {"ip_address", "user_agent"}


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR`` if it is an IP address (a Unix socket path is not)."""
    value = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(value.strip())) if value else None
    except ValueError:
        return None


def client_user_agent(request: HttpRequest) -> str | None:
    """The ``User-Agent`` header, cut to what the store keeps; ``None`` if absent."""
    value = request.META.get("HTTP_USER_AGENT", "")
    return value[:USER_AGENT_MAX_LENGTH] or None


class SessionMiddleware(DjangoSessionMiddleware):
    """Replace ``django.contrib.sessions.middleware.SessionMiddleware`` with this one."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        self._accepts = _accepted_kwargs(self.SessionStore)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode or metrics.recorder is None:
            return super().__call__(request)
        with metrics.counting_operations() as operations:
            response = super().__call__(request)
        assert isinstance(response, HttpResponseBase)
        _measure(request, response, operations[0])
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if metrics.recorder is None:
            return await super().__acall__(request)
        with metrics.counting_operations() as operations:
            response = await super().__acall__(request)
        _measure(request, response, operations[0])
        return response

    def client_metadata(self, request: HttpRequest) -> dict[str, str | None]:
        """The constructor arguments the engine takes and the settings allow."""
        metadata: dict[str, str | None] = {}
        if "ip_address" in self._accepts and conf.TRACK_IP_ADDRESS:
            metadata["ip_address"] = client_ip(request)
        if "user_agent" in self._accepts and conf.TRACK_USER_AGENT:
            metadata["user_agent"] = client_user_agent(request)
        return metadata

    def process_request(self, request: HttpRequest) -> None:
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        session = self.SessionStore(session_key, **self.client_metadata(request))
        if request.method not in SAFE_METHODS and hasattr(session, "guarded"):
            session.guarded = True
        request.session = session

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        """Django's, then the hybrid's cookie: its value is not its ``session_key``.

        Before Django's saves the session, an engine that can keep its cookie
        within the request-header budget is given the way to work out how much
        room it has, which it does only if it builds a cookie.
        """
        session = getattr(request, "session", None)
        if session is not None and hasattr(session, "measure_header_room"):
            session.measure_header_room(partial(header_room, request, response, session))
        response = super().process_response(request, response)
        cookie_value = getattr(session, "cookie_value", None)
        if session is None or cookie_value is None or response.status_code >= 500:
            return response
        name = settings.SESSION_COOKIE_NAME
        morsel = response.cookies.get(name)
        if morsel is not None and morsel.value and morsel.value == session.session_key:
            value = cookie_value()
            if value is not None:
                morsel.set(name, value, value)
        elif morsel is None and session.needs_cookie() and not session.is_empty():
            # Nothing was saved, but the cookie is stale (another request wrote a
            # newer version) or was a bare key: send the current one.
            value = cookie_value()
            if value is not None:
                self._set_cookie(response, session, value)
        return response

    @staticmethod
    def _set_cookie(response: HttpResponse, session: Any, value: str) -> None:
        if session.get_expire_at_browser_close():
            max_age, expires = None, None
        else:
            max_age = session.get_expiry_age()
            expires = http_date(time.time() + max_age)
        response.set_cookie(
            settings.SESSION_COOKIE_NAME, value, max_age=max_age, expires=expires,
            domain=settings.SESSION_COOKIE_DOMAIN, path=settings.SESSION_COOKIE_PATH,
            secure=bool(settings.SESSION_COOKIE_SECURE),
            httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        patch_vary_headers(response, ("Cookie",))


def _measure(request: HttpRequest, response: HttpResponseBase, operations: int) -> None:
    """The request's store operations and the session cookie it sets, for the metrics."""
    recorder = metrics.recorder
    session = getattr(request, "session", None)
    if recorder is None or session is None:
        return
    engine = metrics.engine_label(type(session))
    recorder.histogram(metrics.STORE_OPERATIONS, operations, engine=engine)
    morsel = response.cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is not None and morsel.value:
        recorder.histogram(
            metrics.COOKIE_BYTES, len(morsel.OutputString().encode()), engine=engine
        )
