"""Signals: each event is sent once, where it happens, on every engine where it exists.

Against the real stores: the database (SQLite, PostgreSQL or MariaDB, as the run
chooses) and Redis. Receivers are connected only inside each test.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.dispatch import Signal
from django.test import Client, override_settings
from django.urls import reverse

from hybrid_sessions import api, maintenance
from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.backends.hybrid import SessionStore as HybridStore
from hybrid_sessions.signals import (
    current_revocation_path,
    key_rotated,
    revocation_path,
    session_created,
    session_inlined,
    session_merged,
    session_revoked,
    session_spilled,
    token_refused,
)
from tests.engines import ENGINES, Engine

COOKIE = django_settings.SESSION_COOKIE_NAME
SERVER_ENGINES = [e for e in ENGINES if e.server_side]
COOKIE_ENGINES = [e for e in ENGINES if e.path.endswith(("signed_cookies", "hybrid"))]
HYBRID_ENGINES = [e for e in ENGINES if e.path.endswith("hybrid")]


def _engines(engines: list[Engine]) -> Any:
    params = [pytest.param(e, marks=[pytest.mark.redis] if e.needs_redis else []) for e in engines]
    return pytest.fixture(params=params, ids=[e.name for e in engines])(_engine)


def _engine(request: pytest.FixtureRequest, db: None) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings):
        yield eng


server_engine = _engines(SERVER_ENGINES)
cookie_engine = _engines(COOKIE_ENGINES)
hybrid_engine = _engines(HYBRID_ENGINES)


@contextmanager
def receiving(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """What ``signal`` is sent inside the block: one dict of arguments per send."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        calls.append({"sender": sender, **kwargs})

    signal.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="alice-password")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def record_of(engine: Engine, client: Client) -> str:
    found = engine.digest_of(client.cookies[COOKIE].value)
    assert found is not None
    return found


def paths(calls: list[dict[str, Any]]) -> list[str]:
    return [call["path"] for call in calls]


# -- session_created ---------------------------------------------------------------------------


def test_a_new_session_is_created_once_on_every_engine(engine: Engine) -> None:
    client = Client()
    with receiving(session_created) as created:
        client.get("/write/", {"a": "1"})
        client.get("/write/", {"b": "2"})
    assert len(created) == 1
    assert created[0]["sender"] is engine.store
    assert dict(created[0]["session"].items()) == {"a": "1"}


def test_an_unsaved_session_is_never_created(engine: Engine) -> None:
    with receiving(session_created) as created:
        Client().get("/read/")
    assert created == []


# -- session_spilled and session_inlined ---------------------------------------------------------


def test_a_hybrid_session_spills_when_large_and_comes_back_inline_when_small(
    hybrid_engine: Engine,
) -> None:
    with receiving(session_spilled) as spilled, receiving(session_inlined) as inlined:
        session = HybridStore()
        session["a"] = 1
        session.save()
        assert (spilled, inlined) == ([], [])
        session = HybridStore(session.cookie_value())
        session["blob"] = secrets.token_hex(3000)
        session.save()
        assert len(spilled) == 1
        assert spilled[0]["session"] is session
        assert spilled[0]["size"] == len(session.cookie_value() or "")
        session = HybridStore(session.cookie_value())
        session["more"] = 2
        session.save()
        assert (len(spilled), inlined) == (1, [])  # still spilled: no news
        session = HybridStore(session.cookie_value())
        del session["blob"]
        session.save()
    assert len(spilled) == 1
    assert len(inlined) == 1
    assert inlined[0]["sender"] is HybridStore
    assert inlined[0]["size"] == len(session.cookie_value() or "")


def test_a_session_too_large_from_its_first_save_is_spilled_at_once(
    hybrid_engine: Engine,
) -> None:
    with receiving(session_spilled) as spilled:
        Client().get("/write/", {"blob": secrets.token_hex(3000)})
    assert len(spilled) == 1


# -- session_revoked ------------------------------------------------------------------------------


def test_logout_revokes_with_the_path_logout_and_the_user(
    server_engine: Engine, alice: User
) -> None:
    client = logged_in(alice)
    record = record_of(server_engine, client)
    with receiving(session_revoked) as revoked:
        client.get("/flush/")
    assert revoked == [
        {
            "sender": type(server_engine.store.get_store()),
            "digests": (record,),
            "path": "logout",
            "user_id": str(alice.pk),
        }
    ]


