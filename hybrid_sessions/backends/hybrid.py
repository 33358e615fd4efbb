"""A signed cookie that carries the session while it is small, and spills it to the server.

::

    SESSION_ENGINE = "hybrid_sessions.backends.hybrid"

The cookie value (Django's ``session_key``) is a token from
:class:`~hybrid_sessions.tokens.TokenCodec` whose payload holds ``sid`` (a
random id; the server record is keyed by its SHA-256 digest), ``v`` (the
record's version) and ``d``: the whole session while it fits in
``HYBRID_SESSIONS_INLINE_MAX_BYTES``, else only the cookie-resident keys
(``HYBRID_SESSIONS_COOKIE_KEYS``) with the rest in the spill store
(``HYBRID_SESSIONS_SPILL_ENGINE``) and ``s`` set.

Every session, inline or spilled, has a server record (digest, user, times,
version; data only when spilled), so it can be listed and revoked. A read
trusts the token for ``HYBRID_SESSIONS_REVALIDATE_SECONDS`` after it was issued
(every issue follows a write that checked the record was alive); after that
the server is asked, and the answer is remembered in a small process-local
cache for the same time. Writes are compare-and-set against the record, so a
session deleted elsewhere is never written back.

The logic of loading, fetching and saving is written once, as generators that
yield store operations; a sync and an async driver run them against the
store's sync or native async methods.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any, ClassVar, TypeVar, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS,
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.exceptions import SuspiciousOperation
from django.core.signing import JSONSerializer
from django.utils.crypto import get_random_string

from ..conf import DEFAULT_COOKIE_KEYS, SettingsCache, conf
from ..exceptions import CookieTooLarge, MalformedToken, SessionStoreUnavailable, TokenError
from ..stores.base import (
    LIVE,
    CasResult,
    ServerStore,
    SessionFilter,
    SessionInfo,
    SessionMeta,
    StoredSession,
    digest,
)
from ..tokens import TokenCodec, log_rejected, set_cookie_size
from .base import CREATE_ATTEMPTS, OPTIMISTIC_ATTEMPTS, Changes, LockedUpdate, diff

logger = logging.getLogger("hybrid_sessions")

__all__ = [
    "LivenessCache",
    "LivenessTrackingStore",
    "SessionStore",
    "forget_sessions",
    "liveness",
    "record_digest",
]

#: The keys ``request.user`` needs: never moved out of the cookie for size
#: while anything else can go instead.
AUTH_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)
#: What a save needs to know to write the record's metadata (user, expiry).
META_KEYS = frozenset({SESSION_KEY, "_session_expiry"})
#: Length of the random session id inside the token (about 165 bits).
SID_LENGTH = 32
_SID = re.compile(f"[{VALID_KEY_CHARS}]{{{SID_LENGTH}}}")
#: No cookie value we issue is longer (the budget is at most 4096 bytes, with a
#: warning above it); longer values are refused before any decoding.
MAX_COOKIE_CHARS = 8192
#: Sessions whose liveness a process remembers; about 200 bytes each.
LIVENESS_CACHE_SIZE = 10_000
#: Inline is tried only while the serialised data is at most this many times
#: the inline budget: every request inflates and parses an inline cookie, so
#: a highly compressible blob must not make that cost unbounded.
INLINE_RAW_FACTOR = 8
#: Payload flags: inline; spilled with every default cookie key in ``d`` (an
#: absent one is absent from the session); spilled with only some of them
#: (an absent one must be fetched).
INLINE, SPILLED, SPILLED_PARTIAL = 0, 1, 2

_T = TypeVar("_T")
_Op = tuple[str, tuple[Any, ...]]
_Flow = Generator[_Op, Any, _T]
_MISSING: Any = object()
_ABSENT: Any = object()


def _now() -> float:
    """The clock of revalidation (a function, so tests can move time forward)."""
    return time.time()


class _Site:
    """The settings every request reads, read once and kept until a setting changes.

    Reading a ``HYBRID_SESSIONS_*`` setting the site does not define costs a
    few microseconds (Django's lazy settings raise and catch ``AttributeError``);
    a request read a dozen of them. ``setting_changed`` (sent by
    ``override_settings``) discards this object.
    """

    __slots__ = (
        "codec",
        "cookie_keys",
        "cookie_max",
        "cookie_name",
        "expire_at_close",
        "inline_max",
        "revalidate",
        "save_attempts",
        "spill_engine",
        "track_ip",
        "track_user_agent",
    )

    def __init__(self) -> None:
        self.cookie_name: str = settings.SESSION_COOKIE_NAME
        # Per cookie name, so a token of one site's cookie never loads as another's.
        self.codec = TokenCodec("hybrid_sessions.hybrid:" + self.cookie_name)
        self.cookie_keys = tuple(conf.COOKIE_KEYS)
        self.cookie_max = conf.COOKIE_MAX_BYTES
        self.inline_max = conf.INLINE_MAX_BYTES
        self.revalidate = conf.REVALIDATE_SECONDS
        self.save_attempts = max(1, conf.SAVE_MAX_RETRIES)
        self.spill_engine = conf.SPILL_ENGINE
        self.track_ip = conf.TRACK_IP_ADDRESS
        self.track_user_agent = conf.TRACK_USER_AGENT
        self.expire_at_close: bool = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE


#: The engine's hot settings, rebuilt whenever a setting changes.
_site = SettingsCache(_Site)


class LivenessCache:
    """What this process last learned from the server about sessions, by digest.

    An entry is the time the session was confirmed alive, or ``None`` once it is
    known gone (sids are never reused, so that answer never expires). Bounded,
    least recently used first out.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[str, float | None] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, key: str, now: float, window: float) -> bool | None:
        """``False`` if gone, ``True`` if confirmed alive within ``window``, else ``None``.

        Every request asks, so this read takes no lock: each ``OrderedDict``
        operation is atomic on its own, and the worst a concurrent writer can do
        is evict the entry between the two, which only skips its refresh.
        """
        checked_at = self._entries.get(key, _ABSENT)
        if checked_at is _ABSENT:
            return None
        if checked_at is None:
            return False
        if now - checked_at < window:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup saves
                self._entries.move_to_end(key)
            except KeyError:
                pass
            return True
        return None

    def record(self, key: str, alive: bool, now: float) -> None:
        with self._lock:
            self._entries[key] = now if alive else None
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: The process-wide cache every hybrid session consults.
liveness = LivenessCache(LIVENESS_CACHE_SIZE)


