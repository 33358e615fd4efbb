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

from ..feeds import Feed
from ..knowledge import knowledge
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
