"""The protocol every server-side store implements.

Stores know nothing of Django's ``SessionBase``: they keep opaque, already
serialised session data under the SHA-256 digest of a session key, with a
version number for optimistic compare-and-set, an expiry, and the metadata an
operator needs (user, created, last activity, IP address, user agent).
A record may hold no data at all: the hybrid engine keeps small sessions in
its cookie and only a revocable record on the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..feeds import Feed


def digest(session_key: str) -> str:
    """The at-rest identity of a session: SHA-256 of its key, hex encoded.

    Keys carry about 165 bits of entropy, so an unkeyed hash cannot be reversed,
    and it stays valid when ``SECRET_KEY`` rotates.
    """
    return hashlib.sha256(session_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredSession:
    """What a store returns for a live session."""

    data: bytes | None
    version: int
    expires_at: datetime
    user_id: str | None = None
    #: When the session started (kept across key changes) and its last recorded
    #: activity; ``None`` from a store that does not say.
    created_at: datetime | None = None
    last_activity: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What a store keeps beside the data, recomputed at every write."""

    expires_at: datetime
    user_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    #: Read by ``create`` only: the start a session keeps under a new key (``None``: now).
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One row of a user's session list: everything but the data."""

    digest: str
    user_id: str | None
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    size: int
    #: Whether the server holds the session's data (``False``: a hybrid record
    #: whose data lives in its cookie). See ``hybrid_sessions.inventory.storage``.
    data_on_server: bool = True


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions :meth:`ServerStore.list_sessions` returns; ``None`` means "any".

    ``expired`` is ``False`` (live only) by default; a store that removes
    sessions on expiry (Redis) has no expired sessions to return.
    ``inactive_before`` keeps sessions whose last activity is older than it;
    ``max_size``/``min_size`` bound the stored data's size in bytes.
    """

    expired: bool | None = False
    user_ids: tuple[str, ...] | None = None
    signed_in: bool | None = None
    data_on_server: bool | None = None
    inactive_before: datetime | None = None
    max_size: int | None = None
    min_size: int | None = None


#: Every live session.
LIVE = SessionFilter()


@dataclass(frozen=True, slots=True)
class CasResult:
    """Outcome of a compare-and-set write.

    ``ok`` with ``version`` the new version; otherwise ``current`` is the state
    that won (``None`` when the session is gone: deleted, flushed or expired).
    """

    ok: bool
    version: int = 0
    current: StoredSession | None = None


#: What a store tells the other processes through its feed: every new version and
#: every end, only the ends, or nothing.
FeedMode = Literal["versions", "revocations", "off"]


class ServerStore(Protocol):
    """A server-side session store; sync and native async methods side by side."""

    def get(self, digest: str) -> StoredSession | None:
        """The live session under ``digest``, or ``None`` if missing or expired."""

    def exists(self, digest: str) -> bool:
        """Whether a live session exists under ``digest``."""

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        """Atomically create version 1; ``False`` if the digest is taken."""

    def compare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        """Write ``data`` only if the stored version is still ``version``."""

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        """Extend a live session's expiry and activity; ``False`` if it is gone."""

    def delete(self, digest: str) -> None:
        """Remove the session (and its user-index entry), if present."""

    def pop(self, digest: str) -> StoredSession | None:
        """Remove the session and return what it held, atomically; ``None`` if it was gone.

        What a new key is made from (``cycle_key``): the server confirms, in the
        same step that ends it, that the old session was alive.
        """

    def list_user(self, user_id: str) -> Sequence[SessionInfo]:
        """Live sessions of one user, newest activity first."""

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        """Remove every session of one user but ``keep`` (a digest); return the count."""

    def clear_expired(self) -> int:
        """Remove expired sessions; return how many were removed."""

    def feed(self) -> Feed | None:
        """The feed that carries this store's writes and ends to every process, if any."""

    async def aget(self, digest: str) -> StoredSession | None: ...

    async def aexists(self, digest: str) -> bool: ...

    async def acreate(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool: ...

    async def acompare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult: ...

    async def atouch(self, digest: str, meta: SessionMeta) -> bool: ...

    async def adelete(self, digest: str) -> None: ...

    async def apop(self, digest: str) -> StoredSession | None: ...

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]: ...

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int: ...

    async def aclear_expired(self) -> int: ...

    # -- every session, for operators (admin, purge, stats) ------------------------

    def list_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        """One page of sessions matching ``filters``, and the cursor of the next (or ``None``).

        Paged by keyset (database) or ``SCAN`` (Redis), so memory stays flat and
        sessions ended between pages do not shift the rest. A page may hold
        somewhat more or fewer than ``limit`` sessions; only ``None`` means the
        end. ``recent_first`` orders by last activity where the store can (the
        database); Redis returns scan order. A malformed cursor raises
        ``ValueError``.
        """

    def describe(self, digest: str) -> SessionInfo | None:
        """Everything but the data of one session, expired included (where still kept)."""

    def delete_many(self, digests: Sequence[str]) -> int:
        """Remove these sessions (and their user-index entries); return how many existed."""

    async def alist_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]: ...

    async def adescribe(self, digest: str) -> SessionInfo | None: ...

    async def adelete_many(self, digests: Sequence[str]) -> int: ...


@runtime_checkable
class LockingStore(Protocol):
    """A store that can also merge under a short lock, the way out of a losing streak."""

    def update_locked(
        self, digest: str, build: Callable[[StoredSession], tuple[bytes | None, SessionMeta]]
    ) -> CasResult:
        """Read the latest record, write what ``build`` makes of it, under a row lock."""
