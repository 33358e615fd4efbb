"""Edit a Django test client's session and keep the client's cookie in step.

Django documents editing ``client.session`` and calling ``save()``. That works
only while the cookie is the bare session key and never changes: with
``signed_cookies`` (Django's and ours) the cookie *is* the data, so a save makes
a new cookie the client never receives, and the hybrid's cookie is a signed copy
of the session that the save outdates (a feed notices; without one, reads may
see the old copy for a while). These helpers save the session and then
put the cookie the engine would have sent into the client, for every engine::

    from hybrid_sessions.testing import edit_session

    with edit_session(client) as session:
        session["cart"] = [42]
    response = client.get("/cart/")  # sees the cart, whatever SESSION_ENGINE is

With pytest, register this module as a plugin (in the root ``conftest.py``)::

    pytest_plugins = ["hybrid_sessions.testing"]

and ask for the ``edit_client_session`` fixture. pytest is needed only for the
fixture: without it this module still imports and the helpers work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.test import AsyncClient, Client

__all__ = ["aedit_session", "cookie_for", "edit_session", "open_session", "set_session_cookie"]


def open_session(client: Client | AsyncClient) -> SessionBase:
    """The session the client's cookie names, from ``SESSION_ENGINE``; a new one if none.

    Unlike ``client.session`` this saves nothing: a client without a cookie gets
    an empty, unsaved session.
    """
    engine = import_module(settings.SESSION_ENGINE)
    morsel = client.cookies.get(settings.SESSION_COOKIE_NAME)
    store: type[SessionBase] = engine.SessionStore
    return store(morsel.value if morsel is not None and morsel.value else None)


def cookie_for(session: SessionBase) -> str | None:
    """The cookie value a response would carry for this saved session.

    The hybrid's is its signed copy (``cookie_value()``); every other engine's
    is its ``session_key`` (for ``signed_cookies``, the token itself).
    """
    cookie_value: Callable[[], str | None] | None = getattr(session, "cookie_value", None)
    value = cookie_value() if cookie_value is not None else None
    return value or session.session_key


def set_session_cookie(client: Client | AsyncClient, session: SessionBase) -> None:
    """Give the client the cookie for ``session``; remove it if the session has none."""
    name = settings.SESSION_COOKIE_NAME
    value = cookie_for(session)
    if value:
        client.cookies[name] = value
    elif name in client.cookies:
        del client.cookies[name]


@contextmanager
def edit_session(client: Client) -> Iterator[SessionBase]:
    """Yield the client's session; on leaving, save it and update the client's cookie.

    Nothing is saved if the block raises. A session left empty is saved too,
    like any other: use a view (or ``client.logout()``) to end one.
    """
    session = open_session(client)
    yield session
    session.save()
    set_session_cookie(client, session)


@asynccontextmanager
async def aedit_session(client: AsyncClient) -> AsyncIterator[SessionBase]:
    """:func:`edit_session` for an ``AsyncClient`` (saves with ``asave()``)."""
    session = open_session(client)
    yield session
    await session.asave()
    set_session_cookie(client, session)


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is needed only for the fixture
    pass
else:

    @pytest.fixture
    def edit_client_session(
        request: pytest.FixtureRequest,
    ) -> Callable[..., AbstractContextManager[SessionBase]]:
        """``edit_client_session()`` edits pytest-django's ``client``; or pass a client.

        ::

            def test_cart(client, edit_client_session):
                with edit_client_session() as session:
                    session["cart"] = [42]
                assert client.get("/cart/").status_code == 200
        """

        def editor(client: Client | None = None) -> AbstractContextManager[SessionBase]:
            chosen: Any = client if client is not None else request.getfixturevalue("client")
            return edit_session(chosen)

        return editor
