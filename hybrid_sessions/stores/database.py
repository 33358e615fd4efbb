"""The relational store, through the Django ORM.

The statements of every request (read, compare-and-set, touch, exists) are
compiled once per connection from the model's metadata and run on Django's
cursor; the rarer operations use querysets.

Every operation is a single statement in autocommit mode (no BEGIN/COMMIT
round trips); inside an outer transaction a savepoint guards the one statement
that can fail on a key collision. The one exception is ``update_locked``, a
short read-and-write transaction that ends a save's losing streak. All queries
go to the write database so a request always reads its own writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models.functions import Length
from django.utils import timezone

from ..conf import USER_AGENT_MAX_LENGTH, conf
from ..feeds import Feed, in_test_environment, postgres_listener
from ..models import Session
from .announcing import AnnouncingStore
from .base import CasResult, SessionInfo, SessionMeta, StoredSession
from .database_contention import DatabaseContention
from .database_ends import DatabaseEnds
from .database_listing import DatabaseListing
from .sql import Statements, as_bytes, listening_connection, statements_for

logger = logging.getLogger("hybrid_sessions")

#: The PostgreSQL channel of the feed (``LISTEN``/``NOTIFY`` are per database).
CHANNEL = "hybrid_sessions"


class DatabaseStore(DatabaseEnds, DatabaseContention, DatabaseListing, AnnouncingStore):
    """Sessions in the ``hybrid_sessions_session`` table.

    On PostgreSQL its feed is ``LISTEN``/``NOTIFY`` on the channel
    :data:`CHANNEL`, per database; on other databases it has none, nor in a
    process running Django's tests unless ``HYBRID_SESSIONS_FEED_IN_TESTS`` says
    so (see :func:`~hybrid_sessions.feeds.in_test_environment`).
    """

    model = Session

    def feed(self) -> Feed | None:
        if self.announce in (None, "off"):
            return None
        connection = connections[self.db]
        if connection.vendor != "postgresql":
            return None
        if self._feed is None:
            if in_test_environment() and not conf.FEED_IN_TESTS:
                return None  # it would keep the runner from dropping the test database
            self._feed = Feed(f"postgresql:{self.db}", postgres_listener(
                lambda: listening_connection(self.db), CHANNEL
            ))
        return self._feed

    def _channel(self, sql: Statements, versions: bool) -> str | None:
        """The channel to notify, or ``None`` when this kind of message is not sent."""
        return CHANNEL if sql.notifies and self._publishes(versions) else None

    @property
    def db(self) -> str:
        return router.db_for_write(self.model)

    def _user_pk(self, user_id: str | None) -> Any:
        """The user link's value, or ``None`` when the id does not fit its column.

        The column is the one the migration made (the foreign key's target field),
        not the current ``AUTH_USER_MODEL``'s primary key: the two differ when the
        user model is swapped at run time, as some test suites do. A login must
        never fail over the link, so such a session is kept without it.
        """
        if user_id is None:
            return None
        target = self.model._meta.get_field("user").target_field
        try:
            pk = target.to_python(user_id)
            target.run_validators(pk)
        except (ValidationError, TypeError, ValueError):
            logger.warning(
                "The user id %r does not fit the session table's user column (%s); "
                "the session is kept without its user link, so it is not listed per user.",
                user_id, target.get_internal_type(),
            )
            return None
        return pk

    def _fields(self, meta: SessionMeta, now: datetime) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "expire_date": meta.expires_at,
            "last_activity": now,
            "user_id": self._user_pk(meta.user_id),
        }
        if meta.ip_address is not None:
            fields["ip_address"] = meta.ip_address
        if meta.user_agent is not None:
            fields["user_agent"] = meta.user_agent[:USER_AGENT_MAX_LENGTH]
        return fields

    def _statements(self) -> tuple[str, Statements]:
        db = self.db
        return db, statements_for(connections[db], self.model)

    def _execute(self, db: str, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement as the ORM would: errors inside ``atomic`` mark it for rollback."""
        with transaction.mark_for_rollback_on_error(db), connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            if sql.startswith("SELECT"):
                return cursor.fetchone()
            return cursor.rowcount

    def _fetch_all(self, db: str, sql: str, params: Sequence[Any]) -> list[Any]:
        with transaction.mark_for_rollback_on_error(db), connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())


    # -- reads ------------------------------------------------------------------

    def get(self, digest: str) -> StoredSession | None:
        db, sql = self._statements()
        row = self._execute(db, sql.select, (digest, sql.now(timezone.now())))
        if row is None:
            return None
        data, version, expires_at, user_id, created_at, last_activity = sql.row(row)
        return StoredSession(
            as_bytes(data), version, expires_at, None if user_id is None else str(user_id),
            created_at, last_activity,
        )

    def exists(self, digest: str) -> bool:
        db, sql = self._statements()
        return self._execute(db, sql.exists, (digest, sql.now(timezone.now()))) is not None

    # -- writes -----------------------------------------------------------------

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        created = self._insert(digest, data, meta)
        if created:
            self._learn(digest, 1)
        return created

    def _insert(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        now = timezone.now()
        obj = self.model(key_digest=digest, data=data, version=1,
                         created_at=meta.created_at or now, **self._fields(meta, now))
        db = self.db
        try:
            if connections[db].in_atomic_block:
                with transaction.atomic(using=db):
                    obj.save(force_insert=True, using=db)
            else:
                obj.save(force_insert=True, using=db)
        except IntegrityError:
            return False
        return True

    def compare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        db, sql = self._statements()
        now = sql.now(timezone.now())
        params = [
            sql.prep("data", data), version + 1, sql.prep("user", self._user_pk(meta.user_id)),
            *self._meta_params(sql, meta, now), digest, now, version,
        ]
        key = (meta.ip_address is not None, meta.user_agent is not None)
        channel = self._channel(sql, versions=True)
        try:
            if channel is None:
                written = bool(self._execute(db, sql.cas[key], params))
            else:
                written = self._fetch_all(db, sql.cas_notify[key], [*params, channel]) != []
        except OperationalError as exc:
            if not self._lost_to_a_deadlock(db, exc):
                raise
            written = False  # the server chose this write as the loser: a lost race
        if written:
            self._learn(digest, version + 1)
            return CasResult(ok=True, version=version + 1)
        return CasResult(ok=False, current=self._latest(digest))

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        # The data is not written, so neither is the user derived from it: a
        # request that loaded before a concurrent login must not unlink the user.
        db, sql = self._statements()
        now = sql.now(timezone.now())
        params = [*self._meta_params(sql, meta, now), digest, now]
        key = (meta.ip_address is not None, meta.user_agent is not None)
        return bool(self._execute(db, sql.touch[key], params))

    @staticmethod
    def _meta_params(sql: Statements, meta: SessionMeta, now: Any) -> list[Any]:
        """Values for ``expire_date, last_activity[, ip_address][, user_agent]``."""
        params = [sql.prep("expire_date", meta.expires_at), now]
        if meta.ip_address is not None:
            params.append(sql.prep("ip_address", meta.ip_address))
        if meta.user_agent is not None:
            params.append(sql.prep("user_agent", meta.user_agent[:USER_AGENT_MAX_LENGTH]))
        return params

    # -- per user ---------------------------------------------------------------

    def list_user(self, user_id: str) -> Sequence[SessionInfo]:
        pk = self._user_pk(user_id)
        if pk is None:
            return []
        rows = (
            self.model.objects.using(self.db)
            .filter(user_id=pk, expire_date__gt=timezone.now())
            .annotate(data_size=Length("data"))
            .order_by("-last_activity")
            .values_list(
                "key_digest", "user_id", "created_at", "last_activity", "expire_date",
                "ip_address", "user_agent", "data_size",
            )
        )
        return [
            SessionInfo(d, str(u), c, a, e, ip, ua or None, size or 0)
            for d, u, c, a, e, ip, ua, size in rows
        ]

    def clear_expired(self) -> int:
        """Delete expired rows in batches: flat memory, and each lock held briefly."""
        db = self.db
        batch = max(1, conf.CLEAR_EXPIRED_BATCH_SIZE)
        removed = 0
        while True:
            now = timezone.now()
            expired = self.model.objects.using(db).filter(expire_date__lte=now)
            digests = list(expired.values_list("pk", flat=True)[:batch])
            if not digests:
                return removed
            removed += int(
                expired.filter(pk__in=digests)._raw_delete(db)  # type: ignore[attr-defined, unused-ignore]
            )
            if len(digests) < batch:
                return removed

    # -- async: the sync statements on Django's database thread, as the ORM's async API does --

    async def aget(self, digest: str) -> StoredSession | None:
        return await sync_to_async(self.get)(digest)

    async def aexists(self, digest: str) -> bool:
        return await sync_to_async(self.exists)(digest)

    async def acreate(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        return await sync_to_async(self.create)(digest, data, meta)

    async def acompare_and_set(
        self, digest: str, version: int, data: bytes | None, meta: SessionMeta
    ) -> CasResult:
        # One hop to the database thread for the write and, if it lost, the re-read.
        return await sync_to_async(self.compare_and_set)(digest, version, data, meta)

    async def atouch(self, digest: str, meta: SessionMeta) -> bool:
        return await sync_to_async(self.touch)(digest, meta)

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await sync_to_async(self.list_user)(user_id)

    async def aclear_expired(self) -> int:
        return await sync_to_async(self.clear_expired)()


__all__ = ["DatabaseStore"]
