"""hybrid_sessions.testing: a test client's session edited in place, on every engine.

The views answer through the full middleware stack, so each test checks what a
request made with the client's cookie actually sees.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.test import AsyncClient, Client, override_settings

from hybrid_sessions.testing import aedit_session, edit_session
from tests.engines import Engine


def seen(client: Client) -> dict[str, Any]:
    """The session a request with the client's cookie reads."""
    response = client.get("/read/")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def cookie(client: Client | AsyncClient) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_new_client_gets_a_session_with_the_edits(engine: Engine) -> None:
    client = Client()
    with edit_session(client) as session:
        session["cart"] = [42]
    assert seen(client) == {"cart": [42]}


def test_an_existing_session_keeps_its_data_and_gains_the_edits(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"theme": "dark"})
    with edit_session(client) as session:
        assert session["theme"] == "dark"
        session["cart"] = [42]
    assert seen(client) == {"theme": "dark", "cart": [42]}


def test_edits_in_turn_all_reach_the_views(engine: Engine) -> None:
    client = Client()
    for number in range(3):
        with edit_session(client) as session:
            session[f"k{number}"] = number
        assert seen(client) == {f"k{n}": n for n in range(number + 1)}


def test_a_removed_key_is_gone_for_the_views(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"theme": "dark", "lang": "fr"})
    with edit_session(client) as session:
        del session["theme"]
    assert seen(client) == {"lang": "fr"}


def test_the_signed_in_user_stays_signed_in_through_an_edit(engine: Engine) -> None:
    user = User.objects.create_user("alice", password="x")
    client = Client()
    client.force_login(user)
    with edit_session(client) as session:
        session["cart"] = [42]
    assert client.get("/whoami/").content == b"alice"
    assert seen(client)["cart"] == [42]


def test_a_block_that_raises_saves_nothing(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"theme": "dark"})
    before = cookie(client)

    def change_then_fail() -> None:
        with edit_session(client) as session:
            session["theme"] = "light"
            raise RuntimeError("the test changed its mind")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert cookie(client) == before
    assert seen(client) == {"theme": "dark"}


def test_the_cookie_changes_when_the_engine_makes_a_new_one(engine: Engine) -> None:
    """signed_cookies carries the data; the hybrid a signed copy: each save outdates the cookie."""
    client = Client()
    client.get("/write/", {"theme": "dark"})
    before = cookie(client)
    with edit_session(client) as session:
        session["theme"] = "light"
    if engine.name in ("signed_cookies", "hybrid-db", "hybrid-cache"):
        assert cookie(client) != before
    else:
        assert cookie(client) == before
    assert seen(client) == {"theme": "light"}


@pytest.mark.django_db
@override_settings(SESSION_ENGINE="hybrid_sessions.backends.signed_cookies")
def test_djangos_documented_pattern_loses_the_edit_on_signed_cookies() -> None:
    """Why the helper exists: ``client.session`` then ``save()`` leaves the old cookie."""
    client = Client()
    client.get("/write/", {"theme": "dark"})
    session = client.session
    session["theme"] = "light"
    session.save()
    assert seen(client) == {"theme": "dark"}
    with edit_session(client) as edited:
        edited["theme"] = "light"
    assert seen(client) == {"theme": "light"}


def test_the_async_helper_edits_an_async_clients_session(engine: Engine) -> None:
    client = AsyncClient()

    async def edit_and_read() -> Any:
        async with aedit_session(client) as session:
            session["cart"] = [42]
        response = await client.get("/read/")
        return response.json()

    assert async_to_sync(edit_and_read)() == {"cart": [42]}


def test_the_fixture_edits_pytest_djangos_client(
    engine: Engine,
    client: Client,
    edit_client_session: Callable[..., AbstractContextManager[SessionBase]],
) -> None:
    with edit_client_session() as session:
        session["cart"] = [42]
    assert seen(client) == {"cart": [42]}


def test_the_fixture_edits_another_client_when_given_one(
    engine: Engine,
    client: Client,
    edit_client_session: Callable[..., AbstractContextManager[SessionBase]],
) -> None:
    other = Client()
    with edit_client_session(other) as session:
        session["cart"] = [7]
    assert seen(other) == {"cart": [7]}
    assert seen(client) == {}
