"""Every session of the relational store, page by page, for operators (admin, purge, stats)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from .base import LIVE, SessionFilter, SessionInfo


class DatabaseListing:
    """Mixed into :class:`~hybrid_sessions.stores.database.DatabaseStore`."""

    model: Any
    _user_pk: Any

    @property
    def db(self) -> str:
        raise NotImplementedError

    def _matching(self, filters: SessionFilter) -> Any:
        qs = self.model.objects.using(self.db).all()
        if filters.expired is not None:
            now = timezone.now()
            qs = qs.filter(expire_date__lte=now) if filters.expired else qs.filter(
                expire_date__gt=now
            )
        if filters.user_ids is not None:
            pks = [pk for pk in map(self._user_pk, filters.user_ids) if pk is not None]
            qs = qs.filter(user_id__in=pks)
        if filters.signed_in is not None:
            qs = qs.filter(user_id__isnull=not filters.signed_in)
        if filters.data_on_server is not None:
            qs = qs.filter(data__isnull=not filters.data_on_server)
        if filters.inactive_before is not None:
            qs = qs.filter(last_activity__lt=filters.inactive_before)
        if filters.max_size is not None or filters.min_size is not None:
            qs = qs.annotate(stored_size=Coalesce(Length("data"), 0))
            if filters.max_size is not None:
                qs = qs.filter(stored_size__lte=filters.max_size)
            if filters.min_size is not None:
                qs = qs.filter(stored_size__gte=filters.min_size)
        return qs

    @staticmethod
    def _infos(qs: Any) -> list[SessionInfo]:
        rows = qs.annotate(data_size=Length("data")).values_list(
            "key_digest", "user_id", "created_at", "last_activity", "expire_date",
            "ip_address", "user_agent", "data_size",
        )
        return [
            SessionInfo(
                d, None if u is None else str(u), c, a, e, ip, ua or None, size or 0,
                data_on_server=size is not None,
            )
            for d, u, c, a, e, ip, ua, size in rows
        ]

    def list_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        """Keyset pages: on the primary key, or on (last activity, digest) when ``recent_first``.

        The primary-key order is the one to walk a whole table in (purge,
        stats): each page is an index range scan that starts where the last
        one stopped, whatever the table's size.
        """
        qs = self._matching(filters)
        if recent_first:
            qs = qs.order_by("-last_activity", "-key_digest")
            if cursor:
                active, last = _activity_cursor(cursor)
                qs = qs.filter(
                    Q(last_activity__lt=active) | Q(last_activity=active, key_digest__lt=last)
                )
        else:
            qs = qs.order_by("key_digest")
            if cursor:
                qs = qs.filter(key_digest__gt=_digest_cursor(cursor))
        limit = max(1, limit)
        infos = self._infos(qs[: limit + 1])
        if len(infos) <= limit:
            return infos, None
        infos = infos[:limit]
        last_info = infos[-1]
        if recent_first:
            return infos, f"{last_info.last_activity.isoformat()}~{last_info.digest}"
        return infos, last_info.digest

    def describe(self, digest: str) -> SessionInfo | None:
        infos = self._infos(self.model.objects.using(self.db).filter(pk=digest))
        return infos[0] if infos else None

    async def alist_sessions(
        self,
        cursor: str | None = None,
        limit: int = 100,
        *,
        filters: SessionFilter = LIVE,
        recent_first: bool = False,
    ) -> tuple[list[SessionInfo], str | None]:
        return await sync_to_async(self.list_sessions)(
            cursor, limit, filters=filters, recent_first=recent_first
        )

    async def adescribe(self, digest: str) -> SessionInfo | None:
        return await sync_to_async(self.describe)(digest)



_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digest_cursor(cursor: str) -> str:
    if not _DIGEST.fullmatch(cursor):
        raise ValueError(f"Not a session listing cursor: {cursor!r}")
    return cursor


def _activity_cursor(cursor: str) -> tuple[datetime, str]:
    active, _sep, last = cursor.rpartition("~")
    try:
        when = datetime.fromisoformat(active)
    except ValueError:
        raise ValueError(f"Not a session listing cursor: {cursor!r}") from None
    return when, _digest_cursor(last)
