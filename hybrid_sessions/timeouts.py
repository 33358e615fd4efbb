"""Idle and absolute timeouts: when a session is over, however long its cookie lives.

OWASP's session management guidance asks for both. ``HYBRID_SESSIONS_IDLE_TIMEOUT``
ends a session unused for that many seconds; ``HYBRID_SESSIONS_ABSOLUTE_TIMEOUT``
ends it that long after it started, however active it was. Both are off by
default. A key change (``cycle_key()``, called by ``login()``) keeps the start:
it is the same session under a new key, and rotating keys must not extend it.

Activity is recorded when a request reads the session and the last recording
is at least ``HYBRID_SESSIONS_ACTIVITY_INTERVAL`` old: the response then
touches the record (its data is not written) and re-issues a cookie that
carries the times. So an active session never idles out, yet at most one
request per interval pays for it.

Every check reads :func:`now`, and the engines compare it with the times the
store recorded (server engines) or the times signed into the cookie (the
cookie engines, and the hybrid while it serves its cookie): both are the
clocks of the site's own servers.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.utils import timezone

from .conf import SettingsCache, conf

__all__ = [
    "ABSOLUTE", "ACTIVE_CLAIM", "IDLE", "START_CLAIM", "Timeouts", "epoch", "now", "timeouts",
]

#: Why a session timed out.
IDLE, ABSOLUTE = "idle", "absolute"
#: The token claims (seconds since the epoch) of a session's start and last recorded activity.
START_CLAIM, ACTIVE_CLAIM = "st", "la"


def now() -> float:
    """The clock every timeout is measured with (seconds since the epoch)."""
    return time.time()


def epoch(value: datetime) -> float:
    """Seconds since the epoch; a naive datetime is in the current time zone (no ``USE_TZ``)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = timezone.make_aware(value)
    return value.timestamp()


class Timeouts:
    """The three settings, read once and kept until a setting changes."""

    __slots__ = ("absolute", "idle", "interval", "on")

    def __init__(self) -> None:
        idle, absolute = conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT
        self.idle = None if idle is None else float(idle)
        self.absolute = None if absolute is None else float(absolute)
        self.interval = float(conf.ACTIVITY_INTERVAL)
        self.on = idle is not None or absolute is not None

    def expired(self, started: float | None, active: float | None, at: float) -> str | None:
        """Why a session that started at ``started`` and was last active at ``active`` is over.

        ``None`` while it is not (or a time is unknown, or the timeouts are off).
        """
        if self.absolute is not None and started is not None and at - started >= self.absolute:
            return ABSOLUTE
        if self.idle is not None and active is not None and at - active >= self.idle:
            return IDLE
        return None

    def refresh_due(self, active: float | None, at: float) -> bool:
        """Whether a request at ``at`` should record activity (only the idle timeout needs it)."""
        return self.idle is not None and active is not None and at - active >= self.interval

    def cap(self, expires_at: datetime, started: float, at: float) -> datetime:
        """``expires_at``, brought forward to when a session written at ``at`` times out.

        The record then expires in the store on time by itself: Redis drops it,
        and listings, the admin and ``clearsessions`` treat it as expired.
        """
        deadlines = [epoch(expires_at)]
        if self.idle is not None:
            deadlines.append(at + self.idle)
        if self.absolute is not None:
            deadlines.append(started + self.absolute)
        excess = deadlines[0] - min(deadlines)
        return expires_at - timedelta(seconds=excess) if excess > 0 else expires_at


#: The timeouts in force, rebuilt whenever a setting changes.
timeouts = SettingsCache(Timeouts)
