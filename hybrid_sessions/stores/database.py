"""The relational store, through the Django ORM.

Every operation is a single statement in autocommit mode (no BEGIN/COMMIT
round trips); inside an outer transaction a savepoint guards the one statement
that can fail on a key collision. All queries go to the write database so a
request always reads its own writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
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
            return get_user_model()._meta.pk.to_python(user_id)  # type: ignore[union-attr]
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

    def get(self, digest: str) -> StoredSession | None:
        rows = list(self._live(digest).values_list("data", "version", "expire_date", "user_id")[:1])
        if not rows:
            return None
        data, version, expires_at, user_id = rows[0]
        return StoredSession(
            _as_bytes(data), version, expires_at, None if user_id is None else str(user_id)
        )

    def exists(self, digest: str) -> bool:
        return bool(self._live(digest).exists())

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
        return CasResult(ok=False, current=self.get(digest))

    def touch(self, digest: str, meta: SessionMeta) -> bool:
        now = timezone.now()
        return bool(
            self.model.objects.using(self.db)
            .filter(pk=digest, expire_date__gt=now)
            .update(**self._fields(meta, now))
        )

    def delete(self, digest: str) -> None:
        db = self.db
        self.model.objects.using(db).filter(pk=digest)._raw_delete(db)  # type: ignore[attr-defined]

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
        return int(qs._raw_delete(db))  # type: ignore[attr-defined]

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
                expired.filter(pk__in=digests)._raw_delete(db)  # type: ignore[attr-defined]
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
        now = timezone.now()
        updated = await (
            self.model.objects.using(self.db)
            .filter(pk=digest, version=version, expire_date__gt=now)
            .aupdate(data=data, version=version + 1, **self._fields(meta, now))
        )
        if updated:
            return CasResult(ok=True, version=version + 1)
        return CasResult(ok=False, current=await self.aget(digest))

    async def atouch(self, digest: str, meta: SessionMeta) -> bool:
        now = timezone.now()
        return bool(
            await self.model.objects.using(self.db)
            .filter(pk=digest, expire_date__gt=now)
            .aupdate(**self._fields(meta, now))
        )

    async def adelete(self, digest: str) -> None:
        await sync_to_async(self.delete)(digest)

    async def alist_user(self, user_id: str) -> Sequence[SessionInfo]:
        return await sync_to_async(self.list_user)(user_id)

    async def adelete_user(self, user_id: str, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_user)(user_id, keep)

    async def aclear_expired(self) -> int:
        return await sync_to_async(self.clear_expired)()


__all__ = ["DatabaseStore"]
