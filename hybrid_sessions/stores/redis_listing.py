"""Every session of the Redis store, page by page, for operators (admin, purge, stats)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async

from .base import LIVE, SessionFilter, SessionInfo
from .redis_values import from_ms, now_ms, text


class RedisListing:
    """Mixed into :class:`~hybrid_sessions.stores.redis.RedisStore`."""

    _client: Any
    _guard: Any
    _key: Any
    _session_key: Any
    _index_key: Any

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
                    digest, text(user), from_ms(created), from_ms(active),
                    from_ms(expires), text(ip), text(ua), int(size),
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
        live = f"({now_ms()}"
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

    async def alist_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        return await sync_to_async(self.list_sessions, thread_sensitive=False)(
            cursor, limit, filters=filters, recent_first=recent_first
        )

    async def adescribe(self, digest: str) -> SessionInfo | None:
        return await sync_to_async(self.describe, thread_sensitive=False)(digest)



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
    if filters.max_size is not None and info.size > filters.max_size:
        return False
    if filters.min_size is not None and info.size < filters.min_size:
        return False
    return filters.inactive_before is None or info.last_activity < filters.inactive_before
