"""How the relational store ends sessions: one, a user's, or many; each end announced.

Every end reads back what it removed in the same statement (``RETURNING``), so
it can be recorded in this process, published on the feed (PostgreSQL
``pg_notify()`` in the statement itself) and reported to ``session_revoked``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from ..knowledge import GONE
from .base import StoredSession
from .sql import RAW, as_bytes

#: Digests per ``DELETE`` of ``delete_many``: well under every backend's parameter limit.
DELETE_CHUNK = 500


class DatabaseEnds:
    """Mixed into :class:`~hybrid_sessions.stores.database.DatabaseStore`."""

    model: Any
    _statements: Any
    _channel: Any
    _fetch_all: Any
    _first: Any
    _learn: Any
    _report_ends: Any
    _user_pk: Any

    def delete(self, digest: str) -> None:
        self.pop(digest)

    def pop(self, digest: str) -> StoredSession | None:
        started = time.monotonic()
        db, sql = self._statements()
        channel = self._channel(sql, versions=False)
        if channel is not None:
            rows = self._fetch_all(db, sql.pop_notify, [digest, channel])
        elif sql.returning:
            rows = self._fetch_all(db, sql.pop, [digest])
        else:
            with transaction.atomic(using=db):
                found = self._first(self.model.objects.using(db).filter(pk=digest)
                                    .select_for_update())
                self.model.objects.using(db).filter(pk=digest)._raw_delete(db)  # type: ignore[attr-defined, unused-ignore]
            rows = [] if found is None else [
                (found.data, found.version, found.expires_at, found.user_id,
                 found.created_at, found.last_activity)
            ]
            sql = RAW  # already converted by the ORM
        self._learn(digest, GONE)
        if not rows:
            return None
        data, version, expires_at, user_id, created_at, last_activity = sql.row(rows[0][:6])
        if expires_at <= timezone.now():
            return None
        self._report_ends((digest,), None if user_id is None else str(user_id), started)
        return StoredSession(
            as_bytes(data), version, expires_at, None if user_id is None else str(user_id),
            created_at, last_activity,
        )

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        pk = self._user_pk(user_id)
        if pk is None:
            return 0
        started = time.monotonic()
        db, sql = self._statements()
        statement = sql.delete_user + ("" if keep is None else sql.keep)
        params = [sql.prep("user", pk), *([] if keep is None else [keep])]
        channel = self._channel(sql, versions=False)
        if channel is not None:
            ended = self._fetch_all(
                db, sql.notify_each.format(statement + sql.returning_digest), [*params, channel]
            )
        elif sql.returning:
            ended = self._fetch_all(db, statement + sql.returning_digest, params)
        else:
            with transaction.atomic(using=db):
                qs = self.model.objects.using(db).filter(user_id=pk)
                if keep is not None:
                    qs = qs.exclude(pk=keep)
                ended = [(d,) for d in qs.select_for_update().values_list("pk", flat=True)]
                qs.filter(pk__in=[d for (d,) in ended])._raw_delete(db)  # type: ignore[attr-defined, unused-ignore]
        for row in ended:
            self._learn(row[0], GONE)
        self._report_ends([row[0] for row in ended], user_id, started)
        return len(ended)

    def delete_many(self, digests: Sequence[str]) -> int:
        """Remove these sessions, in statements of at most :data:`DELETE_CHUNK`."""
        db, sql = self._statements()
        channel = self._channel(sql, versions=False)
        removed = 0
        for start in range(0, len(digests), DELETE_CHUNK):
            started = time.monotonic()
            chunk = list(digests[start : start + DELETE_CHUNK])
            if channel is not None or sql.returning:
                statement = sql.delete_many(len(chunk)) + sql.returning_digest
                if channel is not None:
                    ended = self._fetch_all(
                        db, sql.notify_each.format(statement), [*chunk, channel]
                    )
                else:
                    ended = self._fetch_all(db, statement, chunk)
            else:
                with transaction.atomic(using=db):
                    qs = self.model.objects.using(db).filter(pk__in=chunk)
                    ended = [(d,) for d in qs.select_for_update().values_list("pk", flat=True)]
                    qs._raw_delete(db)  # type: ignore[attr-defined, unused-ignore]
            for row in ended:
                self._learn(row[0], GONE)
            self._report_ends([row[0] for row in ended], started=started)
            removed += len(ended)
        return removed

    async def adelete(self, digest: str) -> None:
        await sync_to_async(self.delete)(digest)

    async def apop(self, digest: str) -> StoredSession | None:
        return await sync_to_async(self.pop)(digest)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_user)(user_id, keep)

    async def adelete_many(self, digests: Sequence[str]) -> int:
        return await sync_to_async(self.delete_many)(digests)