def forget_sessions(digests: Iterable[str]) -> None:
    """Mark sessions ended elsewhere in this process as gone, so their cookies stop at once.

    Without it, a cookie of a session revoked by digest is still honoured for up
    to ``HYBRID_SESSIONS_REVALIDATE_SECONDS``.
    """
    now = _now()
    for key in digests:
        liveness.record(key, False, now)


class _LockedMerge:
    """What ``update_locked`` calls with the latest record: this request's changes replayed."""

    def __init__(
        self,
        session: SessionStore,
        sid: str,
        changes: Changes,
        baseline: dict[str, Any] | None,
        fallback: dict[str, Any],
    ) -> None:
        self.session, self.sid, self.changes = session, sid, changes
        self.baseline, self.target = baseline, fallback
        self.inline: str | None = None
        self.stored: bytes | None = None

    def __call__(self, current: StoredSession) -> tuple[bytes | None, SessionMeta]:
        if current.data is not None:
            self.target = self.changes.apply(self.session._loads(current.data))
        elif self.baseline is not None:
            self.target = self.changes.apply(self.baseline)
        blob = self.session._dumps(self.target)
        self.inline = self.session._inline_cookie(self.sid, current.version + 1, self.target, blob)
        self.stored = None if self.inline is not None else blob
        return self.stored, self.session._meta(self.target)


