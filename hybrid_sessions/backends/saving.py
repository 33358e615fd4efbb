"""The one save path of every server-stored engine: compare-and-set, merge, retry.

Django's engines write the whole session on save, so two overlapping requests
that change different keys erase each other's change. Here a save is a
compare-and-set against the version the request loaded; if another request
saved first, this request's changes are replayed onto the newer state and the
write is retried, with a random pause that breaks lockstep, a bounded number of
times. A store that can lock (:class:`~hybrid_sessions.stores.base.LockingStore`)
ends a long losing streak with one short locked merge. No lock is ever held
across a request.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.contrib.sessions.backends.base import UpdateError

from .. import metrics
from ..signals import emit, session_merged
from ..stores.base import CasResult, SessionMeta, StoredSession
from ..stores.operations import (
    CompareAndSet,
    Flow,
    Get,
    Sleep,
    Touch,
    UpdateLocked,
    call,
)

#: Longest pause, in seconds, before retrying a save that lost a race.
RETRY_DELAY_CAP = 0.05
#: Compare-and-set attempts before a store that can lock is asked to merge under a lock.
OPTIMISTIC_ATTEMPTS = 3


def retry_delay(attempt: int) -> float:
    """A random pause before retry ``attempt`` (1, 2, ...) of a contended save.

    Two writers with the same rhythm (read, write, read, write) can fall into
    lockstep, the same one losing every race; a random pause, doubling up to
    :data:`RETRY_DELAY_CAP`, breaks the rhythm. The first retry needs none.
    """
    if attempt < 2:
        return 0.0
    return random.uniform(0, min(RETRY_DELAY_CAP, 0.001 * 2 ** (attempt - 2)))  # noqa: S311


def newer(first: StoredSession | None, second: StoredSession | None) -> StoredSession | None:
    """The later of two reads of one record; ``None`` if either found it gone.

    A read inside a transaction may come from an older snapshot (MariaDB's
    REPEATABLE READ) than the one a failed compare-and-set returned.
    """
    if first is None or second is None:
        return None
    return second if second.version > first.version else first


@dataclass(slots=True)
class Changes:
    """What one request did to a session, to be replayed onto newer stored state."""

    assigned: dict[str, Any] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    replace: bool = False

    def __bool__(self) -> bool:
        return self.replace or bool(self.assigned) or bool(self.deleted)

    def apply(self, latest: dict[str, Any]) -> dict[str, Any]:
        if self.replace:
            return dict(self.assigned)
        if not self:
            return latest
        merged = {k: v for k, v in latest.items() if k not in self.deleted}
        merged.update(self.assigned)
        return merged


def diff(baseline: dict[str, Any] | None, current: dict[str, Any], replace: bool) -> Changes:
    """The keys ``current`` sets or deletes relative to ``baseline``.

    Comparing values (rather than tracking ``__setitem__``) also catches in-place
    mutation such as ``session["cart"].append(x)``.
    """
    if replace or baseline is None:
        return Changes(assigned=dict(current), replace=replace)
    missing = object()
    changed = {k: v for k, v in current.items() if baseline.get(k, missing) != v}
    return Changes(assigned=changed, deleted=set(baseline) - set(current))


class Saving(Protocol):
    """What the save path needs from an engine."""

    def _dumps(self, data: dict[str, Any]) -> bytes: ...

    def _loads(self, blob: bytes | None) -> dict[str, Any]: ...

    def _meta(self, data: dict[str, Any]) -> SessionMeta: ...

    def _baseline_data(self) -> dict[str, Any] | None:
        """The session as loaded, rebuilt from an immutable copy (``None`` if unknown)."""

    def _unchanged(self, blob: bytes) -> bool:
        """Whether ``blob`` is exactly what was loaded (only the expiry may need extending)."""

    @property
    def _replacing(self) -> bool:
        """Whether the request cleared the session: its data replaces, not merges."""


@dataclass(frozen=True, slots=True)
class Written:
    """A successful write: the version it made, the data and the bytes stored."""

    version: int
    data: dict[str, Any]
    blob: bytes


class LockedMerge:
    """The ``build`` a store's ``update_locked`` calls: replays changes onto the latest data."""

    def __init__(self, session: Saving, changes: Changes) -> None:
        self.session = session
        self.changes = changes
        self.target: dict[str, Any] = {}
        self.blob = b""

    def __call__(self, current: StoredSession) -> tuple[bytes | None, SessionMeta]:
        self.target = self.changes.apply(self.session._loads(current.data))
        self.blob = self.session._dumps(self.target)
        return self.blob, self.session._meta(self.target)


def save_flow(
    session: Saving,
    key: str,
    version: int | None,
    data: dict[str, Any],
    *,
    attempts: int,
    can_lock: bool,
) -> Flow[Written | None]:
    """Write ``data`` over ``version`` of record ``key``; ``None`` if only the expiry moved.

    Raises ``UpdateError`` when the record is gone (deleted, flushed, expired):
    a session ended elsewhere is never written back.
    """
    changes: Changes | None = None  # worked out only once a race is lost
    target = data
    lost = 0  # compare-and-set races lost so far
    for attempt in itertools.count(1):
        blob = session._dumps(target)
        meta = session._meta(target)
        current: StoredSession | None
        result: CasResult
        if version is None:
            current = yield from call(Get(key))
        elif changes is None and session._unchanged(blob):
            # Nothing changed (SESSION_SAVE_EVERY_REQUEST): only extend the expiry.
            if not (yield from call(Touch(key, meta))):
                raise UpdateError
            return None
        elif can_lock and attempt > OPTIMISTIC_ATTEMPTS:
            # Lost race after race: merge under a lock held for this write only.
            changes = changes or _plan(session, data)
            merge = LockedMerge(session, changes)
            result = yield from call(UpdateLocked(key, merge))
            if result.ok:
                return _won(session, lost, Written(result.version, merge.target, merge.blob))
            current = result.current
        else:
            result = yield from call(CompareAndSet(key, version, blob, meta))
            if result.ok:
                return _won(session, lost, Written(result.version, target, blob))
            current = result.current
            lost = _lost(lost)
        pause = retry_delay(attempt)
        if current is not None and pause:
            # Pause, then read again: the state that won may be newer by now.
            yield from call(Sleep(pause))
            current = newer(current, (yield from call(Get(key))))
        if current is None:
            raise UpdateError
        version = current.version
        changes = changes or _plan(session, data)
        target = changes.apply(session._loads(current.data))
        if attempt >= attempts:
            break
    raise UpdateError


def _lost(lost: int) -> int:
    """One more race lost: counted, and merged onto the winner's data next."""
    if metrics.recorder is not None:
        metrics.recorder.counter(metrics.SAVE_CONFLICTS)
    return lost + 1


def _won(session: Saving, lost: int, written: Written) -> Written:
    """A write went through; after lost races, it merged."""
    if lost:
        if session_merged.receivers:
            emit(session_merged, type(session), session=session, conflicts=lost)
        if metrics.recorder is not None:
            metrics.recorder.counter(metrics.MERGES)
    return written


def _plan(session: Saving, data: dict[str, Any]) -> Changes:
    return diff(session._baseline_data(), data, session._replacing)
