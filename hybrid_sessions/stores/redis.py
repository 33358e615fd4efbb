"""The Redis store, through the site's django-redis cache (``SESSION_CACHE_ALIAS``).

Layout. Every name goes through the cache's ``make_key``, so ``KEY_PREFIX``,
``VERSION`` and ``KEY_FUNCTION`` apply; the session key itself is never stored,
only its SHA-256 digest:

* ``hs:s:<digest>``: one hash per session, fields ``d`` (data, absent when
  ``None``), ``v`` (version), ``c``/``a``/``e`` (created, last activity, expiry,
  in milliseconds since the epoch), ``u`` (user id), ``ix`` (that user's index
  key), ``ip``, ``ua``. Its ``PEXPIREAT`` is the session's expiry, so Redis drops
  it on time and ``set_expiry()`` moves it.
* ``hs:u:<user id>``: one sorted set per user, member the digest, score the
  session's expiry. Expired members are pruned whenever the set is written or
  read, removing a session removes its member in the same script, and the set
  expires with its longest-lived session: no entry outlives its session, which
  is the leak of indexes that only ever grow.

Each create, compare-and-set, touch and delete is one Lua script: one round
trip, atomic on the server (the create is ``SET NX`` semantics, no
check-then-set race). The scripts never decode session data.

Outages. django-redis builds its connection pool without a ``Retry`` policy, so
redis-py (6 and later, including 8) makes one attempt per command: a refused
connection fails at once, an unreachable host within ``SOCKET_CONNECT_TIMEOUT``,
a server that stops answering within ``SOCKET_TIMEOUT``. A stale pooled
connection (server restarted) is replaced by the pool before use, without a
retry. ``hybrid_sessions.W013`` warns when a site's options add retries or
remove the timeouts. Connection errors and timeouts are logged to the
``hybrid_sessions`` logger and raised as
:class:`~hybrid_sessions.exceptions.SessionStoreUnavailable`.

Async. The async methods run the sync ones in a worker thread
(``sync_to_async(thread_sensitive=False)``), so the event loop never waits on a
socket and several calls proceed in parallel. The alternative, ``redis.asyncio``,
needs a pool per event loop rebuilt from settings django-redis already owns
(TLS, sentinel, credentials, pool class), a second copy of every script call,
and a second retry policy to keep bounded; a thread keeps one pool, one code
path and one time bound for both. The cost is a thread hop per call, and under a
hung (not down) server each call holds a worker thread for up to the timeout.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import SessionStoreUnavailable
from .base import LIVE, CasResult, SessionFilter, SessionInfo, SessionMeta, StoredSession

logger = logging.getLogger("hybrid_sessions")

P = ParamSpec("P")
T = TypeVar("T")

#: Errors that mean "the store cannot be used right now", not "the request is wrong".
#: ``ReadOnlyError``: after a failover the client still talks to the demoted primary.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
#: Sessions removed per script by ``delete_user``: one round trip per batch,
#: short enough not to stall the server.
DELETE_BATCH = 500
#: Longest user agent kept, as in the database store.
USER_AGENT_MAX = 512


# -- Lua --------------------------------------------------------------------------------------

# Shared by the write scripts. ARGV: [1] digest, [2] now, [3] expiry (ms),
# [4] user id ('' for none), [5] IP ('' keeps it), [6] user agent ('' keeps it).
# KEYS[1] is the session hash, KEYS[2] (absent when anonymous) the user's index.
_PRELUDE = """
local function reindex(ix, now)
  redis.call('ZREMRANGEBYSCORE', ix, '-inf', '(' .. now)
  local top = redis.call('ZRANGE', ix, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', ix, top[2]) end
end
local function set_user(key, ix)
  local old = redis.call('HGET', key, 'ix')
  if old and old ~= ix then
    redis.call('ZREM', old, ARGV[1])
    reindex(old, ARGV[2])
  end
  if ix then
    redis.call('HSET', key, 'u', ARGV[4], 'ix', ix)
  else
    redis.call('HDEL', key, 'u', 'ix')
  end
end
local function extend(key, ix)
  local digest, now, exp = ARGV[1], ARGV[2], ARGV[3]
  redis.call('HSET', key, 'a', now, 'e', exp)
  if ARGV[5] ~= '' then redis.call('HSET', key, 'ip', ARGV[5]) end
  if ARGV[6] ~= '' then redis.call('HSET', key, 'ua', ARGV[6]) end
  redis.call('PEXPIREAT', key, exp)
  if ix then
    redis.call('ZADD', ix, exp, digest)
    reindex(ix, now)
  end
end
"""

# ARGV[7]: '1' when there is data, ARGV[8]: the data.
_CREATE = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', 1, 'c', ARGV[2])
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'd', ARGV[8]) end
set_user(KEYS[1], KEYS[2] or false)
extend(KEYS[1], KEYS[2] or false)
return 1
"""

# ARGV[7]: expected version, ARGV[8]: '1' when there is data, ARGV[9]: the data.
# Returns {1, new version}, {0} when the session is gone, or {0, version, data,
# expiry, user} (the state that won) when the version moved on.
_COMPARE_AND_SET = _PRELUDE + """
local cur = redis.call('HMGET', KEYS[1], 'v', 'd', 'e', 'u')
if not cur[1] then return {0} end
if cur[1] ~= ARGV[7] then return {0, cur[1], cur[2], cur[3], cur[4]} end
local version = redis.call('HINCRBY', KEYS[1], 'v', 1)
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[1], 'd', ARGV[9])
else
  redis.call('HDEL', KEYS[1], 'd')
end
set_user(KEYS[1], KEYS[2] or false)
extend(KEYS[1], KEYS[2] or false)
return {1, version}
"""

# The data is not written, so neither is the user derived from it: a request
# that loaded before a concurrent login must not unlink the user.
_TOUCH = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
extend(KEYS[1], redis.call('HGET', KEYS[1], 'ix'))
return 1
"""

# ARGV: [1] digest, [2] now.
_DELETE = _PRELUDE + """
local ix = redis.call('HGET', KEYS[1], 'ix')
redis.call('DEL', KEYS[1])
if ix then
  redis.call('ZREM', ix, ARGV[1])
  reindex(ix, ARGV[2])
end
return 1
"""

# KEYS: [1] the index, [2..n] session hashes; ARGV: [1] now, [2..n] their digests.
# A session that moved to another user meanwhile is left alone.
_DELETE_USER = _PRELUDE + """
local removed = 0
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'ix') == KEYS[1] then
    removed = removed + redis.call('DEL', KEYS[i])
  end
  redis.call('ZREM', KEYS[1], ARGV[i])
