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
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.models.functions import Length
from django.utils import timezone

from ..conf import conf
from ..models import Session
from .base import CasResult, SessionInfo, SessionMeta, StoredSession

logger = logging.getLogger("hybrid_sessions")


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return bytes(value)


class _Statements:
    """The hot statements in one connection's SQL dialect, built once per connection.

    The ORM rebuilds and recompiles a query on every call, which costs several
    times the statement's own round trip for a primary-key lookup; these are
    compiled once. Values pass through the fields' own adapters and results
    through the backend's own converters, exactly as the ORM would apply them,
    so types (``memoryview`` data, aware datetimes, UUID user keys) come out the
    same on every backend.
    """

    def __init__(self, connection: BaseDatabaseWrapper, model: Any) -> None:
        meta = model._meta
        qn = connection.ops.quote_name
        self.connection = connection
        self.fields = {name: meta.get_field(name) for name in (
            "key_digest", "data", "version", "user", "created_at", "last_activity",
            "expire_date", "ip_address", "user_agent",
        )}
        # Only the model's own table and column names are interpolated, quoted by
        # the backend; every value is a parameter.
        table = qn(meta.db_table)
        col = {name: qn(field.column) for name, field in self.fields.items()}
        live = f"{col['key_digest']} = %s AND {col['expire_date']} > %s"
        self.select = (
            f"SELECT {col['data']}, {col['version']}, {col['expire_date']}, "  # noqa: S608
            f"{col['user']} FROM {table} WHERE {live}"
        )
        self.exists = f"SELECT 1 FROM {table} WHERE {live}"  # noqa: S608
        common = f"{col['expire_date']} = %s, {col['last_activity']} = %s"
        optional = {
            (ip, ua): common
            + (f", {col['ip_address']} = %s" if ip else "")
            + (f", {col['user_agent']} = %s" if ua else "")
            for ip in (False, True) for ua in (False, True)
        }
        self.touch = {
            k: f"UPDATE {table} SET {v} WHERE {live}"  # noqa: S608
            for k, v in optional.items()
        }
        self.cas = {
            k: (
                f"UPDATE {table} SET {col['data']} = %s, {col['version']} = %s, "  # noqa: S608
                f"{col['user']} = %s, {v} WHERE {live} AND {col['version']} = %s"
            )
            for k, v in optional.items()
        }
        self.converters = [
            self._converters(self.fields[name])
            for name in ("data", "version", "expire_date", "user")
        ]

    def _converters(self, field: Any) -> tuple[Any, list[Any]]:
        column = field.get_col(field.model._meta.db_table)
        return column, [
            *self.connection.ops.get_db_converters(column),
            *column.get_db_converters(self.connection),
        ]

    def prep(self, name: str, value: Any) -> Any:
        return self.fields[name].get_db_prep_value(value, self.connection, prepared=False)

    def now(self, value: datetime) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    def row(self, row: Sequence[Any]) -> list[Any]:
        values = []
        connection = self.connection
        for value, (column, converters) in zip(row, self.converters, strict=True):
            for converter in converters:
                value = converter(value, column, connection)
            values.append(value)
        return values


_statements: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Statements] = (
    weakref.WeakKeyDictionary()
)


def _forget_statements(**kwargs: Any) -> None:
    """Rebuild after any settings change: the converters depend on ``USE_TZ``, for one."""
    _statements.clear()


setting_changed.connect(_forget_statements, dispatch_uid="hybrid_sessions_statements")


class DatabaseStore:
    """Sessions in the ``hybrid_sessions_session`` table."""

    model = Session

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
            fields["user_agent"] = meta.user_agent[:512]
        return fields

    def _statements(self) -> tuple[str, _Statements]:
        db = self.db
        connection = connections[db]
        statements = _statements.get(connection)
        if statements is None:
            statements = _statements[connection] = _Statements(connection, self.model)
        return db, statements

    def _execute(self, db: str, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement as the ORM would: errors inside ``atomic`` mark it for rollback."""
        with transaction.mark_for_rollback_on_error(db), connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            if sql.startswith("SELECT"):
                return cursor.fetchone()
            return cursor.rowcount

    def _live(self, digest: str) -> Any:
        return self.model.objects.using(self.db).filter(pk=digest, expire_date__gt=timezone.now())

    # -- reads ------------------------------------------------------------------

    @staticmethod
    def _first(qs: Any) -> StoredSession | None:
        rows = list(qs.values_list("data", "version", "expire_date", "user_id")[:1])
        if not rows:
            return None
        data, version, expires_at, user_id = rows[0]
        return StoredSession(
            _as_bytes(data), version, expires_at, None if user_id is None else str(user_id)
        )

    def get(self, digest: str) -> StoredSession | None:
        db, sql = self._statements()
        row = self._execute(db, sql.select, (digest, sql.now(timezone.now())))
        if row is None:
            return None
        data, version, expires_at, user_id = sql.row(row)
        return StoredSession(
            _as_bytes(data), version, expires_at, None if user_id is None else str(user_id)
        )

    def exists(self, digest: str) -> bool:
        db, sql = self._statements()
        return self._execute(db, sql.exists, (digest, sql.now(timezone.now()))) is not None

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

    # -- writes -----------------------------------------------------------------

    def create(self, digest: str, data: bytes | None, meta: SessionMeta) -> bool:
        now = timezone.now()
        obj = self.model(key_digest=digest, data=data, version=1, created_at=now,
                         **self._fields(meta, now))
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
        if self._execute(db, sql.cas[key], params):
            return CasResult(ok=True, version=version + 1)
        return CasResult(ok=False, current=self._latest(digest))

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
        return CasResult(ok=True, version=version)

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        # The data is not written, so neither is the user derived from it: a
        # request that loaded before a concurrent login must not unlink the user.
        db, sql = self._statements()
        now = sql.now(timezone.now())
        params = [*self._meta_params(sql, meta, now), digest, now]
        key = (meta.ip_address is not None, meta.user_agent is not None)
        return bool(self._execute(db, sql.touch[key], params))

    @staticmethod
    def _meta_params(sql: _Statements, meta: SessionMeta, now: Any) -> list[Any]:
        """Values for ``expire_date, last_activity[, ip_address][, user_agent]``."""
        params = [sql.prep("expire_date", meta.expires_at), now]
        if meta.ip_address is not None:
            params.append(sql.prep("ip_address", meta.ip_address))
        if meta.user_agent is not None:
            params.append(sql.prep("user_agent", meta.user_agent[:512]))
        return params

    def delete(self, digest: str) -> None:
        db = self.db
        self.model.objects.using(db).filter(pk=digest)._raw_delete(db)  # type: ignore[attr-defined, unused-ignore]

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

    def delete_user(self, user_id: str, keep: str | None = None) -> int:
        pk = self._user_pk(user_id)
        if pk is None:
            return 0
        db = self.db
        qs = self.model.objects.using(db).filter(user_id=pk)
        if keep is not None:
            qs = qs.exclude(pk=keep)
        return int(qs._raw_delete(db))  # type: ignore[attr-defined, unused-ignore]

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

    async def adelete(self, digest: str) -> None:
        await sync_to_async(self.delete)(digest)

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await sync_to_async(self.list_user)(user_id)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_user)(user_id, keep)

    async def aclear_expired(self) -> int:
        return await sync_to_async(self.clear_expired)()


__all__ = ["DatabaseStore"]
