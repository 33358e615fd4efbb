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

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..conf import USER_AGENT_MAX_LENGTH
from ..exceptions import SessionStoreUnavailable
from ..feeds import Feed, redis_listener
from .announcing import AnnouncingStore
from .base import CasResult, SessionInfo, SessionMeta, StoredSession
from .redis_ends import RedisEnds
from .redis_listing import RedisListing
from .redis_scripts import (
    COMPARE_AND_SET,
    CREATE,
    TOUCH,
    LuaScript,
)
from .redis_values import from_ms, maybe_from_ms, now_ms, text, to_ms

logger = logging.getLogger("hybrid_sessions")

P = ParamSpec("P")
T = TypeVar("T")

#: Errors that mean "the store cannot be used right now", not "the request is wrong".
#: ``ReadOnlyError``: after a failover the client still talks to the demoted primary.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


# -- the store -------------------------------------------------------------------------------


class RedisStore(RedisEnds, RedisListing, AnnouncingStore):
    """Sessions in Redis; the cache alias is read on every call, so settings may change.

    Every name goes through the cache's ``make_key``; the feed's channel too, so
    two sites sharing a Redis server with different ``KEY_PREFIX`` do not hear
    each other.
    """

    def channel(self) -> str:
        return self._key("feed", "v1")

    def feed(self) -> Feed | None:
        if self.announce in (None, "off"):
            return None
        if self._feed is None:
            self._feed = Feed(f"redis:{self.alias}", redis_listener(self._client, self.channel()))
        return self._feed

    def _publish_to(self, versions: bool) -> str:
        """The channel a write publishes to, or '' when this kind of message is not sent."""
        return self.channel() if self._publishes(versions) else ""

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
                now_ms(),
                to_ms(meta.expires_at),
                meta.user_id or "",
                meta.ip_address or "",
                (meta.user_agent or "")[:USER_AGENT_MAX_LENGTH],
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
            version, data, expires, user, created, active = client.hmget(
                key, "v", "d", "e", "u", "c", "a"
            )
        except UNAVAILABLE as exc:
            raise self._unavailable("read", started, exc) from exc
        if version is None:
            return None
        return StoredSession(
            data, int(version), from_ms(expires), text(user),
            maybe_from_ms(created), maybe_from_ms(active),
        )

    def exists(self, digest: str) -> bool:
        key = self._session_key(digest)
        with self._guard("exists"):
            return bool(self._client().exists(key))

    # -- writes -----------------------------------------------------------------

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        start = "" if meta.created_at is None else to_ms(meta.created_at)
        extra = ["0", b"", start] if data is None else ["1", data, start]
        created = bool(self._write("create", CREATE, digest, meta, extra))
        if created:
            self._learn(digest, 1)
        return created

    def compare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        channel = self._publish_to(versions=True)
        extra = [version, "0", b"", channel] if data is None else [version, "1", data, channel]
        reply = self._write("save", COMPARE_AND_SET, digest, meta, extra)
        if int(reply[0]):
            self._learn(digest, int(reply[1]))
            return CasResult(ok=True, version=int(reply[1]))
        if len(reply) == 1:
            return CasResult(ok=False)
        _, current, data_now, expires, user = reply
        return CasResult(
            ok=False,
            current=StoredSession(data_now, int(current), from_ms(expires), text(user)),
        )

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        return bool(self._write("touch", TOUCH, digest, meta, ()))

    # -- per user ---------------------------------------------------------------

    def list_user(self, user_id: str) -> Sequence[SessionInfo]:
        """Read the user's index, never ``SCAN``: two round trips whatever the key count."""
        index = self._index_key(user_id)
        fields = ("u", "c", "a", "e", "ip", "ua")
        with self._guard("list"):
            client = self._client()
            pipe = client.pipeline()
            pipe.zremrangebyscore(index, "-inf", f"({now_ms()}")
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
                        digest, text(user), from_ms(created), from_ms(active),
                        from_ms(expires), text(ip), text(ua), int(size),
                    )
                )
            if gone:
                # Only a flush or an eviction removes a hash behind the index's back.
                client.zrem(index, *gone)
        sessions.sort(key=lambda s: s.last_activity, reverse=True)
        return sessions

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
                now = f"({now_ms()}"
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

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await _off_loop(self.list_user)(user_id)

    async def aclear_expired(self) -> int:
        return await _off_loop(self.clear_expired)()


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