def test_the_cookie_engine_has_nothing_to_revoke() -> None:
    with override_settings(SESSION_ENGINE="hybrid_sessions.backends.signed_cookies"):
        client = Client()
        client.get("/write/", {"a": "1"})
        with receiving(session_revoked) as revoked:
            client.get("/flush/")
    assert revoked == []


def test_the_api_revokes_with_the_path_api(server_engine: Engine, alice: User) -> None:
    first, second = logged_in(alice), logged_in(alice)
    with receiving(session_revoked) as revoked:
        assert api.revoke_session(alice, record_of(server_engine, first))
        assert api.revoke_all_sessions(alice) == 1
    assert paths(revoked) == ["api", "api"]
    assert revoked[0]["digests"] == (record_of(server_engine, first),)
    assert revoked[1]["digests"] == (record_of(server_engine, second),)
    assert revoked[1]["user_id"] == str(alice.pk)


def test_the_async_api_revokes_with_the_path_api(server_engine: Engine, alice: User) -> None:
    client = logged_in(alice)
    with receiving(session_revoked) as revoked:
        assert async_to_sync(api.arevoke_all_sessions)(alice) == 1
    assert paths(revoked) == ["api"]
    assert revoked[0]["digests"] == (record_of(server_engine, client),)


def test_the_admin_revokes_with_the_path_admin_though_it_calls_the_api(
    server_engine: Engine, alice: User
) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "x")
    record = record_of(server_engine, logged_in(alice))
    admin = logged_in(root)
    with receiving(session_revoked) as revoked:
        admin.post(reverse("admin:hybrid_sessions_session_delete", args=[record]))
    assert revoked == [
        {
            "sender": type(server_engine.store.get_store()),
            "digests": (record,),
            "path": "admin",
            "user_id": None,  # ended by digest: the store did not read the record
        }
    ]


def test_the_revoke_command_revokes_with_the_path_command(
    server_engine: Engine, alice: User
) -> None:
    record = record_of(server_engine, logged_in(alice))
    with receiving(session_revoked) as revoked:
        call_command("hybrid_sessions_revoke", user="alice", stdout=io.StringIO())
    assert [(call["path"], call["digests"]) for call in revoked] == [("command", (record,))]


def test_a_purge_revokes_with_the_path_purge(server_engine: Engine, alice: User) -> None:
    record = record_of(server_engine, logged_in(alice))
    with receiving(session_revoked) as revoked:
        assert maintenance.purge(user_id=str(alice.pk)).ended == 1
    assert [(call["path"], call["digests"]) for call in revoked] == [("purge", (record,))]


@override_settings(HYBRID_SESSIONS_MAX_PER_USER=1)
def test_the_session_limit_revokes_with_the_path_limit(
    server_engine: Engine, alice: User
) -> None:
    first = Client()
    assert first.login(username="alice", password="alice-password")
    record = record_of(server_engine, first)
    with receiving(session_revoked) as revoked:
        assert Client().login(username="alice", password="alice-password")
    # The test client's login cycles the session it made first: that end is a cycle.
    ends = [(call["path"], call["digests"]) for call in revoked if call["path"] != "cycle"]
    assert ends == [("limit", (record,))]


def test_cycle_key_revokes_the_old_record_with_the_path_cycle_and_rotates_the_key(
    server_engine: Engine,
) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    old = record_of(server_engine, client)
    with receiving(session_revoked) as revoked, receiving(key_rotated) as rotated:
        assert client.get("/cycle/").json() == {"a": "1"}
    new = record_of(server_engine, client)
    assert new != old
    assert [(call["path"], call["digests"]) for call in revoked] == [("cycle", (old,))]
    assert len(rotated) == 1
    assert rotated[0]["reason"] == "cycle"
    assert rotated[0]["previous_digest"] == old
    assert rotated[0]["sender"] is server_engine.store


