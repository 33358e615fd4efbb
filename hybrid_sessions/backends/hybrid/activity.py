"""The hybrid's idle and absolute timeouts: the cookie carries the session's times.

With a timeout on, every cookie carries the session's start and last recorded
activity (claims ``st`` and ``la``). :func:`~.cookie.parse` refuses a cookie
whose times are over, as an expired one, in every process and without a round
trip; a cookie read from the server is held to the record's times
(:mod:`hybrid_sessions.backends.activity`). ``la`` moves only when the server
recorded activity (a write, or the touch of a refresh): re-issuing a cookie
never extends a session.
"""

from __future__ import annotations

from ...stores.base import StoredSession
from ...timeouts import ACTIVE_CLAIM, START_CLAIM, epoch, now, timeouts
from .cookie import Parsed


class CookieTimes:
    """Mixed into the hybrid ``SessionStore``."""

    _started_at: float | None
    _active_at: float | None

    def _asks_for_activity(self, parsed: Parsed, vouched: bool) -> bool:
        """Whether the timeouts need the server's times though the cookie could be served.

        A cookie issued while they were off carries no times. One due to record
        activity is served only where a live feed confirms its version: the touch
        re-issues it, and a copy trusted on the window's word alone must not get
        a fresh ``iat`` (see ``SessionStore.cookie_value``).
        """
        limits = timeouts()
        if not limits.on:
            return False
        if parsed.started_at is None:
            return True
        return not vouched and limits.refresh_due(parsed.active_at, now())

    def _stale_times(self, parsed: Parsed, record: StoredSession) -> bool:
        """Whether the cookie's times lag the record's: the response carries the current ones."""
        if not timeouts().on or record.last_activity is None:
            return False
        return parsed.active_at is None or epoch(record.last_activity) - parsed.active_at >= 1

    def _time_claims(self) -> dict[str, int] | None:
        """The claims of the session's start and last recorded activity, with the timeouts on."""
        started, active = self._started_at, self._active_at
        if not timeouts().on or started is None or active is None:
            return None
        return {START_CLAIM: int(started), ACTIVE_CLAIM: int(active)}
