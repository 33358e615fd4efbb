"""The contract every engine of the package keeps, beyond Django's own ``SessionTestsMixin``.

Each test runs once per engine in ``tests/engines.py``, through the full middleware
stack where a browser would be involved.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from tests.engines import Engine

COOKIE = settings.SESSION_COOKIE_NAME

HOSTILE_COOKIES = {
    "random-40": secrets.token_urlsafe(30)[:40],
    "short": "abc",
    "long-garbage": "A" * 5000,
    "dots": "a.b.c",
    "jwt-like-none": "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.",
    "punctuation": "!#$%&'*+-.^_`|~",
    "sql-ish": "1' OR '1'='1",
}


def _client_with(cookie_value: str) -> Client:
    client = Client()
    client.cookies[COOKIE] = cookie_value
    return client


def test_a_new_session_is_empty_and_not_stored(engine: Engine) -> None:
    session = engine.store()
    assert session.is_empty()
    assert session.modified is False
    assert engine.records() == 0


def test_data_written_in_one_request_is_read_in_the_next(engine: Engine) -> None:
    client = Client()
    assert client.get("/write/", {"colour": "blue"}).status_code == 200
    assert client.get("/read/").json() == {"colour": "blue"}


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_a_hostile_cookie_reads_as_empty_and_stores_nothing(engine: Engine, cookie: str) -> None:
    response = _client_with(cookie).get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    assert engine.records() == 0


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_writing_under_a_hostile_cookie_starts_a_fresh_session(engine: Engine, cookie: str) -> None:
    client = _client_with(cookie)
    response = client.get("/write/", {"a": "1"})
    assert response.status_code == 200
    assert response.cookies[COOKIE].value != cookie
    assert client.get("/read/").json() == {"a": "1"}


def test_text_with_a_lone_surrogate_is_saved_and_read_back(engine: Engine) -> None:
    # json.loads("\"\\ud800\"") is such text: a view storing a field of a JSON
    # request body stores whatever the client sent.
    session = engine.store()
    session["name"] = "x\ud800y"
    session.save()
    assert engine.store(session.session_key)["name"] == "x\ud800y"


@pytest.mark.parametrize("view", ["/untouched/", "/read/"])
@pytest.mark.parametrize("cookie", HOSTILE_COOKIES.values(), ids=HOSTILE_COOKIES.keys())
def test_with_save_every_request_a_hostile_cookie_still_stores_nothing(
    engine: Engine, cookie: str, view: str
) -> None:
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        response = _client_with(cookie).get(view)
    assert response.status_code == 200
    assert engine.records() == 0
    if COOKIE in response.cookies:
        assert response.cookies[COOKIE].value == ""


def test_with_save_every_request_a_live_session_is_still_sent_again(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        response = client.get("/untouched/")
    assert response.cookies[COOKIE].value != ""
    assert client.get("/read/").json() == {"a": "1"}


def test_a_view_that_ignores_the_session_sets_no_cookie(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    response = client.get("/untouched/")
    assert COOKIE not in response.cookies


def test_an_unmodified_session_is_not_saved_again(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    response = client.get("/read/")
    assert response.json() == {"a": "1"}
    assert COOKIE not in response.cookies


def test_a_flushed_session_cannot_be_replayed(engine: Engine) -> None:
    if not engine.server_side:
        pytest.skip("a client-side session cannot be revoked before it expires")
    client = Client()
    client.get("/write/", {"secret": "s3"})
    old_cookie = client.cookies[COOKIE].value
    client.get("/flush/")
    replay = _client_with(old_cookie).get("/read/")
    assert replay.status_code == 200
    assert replay.json() == {}


def test_cycling_the_key_keeps_the_data_and_retires_the_old_key(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    old_cookie = client.cookies[COOKIE].value
    assert client.get("/cycle/").json() == {"a": "1"}
    assert client.get("/read/").json() == {"a": "1"}
    if engine.server_side:
        # A client-side session has no key to fixate; a server-side one must move.
        assert client.cookies[COOKIE].value != old_cookie
        assert _client_with(old_cookie).get("/read/").json() == {}


def test_an_expired_session_loads_empty(engine: Engine) -> None:
    session = engine.store()
    session["a"] = 1
    session.set_expiry(-timedelta(seconds=5))
    session.save()
    assert engine.store(session.session_key).load() == {}


def test_an_expired_session_does_not_exist_even_before_cleanup(engine: Engine) -> None:
    session = engine.store()
    session["a"] = 1
    session.set_expiry(-timedelta(seconds=5))
    session.save()
    assert not engine.store().exists(session.session_key)
    assert not async_to_sync(engine.store().aexists)(session.session_key)


def test_a_custom_expiry_survives_a_round_trip(engine: Engine) -> None:
    session = engine.store()
    session["a"] = 1
    session.set_expiry(600)
    session.save()
    reloaded = engine.store(session.session_key)
    assert reloaded["a"] == 1
    assert reloaded.get_expiry_age() == 600


def test_logout_ends_the_session_for_a_replayed_cookie(engine: Engine) -> None:
    if not engine.server_side:
        pytest.skip("a client-side session cannot be revoked before it expires")
    get_user_model().objects.create_user("ada", password="pw")
    client = Client()
    assert client.login(username="ada", password="pw")
    assert client.get("/whoami/").content == b"ada"
    stolen = client.cookies[COOKIE].value
    client.logout()
    assert _client_with(stolen).get("/whoami/").content == b""


def test_async_methods_round_trip(engine: Engine) -> None:
    async def scenario() -> tuple[object, bool]:
        session = engine.store()
        await session.aset("a", 1)
        await session.asave()
        reloaded = engine.store(session.session_key)
        return await reloaded.aget("a"), await reloaded.aexists(session.session_key)

    value, exists = async_to_sync(scenario)()
    assert value == 1
    if engine.server_side:
        assert exists is True
