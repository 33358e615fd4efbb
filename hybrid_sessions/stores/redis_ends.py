"""How the Redis store ends sessions: one, a user's, or many; each end announced.

Each is one script per batch that removes the hashes, prunes the users'
indexes and ``PUBLISH``es every end on the feed; what it removed comes back, to
be recorded in this process and reported to ``session_revoked``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async

from ..knowledge import GONE
from .base import StoredSession
from .redis_scripts import DELETE_MANY, DELETE_USER, POP
from .redis_values import aware_now, from_ms, maybe_from_ms, now_ms, text

#: Sessions removed per script by ``delete_user`` and ``delete_many``: one round
#: trip per batch, short enough not to stall the server.
DELETE_BATCH = 500


class RedisEnds:
    """Mixed into :class:`~hybrid_sessions.stores.redis.RedisStore`."""

    _client: Any
    _guard: Any
    _session_key: Any
    _index_key: Any
    _publish_to: Any
    _learn: Any
    _report_ends: Any

    def delete(self, digest: str) -> None:
        self.pop(digest)

    def pop(self, digest: str) -> StoredSession | None:
        started = time.monotonic()
        key = self._session_key(digest)
        with self._guard("delete"):
            reply = POP(self._client(), [key], [digest, now_ms(), self._publish_to(False)])
        self._learn(digest, GONE)
        if not reply:
            return None
        version, data, expires, user, created, active = reply
        expires_at = from_ms(expires)
        if expires_at <= aware_now():
            return None
        self._report_ends((digest,), text(user or None), started)
        return StoredSession(
            data or None, int(version), expires_at, text(user or None),
            maybe_from_ms(created or None), maybe_from_ms(active or None),
        )

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        index = self._index_key(user_id)
        removed = 0
        channel = self._publish_to(False)
        with self._guard("delete_user"):
            client = self._client()
            digests = [d.decode() for d in client.zrange(index, 0, -1)]
            digests = [d for d in digests if d != keep]
            for start in range(0, len(digests), DELETE_BATCH):
                batch = digests[start : start + DELETE_BATCH]
                keys = [index, *(self._session_key(d) for d in batch)]
                started = time.monotonic()
                ended = DELETE_USER(client, keys, [now_ms(), channel, *batch])
                for digest in ended:
                    self._learn(digest.decode() if isinstance(digest, bytes) else digest, GONE)
                self._report_ends(ended, user_id, started)
                removed += len(ended)
        return removed

    def delete_many(self, digests: Sequence[str]) -> int:
        removed = 0
        channel = self._publish_to(False)
        with self._guard("delete_many"):
            client = self._client()
            for start in range(0, len(digests), DELETE_BATCH):
                batch = list(digests[start : start + DELETE_BATCH])
                keys = [self._session_key(d) for d in batch]
                started = time.monotonic()
                ended = DELETE_MANY(client, keys, [now_ms(), channel, *batch])
                for digest in ended:
                    self._learn(digest.decode() if isinstance(digest, bytes) else digest, GONE)
                self._report_ends(ended, started=started)
                removed += len(ended)
        return removed

    async def adelete(self, digest: str) -> None:
        await sync_to_async(self.delete, thread_sensitive=False)(digest)

    async def apop(self, digest: str) -> StoredSession | None:
        return await sync_to_async(self.pop, thread_sensitive=False)(digest)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_user, thread_sensitive=False)(user_id, keep)

    async def adelete_many(self, digests: Sequence[str]) -> int:
        return await sync_to_async(self.delete_many, thread_sensitive=False)(digests)
