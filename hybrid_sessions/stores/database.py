"""The relational store, through the Django ORM.

Every operation is a single statement in autocommit mode (no BEGIN/COMMIT
round trips); inside an outer transaction a savepoint guards the one statement
that can fail on a key collision. The one exception is ``update_locked``, a
short read-and-write transaction that ends a save's losing streak. All queries
go to the write database so a request always reads its own writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.db.models.functions import Length
from django.utils import timezone

from ..conf import conf
from ..models import Session
from .base import CasResult, SessionInfo, SessionMeta, StoredSession


def _as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return bytes(value)


class DatabaseStore:
    """Sessions in the ``hybrid_sessions_session`` table."""

    model = Session

    @property
    def db(self) -> str:
        return router.db_for_write(self.model)

    def _user_pk(self, user_id: str | None) -> Any:
        if user_id is None:
            return None
        try:
            return get_user_model()._meta.pk.to_python(user_id)  # type: ignore[union-attr, unused-ignore]
        except ValidationError:
            return None

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
        return self._first(self._live(digest))

    def exists(self, digest: str) -> bool:
        return bool(self._live(digest).exists())

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
        now = timezone.now()
        updated = (
            self.model.objects.using(self.db)
            .filter(pk=digest, version=version, expire_date__gt=now)
            .update(data=data, version=version + 1, **self._fields(meta, now))
        )
        if updated:
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
        now = timezone.now()
        fields = self._fields(meta, now)
        # The data is not written, so neither is the user derived from it: a
        # request that loaded before a concurrent login must not unlink the user.
        del fields["user_id"]
        live = self.model.objects.using(self.db).filter(pk=digest, expire_date__gt=now)
        return bool(live.update(**fields))

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

    # -- async: the ORM's async API where it has one --------------------------------

    async def aget(self, digest: str) -> StoredSession | None:
        qs = self._live(digest).values_list("data", "version", "expire_date", "user_id")[:1]
        async for data, version, expires_at, user_id in qs:
            return StoredSession(
                _as_bytes(data), version, expires_at, None if user_id is None else str(user_id)
            )
        return None

    async def aexists(self, digest: str) -> bool:
        return bool(await self._live(digest).aexists())

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
