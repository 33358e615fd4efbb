"""Django's session middleware, handing the client's IP address and User-Agent to the engine.

Both are personal data, so nothing is passed unless the site opts in with
``HYBRID_SESSIONS_TRACK_IP_ADDRESS`` and/or ``HYBRID_SESSIONS_TRACK_USER_AGENT``.
The IP address is ``REMOTE_ADDR``, never a forwarded header, since an
``X-Forwarded-For`` value is whatever the client chose to send. Behind a
reverse proxy, let one component that knows the proxy rewrite ``REMOTE_ADDR``
(see docs/operations.rst).
"""

from __future__ import annotations

import inspect
import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest

from .conf import conf

__all__ = ["SessionMiddleware"]

#: The longest User-Agent kept; the database column has the same length.
MAX_USER_AGENT_LENGTH = 512


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
    return value[:MAX_USER_AGENT_LENGTH] or None


class SessionMiddleware(DjangoSessionMiddleware):
    """Replace ``django.contrib.sessions.middleware.SessionMiddleware`` with this one."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        self._accepts = _accepted_kwargs(self.SessionStore)

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
        request.session = self.SessionStore(session_key, **self.client_metadata(request))
