"""The hybrid engine: a server session whose cookie is a signed cache of it.

``session_key`` is a stable 32-character key, as with the ``db`` engine; the
cookie (:mod:`.cookie`) carries a signed copy of one version of the record.
Loading asks :func:`hybrid_sessions.knowledge.decide` whether the copy may be
served without the server; saving is the shared compare-and-set path of
:mod:`hybrid_sessions.backends.saving`, after which a new cookie is built.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from importlib import import_module
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import SESSION_KEY

from ... import metrics
from ...conf import DEFAULT_COOKIE_KEYS, SettingsCache, conf
from ...cookies import log_rejected
from ...exceptions import MalformedToken, SessionStoreUnavailable
from ...knowledge import CLOCK_SKEW, GONE, Decision, Token, decide, knowledge, now
from ...stores.base import ServerStore, StoredSession, digest
from ...stores.operations import Flow, Get, call
from ..saving import diff
from .cookie import (
    BARE_KEY,
    INLINE,
    MAX_COOKIE_CHARS,
    SPILLED,
    SPILLED_PARTIAL,
    Parsed,
    hybrid_settings,
    parse,
)
from .issuing import HybridSaving

logger = logging.getLogger("hybrid_sessions")

class SessionStore(HybridSaving):
    """``SESSION_ENGINE = "hybrid_sessions.backends.hybrid"``."""

    #: One announcing store per spill store class and feed mode, for the process.
    _announcing: ClassVar[dict[tuple[type[Any], str], ServerStore]] = {}

    def __init__(
        self,
        session_key: str | None = None,
        *,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._cookie: str | None = None  # a token not verified yet
        self._key: str | None = None
        self._came_inline: bool | None = None  # whether the last cookie carried everything
        super().__init__(None, ip_address=ip_address, user_agent=user_agent)
        self._parsed: Parsed | None = None
        self._base_token: str | None = None  # the cookie the data was served from
        self._resident: dict[str, Any] = {}
        self._token: str | None = None  # the cookie to send, once built
        self._reissue = False
        # Whether this request knows the version is current: read or written here, or
        # vouched for by a live feed. Only then may a cookie with a fresh ``iat`` carry it.
        self._confirmed = False
        #: Set by the middleware for an unsafe request (POST, PUT, PATCH, DELETE).
        self.guarded = False
        self._header_room: int | None = None
        self._measure_room: Callable[[], int | None] | None = None
        self._reset_access()
        if not session_key:
            return
        if "." in session_key and len(session_key) <= MAX_COOKIE_CHARS:
            self._cookie = session_key
        elif BARE_KEY.fullmatch(session_key):
            self._key = session_key
        else:
            log_rejected(MalformedToken(f"A cookie of {len(session_key)} characters."), type(self))

    @property
    def header_room(self) -> int | None:
        """The longest cookie value the browser's next request has room for.

        ``None``: only the cookie budgets apply. Worked out when a cookie is
        built, by what the middleware passed to :meth:`measure_header_room`.
        """
        if self._measure_room is not None:
            self._header_room, self._measure_room = self._measure_room(), None
        return self._header_room

    @header_room.setter
    def header_room(self, value: int | None) -> None:
        self._header_room, self._measure_room = value, None

    def measure_header_room(self, measure: Callable[[], int | None]) -> None:
        """Have ``measure`` give :attr:`header_room`, only if a cookie is built (most are not)."""
        self._measure_room = measure

    # -- the key: the token is verified when the key is first needed ----------------

    def _get_key(self) -> str | None:
        if self._cookie is not None:
            token, self._cookie = self._cookie, None
            parsed = parse(token, self.serializer)
            if parsed is not None:
                self._parsed, self._key, self._base_token = parsed, parsed.sid, token
                self._came_inline = parsed.flag == INLINE
        return self._key

    def _set_key(self, value: str | None) -> None:
        self._cookie = None
        self._key = value if self._validate_session_key(value) else None

    session_key = property(_get_key)
    _session_key = property(_get_key, _set_key)

    def _validate_session_key(self, key: str | None) -> bool:
        return key is not None and BARE_KEY.fullmatch(key) is not None

    # -- the store ---------------------------------------------------------------------

    @classmethod
    def get_store(cls) -> ServerStore:
        """The spill engine's store, announcing writes and ends (see ``stores.announcing``)."""
        return _spill_store()  # every request asks: looked up again only when settings change

    # -- loading -------------------------------------------------------------------------

    def _load_flow(self) -> Flow[dict[str, Any]]:
        self._reset_access()
        key = self.session_key
        parsed, self._parsed = self._parsed, None
        if key is None:
            return {}
        if parsed is None:
            # A bare key (from Django's middleware, a test client, an import):
            # the server holds the session; the response carries a token.
            data = yield from super()._load_flow()
            self._reissue = self.session_key is not None and not self._unavailable
            self._confirmed = self._reissue
            return data
        site = hybrid_settings()
        record_key = digest(key)
        # A cookie from a server whose clock is ahead is trusted up to CLOCK_SKEW longer.
        knowledge.retention = max(knowledge.retention, site.window + CLOCK_SKEW)
        entry = knowledge.lookup(record_key)
        feed = self.store.feed()
        if feed is not None:
            feed.ensure_running()
        guarded = self.guarded and site.guard_unsafe and (
            SESSION_KEY in parsed.data or parsed.flag == SPILLED_PARTIAL
        )
        decision = decide(
            Token(parsed.version, parsed.issued_at), entry, at=now(), window=site.window,
            feed_since=None if feed is None else feed.since, guarded=guarded,
        )
        if metrics.recorder is not None:
            metrics.recorder.counter(metrics.TRUST_DECISIONS, decision=decision.value)
        if decision is Decision.GONE:
            return self._ended(record_key)
        vouched = feed is not None and feed.since is not None
        if decision is Decision.TRUST and not self._asks_for_activity(parsed, vouched):
            self._confirmed = vouched
            self._started_at, self._active_at = parsed.started_at, parsed.active_at
            self._due_for_activity()
            return self._from_cookie(parsed)
        try:
            record = yield from call(Get(record_key))
        except SessionStoreUnavailable as exc:
            fresh = 0 <= now() - parsed.issued_at < site.window
            if fresh and (entry is None or entry[0] <= parsed.version):
                # Fail open for a cookie still inside its window, and only for
                # its own data: a fetch or a write still needs the store.
                logger.error("Session store unavailable, session not revalidated: %s", exc)
                return self._from_cookie(parsed)
            return self._unavailable_on_load(exc)
        if record is not None and (reason := self._timed_out(record)):
            yield from self._end_flow(record_key, reason)
            record = None
        if record is None:
            return self._ended(record_key)
        knowledge.learn(record_key, record.version)
        self._confirmed = True
        self._reissue = record.version != parsed.version or not parsed.current_key
        self._reissue = self._reissue or self._stale_times(parsed, record)
        if not parsed.current_key:
            self._signed_anew()
        self._base_token = None
        return self._loaded(record)

    def _from_cookie(self, parsed: Parsed) -> dict[str, Any]:
        """Serve the cookie's copy of version ``parsed.version``."""
        self._version = parsed.version
        self._baseline = None
        # Signed with a fallback key, or in the other format: re-issue it.
        self._reissue = not parsed.current_key
        if self._reissue:
            self._signed_anew()
        if parsed.flag == INLINE and not parsed.server_keys:
            return parsed.data
        self._pending = True
        self._resident = copy.deepcopy(parsed.data)
        self._known = set(parsed.data)
        server_keys = hybrid_settings().server_keys
        if parsed.flag == INLINE:
            self._complete_except = server_keys
        elif parsed.flag == SPILLED:
            self._known.update(k for k in DEFAULT_COOKIE_KEYS if k not in server_keys)
        return parsed.data

    def _fetch_flow(self) -> Flow[None]:
        """Read the whole record once, and replay onto it what this request already did."""
        key = self.session_key
        assert key is not None
        try:
            record: StoredSession | None = yield from call(Get(digest(key)))
        except SessionStoreUnavailable as exc:
            if conf.ON_STORE_ERROR != "empty":
                raise
            logger.error("Session store unavailable, serving only the cookie's keys: %s", exc)
            self._pending, self._unavailable = False, True
            return None
        changes = diff(self._resident, self._session_cache, False)
        if record is not None and (reason := self._timed_out(record)):
            yield from self._end_flow(digest(key), reason)
            record = None
        if record is None:
            # Ended elsewhere: nothing of it is served; what this request itself
            # set starts a new session, as with the db engine.
            self._ended(digest(key))
            self._session_cache = changes.apply({})
            return None
        knowledge.learn(digest(key), record.version)
        self._confirmed = True
        served = self._version
        self._session_cache = changes.apply(self._loaded(record))
        self._base_token = None
        self._reissue = self._reissue or record.version != served
        self._pending = False
        return None

    def _partial(self) -> dict[str, Any]:
        """The session as far as known without fetching the rest."""
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            pass
        self._session_cache = self._run(self._load_flow())
        return self._session_cache

    async def _apartial(self) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            pass
        self._session_cache = await self._arun(self._load_flow())
        return self._session_cache

    def _get_session(self, no_load: bool = False) -> dict[str, Any]:
        if no_load and not hasattr(self, "_session_cache"):
            self.accessed = True
            self._session_cache = {}
        self._partial()
        if self._pending:
            self._run(self._fetch_flow())
        return self._session_cache

    async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
        if no_load and not hasattr(self, "_session_cache"):
            self.accessed = True
            self._session_cache = {}
        await self._apartial()
        if self._pending:
            await self._arun(self._fetch_flow())
        return self._session_cache

    _session = property(_get_session)

    def load(self) -> dict[str, Any]:
        self._session_cache = self._run(self._load_flow())
        return self._get_session()

    async def aload(self) -> dict[str, Any]:
        self._session_cache = await self._arun(self._load_flow())
        return await self._aget_session()

    def clear(self) -> None:
        super().clear()
        self._pending = False

    def is_empty(self) -> bool:
        if settings.SESSION_SAVE_EVERY_REQUEST and self.session_key is not None:
            # As for the server engines (see there), but the cookie's part is enough.
            self._partial()
        try:
            return not self.session_key and not self._session_cache
        except AttributeError:
            return True

    # -- keys given by value (``exists``, ``delete``) ---------------------------------------

    def _digest_of(self, value: str | None, *, expired_too: bool = False) -> str | None:
        if not value:
            return None
        if value == self._key:
            return digest(value)
        if "." in value and len(value) <= MAX_COOKIE_CHARS:
            parsed = parse(value, self.serializer, verify_exp=not expired_too)
            return None if parsed is None else digest(parsed.sid)
        return digest(value) if BARE_KEY.fullmatch(value) else None

    def exists(self, session_key: str | None) -> bool:
        key = self._digest_of(session_key)
        if key is None or (knowledge.lookup(key) or (1, 0.0))[0] == GONE:
            return False
        return self.store.exists(key)

    async def aexists(self, session_key: str | None) -> bool:
        key = self._digest_of(session_key)
        if key is None or (knowledge.lookup(key) or (1, 0.0))[0] == GONE:
            return False
        return await self.store.aexists(key)

    def _key_to_delete(self, session_key: str | None) -> str | None:
        return self._digest_of(
            self.session_key if session_key is None else session_key, expired_too=True
        )


def _announcing_store() -> ServerStore:
    site = hybrid_settings()
    store_class = import_module(site.spill_engine).SessionStore.store_class
    store = SessionStore._announcing.get((store_class, site.feed_mode))
    if store is None:
        store = SessionStore._announcing[store_class, site.feed_mode] = store_class(
            announce=site.feed_mode
        )
    return store


_spill_store = SettingsCache(_announcing_store)


def record_digest(value: str | None) -> str | None:
    """The digest of the record a cookie value (token or key) names, without a round trip."""
    return SessionStore()._digest_of(value)
