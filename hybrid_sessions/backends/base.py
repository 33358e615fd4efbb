"""What every server-stored engine shares: hashed keys and lossless concurrent saves.

Django's engines write the whole session on save, so two overlapping requests
that change different keys erase each other's change. Here a save sends only
what this request changed, as a compare-and-set against the version it loaded;
if another request saved first, the changes are merged onto the newer state
and the write is retried, a bounded number of times. No lock is ever held
across a request.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.exceptions import SuspiciousOperation
from django.utils.crypto import get_random_string

from ..conf import conf
from ..exceptions import SessionStoreUnavailable
from ..stores.base import CasResult, ServerStore, SessionMeta, StoredSession, digest

logger = logging.getLogger("hybrid_sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")

#: No key we issue is longer; anything longer is refused before it is hashed.
MAX_KEY_LENGTH = 256
#: Attempts at finding an unused key; with 165 random bits one always succeeds.
CREATE_ATTEMPTS = 8
#: Longest pause, in seconds, before retrying a save that lost a race.
RETRY_DELAY_CAP = 0.05
#: Compare-and-set attempts before a store that can merge under a short lock
#: (``update_locked``, the database store) is asked to.
OPTIMISTIC_ATTEMPTS = 3

#: A store's optional ``update_locked(digest, build)``.
LockedUpdate = Callable[
    [str, Callable[[StoredSession], tuple[bytes | None, SessionMeta]]], CasResult
]


def retry_delay(attempt: int) -> float:
    """A random pause before retry ``attempt`` (1, 2, ...) of a contended save.

    Two writers with the same rhythm (read, write, read, write) can fall into
    lockstep, the same one losing every race; a random pause, doubling up to
    :data:`RETRY_DELAY_CAP`, breaks the rhythm. The first retry needs none.
    """
    if attempt < 2:
        return 0.0
    return random.uniform(0, min(RETRY_DELAY_CAP, 0.001 * 2 ** (attempt - 2)))  # noqa: S311


def newer(first: StoredSession | None, second: StoredSession | None) -> StoredSession | None:
    """The later of two reads of one record; ``None`` if either found it gone.

    A read inside a transaction may come from an older snapshot (MariaDB's
    REPEATABLE READ) than the one a failed compare-and-set returned.
    """
    if first is None or second is None:
        return None
    return second if second.version > first.version else first


@dataclass(slots=True)
class Changes:
    """What one request did to a session, to be replayed onto newer stored state."""

    set: dict[str, Any] = field(default_factory=dict)
    # In this class body ``set`` is the field above, not the builtin.
    deleted: builtins.set[str] = field(default_factory=builtins.set)
    replace: bool = False

    def __bool__(self) -> bool:
        return self.replace or bool(self.set) or bool(self.deleted)

    def apply(self, latest: dict[str, Any]) -> dict[str, Any]:
        if self.replace:
            return dict(self.set)
        merged = {k: v for k, v in latest.items() if k not in self.deleted}
        merged.update(self.set)
        return merged


def diff(baseline: dict[str, Any] | None, current: dict[str, Any], replace: bool) -> Changes:
    """The keys ``current`` sets or deletes relative to ``baseline``.

    Comparing values (rather than tracking ``__setitem__``) also catches in-place
    mutation such as ``session["cart"].append(x)``.
    """
    if replace or baseline is None:
        return Changes(set=dict(current), replace=replace)
    missing = object()
    changed = {k: v for k, v in current.items() if baseline.get(k, missing) != v}
    return Changes(set=changed, deleted=set(baseline) - set(current))


class LockedMerge:
    """The ``build`` a store's ``update_locked`` calls: replays changes onto the latest data."""

    def __init__(self, session: ServerSessionBase, changes: Changes) -> None:
        self.session = session
        self.changes = changes
        self.target: dict[str, Any] = {}
        self.blob = b""

    def __call__(self, current: StoredSession) -> tuple[bytes | None, SessionMeta]:
        self.target = self.changes.apply(self.session._loads(current.data))
        self.blob = self.session._dumps(self.target)
        return self.blob, self.session._meta(self.target)


