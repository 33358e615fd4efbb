"""What this process knows about sessions' versions, and when it may skip the server.

A hybrid cookie is a signed *cache* of a server record at one version. This
process learns newer versions and ends of sessions from its own writes, from
the reads it makes, and from the feed (:mod:`hybrid_sessions.feeds`) that
carries every other process's. :func:`decide` is the one place that answers
"may this request serve the cookie without asking the server?".

Entries are kept for the trust window (``HYBRID_SESSIONS_REVALIDATE_SECONDS``)
after they were learned, never evicted by traffic: a cookie is trusted only
while it is younger than the window, so any write or end that happened after
the cookie was issued is still known when the cookie comes back.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["GONE", "UNCONFIRMED", "Decision", "Knowledge", "Token", "decide", "knowledge"]

#: The version of a session known to have ended (real versions start at 1).
GONE = 0
#: When a version only heard of on the feed was confirmed: never.
UNCONFIRMED = float("-inf")
#: A cookie issued this far in the future (clock skew between servers) is still fresh.
CLOCK_SKEW = 5.0


def now() -> float:
    """The clock of trust decisions (a function, so tests can move time)."""
    return time.time()


class Knowledge:
    """Latest version (or :data:`GONE`) per session digest, with when it was confirmed.

    A version is *confirmed* by the server itself: this process's own write, or
    a read. A version only *heard of* on the feed makes older cookies ask and
    ends sessions, but vouches for nothing: anyone who can publish on the
    channel can send a message, and it must never make a copy trusted.
    """

    def __init__(self, retention: float = 60.0) -> None:
        self.retention = retention
        # digest -> (version, learned_at, confirmed_at)
        self._entries: dict[str, tuple[int, float, float]] = {}
        self._order: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()

    def lookup(self, digest: str) -> tuple[int, float] | None:
        """``(version, confirmed_at)``, or ``None`` if nothing is known within the window.

        ``confirmed_at`` is ``UNCONFIRMED`` for a version only heard of on the feed.
        """
        entry = self._entries.get(digest)
        if entry is None or now() - entry[1] >= self.retention:
            return None
        return entry[0], entry[2]

    def learn(
        self, digest: str, version: int, at: float | None = None, *, confirmed: bool = True
    ) -> None:
        """Record that ``digest`` was at ``version`` (or :data:`GONE`) at time ``at``.

        An end is final, and an older version never replaces a newer one.
        ``confirmed=False`` (the feed) never confirms a version, not even one
        already known: it only keeps it known.
        """
        at = now() if at is None else at
        with self._lock:
            old = self._entries.get(digest)
            confirmed_at = at if confirmed else UNCONFIRMED
            if old is not None and old[0] != version and (
                old[0] == GONE or (version != GONE and version < old[0])
            ):
                return
            if old is not None and old[0] == version and not confirmed:
                confirmed_at = old[2]
            self._entries[digest] = (version, at, confirmed_at)
            self._order.append((at, digest))
            self._prune(at)

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()
            self._order.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self, at: float) -> None:
        horizon = at - self.retention
        order, entries = self._order, self._entries
        while order and order[0][0] < horizon:
            learned_at, digest = order.popleft()
            entry = entries.get(digest)
            if entry is not None and entry[1] <= learned_at:
                del entries[digest]


#: The process-wide knowledge every hybrid session consults.
knowledge = Knowledge()

if hasattr(os, "register_at_fork"):
    # A worker forked while the feed thread held the lock would wait for it for
    # ever: that thread does not exist in the child. What was learned stays true.
    os.register_at_fork(after_in_child=lambda: setattr(knowledge, "_lock", threading.Lock()))


class Decision(enum.Enum):
    """What a request does with a hybrid cookie."""

    TRUST = "trust"  # serve the cookie's data, no round trip
    ASK = "ask"  # read the record: its data is what is served
    GONE = "gone"  # the session has ended: an empty session


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified cookie says of its record."""

    version: int
    issued_at: float


def decide(
    token: Token,
    entry: tuple[int, float] | None,
    *,
    at: float,
    window: float,
    feed_since: float | None,
    guarded: bool,
) -> Decision:
    """May a request serve this cookie without the server?

    ``entry`` is what this process knows (:meth:`Knowledge.lookup`);
    ``feed_since`` when the feed has been listening without a break since
    (``None`` while it is down or the store has none); ``guarded`` whether
    this is an unsafe request (POST, PUT, PATCH, DELETE) of a signed-in
    session, which asks the server whenever no healthy
    feed vouches for the cookie.
    """
    if entry is not None:
        version, confirmed_at = entry
        if version == GONE:
            return Decision.GONE
        if version > token.version:
            return Decision.ASK  # a newer write is known: never roll back to the cookie
        if (
            version == token.version
            and at - confirmed_at < window
            # A confirmation vouches for the window only if nothing could have been
            # missed since: the feed has listened since then, or (no feed) the
            # request is not one that must ask.
            and (feed_since <= confirmed_at if feed_since is not None else not guarded)
        ):
            return Decision.TRUST  # confirmed at this very version within the window
    age = at - token.issued_at
    if window <= 0 or not -CLOCK_SKEW <= age < window:
        return Decision.ASK
    if feed_since is not None:
        # Every write and end since the cookie was issued has been heard, and
        # would be in ``entry``; a cookie older than the connection was not covered.
        return Decision.TRUST if feed_since <= token.issued_at else Decision.ASK
    # No feed, or it is down: the window alone bounds what another process's
    # write or end can go unseen, except for the requests that change things.
    return Decision.ASK if guarded else Decision.TRUST
