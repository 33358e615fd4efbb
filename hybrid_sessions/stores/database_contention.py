"""What the relational store does when writers collide: fresh reads, a short lock, deadlocks.

A compare-and-set that lost must see the version that beat it, a save that
lost race after race ends the streak with one short locked merge, and a
deadlock the database broke by rolling one writer back is one more lost race.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connections, transaction
from django.db.models import F
from django.utils import timezone

from ..feeds import message
from .base import CasResult, SessionMeta, StoredSession
from .sql import as_bytes

#: Errors that mean "the server rolled this write back to break a deadlock".
MYSQL_DEADLOCK = 1213
POSTGRES_RETRYABLE = frozenset({"40P01", "40001"})


class DatabaseContention:
    """Mixed into :class:`~hybrid_sessions.stores.database.DatabaseStore`."""

    model: Any
    _fields: Any
    _channel: Any
    _statements: Any
    _execute: Any
    _learn: Any

    @property
    def db(self) -> str:
        raise NotImplementedError

    def _live(self, digest: str) -> Any:
        return self.model.objects.using(self.db).filter(pk=digest, expire_date__gt=timezone.now())

    @staticmethod
    def _first(qs: Any) -> StoredSession | None:
        rows = list(qs.values_list(
            "data", "version", "expire_date", "user_id", "created_at", "last_activity"
        )[:1])
        if not rows:
            return None
        data, version, expires_at, user_id, created_at, last_activity = rows[0]
        return StoredSession(
            as_bytes(data), version, expires_at, None if user_id is None else str(user_id),
            created_at, last_activity,
        )

    def _latest(self, digest: str) -> StoredSession | None:
        """The row as last committed, for a compare-and-set that lost.

        In autocommit mode every read sees the latest commit. Inside a
        transaction, MariaDB/MySQL at REPEATABLE READ read from the snapshot
        taken at the transaction's first read, so the version that beat us
        would stay invisible and every retry would lose again; a locking read
        sees the latest commit. The lock is the one the retried ``UPDATE``
        takes anyway, and it ends with the caller's transaction.
        """
        qs = self._live(digest)
        connection = connections[self.db]
        if not connection.get_autocommit() and connection.features.has_select_for_update:
            qs = qs.select_for_update()
        return self._first(qs)

    def update_locked(
        self, digest: str, build: Callable[[StoredSession], tuple[bytes | None, SessionMeta]]
    ) -> CasResult:
        """Read the latest row, let ``build`` merge onto it, and write it, under a row lock.

        The way out of a losing streak: a save that lost several compare-and-set
        races to a writer in a tight loop cannot lose this one. The lock lasts
        one short transaction (a read and a write), never a request; writes to
        the same session wait for it, nothing else does. SQLite has no row
        locks: a first no-op write takes its database write lock instead.
        """
        db = self.db
        try:
            return self._update_locked(db, digest, build)
        except OperationalError as exc:
            if not self._lost_to_a_deadlock(db, exc):
                raise
            return CasResult(ok=False, current=self._latest(digest))

    def _update_locked(
        self, db: str, digest: str,
        build: Callable[[StoredSession], tuple[bytes | None, SessionMeta]],
    ) -> CasResult:
        with transaction.atomic(using=db):
            live = self._live(digest)
            if connections[db].features.has_select_for_update:
                live = live.select_for_update()
            elif not live.update(version=F("version")):
                return CasResult(ok=False)
            current = self._first(live)
            if current is None:
                return CasResult(ok=False)
            data, meta = build(current)
            version = current.version + 1
            self.model.objects.using(db).filter(pk=digest).update(
                data=data, version=version, **self._fields(meta, timezone.now())
            )
            channel = self._channel(self._statements()[1], versions=True)
            if channel is not None:
                self._execute(db, "SELECT pg_notify(%s, %s)", [channel, message(digest, version)])
        self._learn(digest, version)
        return CasResult(ok=True, version=version)

    @staticmethod
    def _lost_to_a_deadlock(db: str, exc: OperationalError) -> bool:
        """Whether the database rolled this statement back to break a deadlock.

        InnoDB can pick one of two concurrent writers of a row as a deadlock's
        victim (error 1213), PostgreSQL likewise (``40P01``). Outside a
        transaction of the caller's, that is one more lost race, retried like
        any other; inside one, the caller's transaction is gone and the error is
        theirs.
        """
        if connections[db].in_atomic_block:
            return False
        cause = exc.__cause__
        return bool(exc.args and exc.args[0] == MYSQL_DEADLOCK) or (
            getattr(cause, "sqlstate", None) in POSTGRES_RETRYABLE
        )
