"""What a store does for the hybrid engine: every write and end is told, at once.

The hybrid engine serves cookies without asking the server while nothing newer
is known. A store it uses is built with ``announce`` set: each write and each
end is then recorded in this process's
:data:`~hybrid_sessions.knowledge.knowledge` the moment it succeeds, and
published on the store's feed (see :mod:`hybrid_sessions.feeds`) in the same
round trip, so the other processes learn it too. Stores of the plain ``db``
and ``cache`` engines announce nothing: every request reads the server anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import metrics
from ..feeds import Feed, message
from ..knowledge import knowledge
from ..signals import current_revocation_path, emit, session_revoked
from .base import FeedMode


class AnnouncingStore:
    """Mixed into a store class; ``announce=None`` (the default) turns it all off."""

    def __init__(self, announce: FeedMode | None = None) -> None:
        self.announce = announce
        self._feed: Feed | None = None

    def _learn(self, digest: str, version: int) -> None:
        if self.announce is not None:
            knowledge.learn(digest, version)

    def feed(self) -> Feed | None:
        """This store's feed, or ``None`` when it has none (or announces nothing)."""
        return None

    def _publishes(self, versions: bool) -> bool:
        """Whether a write publishes this kind of message: new versions, or ends."""
        mode = self.announce
        if mode is None or mode == "off":
            return False
        return mode == "versions" or not versions

    def _report_ends(
        self, digests: Sequence[str | bytes], user_id: str | None = None, started: float = 0.0
    ) -> None:
        """These sessions ended, by a call that started at ``started`` (``time.monotonic()``).

        Every store (announcing or not) calls it for each end, so the signal and
        the metrics cover every engine; with no receiver and no recorder it
        costs two checks.
        """
        recorder = metrics.recorder
        if not digests or (recorder is None and not session_revoked.receivers):
            return
        ended = tuple(d.decode() if isinstance(d, bytes) else d for d in digests)
        path = current_revocation_path()
        if session_revoked.receivers:
            # Robust: a failing receiver must not leave a bulk end half done.
            emit(session_revoked, type(self), robust=True, digests=ended, path=path,
                 user_id=user_id)
        if recorder is not None:
            recorder.counter(metrics.REVOCATIONS, len(ended), path=path)
            feed = self.feed() if self.announce not in (None, "off") else None
            if feed is not None and started:
                metrics.echo.sent(feed.name, (message(d, 0) for d in ended), started)