def test_a_failing_revocation_receiver_is_logged_and_never_stops_an_end(
    server_engine: Engine, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    browsers = [logged_in(alice) for _ in range(3)]

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit log down")

    session_revoked.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            assert api.revoke_all_sessions(alice) == 3
            assert api.revoke_all_sessions(alice) == 0
    finally:
        session_revoked.disconnect(broken)
    assert [browser.get("/read/").json() for browser in browsers] == [{}, {}, {}]
    assert "audit log down" in caplog.text


def test_the_outermost_face_names_the_path() -> None:
    assert current_revocation_path() == "logout"
    with revocation_path("admin"):
        with revocation_path("api"):
            assert current_revocation_path() == "admin"
        assert current_revocation_path() == "admin"
    assert current_revocation_path() == "logout"


# -- session_merged --------------------------------------------------------------------------------


def test_a_save_that_lost_a_race_merges_and_says_so(server_engine: Engine) -> None:
    store = server_engine.store
    original = store()
    original["a"] = 1
    original.save()
    first, second = store(original.session_key), store(original.session_key)
    assert first["a"] == second["a"] == 1  # both loaded the same version
    first["b"] = 2
    second["c"] = 3
    with receiving(session_merged) as merged:
        first.save()
        assert merged == []
        second.save()
    assert len(merged) == 1
    assert merged[0]["sender"] is store
    assert merged[0]["session"] is second
    assert merged[0]["conflicts"] == 1
    assert dict(store(original.session_key).items()) == {"a": 1, "b": 2, "c": 3}


# -- token_refused ---------------------------------------------------------------------------------


def _tampered(token: str) -> str:
    """The token with one character of its signature changed."""
    at = len(token) - 10
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


def _saved_cookie(store: type[Any], expiry: timedelta | None = None) -> str:
    """The cookie value of a saved session ``{"a": 1}``."""
    session = store()
    session["a"] = 1
    if expiry is not None:
        session.set_expiry(expiry)
    session.save()
    value = session.cookie_value() if isinstance(session, HybridStore) else session.session_key
    assert isinstance(value, str)
    return value


def test_every_refused_cookie_is_signalled_with_its_reason(cookie_engine: Engine) -> None:
    store = cookie_engine.store
    good = _saved_cookie(store)
    expired = _saved_cookie(store, expiry=-timedelta(seconds=10))
    with receiving(token_refused) as refused:
        for value in ("garbage.garbage.garbage", _tampered(good), expired):
            assert store(value).load() == {}
        assert dict(store(good).items()) == {"a": 1}  # a good cookie is not refused
    assert [call["reason"] for call in refused] == [
        "MalformedToken", "InvalidSignature", "ExpiredToken",
    ]
    assert {call["sender"] for call in refused} == {store}
    assert type(refused[2]["error"]).__name__ == "ExpiredToken"


def test_a_refused_cookie_through_the_middleware_is_signalled(cookie_engine: Engine) -> None:
    client = Client()
    client.cookies[COOKIE] = "x" * 20 + "." + "y" * 20
    with receiving(token_refused) as refused:
        assert client.get("/read/").json() == {}
    assert [call["reason"] for call in refused] == ["MalformedToken"]


# -- key_rotated: a cookie signed with a fallback key ----------------------------------------------


def test_a_cookie_signed_with_a_fallback_key_is_rotated(
    cookie_engine: Engine, settings: Any
) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-" + "y" * 40
    with receiving(key_rotated) as rotated:
        assert client.get("/read/").json() == {"a": "1"}
        assert client.get("/read/").json() == {"a": "1"}  # re-issued: once only
    assert len(rotated) == 1
    assert rotated[0]["reason"] == "secret"
    assert rotated[0]["previous_digest"] is None
    assert rotated[0]["sender"] is cookie_engine.store


def test_the_cookie_engine_rotates_its_token_on_cycle_key() -> None:
    with override_settings(SESSION_ENGINE="hybrid_sessions.backends.signed_cookies"):
        client = Client()
        client.get("/write/", {"a": "1"})
        with receiving(key_rotated) as rotated:
            client.get("/cycle/")
    assert [(call["reason"], call["previous_digest"]) for call in rotated] == [("cycle", None)]


# -- sent from the async methods, on the event loop ------------------------------------------------


def test_async_saves_call_sync_receivers_at_once_and_schedule_async_ones(
    server_engine: Engine,
) -> None:
    heard: list[str] = []

    def sync_receiver(sender: Any, session: ServerSessionBase, **kwargs: Any) -> None:
        heard.append("sync")

    async def async_receiver(sender: Any, session: ServerSessionBase, **kwargs: Any) -> None:
        heard.append("async")

    session_created.connect(sync_receiver)
    session_created.connect(async_receiver)

    async def create() -> list[str]:
        session = server_engine.store()
        session["a"] = 1
        await session.asave()
        at_return = list(heard)
        for _ in range(10):
            await asyncio.sleep(0)
        return at_return

    try:
        at_return = async_to_sync(create)()
    finally:
        session_created.disconnect(sync_receiver)
        session_created.disconnect(async_receiver)
    assert at_return[:1] == ["sync"]  # called before asave() returned
    assert heard == ["sync", "async"]

