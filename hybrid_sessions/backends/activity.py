"""Idle and absolute timeouts on a server record (see :mod:`hybrid_sessions.timeouts`).

The store keeps each session's start (``created_at``, kept across key changes)
and last recorded activity; every read checks them, and a session that timed
out is ended through the store, as a logout would be, so the hybrid's feed
tells every process. Every write records activity and brings the record's
expiry forward to when it would time out, so the store drops it on time.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..exceptions import SessionStoreUnavailable
from ..signals import revocation_path
from ..stores.base import StoredSession
from ..stores.operations import Flow, Pop, call
from ..timeouts import epoch, now, timeouts

logger = logging.getLogger("hybrid_sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")


class Activity:
    """Mixed into :class:`~hybrid_sessions.backends.base.ServerSessionBase`."""

    modified: bool
    #: The session's start and last recorded activity (seconds since the epoch), if known.
    _started_at: float | None = None
    _active_at: float | None = None
    #: The start a new key keeps (``cycle_key()``), until the new record is written.
    _carried: datetime | None = None
    #: Whether this request records activity: its save is a touch, not a write.
    _refresh = False

    def _timed_out(self, record: StoredSession) -> str | None:
        """Why the store's record is over by the timeouts (idle, absolute), or ``None``."""
        limits = timeouts()
        if not limits.on or record.created_at is None or record.last_activity is None:
            return None
        return limits.expired(epoch(record.created_at), epoch(record.last_activity), now())

    def _end_flow(self, key: str, reason: str) -> Flow[None]:
        """End a timed-out session through the store, as a logout would: every process hears."""
        security_logger.info("Session ended: %s timeout.", reason)
        try:
            with revocation_path("timeout"):
                yield from call(Pop(key))
        except SessionStoreUnavailable as exc:
            # Its record expires by itself (see ``Timeouts.cap``); it is not served either way.
            logger.error("Session store unavailable, timed-out session not removed: %s", exc)
        return None

    def _note_activity(self, record: StoredSession) -> None:
        """Keep the record's times; a session due to record activity is saved (a touch)."""
        if not timeouts().on or record.created_at is None or record.last_activity is None:
            return
        self._started_at = epoch(record.created_at)
        self._active_at = epoch(record.last_activity)
        self._due_for_activity()

    def _due_for_activity(self) -> None:
        """Mark a session whose last recorded activity is an interval old for saving.

        Its data is unchanged, so the save only touches the record (and extends its
        expiry, as ``SESSION_SAVE_EVERY_REQUEST`` would), whichever middleware saves it.
        """
        if timeouts().refresh_due(self._active_at, now()):
            self._refresh = self.modified = True

    def _start(self) -> None:
        """A record is about to be created: a new session starts now, a new key keeps its start."""
        self._started_at = now() if self._carried is None else epoch(self._carried)

    def _written_expiry(self, expires_at: datetime) -> datetime:
        """The expiry a write gives the record: no later than when it would time out.

        A write is activity, recorded now.
        """
        limits = timeouts()
        if not limits.on:
            return expires_at
        at = self._active_at = now()
        return limits.cap(expires_at, at if self._started_at is None else self._started_at, at)
