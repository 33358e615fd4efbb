"""Every session of a store, as operators see it: state, storage, paging, masked data.

The admin, ``hybrid_sessions_purge`` and ``hybrid_sessions_stats`` share these
words and helpers, so "signed in", "in the cookie" and "masked" mean the same
thing on every screen and in every report, whichever store is behind the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.views.debug import SafeExceptionReporterFilter

from .conf import SettingsCache, conf
from .stores.base import ServerStore, SessionFilter, SessionInfo

__all__ = [
    "STATES",
    "STORAGES",
    "decode_data",
    "filter_for",
    "is_masked",
    "iter_sessions",
    "masked_items",
    "state",
    "storage",
]

State = Literal["signed_in", "anonymous", "expired"]
Storage = Literal["cookie", "server"]

STATES: dict[str, Any] = {
    "signed_in": _("Signed in"),
    "anonymous": _("Anonymous"),
    "expired": _("Expired"),
}
STORAGES: dict[str, Any] = {
    "server": _("Server"),
    "cookie": _("Cookie and server"),
}

#: What a masked value shows instead; the same string Django's error pages use.
MASK = SafeExceptionReporterFilter.cleansed_substitute
#: Always masked, whatever the pattern: it authenticates the session.
ALWAYS_MASKED = frozenset({"_auth_user_hash"})
#: Django's own session keys that say who and how, not secrets: never masked, although
#: Django's pattern (``AUTH``) matches them, since the admin shows the user anyway.
NEVER_MASKED = frozenset({"_auth_user_id", "_auth_user_backend", "_session_expiry"})


def _inline_limit() -> int | None:
    """Stored sizes up to which the hybrid's cookie carries a copy (``None``: not the hybrid)."""
    if settings.SESSION_ENGINE != "hybrid_sessions.backends.hybrid":
        return None
    return conf.INLINE_MAX_BYTES


def storage(info: SessionInfo) -> Storage:
    """``"cookie"`` when the hybrid's cookie carries the whole session, else ``"server"``.

    The server holds every session; a hybrid session small enough to fit the
    inline budget also rides in its cookie. The one place that maps what a store
    reports to what an operator reads.
    """
    limit = _inline_limit()
    if not info.data_on_server:
        return "cookie"  # a record from before the server held every session
    return "cookie" if limit is not None and info.size <= limit else "server"


def state(info: SessionInfo, now: datetime | None = None) -> State:
    """``expired``, else ``signed_in`` or ``anonymous``."""
    if info.expires_at <= (now or timezone.now()):
        return "expired"
    return "signed_in" if info.user_id is not None else "anonymous"


def filter_for(
    state: str | None = None,
    storage: str | None = None,
    *,
    user_ids: tuple[str, ...] | None = None,
    inactive_before: datetime | None = None,
) -> SessionFilter:
    """The store filter for a state and a storage as named above (``None``: any)."""
    expired: bool | None = None
    signed_in: bool | None = None
    if state == "expired":
        expired = True
    elif state in ("signed_in", "anonymous"):
        expired, signed_in = False, state == "signed_in"
    limit = _inline_limit()
    max_size = min_size = None
    if storage == "cookie":
        max_size = -1 if limit is None else limit  # no cookie copies but the hybrid's
    elif storage == "server" and limit is not None:
        min_size = limit + 1
    return SessionFilter(
        expired=expired,
        user_ids=user_ids,
        signed_in=signed_in,
        inactive_before=inactive_before,
        max_size=max_size,
        min_size=min_size,
    )


def iter_sessions(
    store: ServerStore, filters: SessionFilter, batch_size: int = 1000
) -> Iterator[list[SessionInfo]]:
    """Every matching session, a page at a time: memory stays flat on any number."""
    cursor: str | None = None
    while True:
        page, cursor = store.list_sessions(cursor, batch_size, filters=filters)
        if page:
            yield page
        if cursor is None:
            return


# -- data -------------------------------------------------------------------------------------


def decode_data(data: bytes | memoryview | None) -> dict[str, Any] | None:
    """The stored data as a dict, with the site's ``SESSION_SERIALIZER``; ``None`` if absent."""
    if data is None:
        return None
    serializer = import_string(settings.SESSION_SERIALIZER)()
    decoded = serializer.loads(bytes(data))
    if not isinstance(decoded, dict):
        raise ValueError(f"expected a dict, found {type(decoded).__name__}")
    return decoded


def _masked_pattern() -> re.Pattern[str]:
    pattern = conf.ADMIN_MASKED_KEYS
    if pattern is None:
        return SafeExceptionReporterFilter.hidden_settings
    return re.compile(pattern, re.IGNORECASE)


_pattern = SettingsCache(_masked_pattern)


def is_masked(key: str) -> bool:
    """Whether the admin hides the value under ``key``."""
    if key in ALWAYS_MASKED:
        return True
    return key not in NEVER_MASKED and bool(_pattern().search(key))


def _cleansed(value: Any) -> Any:
    """``value`` with masked keys of nested dicts hidden, as Django's error pages do."""
    if isinstance(value, dict):
        return {k: MASK if is_masked(str(k)) else _cleansed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cleansed(v) for v in value)
    return value


def masked_items(data: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """``(key, value, masked)`` for each key, sorted; masked values replaced by the mask."""
    return [
        (key, MASK, True) if is_masked(key) else (key, _cleansed(value), False)
        for key, value in sorted(data.items())
    ]