end
reindex(KEYS[1], ARGV[1])
return removed
"""

# KEYS: session hashes; ARGV: [1] now, [2..n] their digests.
_DELETE_MANY = _PRELUDE + """
local removed = 0
for i = 1, #KEYS do
  local ix = redis.call('HGET', KEYS[i], 'ix')
  removed = removed + redis.call('DEL', KEYS[i])
  if ix then
    redis.call('ZREM', ix, ARGV[i + 1])
    reindex(ix, ARGV[1])
  end
end
return removed
"""


class LuaScript:
    """A script run by its SHA-1 (``EVALSHA``), sent in full only when the server lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # EVAL runs it and caches it on the server for the next EVALSHA.
            return client.eval(self.source, len(keys), *keys, *args)


CREATE = LuaScript(_CREATE)
COMPARE_AND_SET = LuaScript(_COMPARE_AND_SET)
TOUCH = LuaScript(_TOUCH)
DELETE = LuaScript(_DELETE)
DELETE_USER = LuaScript(_DELETE_USER)
DELETE_MANY = LuaScript(_DELETE_MANY)


# -- time ------------------------------------------------------------------------------------


def _ms(value: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are in the current time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = timezone.make_aware(value)
    return math.floor(value.timestamp() * 1000)


def _now_ms() -> int:
    return math.floor(time.time() * 1000)


def _datetime(ms: bytes | int) -> datetime:
    """The datetime Django expects for ``ms``: aware in UTC, or naive local without USE_TZ."""
    value = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


# -- the store -------------------------------------------------------------------------------


class RedisStore:
    """Sessions in Redis; the cache alias is read on every call, so settings may change."""

    @property
    def alias(self) -> str:
        return str(getattr(settings, "SESSION_CACHE_ALIAS", "default"))

    def _client(self) -> Any:
        return get_redis_connection(self.alias)

    def _key(self, kind: str, name: str) -> str:
        return str(caches[self.alias].make_key(f"hs:{kind}:{name}"))

    def _session_key(self, digest: str) -> str:
        return self._key("s", digest)

    def _index_key(self, user_id: str) -> str:
        return self._key("u", user_id)

    def _backend(self) -> tuple[str, Any, Any]:
        """The alias, its cache and a client, looked up once per operation.

        The same objects ``get_redis_connection`` returns, without a second
        lookup of the cache (a thread-local) per name and per client.
        """
        alias = self.alias
        cache: Any = caches[alias]
        try:
            client = cache.client.get_client(True)
        except AttributeError:
            client = get_redis_connection(alias)  # raises its own NotImplementedError
        return alias, cache, client

    def _unavailable(self, action: str, started: float, exc: Exception) -> SessionStoreUnavailable:
        """Log one error for a connection failure; the exception for the caller to raise."""
        elapsed = time.monotonic() - started
        alias = self.alias
        logger.error(
            "Redis session store unavailable (cache alias %r): %s failed after %.3f s: %s",
            alias, action, elapsed, exc,
        )
        return SessionStoreUnavailable(
            f"Redis session store unavailable (cache alias {alias!r}): {exc}"
        )

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn a connection failure into one logged error and ``SessionStoreUnavailable``."""
        started = time.monotonic()
        try:
            yield
        except UNAVAILABLE as exc:
            raise self._unavailable(action, started, exc) from exc

    def _write(
        self, action: str, script: LuaScript, digest: str, meta: SessionMeta, extra: Sequence[Any]
    ) -> Any:
        started = time.monotonic()
        try:
            _alias, cache, client = self._backend()
            keys = [str(cache.make_key(f"hs:s:{digest}"))]
            if meta.user_id is not None and script is not TOUCH:
                keys.append(str(cache.make_key(f"hs:u:{meta.user_id}")))
            args = [
                digest,
                _now_ms(),
                _ms(meta.expires_at),
                meta.user_id or "",
                meta.ip_address or "",
                (meta.user_agent or "")[:USER_AGENT_MAX],
                *extra,
            ]
            return script(client, keys, args)
        except UNAVAILABLE as exc:
            raise self._unavailable(action, started, exc) from exc

    # -- reads ------------------------------------------------------------------

    def get(self, digest: str) -> StoredSession | None:
        started = time.monotonic()
        try:
            _alias, cache, client = self._backend()
            key = str(cache.make_key(f"hs:s:{digest}"))
            version, data, expires, user = client.hmget(key, "v", "d", "e", "u")
        except UNAVAILABLE as exc:
            raise self._unavailable("read", started, exc) from exc
        if version is None:
            return None
        return StoredSession(data, int(version), _datetime(expires), _text(user))

    def exists(self, digest: str) -> bool:
        key = self._session_key(digest)
        with self._guard("exists"):
            return bool(self._client().exists(key))

    # -- writes -----------------------------------------------------------------

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        extra = ["0", b""] if data is None else ["1", data]
        return bool(self._write("create", CREATE, digest, meta, extra))

    def compare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        extra = [version, "0", b""] if data is None else [version, "1", data]
        reply = self._write("save", COMPARE_AND_SET, digest, meta, extra)
        if int(reply[0]):
            return CasResult(ok=True, version=int(reply[1]))
        if len(reply) == 1:
            return CasResult(ok=False)
        _, current, data_now, expires, user = reply
        return CasResult(
            ok=False,
            current=StoredSession(data_now, int(current), _datetime(expires), _text(user)),
        )

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        return bool(self._write("touch", TOUCH, digest, meta, ()))

    def delete(self, digest: str) -> None:
        key = self._session_key(digest)
        with self._guard("delete"):
            DELETE(self._client(), [key], [digest, _now_ms()])

    # -- per user ---------------------------------------------------------------

    def list_user(self, user_id: str) -> Sequence[SessionInfo]:
        """Read the user's index, never ``SCAN``: two round trips whatever the key count."""
        index = self._index_key(user_id)
        fields = ("u", "c", "a", "e", "ip", "ua")
        with self._guard("list"):
            client = self._client()
            pipe = client.pipeline()
            pipe.zremrangebyscore(index, "-inf", f"({_now_ms()}")
            pipe.zrange(index, 0, -1)
            digests = [d.decode() for d in pipe.execute()[1]]
            if not digests:
                return []
            pipe = client.pipeline(transaction=False)
            for digest in digests:
                key = self._session_key(digest)
                pipe.hmget(key, *fields)
                pipe.hstrlen(key, "d")
            replies = pipe.execute()
            sessions, gone = [], []
            for i, digest in enumerate(digests):
                (user, created, active, expires, ip, ua), size = replies[2 * i : 2 * i + 2]
                if created is None:
                    gone.append(digest)
                    continue
                sessions.append(
                    SessionInfo(
                        digest, _text(user), _datetime(created), _datetime(active),
                        _datetime(expires), _text(ip), _text(ua), int(size),
                    )
                )
            if gone:
                # Only a flush or an eviction removes a hash behind the index's back.
                client.zrem(index, *gone)
        sessions.sort(key=lambda s: s.last_activity, reverse=True)
        return sessions

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        index = self._index_key(user_id)
        removed = 0
        with self._guard("delete_user"):
            client = self._client()
            digests = [d.decode() for d in client.zrange(index, 0, -1)]
            digests = [d for d in digests if d != keep]
            for start in range(0, len(digests), DELETE_BATCH):
                batch = digests[start : start + DELETE_BATCH]
                keys = [index, *(self._session_key(d) for d in batch)]
                removed += int(DELETE_USER(client, keys, [_now_ms(), *batch]))
        return removed

    def clear_expired(self) -> int:
        """Prune expired index entries; Redis expires the sessions themselves.

        Entries are also pruned whenever their index is used, and each index
        expires with its last session, so this only reclaims memory sooner. It
        ``SCAN``s for index keys, which assumes the default ``KEY_FUNCTION``
        shape (the key last); with another shape it finds nothing, harmlessly.
        """
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._key("u", "")) + "*"
        removed = 0
        with self._guard("clear_expired"):
            client = self._client()
            for batch in _batched(client.scan_iter(match=pattern, count=1000), 1000):
                now = f"({_now_ms()}"
                pipe = client.pipeline(transaction=False)
                for index in batch:
                    pipe.zremrangebyscore(index, "-inf", now)
                removed += sum(int(n) for n in pipe.execute())
        return removed

    # -- async: the sync methods in a worker thread (see the module docstring) ---------------

    async def aget(self, digest: str) -> StoredSession | None:
        return await _off_loop(self.get)(digest)

    async def aexists(self, digest: str) -> bool:
        return await _off_loop(self.exists)(digest)

    async def acreate(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        return await _off_loop(self.create)(digest, data, meta)

    async def acompare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        return await _off_loop(self.compare_and_set)(digest, version, data, meta)

    async def atouch(self, digest: str, meta: SessionMeta) -> bool:
        return await _off_loop(self.touch)(digest, meta)

    async def adelete(self, digest: str) -> None:
        await _off_loop(self.delete)(digest)

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await _off_loop(self.list_user)(user_id)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        return await _off_loop(self.delete_user)(user_id, keep)

    async def aclear_expired(self) -> int:
        return await _off_loop(self.clear_expired)()

    # -- every session, for operators (admin, purge, stats) -------------------------

    def _infos(self, client: Any, digests: Sequence[str]) -> list[SessionInfo]:
        """The sessions under ``digests`` that still exist, in one pipelined round trip."""
        pipe = client.pipeline(transaction=False)
        for digest in digests:
            key = self._session_key(digest)
            pipe.hmget(key, "u", "c", "a", "e", "ip", "ua")
            pipe.hstrlen(key, "d")
            pipe.hexists(key, "d")
        replies = pipe.execute()
        infos = []
        for i, digest in enumerate(digests):
            (user, created, active, expires, ip, ua), size, has_data = replies[3 * i : 3 * i + 3]
            if created is None or active is None or expires is None:
                continue  # expired or removed since it was found
            infos.append(
                SessionInfo(
                    digest, _text(user), _datetime(created), _datetime(active),
                    _datetime(expires), _text(ip), _text(ua), int(size),
                    data_on_server=bool(has_data),
                )
            )
        return infos

    def list_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        """``SCAN`` over the session hashes (never ``KEYS``), or the users' indexes.

        Redis removes a session when it expires, so ``expired=True`` finds none.
        A scan stops once it has ``limit`` matches or has examined
        ``SCAN_BUDGET_FACTOR * limit`` keys, so a filter that matches little
        returns short (even empty) pages rather than one long call. Like the
        index scan of ``clear_expired``, it assumes the default ``KEY_FUNCTION``
        shape (the key last).
        """
        limit = max(1, limit)
        if filters.expired:
            return [], None
        with self._guard("list_sessions"):
            client = self._client()
            if filters.user_ids is not None:
                infos, next_cursor = self._page_of_users(client, cursor, limit, filters.user_ids)
            else:
                infos, next_cursor = self._page_of_scan(client, cursor, limit, filters)
        infos = [info for info in infos if _matches(info, filters)]
        if recent_first:
            infos.sort(key=lambda info: info.last_activity, reverse=True)
        return infos, next_cursor

    def _page_of_users(
        self, client: Any, cursor: str | None, limit: int, user_ids: Sequence[str]
    ) -> tuple[list[SessionInfo], str | None]:
        """The users' indexes merged in digest order; the cursor is the last digest seen."""
        after = ""
        if cursor:
            if not (cursor.startswith("u") and _DIGEST.fullmatch(cursor[1:])):
                raise ValueError(f"Not a session listing cursor: {cursor!r}")
            after = cursor[1:]
        pipe = client.pipeline(transaction=False)
        live = f"({_now_ms()}"
        for user_id in sorted(set(user_ids)):
            pipe.zrangebyscore(self._index_key(user_id), live, "+inf")
        digests = sorted({d.decode() for members in pipe.execute() for d in members})
        rest = [d for d in digests if d > after]
        page = rest[:limit]
        more = len(rest) > limit
        return self._infos(client, page), f"u{page[-1]}" if more else None

    def _page_of_scan(
        self, client: Any, cursor: str | None, limit: int, filters: SessionFilter
    ) -> tuple[list[SessionInfo], str | None]:
        if cursor is not None and not cursor.isdigit():
            raise ValueError(f"Not a session listing cursor: {cursor!r}")
        position = int(cursor or 0)
        prefix = self._key("s", "")
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        found: list[SessionInfo] = []
        examined = 0
        while True:
            position, keys = client.scan(position, match=pattern, count=max(limit, 100))
            digests = [
                digest
                for digest in (k.decode()[len(prefix) :] for k in keys)
                if _DIGEST.fullmatch(digest)
            ]
            examined += len(keys)
            found += [info for info in self._infos(client, digests) if _matches(info, filters)]
            if position == 0:
                return found, None
            if len(found) >= limit or examined >= SCAN_BUDGET_FACTOR * limit:
                return found, str(position)

    def describe(self, digest: str) -> SessionInfo | None:
        with self._guard("describe"):
            infos = self._infos(self._client(), [digest])
        return infos[0] if infos else None

    def delete_many(self, digests: Sequence[str]) -> int:
        removed = 0
        with self._guard("delete_many"):
            client = self._client()
            for start in range(0, len(digests), DELETE_BATCH):
                batch = list(digests[start : start + DELETE_BATCH])
                keys = [self._session_key(d) for d in batch]
                removed += int(DELETE_MANY(client, keys, [_now_ms(), *batch]))
        return removed

    async def alist_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        return await _off_loop(self.list_sessions)(
            cursor, limit, filters=filters, recent_first=recent_first
        )

    async def adescribe(self, digest: str) -> SessionInfo | None:
        return await _off_loop(self.describe)(digest)

    async def adelete_many(self, digests: Sequence[str]) -> int:
        return await _off_loop(self.delete_many)(digests)


#: ``list_sessions`` examines at most this many keys per session asked for.
SCAN_BUDGET_FACTOR = 50
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _matches(info: SessionInfo, filters: SessionFilter) -> bool:
    """The filters Redis cannot apply itself (it drops expired sessions on its own)."""
    if filters.user_ids is not None and info.user_id not in filters.user_ids:
        return False
    if filters.signed_in is not None and (info.user_id is not None) != filters.signed_in:
        return False
    if filters.data_on_server is not None and info.data_on_server != filters.data_on_server:
        return False
    return filters.inactive_before is None or info.last_activity < filters.inactive_before


def _off_loop(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``func`` run in a worker thread, not serialised behind Django's one sync thread."""
    return sync_to_async(func, thread_sensitive=False)


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["RedisStore"]
