"""The per-user session API: list a user's sessions and end them.

It works through the server store of whichever engine ``SESSION_ENGINE``
names, so the same calls serve the database, Redis and hybrid engines. An
engine whose sessions live only in a cookie has nothing a server could end:
these calls raise :class:`~hybrid_sessions.exceptions.RevocationNotSupported`.

Typical uses::

    from hybrid_sessions import api

    api.list_sessions(request.user)           # the "your sessions" page
    api.revoke_session(request.user, digest)  # "sign out that device"
    api.revoke_other_sessions(request)        # after a password change
    api.revoke_all_sessions(user)             # an operator locking an account

Sessions are identified by the SHA-256 digest of their key
(:attr:`SessionInfo.digest <hybrid_sessions.stores.base.SessionInfo.digest>`):
the key itself is a credential and is never shown or stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings

from .exceptions import RevocationNotSupported
from .signals import revocation_path
from .stores.base import ServerStore, SessionInfo

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest

    User = AbstractBaseUser | AnonymousUser

__all__ = [
    "SessionInfo",
    "aend_sessions",
    "alist_sessions",
    "arevoke_all_sessions",
    "arevoke_other_sessions",
    "arevoke_session",
    "current_digest",
    "end_sessions",
    "get_server_store",
    "list_sessions",
    "revoke_all_sessions",
    "revoke_other_sessions",
    "revoke_session",
]

_DIGEST = re.compile(r"[0-9a-f]{64}")


def get_server_store() -> ServerStore:
    """The store behind the active ``SESSION_ENGINE``.

    Raises :class:`~hybrid_sessions.exceptions.RevocationNotSupported` when the
    engine keeps no server-side records (a cookie-only engine, or one not from
    this package).
    """
    engine = settings.SESSION_ENGINE
    session_store = import_module(engine).SessionStore
    get_store = getattr(session_store, "get_store", None)
    if get_store is None:
        raise RevocationNotSupported(
            f"The session engine {engine!r} keeps no server-side session records, so "
            "sessions cannot be listed or revoked: they end only when their cookie "
            "expires. Use 'hybrid_sessions.backends.db', '.cache' or '.hybrid'."
        )
    store: ServerStore = get_store()
    return store


def _user_id(user: User | None) -> str | None:
    """The user's id exactly as ``django.contrib.auth.login`` writes it to the session."""
    if user is None or not user.is_authenticated or user.pk is None:
        return None
    value: str = user._meta.pk.value_to_string(user)
    return value


def current_digest(request: HttpRequest) -> str | None:
    """The digest of the request's own session, or ``None`` if it has no server record.

    Engines provide it as a ``session_digest`` property on their session
    object, since only the engine knows how its cookie maps to a store record.
    """
    session: Any = getattr(request, "session", None)
    if session is None:
        return None
    value = getattr(session, "session_digest", None)
    return value if isinstance(value, str) else None


# -- sync -------------------------------------------------------------------------


def list_sessions(user: User) -> list[SessionInfo]:
    """The user's live sessions, most recently active first (none for anonymous)."""
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None:
        return []
    return list(store.list_user(user_id))


def revoke_session(user: User, digest: str) -> bool:
    """End one of the user's sessions; ``False`` if ``digest`` is not a live session of theirs.

    A digest of another user's session is refused, so the value can come
    straight from a form.
    """
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None or not _DIGEST.fullmatch(digest):
        return False
    if not any(info.digest == digest for info in store.list_user(user_id)):
        return False
    with revocation_path("api"):
        store.delete(digest)
    return True


def revoke_other_sessions(request: HttpRequest) -> int:
    """End every session of the request's user except this one; return how many.

    Call it after a password change: Django's ``update_session_auth_hash`` keeps
    the current session, and this ends the rest on the server at once rather
    than when each is next used.
    """
    store = get_server_store()
    user_id = _user_id(getattr(request, "user", None))
    if user_id is None:
        return 0
    keep = current_digest(request)
    with revocation_path("api"):
        return store.delete_user(user_id, keep=keep)


def revoke_all_sessions(user: User) -> int:
    """End every session of the user, this request's included; return how many."""
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None:
        return 0
    with revocation_path("api"):
        return store.delete_user(user_id)


# -- async ------------------------------------------------------------------------


async def alist_sessions(user: User) -> list[SessionInfo]:
    """Async :func:`list_sessions`."""
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None:
        return []
    return list(await store.alist_user(user_id))


async def arevoke_session(user: User, digest: str) -> bool:
    """Async :func:`revoke_session`."""
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None or not _DIGEST.fullmatch(digest):
        return False
    if not any(info.digest == digest for info in await store.alist_user(user_id)):
        return False
    with revocation_path("api"):
        await store.adelete(digest)
    return True


async def arevoke_other_sessions(request: HttpRequest) -> int:
    """Async :func:`revoke_other_sessions`; the user is read with ``request.auser()``."""
    store = get_server_store()
    auser = getattr(request, "auser", None)
    user = await auser() if auser is not None else getattr(request, "user", None)
    user_id = _user_id(user)
    if user_id is None:
        return 0
    keep = await sync_to_async(current_digest)(request)
    with revocation_path("api"):
        return await store.adelete_user(user_id, keep=keep)


async def arevoke_all_sessions(user: User) -> int:
    """Async :func:`revoke_all_sessions`."""
    store = get_server_store()
    user_id = _user_id(user)
    if user_id is None:
        return 0
    with revocation_path("api"):
        return await store.adelete_user(user_id)


# -- operators --------------------------------------------------------------------


def end_sessions(digests: Iterable[str]) -> int:
    """End sessions by digest, whoever they belong to; return how many existed.

    For operators (the admin, ``hybrid_sessions_purge``, a per-user limit): the
    caller decides who may end what. Values that are not digests are ignored.
    """
    valid = sorted({d for d in digests if _DIGEST.fullmatch(d)})
    if not valid:
        return 0
    with revocation_path("api"):
        return get_server_store().delete_many(valid)


async def aend_sessions(digests: Iterable[str]) -> int:
    """Async :func:`end_sessions`."""
    valid = sorted({d for d in digests if _DIGEST.fullmatch(d)})
    if not valid:
        return 0
    with revocation_path("api"):
        return await get_server_store().adelete_many(valid)
