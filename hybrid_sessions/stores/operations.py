"""Store calls as typed values, and the two drivers that run them.

The engines' logic (load, save with merge and retry, cycle a key) is written
once, as generators that yield these operations; :func:`run` performs them
with a store's sync methods, :func:`arun` with its native async ones. A flow
asks for one with ``result = yield from call(Get(key))``: ``call`` is generic,
so mypy checks each operation's arguments and the type of its result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from asgiref.sync import sync_to_async

from .. import metrics
from ..exceptions import SessionStoreUnavailable
from .base import CasResult, LockingStore, ServerStore, SessionMeta, StoredSession

T = TypeVar("T")
R = TypeVar("R")


class Operation(Generic[T]):
    """One store call; ``T`` is what it returns."""

    __slots__ = ()

    def sync(self, store: ServerStore) -> T:
        raise NotImplementedError

    async def asynchronous(self, store: ServerStore) -> T:
        raise NotImplementedError


#: A flow: yields operations, is sent their results, returns ``R``.
Flow = Generator[Operation[Any], Any, R]


def call(op: Operation[T]) -> Generator[Operation[Any], Any, T]:
    """Perform ``op`` inside a flow: ``value = yield from call(op)``."""
    result: T = yield op
    return result


@dataclass(frozen=True, slots=True)
class Get(Operation[StoredSession | None]):
    digest: str

    def sync(self, store: ServerStore) -> StoredSession | None:
        return store.get(self.digest)

    async def asynchronous(self, store: ServerStore) -> StoredSession | None:
        return await store.aget(self.digest)


@dataclass(frozen=True, slots=True)
class Create(Operation[bool]):
    digest: str
    data: bytes | None
    meta: SessionMeta

    def sync(self, store: ServerStore) -> bool:
        return store.create(self.digest, self.data, self.meta)

    async def asynchronous(self, store: ServerStore) -> bool:
        return await store.acreate(self.digest, self.data, self.meta)


@dataclass(frozen=True, slots=True)
class CompareAndSet(Operation[CasResult]):
    digest: str
    version: int
    data: bytes | None
    meta: SessionMeta

    def sync(self, store: ServerStore) -> CasResult:
        return store.compare_and_set(self.digest, self.version, self.data, self.meta)

    async def asynchronous(self, store: ServerStore) -> CasResult:
        return await store.acompare_and_set(self.digest, self.version, self.data, self.meta)


@dataclass(frozen=True, slots=True)
class Touch(Operation[bool]):
    digest: str
    meta: SessionMeta

    def sync(self, store: ServerStore) -> bool:
        return store.touch(self.digest, self.meta)

    async def asynchronous(self, store: ServerStore) -> bool:
        return await store.atouch(self.digest, self.meta)


@dataclass(frozen=True, slots=True)
class Pop(Operation[StoredSession | None]):
    """Remove a session and return what it held, atomically: ``None`` if it was gone."""

    digest: str

    def sync(self, store: ServerStore) -> StoredSession | None:
        return store.pop(self.digest)

    async def asynchronous(self, store: ServerStore) -> StoredSession | None:
        return await store.apop(self.digest)


#: What ``update_locked`` calls with the latest record: the data and metadata to write.
Build = Callable[[StoredSession], tuple[bytes | None, SessionMeta]]


@dataclass(frozen=True, slots=True)
class UpdateLocked(Operation[CasResult]):
    """Read, merge and write under a short lock (stores that are a ``LockingStore``)."""

    digest: str
    build: Build

    def sync(self, store: ServerStore) -> CasResult:
        return cast(LockingStore, store).update_locked(self.digest, self.build)

    async def asynchronous(self, store: ServerStore) -> CasResult:
        return await sync_to_async(cast(LockingStore, store).update_locked)(
            self.digest, self.build
        )


@dataclass(frozen=True, slots=True)
class Sleep(Operation[None]):
    """A pause between retries (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float

    def sync(self, store: ServerStore) -> None:
        time.sleep(self.seconds)

    async def asynchronous(self, store: ServerStore) -> None:
        await asyncio.sleep(self.seconds)


def run(flow: Flow[R], store: Callable[[], ServerStore]) -> R:
    """Drive ``flow`` with the store's sync methods; store errors are thrown into the flow.

    ``store`` is called only once the flow asks for something, so a flow that
    needs no I/O never looks the store up.
    """
    try:
        op = next(flow)
        target = store()
        while True:
            if metrics.recorder is not None and not isinstance(op, Sleep):
                metrics.store_operation()
            try:
                result = op.sync(target)
            except SessionStoreUnavailable as exc:
                op = flow.throw(exc)
            else:
                op = flow.send(result)
    except StopIteration as stop:
        return cast(R, stop.value)


async def arun(flow: Flow[R], store: Callable[[], ServerStore]) -> R:
    """:func:`run` with the store's native async methods."""
    try:
        op = next(flow)
        target = store()
        while True:
            if metrics.recorder is not None and not isinstance(op, Sleep):
                metrics.store_operation()
            try:
                result = await op.asynchronous(target)
            except SessionStoreUnavailable as exc:
                op = flow.throw(exc)
            else:
                op = flow.send(result)
    except StopIteration as stop:
        return cast(R, stop.value)