class LivenessTrackingStore:
    """The spill store, seen through the hybrid engine: removals are remembered at once.

    ``hybrid_sessions.api`` and the admin revoke sessions through
    ``SessionStore.get_store()``; going through this wrapper, a session they end
    stops being served by this process on its very next request, not a
    revalidation window later. Other processes learn it when they revalidate.
    """

    def __init__(self, inner: ServerStore) -> None:
        self.inner = inner

    def _forget(self, digests: Iterable[str]) -> None:
        forget_sessions(digests)

    def _others(self, sessions: Sequence[SessionInfo], keep: str | None) -> list[str]:
        return [info.digest for info in sessions if info.digest != keep]

    def get(self, digest: str) -> StoredSession | None:
        return self.inner.get(digest)

    def exists(self, digest: str) -> bool:
        return self.inner.exists(digest)

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        return self.inner.create(digest, data, meta)

    def compare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        return self.inner.compare_and_set(digest, version, data, meta)

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        return self.inner.touch(digest, meta)

    @property
    def can_lock(self) -> bool:
        """Whether the spill store offers ``update_locked``, the way out of a losing streak."""
        return getattr(self.inner, "update_locked", None) is not None

    def update_locked(
        self, digest: str, build: Callable[[StoredSession], tuple[bytes | None, SessionMeta]]
    ) -> CasResult:
        locked: LockedUpdate = self.inner.update_locked  # type: ignore[attr-defined]
        return locked(digest, build)

    async def aupdate_locked(
        self, digest: str, build: Callable[[StoredSession], tuple[bytes | None, SessionMeta]]
    ) -> CasResult:
        return await sync_to_async(self.update_locked)(digest, build)

    def delete(self, digest: str) -> None:
        self.inner.delete(digest)
        self._forget([digest])

    def list_user(self, user_id: str) -> Sequence[SessionInfo]:
        return self.inner.list_user(user_id)

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        ended = self._others(self.inner.list_user(user_id), keep)
        count = self.inner.delete_user(user_id, keep)
        self._forget(ended)
        return count

    def clear_expired(self) -> int:
        return self.inner.clear_expired()

    async def aget(self, digest: str) -> StoredSession | None:
        return await self.inner.aget(digest)

    async def aexists(self, digest: str) -> bool:
        return await self.inner.aexists(digest)

    async def acreate(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        return await self.inner.acreate(digest, data, meta)

    async def acompare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        return await self.inner.acompare_and_set(digest, version, data, meta)

    async def atouch(self, digest: str, meta: SessionMeta) -> bool:
        return await self.inner.atouch(digest, meta)

    async def adelete(self, digest: str) -> None:
        await self.inner.adelete(digest)
        self._forget([digest])

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await self.inner.alist_user(user_id)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        ended = self._others(await self.inner.alist_user(user_id), keep)
        count = await self.inner.adelete_user(user_id, keep)
        self._forget(ended)
        return count

    async def aclear_expired(self) -> int:
        return await self.inner.aclear_expired()

    # -- every session, for operators (admin, purge, stats) -------------------------

    def list_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        return self.inner.list_sessions(cursor, limit, filters=filters, recent_first=recent_first)

    def describe(self, digest: str) -> SessionInfo | None:
        return self.inner.describe(digest)

    def delete_many(self, digests: Sequence[str]) -> int:
        count = self.inner.delete_many(digests)
        self._forget(digests)
        return count

    async def alist_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        return await self.inner.alist_sessions(
            cursor, limit, filters=filters, recent_first=recent_first
        )

    async def adescribe(self, digest: str) -> SessionInfo | None:
        return await self.inner.adescribe(digest)

    async def adelete_many(self, digests: Sequence[str]) -> int:
        count = await self.inner.adelete_many(digests)
        self._forget(digests)
        return count


def record_digest(session_key: str | None) -> str | None:
    """The digest of the server record a hybrid cookie value names, without a round trip.

    ``None`` for a value this site did not issue (or that has expired).
    """
    return SessionStore()._digest_of(session_key)


@dataclass(slots=True)
class _Parsed:
    sid: str
    version: int
    data: dict[str, Any]
    flag: int
    issued_at: int
    current_key: bool


class SessionStore(SessionBase):
    """The hybrid engine: a :class:`TokenCodec` in front of a server store."""

    _session_cache: dict[str, Any]
    _tracking: ClassVar[LivenessTrackingStore | None] = None

    def __init__(
        self,
        session_key: str | None = None,
        *,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        super().__init__(session_key)
        if session_key and self.session_key is None:
            # Refused before any decoding: too short or too long to be one of ours.
            log_rejected(MalformedToken(f"A cookie of {len(session_key)} characters."))
        self.ip_address = ip_address
        self.user_agent = user_agent
        self._sid: str | None = None
        self._version = 0
        self._reset()

    def _reset(self) -> None:
        """Forget everything learned from a cookie or the server (not the key)."""
        self._pending = False  # spilled data not fetched yet
        self._flag = INLINE
        self._resident: dict[str, Any] = {}  # the cookie's keys as loaded (a copy)
        self._known: set[str] = set()  # keys the unfetched session can answer for
        self._base_blob: bytes | None = None  # baselines for the diff, by source
        self._base_token: str | None = None
        self._base_dict: dict[str, Any] | None = None
        self._cleared = False
        self._unavailable = False

    # -- collaborators ----------------------------------------------------------

    @classmethod
    def get_store(cls) -> ServerStore:
        """The spill engine's store (records, and data that did not fit the cookie)."""
        inner: ServerStore = import_module(_site().spill_engine).SessionStore.get_store()
        tracking = cls._tracking
        if tracking is None or tracking.inner is not inner:
            tracking = cls._tracking = LivenessTrackingStore(inner)
        return tracking

    @property
    def store(self) -> ServerStore:
        return self.get_store()

    @staticmethod
    def _codec() -> TokenCodec:
        return _site().codec

    @property
    def session_digest(self) -> str | None:
        """The digest of this session's server record (for listing and revoking)."""
        self._partial()
        if self._sid is None or self.session_key is None:
            return None
        return digest(self._sid)

    # -- keys and (de)serialisation ---------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        # The length bound is checked before any decoding work on a hostile value.
        return bool(key) and 8 <= len(key) <= MAX_COOKIE_CHARS  # type: ignore[arg-type]

    def _get_new_session_key(self) -> str:
        return get_random_string(SID_LENGTH, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()

    def _dumps(self, data: dict[str, Any]) -> bytes:
        blob = self.serializer().dumps(data)
        return blob if isinstance(blob, bytes) else str(blob).encode()

    def _loads(self, blob: bytes) -> dict[str, Any]:
        try:
            data = self.serializer().loads(blob)
        except Exception as exc:  # a corrupt record reads as empty
            logging.getLogger("django.security.SuspiciousSession").warning(
                "Session data corrupted: %s", exc
            )
            return {}
        return data if isinstance(data, dict) else {}

    def _to_token(self, data: dict[str, Any]) -> dict[str, Any]:
        """Session data as the JSON the token carries, through ``SESSION_SERIALIZER``."""
        if self.serializer is JSONSerializer:
            return data
        value: dict[str, Any] = json.loads(self._dumps(data))
        return value

    def _from_token(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.serializer is JSONSerializer:
            return data
        return self._loads(json.dumps(data).encode())

    def _meta(self, data: dict[str, Any], expires_at: datetime | None = None) -> SessionMeta:
        """The record's metadata; ``expires_at`` when the caller has just worked it out."""
        user_id = data.get(SESSION_KEY)
        site = _site()
        if expires_at is None:
            expires_at = self.get_expiry_date(expiry=data.get("_session_expiry"))
        return SessionMeta(
            expires_at=expires_at,
            user_id=None if user_id is None else str(user_id),
            ip_address=self.ip_address if site.track_ip else None,
            user_agent=self.user_agent if site.track_user_agent else None,
        )

    # -- the cookie ---------------------------------------------------------------

    def _parse(self, token: str, *, verify_exp: bool = True) -> _Parsed | None:
        """The token's contents, or ``None`` for anything we did not issue, or expired."""
        try:
            decoded = self._codec().decode(token, verify_exp=verify_exp)
        except TokenError as exc:
            log_rejected(exc)
            return None
        payload = decoded.payload
        sid, version = payload.get("sid"), payload.get("v")
        data, flag = payload.get("d"), payload.get("s", INLINE)
        if not (
            isinstance(sid, str)
            and _SID.fullmatch(sid)
            and type(version) is int
            and version >= 1
            and isinstance(data, dict)
            and flag in (INLINE, SPILLED, SPILLED_PARTIAL)
        ):
            log_rejected(MalformedToken("The token's payload is not a session reference."))
            return None
        return _Parsed(
            sid, version, self._from_token(data), flag, decoded.issued_at, decoded.current_key
        )

    def _cookie_params(self, data: dict[str, Any]) -> tuple[datetime, int | None]:
        """The token's expiry, and the ``Max-Age`` that ``SessionMiddleware`` will set."""
        expiry = data.get("_session_expiry")
        at_close = _site().expire_at_close if expiry is None else expiry == 0
        max_age = None if at_close else self.get_expiry_age(expiry=expiry)
        return self.get_expiry_date(expiry=expiry), max_age

    def _inline_cookie(
        self,
        sid: str,
        version: int,
        data: dict[str, Any],
        blob: bytes,
        params: tuple[datetime, int | None] | None = None,
    ) -> str | None:
        """The cookie carrying the whole session, or ``None`` if it does not fit.

        ``blob`` is ``data`` serialised. With the JSON serializer and ASCII-only
        JSON it is, byte for byte, the JSON the token would carry, so it is
        signed as it is rather than serialised again (non-ASCII text is
        serialised again, as UTF-8: shorter in a cookie than ``\\u`` escapes).
        """
        site = _site()
        inline_max = site.inline_max
        if len(blob) > inline_max * INLINE_RAW_FACTOR:
            return None
        expires_at, max_age = self._cookie_params(data) if params is None else params
        if self.serializer is JSONSerializer and b"\\u" not in blob:
            # A session id is made of VALID_KEY_CHARS only: nothing to escape.
            payload = f'{{"sid":"{sid}","v":{int(version)},"d":{blob.decode("ascii")}}}'
            token = site.codec.encode_json(payload, expires_at=expires_at)
        else:
            token = site.codec.encode(
                {"sid": sid, "v": version, "d": self._to_token(data)}, expires_at=expires_at
            )
        if len(token) > inline_max:
            return None
        size = set_cookie_size(site.cookie_name, token, max_age=max_age)
        return token if size <= site.cookie_max else None

    def _spilled_cookie(
        self, sid: str, version: int, data: dict[str, Any], flag: int = SPILLED
    ) -> str:
        """The cookie holding a reference and the cookie keys of ``data``.

        Whatever the session holds, the ``Set-Cookie`` stays within the cookie
        budget: resident keys are dropped (extras first, then the auth keys)
        rather than exceed it; they are fetched when read.
        """
        expires_at, max_age = self._cookie_params(data)
        site = _site()
        name, budget, codec = site.cookie_name, site.cookie_max, site.codec
        resident = {k: data[k] for k in site.cookie_keys if k in data}
        candidates = [(resident, flag)]
        auth_only = {k: v for k, v in resident.items() if k in AUTH_KEYS}
        if auth_only != resident:
            candidates.append((auth_only, SPILLED_PARTIAL))
        if auth_only:
            candidates.append(({}, SPILLED_PARTIAL))
        size = 0
        for keys, kind in candidates:
            token = codec.encode(
                {"sid": sid, "v": version, "d": self._to_token(keys), "s": kind},
                expires_at=expires_at,
            )
            size = set_cookie_size(name, token, max_age=max_age)
            if size <= budget:
                return token
        raise CookieTooLarge(size, budget, name)

    # -- state changes ---------------------------------------------------------------

    def _gone(self) -> None:
        """The server says this session no longer exists: serve nothing of it any more."""
        if self._sid is not None:
            liveness.record(digest(self._sid), False, _now())
        self._sid = None
        self._session_key = None
        self._reset()
        self._session_cache = {}

    def _written(
        self, sid: str, version: int, token: str, data: dict[str, Any], blob: bytes | None
    ) -> None:
        """A create or compare-and-set succeeded: adopt what was written."""
        self._reset()
        self._sid, self._version = sid, version
        self._session_key = token
        self._session_cache = data
        if blob is None:
            self._base_token = token
        else:
            self._base_blob = blob
        liveness.record(digest(sid), True, _now())

    def _baseline(self) -> dict[str, Any] | None:
        """The session as last loaded or written, rebuilt from an immutable source.

        Rebuilding (not keeping the loaded dict) catches in-place mutation such
        as ``session["cart"].append(x)``.
        """
        if self._base_blob is not None:
            return self._loads(self._base_blob)
        if self._base_dict is not None:
            return copy.deepcopy(self._base_dict)
        if self._base_token is not None:
            parsed = self._parse(self._base_token)
            return None if parsed is None else parsed.data
        return None

    # -- flows: the logic, as generators of store operations -----------------------

    def _locate_flow(self, token: str) -> _Flow[_Parsed | None]:
        """Verify the cookie and that its session is still alive; ``None`` if not."""
        parsed = self._parse(token)
        if parsed is None:
            self._sid = None
            self._session_key = None
            return None
        self._sid, self._version = parsed.sid, parsed.version
        key = digest(parsed.sid)
        now, window = _now(), _site().revalidate
        alive = liveness.lookup(key, now, window)
        if alive is None and window > 0 and abs(now - parsed.issued_at) < window:
            # Issued by a write that checked the record less than a window ago.
            alive = True
        if alive is None:
            try:
                alive = bool((yield ("exists", (key,))))
            except SessionStoreUnavailable as exc:
                # Fail open for the cookie's own data only; a fetch or a write
                # still needs the store and fails clearly. Retried once per
                # window, so a hung server does not cost every request a timeout.
                logger.error("Session store unavailable, session not revalidated: %s", exc)
                liveness.record(key, True, now)
                return parsed
            liveness.record(key, alive, now)
        if not alive:
            self._gone()
            return None
        return parsed

    def _load_flow(self) -> _Flow[dict[str, Any]]:
        self._reset()
        token = self.session_key
        if token is None:
            self._sid = None
            return {}
        parsed = yield from self._locate_flow(token)
        if parsed is None:
            return {}
        if not parsed.current_key:
            # Signed with a fallback key, or in the other format: re-issue it.
            self.modified = True
        if parsed.flag == INLINE:
            self._base_token = token
            return parsed.data
        self._pending, self._flag = True, parsed.flag
        self._resident = copy.deepcopy(parsed.data)
        self._known = set(parsed.data)
        if parsed.flag == SPILLED:
            self._known.update(DEFAULT_COOKIE_KEYS)
        return parsed.data

    def _fetch_flow(self) -> _Flow[None]:
        """Read the spilled data once, and replay onto it what this request already did."""
        assert self._sid is not None
        key = digest(self._sid)
        try:
            record: StoredSession | None = yield ("get", (key,))
        except SessionStoreUnavailable as exc:
            if conf.ON_STORE_ERROR != "empty":
                raise
            logger.error("Session store unavailable, serving only the cookie's keys: %s", exc)
            self._pending, self._unavailable = False, True
            return None
        if record is None:
            self._gone()
            return None
        liveness.record(key, True, _now())
        changes = diff(self._resident, self._session_cache, False)
        if record.data is None:
            # The record went back inline in a newer cookie than this one: the
            # only data this request can know is its own cookie's.
            latest = copy.deepcopy(self._resident)
            self._base_dict = copy.deepcopy(self._resident)
        else:
            latest = self._loads(record.data)
            self._base_blob = record.data
        self._session_cache = changes.apply(latest)
        self._version = record.version
        self._pending = False
        return None

    def _create_flow(self, sid: str) -> _Flow[None]:
        if self._pending:
            # The new record must hold the whole session, not only the cookie's keys.
            yield from self._fetch_flow()
        data = self._session_cache if hasattr(self, "_session_cache") else {}
        blob = self._dumps(data)
        token = self._inline_cookie(sid, 1, data, blob)
        stored = None if token is not None else blob
        if token is None:
            token = self._spilled_cookie(sid, 1, data)  # before the write: it may not fit
        if not (yield ("create", (digest(sid), stored, self._meta(data)))):
            raise CreateError
        self._written(sid, 1, token, data, stored)
        return None

    def _update_flow(self) -> _Flow[None]:
        assert self._sid is not None
        sid = self._sid
        key = digest(sid)
        if self._pending:
            if not diff(self._resident, self._session_cache, False) and self._known >= META_KEYS:
                # Only the expiry to extend (SESSION_SAVE_EVERY_REQUEST, a key
                # rotation): no need for the spilled data.
                token = self._spilled_cookie(sid, self._version, self._session_cache, self._flag)
                if not (yield ("touch", (key, self._meta(self._session_cache)))):
                    self._gone()
                    raise UpdateError
                self._session_key = token
                liveness.record(key, True, _now())
                return None
            yield from self._fetch_flow()
            if self._sid is None:
                raise UpdateError
        # What this request changed is worked out only once a race is lost:
        # an uncontended save needs neither the baseline nor the diff.
        baseline: dict[str, Any] | None = None
        changes: Changes | None = None
        version, target = self._version, self._session_cache
        for attempt in range(_site().save_attempts):
            blob = self._dumps(target)
            params = self._cookie_params(target)
            # Only what decides the write is computed between the read and the
            # write; a spilled cookie is built after it, keeping the window of
            # a compare-and-set short under contention.
            inline = self._inline_cookie(sid, version + 1, target, blob, params)
            stored = None if inline is not None else blob
            unchanged = not self._cleared if changes is None else not changes
            if stored is not None and unchanged and stored == self._base_blob:
                # Spilled and serialised exactly as stored: extend the expiry,
                # keep the data.
                if not (yield ("touch", (key, self._meta(target)))):
                    self._gone()
                    raise UpdateError
                token = self._spilled_cookie(sid, version, target)
                self._written(sid, version, token, target, blob)
                return None
            if attempt >= OPTIMISTIC_ATTEMPTS and self.store.can_lock:  # type: ignore[attr-defined]
                # Lost race after race: merge under a lock held for this one write.
                assert changes is not None  # set by the first lost race
                merge = _LockedMerge(self, sid, changes, baseline, target)
                result = yield ("update_locked", (key, merge))
                if not result.ok:
                    self._gone()
                    raise UpdateError
                token = merge.inline or self._spilled_cookie(sid, result.version, merge.target)
                self._written(sid, result.version, token, merge.target, merge.stored)
                return None
            meta = self._meta(target, params[0])
            result = yield ("compare_and_set", (key, version, stored, meta))
            if result.ok:
                # The token's version is only the next save's first guess: were
                # it wrong, that save would conflict once and retry.
                token = inline or self._spilled_cookie(sid, result.version, target)
                self._written(sid, result.version, token, target, stored)
                return None
            current = result.current
            if current is not None and attempt >= 1:
                # Overtaken again: writers in lockstep. Pause at random, then
                # read the state afresh (a pause after reading would only make
                # the next conflict certain).
                pause = random.uniform(0, min(0.05, 0.001 * 2**attempt))  # noqa: S311 - not a secret
                yield ("sleep", (pause,))
                current = yield ("get", (key,))
            if current is None:
                self._gone()
                raise UpdateError
            if changes is None:
                baseline = self._baseline()
                changes = diff(baseline, self._session_cache, self._cleared)
            # Another request wrote first: replay this request's changes onto
            # the newer state. A record without data means that state lives in
            # another cookie, which this request cannot see: its own wins.
            version = current.version
            if current.data is not None:
                target = changes.apply(self._loads(current.data))
            elif baseline is not None:
                target = changes.apply(baseline)
        raise UpdateError

    # -- drivers -------------------------------------------------------------------

    def _run(self, flow: _Flow[_T]) -> _T:
        try:
            op = next(flow)
            store = self.store  # only once there is something to ask
            while True:
                name, args = op
                try:
                    if name == "sleep":
                        time.sleep(*args)
                        result = None
                    else:
                        result = getattr(store, name)(*args)
                except SessionStoreUnavailable as exc:
                    op = flow.throw(exc)
                else:
                    op = flow.send(result)
        except StopIteration as stop:
            return cast(_T, stop.value)

    async def _arun(self, flow: _Flow[_T]) -> _T:
        try:
            op = next(flow)
            store = self.store
            while True:
                name, args = op
                try:
                    if name == "sleep":
                        await asyncio.sleep(*args)
                        result = None
                    else:
                        result = await getattr(store, "a" + name)(*args)
                except SessionStoreUnavailable as exc:
                    op = flow.throw(exc)
                else:
                    op = flow.send(result)
        except StopIteration as stop:
            return cast(_T, stop.value)

    # -- the session dict: cookie keys without I/O, the rest fetched once -------------

    def _partial(self) -> dict[str, Any]:
        """The session as far as known without fetching spilled data."""
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            pass
        self._session_cache = {} if self.session_key is None else self._run(self._load_flow())
        return self._session_cache

    async def _apartial(self) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            pass
        self._session_cache = (
            {} if self.session_key is None else await self._arun(self._load_flow())
        )
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

    def _answers(self, key: str) -> bool:
        """Whether the unfetched session can answer for ``key`` (always, once fetched)."""
        return not self._pending or key in self._known

    def __contains__(self, key: object) -> bool:
        data = self._partial()
        if isinstance(key, str) and self._answers(key):
            return key in data
        return key in self._session

    def has_key(self, key: Any) -> bool:
        return key in self

    async def ahas_key(self, key: Any) -> bool:
        data = await self._apartial()
        if not (isinstance(key, str) and self._answers(key)):
            data = await self._aget_session()
        return key in data

    def __getitem__(self, key: str) -> Any:
        data = self._partial()
        if not self._answers(key):
            data = self._session
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        data = self._partial()
        if not self._answers(key):
            data = self._session
        return data.get(key, default)

    async def aget(self, key: str, default: Any = None) -> Any:
        data = await self._apartial()
        if not self._answers(key):
            data = await self._aget_session()
        return data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._partial()[key] = value
        self._known.add(key)
        self.modified = True

    async def aset(self, key: str, value: Any) -> None:
        (await self._apartial())[key] = value
        self._known.add(key)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        data = self._partial()
        if not self._answers(key):
            data = self._session
        del data[key]
        self._known.add(key)
        self.modified = True

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        data = self._partial()
        if not self._answers(key):
            data = self._session
        return self._pop(data, key, default)

    async def apop(self, key: str, default: Any = _MISSING) -> Any:
        data = await self._apartial()
        if not self._answers(key):
            data = await self._aget_session()
        return self._pop(data, key, default)

    def _pop(self, data: dict[str, Any], key: str, default: Any) -> Any:
        self.modified = self.modified or key in data
        self._known.add(key)
        return data.pop(key) if default is _MISSING else data.pop(key, default)

    def clear(self) -> None:
        super().clear()
        self._pending = False
        self._cleared = True

    # -- loading ---------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        self._session_cache = {} if self.session_key is None else self._run(self._load_flow())
        if self._pending:
            self._run(self._fetch_flow())
        return self._session_cache

    async def aload(self) -> dict[str, Any]:
        self._session_cache = (
            {} if self.session_key is None else await self._arun(self._load_flow())
        )
        if self._pending:
            await self._arun(self._fetch_flow())
        return self._session_cache

    def _digest_of(self, session_key: str | None, *, expired_too: bool = False) -> str | None:
        """The record digest a cookie value names, without asking the server.

        ``expired_too`` lets a delete find the record of an expired cookie that
        we issued, so that it is removed now rather than by ``clearsessions``.
        """
        if not self._validate_session_key(session_key):
            return None
        if session_key == self.session_key and self._sid is not None:
            return digest(self._sid)
        parsed = self._parse(session_key, verify_exp=not expired_too)  # type: ignore[arg-type]
        return None if parsed is None else digest(parsed.sid)

    def exists(self, session_key: str | None) -> bool:
        key = self._digest_of(session_key)
        if key is None or liveness.lookup(key, _now(), 0) is False:
            return False
        alive = self.store.exists(key)
        liveness.record(key, alive, _now())
        return alive

    async def aexists(self, session_key: str | None) -> bool:
        key = self._digest_of(session_key)
        if key is None or liveness.lookup(key, _now(), 0) is False:
            return False
        alive = await self.store.aexists(key)
        liveness.record(key, alive, _now())
        return alive

    # -- creating and saving ------------------------------------------------------------

    def is_empty(self) -> bool:
        if settings.SESSION_SAVE_EVERY_REQUEST and self.session_key is not None:
            # The middleware saves whatever is not empty, and a cookie not read yet
            # looks like a session: a forged one would be replaced by a new, empty
            # record on every request. The save would read it anyway.
            self._partial()
        return super().is_empty()

    def create(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            try:
                self._run(self._create_flow(self._get_new_session_key()))
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    async def acreate(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            try:
                await self._arun(self._create_flow(self._get_new_session_key()))
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    def _check_writable(self) -> None:
        if self._unavailable:
            raise SessionStoreUnavailable(
                "The session store was unavailable when this session was read; "
                "refusing to overwrite it."
            )

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        self._check_writable()
        if must_create:
            parsed = self._parse(self.session_key)
            if parsed is None:
                raise CreateError
            return self._run(self._create_flow(parsed.sid))
        cache = self._partial()
        if self.session_key is not None and self._sid is None:
            # Cleared before it was ever loaded: find the record, keep the data.
            self._run(self._locate_flow(self.session_key))
            self._session_cache = cache
        if self.session_key is None:
            # The cookie named no live session: start a new one.
            return self.create()
        self._run(self._update_flow())
        return None

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        self._check_writable()
        if must_create:
            parsed = self._parse(self.session_key)
            if parsed is None:
                raise CreateError
            return await self._arun(self._create_flow(parsed.sid))
        cache = await self._apartial()
        if self.session_key is not None and self._sid is None:
            await self._arun(self._locate_flow(self.session_key))
            self._session_cache = cache
        if self.session_key is None:
            return await self.acreate()
        await self._arun(self._update_flow())
        return None

    # -- deleting -----------------------------------------------------------------------

    def delete(self, session_key: str | None = None) -> None:
        key = self._digest_of(
            self.session_key if session_key is None else session_key, expired_too=True
        )
        if key is not None:
            self.store.delete(key)  # the store wrapper marks it gone in this process

    async def adelete(self, session_key: str | None = None) -> None:
        key = self._digest_of(
            self.session_key if session_key is None else session_key, expired_too=True
        )
        if key is not None:
            await self.store.adelete(key)

    @classmethod
    def clear_expired(cls) -> None:
        cls.get_store().clear_expired()

    @classmethod
    async def aclear_expired(cls) -> None:
        await cls.get_store().aclear_expired()
