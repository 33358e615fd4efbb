"""Copying a site's sessions from Django's own engines into ours, so no one is logged out.

A site switching ``SESSION_ENGINE`` from ``django.contrib.sessions.backends.db``,
``.cache`` or ``.cached_db`` to one of ours would otherwise lose every session
at once: the new engine finds nothing under the cookies its visitors hold.
:func:`import_sessions` reads the old sessions with Django's own engine class
(so its signing, serializer and key layout apply unchanged) and creates each
one in the store of the active ``SESSION_ENGINE``, under the SHA-256 digest of
its key, with its data, user and expiry. Our server engines look a cookie up by
the digest of its value, so the cookie a visitor already holds keeps working.

Safe to run again, and to interrupt: a session already in our store is never
overwritten (``create`` refuses a digest that exists), so a second run skips
what the first copied. The old sessions are only read; dropping them is left
to the operator, once the switch is done. ``manage.py hybrid_sessions_import``
is the command-line face of this module.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any, Literal

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.utils import timezone

from .conf import conf
from .exceptions import HybridSessionsError
from .sealing import Sealer
from .stores.base import ServerStore, SessionMeta, digest

__all__ = ["SOURCES", "ImportResult", "SessionImportError", "count_sessions", "import_sessions"]

Source = Literal["db", "cache", "cached_db"]
#: Django's engines a site can import from, by the last part of their path.
SOURCES: tuple[Source, ...] = ("db", "cache", "cached_db")
#: A Django session key: what ``SessionBase._get_new_session_key`` makes (and its checks allow).
_KEY = re.compile(r"[0-9a-z]{8,40}")


class SessionImportError(HybridSessionsError):
    """The sessions cannot be imported as asked; nothing more was written."""


@dataclass(slots=True)
class ImportResult:
    """What one run did (or, in a dry run, would do)."""

    imported: int = 0
    #: Already in our store, from an earlier run or a visit since the switch: left as is.
    existing: int = 0
    #: Empty, or data Django's engine itself could not decode (it logs those).
    empty: int = 0

    @property
    def seen(self) -> int:
        return self.imported + self.existing + self.empty


@dataclass(frozen=True, slots=True)
class _Found:
    key: str
    data: dict[str, Any]
    expires_at: datetime


def _target() -> tuple[SessionBase, ServerStore]:
    """A session of the active engine (for its serializer) and its server store."""
    path = settings.SESSION_ENGINE
    engine: Any = import_module(path).SessionStore
    get_store = getattr(engine, "get_store", None)
    if not path.startswith("hybrid_sessions.") or get_store is None:
        raise SessionImportError(
            f"SESSION_ENGINE is {path!r}: set it to the engine to import into "
            "('hybrid_sessions.backends.db', '.cache' or '.hybrid') first."
        )
    store: ServerStore = get_store()
    return engine(), store


def _django_engine(source: Source) -> type[SessionBase]:
    if source not in SOURCES:
        raise SessionImportError(f"Unknown source {source!r}; choose one of {', '.join(SOURCES)}.")
    engine: type[SessionBase] = import_module(
        f"django.contrib.sessions.backends.{source}"
    ).SessionStore
    return engine


# -- reading Django's sessions ----------------------------------------------------


def _database_rows(engine: type[SessionBase]) -> Any:
    model = engine.get_model_class()  # type: ignore[attr-defined]
    return model.objects.filter(expire_date__gt=timezone.now())


def _from_database(engine: type[SessionBase], batch_size: int) -> Iterator[list[_Found]]:
    """Live rows in key order, a batch per query (keyset pagination: flat memory)."""
    decoder = engine()
    last = ""
    while True:
        rows = list(
            _database_rows(engine)
            .filter(session_key__gt=last)
            .order_by("session_key")
            .values_list("session_key", "session_data", "expire_date")[:batch_size]
        )
        if not rows:
            return
        yield [_Found(key, decoder.decode(data), expires) for key, data, expires in rows]
        last = rows[-1][0]


def _session_cache() -> Any:
    cache = caches[settings.SESSION_CACHE_ALIAS]
    if not hasattr(cache, "iter_keys"):
        raise SessionImportError(
            f"The cache {settings.SESSION_CACHE_ALIAS!r} cannot list its keys: reading "
            "Django's cache sessions needs a django-redis cache (its keys are found with "
            "SCAN, never KEYS)."
        )
    return cache


def _from_cache(engine: type[SessionBase], batch_size: int) -> Iterator[list[_Found]]:
    """Sessions of Django's cache engine, found with SCAN and read a batch at a time."""
    cache = _session_cache()
    prefix: str = engine.cache_key_prefix  # type: ignore[attr-defined]
    keys = (
        k for k in cache.iter_keys(prefix + "*", itersize=batch_size)
        # The pattern also matches cached_db's prefix, which starts the same way.
        if _KEY.fullmatch(k[len(prefix):])
    )
    policy = engine()
    while chunk := list(itertools.islice(keys, batch_size)):
        values = cache.get_many(chunk)
        found = []
        for cache_key in dict.fromkeys(chunk):  # SCAN may return a key twice
            data = values.get(cache_key)
            if not isinstance(data, dict):
                continue  # expired since the scan saw it
            seconds = cache.ttl(cache_key)
            if seconds == 0:
                continue
            expires = (
                timezone.now() + timedelta(seconds=seconds) if seconds is not None
                else policy.get_expiry_date(expiry=data.get("_session_expiry"))
            )
            found.append(_Found(cache_key[len(prefix):], data, expires))
        yield found


def _batches(source: Source, batch_size: int) -> Iterator[list[_Found]]:
    engine = _django_engine(source)
    if source == "cache":
        return _from_cache(engine, batch_size)
    # cached_db writes every session through to the database: the table has them all.
    return _from_database(engine, batch_size)


def count_sessions(source: Source) -> int | None:
    """How many live sessions ``source`` holds, if that can be told without reading them all."""
    engine = _django_engine(source)
    if source == "cache":
        return None
    return int(_database_rows(engine).count())


# -- writing them to ours --------------------------------------------------------------


def _meta(found: _Found) -> SessionMeta:
    user_id = found.data.get("_auth_user_id")
    return SessionMeta(
        expires_at=found.expires_at, user_id=None if user_id is None else str(user_id)
    )


def _dumps(session: SessionBase, data: dict[str, Any]) -> bytes:
    blob = session.serializer().dumps(data)
    return blob if isinstance(blob, bytes) else str(blob).encode()


def import_sessions(
    source: Source,
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
) -> ImportResult:
    """Copy every live session of Django's ``source`` engine into the active engine's store.

    ``progress`` is called with the number of sessions handled after each batch.
    With ``dry_run`` nothing is written: the result says what a real run would do.
    Raises :class:`SessionImportError` when the settings do not allow an import,
    and :class:`~hybrid_sessions.exceptions.SessionStoreUnavailable` when our
    store cannot be reached.
    """
    if batch_size < 1:
        raise SessionImportError("The batch size must be at least 1.")
    session, store = _target()
    result = ImportResult()
    batches: Iterable[list[_Found]] = _batches(source, batch_size)
    for batch in batches:
        for found in batch:
            if not found.data:
                result.empty += 1
                continue
            key = digest(found.key)
            if dry_run:
                created = not store.exists(key)
            else:
                sealer = Sealer(found.key, key, enabled=conf.ENCRYPT_SERVER_DATA)
                created = store.create(
                    key, sealer.seal(_dumps(session, found.data)), _meta(found)
                )
            if created:
                result.imported += 1
            else:
                result.existing += 1
        if progress is not None:
            progress(len(batch))
    return result
