"""What every server-stored engine shares: hashed keys, lossless saves, final revocation.

Loading, saving and cycling a key are written once, as flows of typed store
operations (:mod:`hybrid_sessions.stores.operations`); ``save()`` and
``asave()`` differ only in the driver that runs them. The save itself is
:func:`~hybrid_sessions.backends.saving.save_flow`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import (
    CreateError,
)
from django.core.exceptions import SuspiciousOperation

from .. import metrics
from ..conf import conf
from ..exceptions import SessionStoreUnavailable
from ..signals import emit, key_rotated, revocation_path, session_created
from ..stores.base import LockingStore, ServerStore, digest
from ..stores.operations import Create, Flow, Pop, call
from .core import ServerSessionCore
from .saving import Written, diff, save_flow

#: Attempts at finding an unused key; with 165 random bits one always succeeds.
CREATE_ATTEMPTS = 8
#: Whether a store class is a ``LockingStore`` (a protocol check costs microseconds).
_LOCKING: dict[type[Any], bool] = {}


def can_lock(store: ServerStore) -> bool:
    """Whether ``store`` can merge under a lock (:class:`LockingStore`)."""
    kind = type(store)
    locking = _LOCKING.get(kind)
    if locking is None:
        locking = _LOCKING[kind] = isinstance(store, LockingStore)
    return locking


class ServerSessionBase(ServerSessionCore):
    """A ``SessionBase`` over a :class:`~hybrid_sessions.stores.base.ServerStore`."""

    # -- creating ---------------------------------------------------------------

    def create(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    async def acreate(self) -> None:
        for _ in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise SuspiciousOperation("Could not find an unused session key.")

    # -- saving -----------------------------------------------------------------

    def clear(self) -> None:
        super().clear()
        self._cleared = True

    def _check_writable(self) -> None:
        if self._unavailable:
            raise SessionStoreUnavailable(
                "The session store was unavailable when this session was read; "
                "refusing to overwrite it."
            )

    # What the save path (``saving.Saving``) asks of an engine.

    def _baseline_data(self) -> dict[str, Any] | None:
        return self._loads(self._baseline) if self._baseline is not None else None

    def _unchanged(self, blob: bytes) -> bool:
        return blob == self._baseline and not (self._cleared or self._reseal)

    @property
    def _replacing(self) -> bool:
        return self._cleared

    def _skip_write(self, data: dict[str, Any]) -> bool:
        """Whether a save has nothing to do; raises if it must not write at all."""
        if self._unavailable:
            if not data:
                # Outage with HYBRID_SESSIONS_ON_STORE_ERROR = "empty" and nothing to
                # write (SESSION_SAVE_EVERY_REQUEST): keep the session as it is.
                return True
            self._check_writable()
        return False

    def _write_flow(self, data: dict[str, Any], must_create: bool) -> Flow[None]:
        assert self.session_key is not None
        key = digest(self.session_key)
        if must_create:
            self._start()
            blob = self._dumps(data)
            if not (yield from call(Create(key, blob, self._meta(data)))):
                raise CreateError
            self._adopt(Written(1, data, blob))
            self._created()
            return None
        written = yield from save_flow(
            self, key, self._version, data,
            attempts=max(1, conf.SAVE_MAX_RETRIES),
            can_lock=can_lock(self.store),
        )
        if written is not None:
            self._adopt(written)
        return None

    def _created(self) -> None:
        """A new record was stored: tell the receivers and the metrics."""
        if session_created.receivers:
            emit(session_created, type(self), session=self)
        if metrics.recorder is not None:
            engine = metrics.engine_label(type(self))
            metrics.recorder.counter(metrics.SESSIONS_CREATED, engine=engine)

    def _adopt(self, written: Written) -> None:
        """A write succeeded: what it wrote is the new baseline."""
        self._version = written.version
        self._baseline = written.blob
        self._cleared = self._reseal = False
        self._carried = None
        self._session_cache = written.data

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined, unused-ignore]
        if self._skip_write(data):
            return None
        if self.session_key is None:
            # The key we were given matched no live session: start a new one.
            return self.create()
        return self._run(self._write_flow(data, must_create))

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)  # type: ignore[attr-defined, unused-ignore]
        if self._skip_write(data):
            return None
        if self.session_key is None:
            return await self.acreate()
        return await self._arun(self._write_flow(data, must_create))

    # -- a new key: the old session's data only if the server confirms it alive --

    def _retire_flow(self, data: dict[str, Any]) -> Flow[dict[str, Any]]:
        """End the current record; the data a new key should carry.

        The record is removed and read in one atomic step, so a session ended
        elsewhere (a logout, a revocation) is never carried into a new record,
        and the carried data is the server's latest with this request's changes
        replayed onto it, never an older copy.
        """
        if self.session_key is None:
            return data
        changes = diff(self._baseline_data(), data, self._replacing)
        old = yield from call(Pop(digest(self.session_key)))
        if old is not None and self._timed_out(old):
            old = None  # over by now: its data goes nowhere
        self._on_retired(digest(self.session_key), alive=old is not None)
        if old is None:
            self._session_key = None
            return {}
        self._carried = old.created_at  # the same session: its absolute timeout runs on
        return changes.apply(self._loads(old.data))

    def _on_retired(self, key: str, *, alive: bool) -> None:
        """Hook: a record was removed by a key change (the hybrid remembers it)."""

    def cycle_key(self) -> None:
        data = self._get_session()  # type: ignore[attr-defined, unused-ignore]
        previous = self.session_key
        with revocation_path("cycle"):
            data = self._retired_data(self._run(self._retire_flow(data)))
        self.create()
        self._session_cache = data
        self._rotated(previous)

    async def acycle_key(self) -> None:
        data = await self._aget_session()  # type: ignore[attr-defined, unused-ignore]
        previous = self.session_key
        with revocation_path("cycle"):
            data = self._retired_data(await self._arun(self._retire_flow(data)))
        await self.acreate()
        self._session_cache = data
        self._rotated(previous)

    def _rotated(self, previous: str | None) -> None:
        """``cycle_key()`` replaced the key ``previous`` (if there was one)."""
        if previous is not None and key_rotated.receivers:
            emit(key_rotated, type(self), session=self, reason="cycle",
                 previous_digest=digest(previous))

    def _retired_data(self, data: dict[str, Any]) -> dict[str, Any]:
        self._session_cache = data
        self._session_key = None
        self._version = None
        self._baseline = None
        self._cleared = False
        return data

    # -- deleting ---------------------------------------------------------------

    def _key_to_delete(self, session_key: str | None) -> str | None:
        if session_key is None:
            session_key = self.session_key
        if not self._validate_session_key(session_key):
            return None
        return digest(session_key)  # type: ignore[arg-type]

    def delete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is not None:
            if metrics.recorder is not None:
                metrics.store_operation()
            self.store.delete(key)

    async def adelete(self, session_key: str | None = None) -> None:
        key = self._key_to_delete(session_key)
        if key is not None:
            if metrics.recorder is not None:
                metrics.store_operation()
            await self.store.adelete(key)

    @classmethod
    def clear_expired(cls) -> None:
        cls.get_store().clear_expired()

    @classmethod
    async def aclear_expired(cls) -> None:
        await cls.get_store().aclear_expired()
