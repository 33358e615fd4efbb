"""The reading half of every server-stored engine: keys, the store, loading.

:class:`~hybrid_sessions.backends.base.ServerSessionBase` adds the writing
half (create, save, a new key, delete) on top of it.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    SessionBase,
)
from django.utils.crypto import get_random_string

from ..conf import conf
from ..exceptions import SessionStoreUnavailable
from ..sealing import Sealer, sealed
from ..serialization import session_serializer
from ..stores.base import ServerStore, SessionMeta, StoredSession, digest
from ..stores.operations import Flow, Get, R, arun, call, run
from .activity import Activity

logger = logging.getLogger("hybrid_sessions")
security_logger = logging.getLogger("django.security.SuspiciousSession")

#: No key we issue is longer; anything longer is refused before it is hashed.
MAX_KEY_LENGTH = 256

class ServerSessionCore(Activity, SessionBase):
    """Reading a session from a :class:`~hybrid_sessions.stores.base.ServerStore`."""

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
        # Django's JSONSerializer becomes the orjson-backed one with its meaning.
        self.serializer = session_serializer(self.serializer)
        self._version: int | None = None
        self._baseline: bytes | None = None
        self._cleared = False
        #: Read in the clear while the option is on: the next save rewrites it sealed.
        self._reseal = False
        self._sealer: Sealer | None = None
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
            expires_at=self._written_expiry(self.get_expiry_date(expiry=data.get("_session_expiry"))),
            user_id=None if user_id is None else str(user_id),
            ip_address=ip if ip is not None and conf.TRACK_IP_ADDRESS else None,
            user_agent=agent if agent is not None and conf.TRACK_USER_AGENT else None,
            created_at=self._carried,
        )

    # -- running flows ----------------------------------------------------------

    def _sealed(self, flow: Flow[R]) -> Flow[R]:
        """``flow`` with its record's data sealed at rest (:mod:`hybrid_sessions.sealing`)."""
        key = self.session_key
        if key is None or not self._validate_session_key(key):
            self._sealer = None
            return flow
        self._sealer = Sealer(key, digest(key), enabled=conf.ENCRYPT_SERVER_DATA)
        return sealed(flow, self._sealer)

    def _run(self, flow: Flow[R]) -> R:
        return run(self._sealed(flow), self.get_store)

    async def _arun(self, flow: Flow[R]) -> R:
        return await arun(self._sealed(flow), self.get_store)

    # -- loading ----------------------------------------------------------------

    def _load_flow(self) -> Flow[dict[str, Any]]:
        if self.session_key is None:
            return {}
        try:
            record = yield from call(Get(digest(self.session_key)))
        except SessionStoreUnavailable as exc:
            return self._unavailable_on_load(exc)
        if record is not None and (reason := self._timed_out(record)):
            yield from self._end_flow(digest(self.session_key), reason)
            record = None
        return self._loaded(record)

    def _loaded(self, record: StoredSession | None) -> dict[str, Any]:
        if record is None:
            # Unknown, forged or expired: forget the key so a save creates a fresh
            # one; nothing is written for it (CVE-2015-5143).
            self._session_key = None
            self._version = None
            self._baseline = None
            self._reseal = False
            return {}
        self._version = record.version
        self._baseline = record.data
        if self._sealer is not None and self._sealer.read_plain:
            # Written before the option was on. A save that would only extend its
            # expiry (SESSION_SAVE_EVERY_REQUEST, a refresh) must rewrite it, and a
            # request that changes nothing saves it too: once, as a refresh does.
            self._reseal = self.modified = True
        self._note_activity(record)
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
        return self._run(self._load_flow())

    async def aload(self) -> dict[str, Any]:
        return await self._arun(self._load_flow())

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