class ServerSessionBase(SessionBase):
    """A ``SessionBase`` over a :class:`~hybrid_sessions.stores.base.ServerStore`."""

    store_class: ClassVar[type[Any]]
    _stores: ClassVar[dict[type[Any], ServerStore]] = {}

    def __init__(
        self,
        session_key: str | None = None,
        *,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        super().__init__(session_key)
        self._version: int | None = None
        self._baseline: bytes | None = None
        self._cleared = False
        self._unavailable = False
        self.ip_address = ip_address
        self.user_agent = user_agent

    # -- the store --------------------------------------------------------------

    @classmethod
    def get_store(cls) -> ServerStore:
        """The store instance for this engine (one per store class and process)."""
        store = cls._stores.get(cls.store_class)
        if store is None:
            store = cls._stores[cls.store_class] = cls.store_class()
        return store

    @property
    def store(self) -> ServerStore:
        return self.get_store()

    # -- keys -------------------------------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        return bool(key) and 8 <= len(key) <= MAX_KEY_LENGTH  # type: ignore[arg-type]

    @property
    def session_digest(self) -> str | None:
        """The digest this session is stored under, or ``None`` if it has no live record.

        The session is loaded first, so a forged or expired key yields ``None``.
        Engines whose cookie is not the store key provide their own.
        """
        self._get_session()  # type: ignore[attr-defined, unused-ignore]
        key = self.session_key
        return digest(key) if key is not None and self._validate_session_key(key) else None

    def _new_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def _get_new_session_key(self) -> str:
        # Uniqueness is enforced by the atomic create, not by a racy exists() check.
        return self._new_key()

    async def _aget_new_session_key(self) -> str:
        return self._new_key()

    # -- (de)serialisation and metadata -----------------------------------------

    def _dumps(self, data: dict[str, Any]) -> bytes:
        blob = self.serializer().dumps(data)
        return blob if isinstance(blob, bytes) else str(blob).encode()

    def _loads(self, blob: bytes | None) -> dict[str, Any]:
        if not blob:
            return {}
        try:
            data = self.serializer().loads(blob)
        except Exception as exc:  # any corrupt record reads as empty
            security_logger.warning("Session data corrupted: %s", exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _meta(self, data: dict[str, Any]) -> SessionMeta:
        user_id = data.get("_auth_user_id")
        # The settings are read only when there is something to track: a missing
        # setting costs a caught AttributeError per read.
        ip, agent = self.ip_address, self.user_agent
        return SessionMeta(
            expires_at=self.get_expiry_date(expiry=data.get("_session_expiry")),
            user_id=None if user_id is None else str(user_id),
            ip_address=ip if ip is not None and conf.TRACK_IP_ADDRESS else None,
            user_agent=agent if agent is not None and conf.TRACK_USER_AGENT else None,
        )

    # -- loading ----------------------------------------------------------------

    def _loaded(self, record: StoredSession | None) -> dict[str, Any]:
        if record is None:
            # Unknown, forged or expired: forget the key so a save creates a fresh
            # one; nothing is written for it (CVE-2015-5143).
            self._session_key = None
            self._version = None
            self._baseline = None
            return {}
        self._version = record.version
        self._baseline = record.data
        return self._loads(record.data)

    def _unavailable_on_load(self, exc: SessionStoreUnavailable) -> dict[str, Any]:
        if conf.ON_STORE_ERROR != "empty":
            raise exc
        # Keep the key: the cookie stays, the user is not logged out, and a
        # write in this request fails rather than replacing the session.
        logger.error("Session store unavailable, serving an empty session: %s", exc)
        self._unavailable = True
        return {}

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        try:
            return self._loaded(self.store.get(digest(self.session_key)))
        except SessionStoreUnavailable as exc:
            return self._unavailable_on_load(exc)

    async def aload(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        try:
            return self._loaded(await self.store.aget(digest(self.session_key)))
        except SessionStoreUnavailable as exc:
            return self._unavailable_on_load(exc)

    def exists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        return self.store.exists(digest(session_key))  # type: ignore[arg-type]

    async def aexists(self, session_key: str | None) -> bool:
        if not self._validate_session_key(session_key):
            return False
        return await self.store.aexists(digest(session_key))  # type: ignore[arg-type]

    def is_empty(self) -> bool:
        if settings.SESSION_SAVE_EVERY_REQUEST and self.session_key is not None:
            # The middleware saves whatever is not empty, and a key not loaded yet
            # looks like a session: a forged one would be replaced by a new, empty
            # record on every request. The save would load it anyway.
            self._get_session()  # type: ignore[attr-defined, unused-ignore]
        return super().is_empty()

    # -- creating ---------------------------------------------------------------

    def create(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    async def acreate(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    def _created(self, blob: bytes) -> None:
        self._version = 1
        self._baseline = blob
        self._cleared = False

    # -- saving -----------------------------------------------------------------

    def clear(self) -> None:
        super().clear()
        self._cleared = True

    def _check_writable(self) -> None:
        if self._unavailable:
            raise SessionStoreUnavailable(
                "The session store was unavailable when this session was read; "
                "refusing to overwrite it."
            )

    def _plan(self, data: dict[str, Any]) -> Changes:
        baseline = self._loads(self._baseline) if self._baseline is not None else None
        return diff(baseline, data, self._cleared)

    def _after_write(self, result: CasResult, target: dict[str, Any], blob: bytes) -> None:
        self._version = result.version
        self._baseline = blob
        self._cleared = False
        self._session_cache = target

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined, unused-ignore]
        if self._unavailable:
            if not data:
                # Outage with HYBRID_SESSIONS_ON_STORE_ERROR = "empty" and nothing to
                # write (SESSION_SAVE_EVERY_REQUEST): keep the session as it is.
                return None
            self._check_writable()
        if self.session_key is None:
            # The key we were given matched no live session: start a new one.
            return self.create()
        key = digest(self.session_key)
        if must_create:
            blob = self._dumps(data)
            if not self.store.create(key, blob, self._meta(data)):
                raise CreateError
            return self._created(blob)
        changes: Changes | None = None  # worked out only if another save got in first
        version, target = self._version, data
        locked: LockedUpdate | None = getattr(self.store, "update_locked", None)
        for attempt in itertools.count(1):
            blob = self._dumps(target)
            meta = self._meta(target)
            if version is None:
                result = CasResult(ok=False, current=self.store.get(key))
            elif blob == self._baseline and not self._cleared:
                # Nothing changed (SESSION_SAVE_EVERY_REQUEST): only extend the expiry.
                if not self.store.touch(key, meta):
                    raise UpdateError
                return None
            elif locked is not None and attempt > OPTIMISTIC_ATTEMPTS:
                # Lost race after race: merge under a lock held for this write only.
                changes = changes or self._plan(data)
                merge = LockedMerge(self, changes)
                result = locked(key, merge)
                if result.ok:
                    return self._after_write(result, merge.target, merge.blob)
            else:
                result = self.store.compare_and_set(key, version, blob, meta)
            if result.ok:
                return self._after_write(result, target, blob)
            current, pause = result.current, retry_delay(attempt)
            if current is not None and pause:
                # Pause, then read again: the state that won may be newer by now.
                time.sleep(pause)
                current = newer(current, self.store.get(key))
            if current is None:
                raise UpdateError
            version = current.version
            changes = changes or self._plan(data)
            target = changes.apply(self._loads(current.data))
            if attempt >= max(1, conf.SAVE_MAX_RETRIES):  # read only once a race is lost
                break
        raise UpdateError

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined, unused-ignore]
        if self._unavailable:
            if not data:
                # Outage with HYBRID_SESSIONS_ON_STORE_ERROR = "empty" and nothing to
                # write (SESSION_SAVE_EVERY_REQUEST): keep the session as it is.
                return None
            self._check_writable()
        if self.session_key is None:
            return await self.acreate()
        key = digest(self.session_key)
        if must_create:
            blob = self._dumps(data)
            if not await self.store.acreate(key, blob, self._meta(data)):
                raise CreateError
            return self._created(blob)
        changes: Changes | None = None  # worked out only if another save got in first
        version, target = self._version, data
        locked: LockedUpdate | None = getattr(self.store, "update_locked", None)
        for attempt in itertools.count(1):
            blob = self._dumps(target)
            meta = self._meta(target)
            if version is None:
                result = CasResult(ok=False, current=await self.store.aget(key))
            elif blob == self._baseline and not self._cleared:
                if not await self.store.atouch(key, meta):
                    raise UpdateError
                return None
            elif locked is not None and attempt > OPTIMISTIC_ATTEMPTS:
                changes = changes or self._plan(data)
                merge = LockedMerge(self, changes)
                result = await sync_to_async(locked)(key, merge)
                if result.ok:
                    return self._after_write(result, merge.target, merge.blob)
            else:
                result = await self.store.acompare_and_set(key, version, blob, meta)
            if result.ok:
                return self._after_write(result, target, blob)
            current, pause = result.current, retry_delay(attempt)
            if current is not None and pause:
                # Pause, then read again: the state that won may be newer by now.
                await asyncio.sleep(pause)
                current = newer(current, await self.store.aget(key))
            if current is None:
                raise UpdateError
            version = current.version
            changes = changes or self._plan(data)
            target = changes.apply(self._loads(current.data))
            if attempt >= max(1, conf.SAVE_MAX_RETRIES):  # read only once a race is lost
                break
        raise UpdateError

    # -- deleting ---------------------------------------------------------------

    def _key_to_delete(self, session_key: str | None) -> str | None:
        if session_key is None:
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return None
        return digest(session_key)  # type: ignore[arg-type]

    def delete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is not None:
            self.store.delete(key)

    async def adelete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is not None:
            await self.store.adelete(key)

    @classmethod
    def clear_expired(cls) -> None:
        cls.get_store().clear_expired()

    @classmethod
    async def aclear_expired(cls) -> None:
        await cls.get_store().aclear_expired()
