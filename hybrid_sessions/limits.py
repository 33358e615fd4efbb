"""``HYBRID_SESSIONS_MAX_PER_USER``: a login beyond the limit ends the oldest sessions.

Connected to ``user_logged_in``. The new session is not linked to the user
until the response saves it, so the limit counts the user's other sessions and
leaves room for this one: with a limit of 3, a fourth login ends the least
recently active of the three others. Sessions end through the store, so the
devices they belonged to are signed out on their next request.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest

from . import api
from .conf import conf
from .exceptions import RevocationNotSupported, SessionStoreUnavailable
from .signals import revocation_path

logger = logging.getLogger("hybrid_sessions")

__all__ = ["enforce_session_limit"]


@revocation_path("limit")
def enforce_session_limit(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> int:
    """End the user's least recently active sessions beyond the limit; return how many."""
    try:
        limit = conf.MAX_PER_USER
    except (TypeError, ValueError):
        return 0  # reported by the system check hybrid_sessions.E014
    if not limit or limit < 1 or request is None:
        return 0
    try:
        current = api.current_digest(request)
        others = [info for info in api.list_sessions(user) if info.digest != current]
        # Newest activity first: what is past the first ``limit - 1`` goes.
        ended = [info.digest for info in others[max(limit - 1, 0) :]]
        return api.end_sessions(ended) if ended else 0
    except RevocationNotSupported:
        return 0
    except SessionStoreUnavailable:
        # The login itself must not fail because old sessions could not be counted.
        logger.warning("Could not apply HYBRID_SESSIONS_MAX_PER_USER: the store is unavailable.")
        return 0
