"""Signals: what happens to sessions, for audit logs, alerts and security tooling.

Each is a ``django.dispatch.Signal`` sent where the event happens, on every
engine where it exists (see docs/signals.rst for who sends what)::

    from django.dispatch import receiver
    from hybrid_sessions.signals import session_revoked

    @receiver(session_revoked)
    def audit(sender, digests, path, user_id, **kwargs):
        ...

A signal nobody listens to costs one list check: every sender tests
``signal.receivers`` before it builds the arguments.

Why a session ended is named by the code that ends it, not guessed by the
store that removes it: each face runs its ends inside
``with revocation_path("admin"):`` (``"api"``, ``"command"``...), a context
variable the store reads when it sends :data:`session_revoked`. The outermost
name wins, so the admin calling the API still says ``"admin"``; an end that no
face named is the session's own ``flush()``/``delete()``, which is what
``logout()`` calls: ``"logout"``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.dispatch import Signal

__all__ = [
    "PATHS",
    "current_revocation_path",
    "emit",
    "key_rotated",
    "revocation_path",
    "session_created",
    "session_inlined",
    "session_merged",
    "session_revoked",
    "session_spilled",
    "token_refused",
]

#: A new session record was stored. ``sender``: the engine's ``SessionStore``
#: class; ``session``: the session.
session_created = Signal()
#: A hybrid save left the data on the server only: the cookie now carries just
#: the key and the cookie keys, where before it carried everything (or the
#: session had no cookie yet). ``session``; ``size``: the cookie value's length.
session_spilled = Signal()
#: A hybrid save brought a spilled session back whole into its cookie.
#: ``session``; ``size``.
session_inlined = Signal()
#: Sessions ended on the server. ``sender``: the store class; ``digests``: the
#: ended sessions' digests (a tuple: one signal per store call or batch);
#: ``path``: who ended them (:data:`PATHS`); ``user_id``: their user when the
#: store knew it without another read, else ``None``.
session_revoked = Signal()
#: A save lost a compare-and-set race and merged its changes onto the newer data.
#: ``session``; ``conflicts``: the races it lost before its write went through.
session_merged = Signal()
#: A session cookie was refused (forged, tampered, expired, not a token).
#: ``sender``: the engine's ``SessionStore`` class; ``reason``: the
#: :class:`~hybrid_sessions.exceptions.TokenError` class name; ``error``: the exception.
token_refused = Signal()
#: A session got a new key or a cookie a new signature. ``session``;
#: ``reason``: ``"cycle"`` (``cycle_key()``) or ``"secret"`` (a cookie verified
#: with a key of ``SECRET_KEY_FALLBACKS``, or in the other token format, is
#: re-issued under the current one); ``previous_digest``: the digest the
#: session had before ``cycle_key()`` (``None`` for the cookie-only engine and
#: for ``"secret"``).
key_rotated = Signal()

#: The paths this package names. A site may name its own.
PATHS = ("logout", "api", "admin", "command", "purge", "limit", "timeout", "cycle")

#: Where a robust send logs a receiver's exception, as Django's ``send_robust()`` does.
dispatch_logger = logging.getLogger("django.dispatch")

_path: ContextVar[str | None] = ContextVar("hybrid_sessions_revocation_path", default=None)


@contextmanager
def revocation_path(path: str) -> Iterator[None]:
    """Name, for :data:`session_revoked`, why the sessions ended inside the block end.

    If an outer block already named a path, that name stays.
    """
    if _path.get() is not None:
        yield
        return
    token = _path.set(path)
    try:
        yield
    finally:
        _path.reset(token)


def current_revocation_path() -> str:
    """The path an end happening now is reported with (``"logout"`` if none was named)."""
    return _path.get() or "logout"


#: Async receivers scheduled from an event loop's thread, kept until they finish.
_scheduled: set[asyncio.Task[Any]] = set()


def emit(signal: Signal, sender: Any, *, robust: bool = False, **named: Any) -> None:
    """``signal.send(sender, **named)``, also from an event loop's thread.

    The async engine methods (``asave()``...) run on the event loop, where
    Django's ``send()`` cannot call an async receiver (``async_to_sync`` refuses
    to run there). There, sync receivers are called at once, as ``send()``
    would, and async receivers are scheduled on the loop. ``robust``: a
    receiver's exception is logged (``django.dispatch``), as by
    ``send_robust()``, instead of raised.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        if robust:
            signal.send_robust(sender, **named)
        else:
            signal.send(sender, **named)
        return
    sync_receivers, async_receivers = signal._live_receivers(sender)
    for receiver in sync_receivers:
        try:
            receiver(signal=signal, sender=sender, **named)
        except Exception as exc:
            if not robust:
                raise
            dispatch_logger.error(
                "Error calling %s in a robust signal send (%s)",
                getattr(receiver, "__qualname__", receiver), exc, exc_info=exc,
            )
    for receiver in async_receivers:
        task = loop.create_task(receiver(signal=signal, sender=sender, **named))
        _scheduled.add(task)
        task.add_done_callback(_scheduled.discard)
