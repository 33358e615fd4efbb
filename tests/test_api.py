"""The per-user API (``hybrid_sessions.api``), against every server-side engine.

Sessions are made the way ``django.contrib.auth.login`` leaves them, straight
through each engine's ``SessionStore``; what the API sees is then checked
against the engine's store and against loading the session again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.base import SessionBase
from django.test import RequestFactory, override_settings

from hybrid_sessions import api
from hybrid_sessions.exceptions import HybridSessionsError, RevocationNotSupported
from tests.engines import ENGINES, Engine
from tests.engines import saved_digest as digest_of

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
COOKIE_ENGINES = [e for e in ENGINES if not e.server_side]


#: The hybrid engine trusts a fresh cookie for this long; revocation is checked at once here.
IMMEDIATE = {"HYBRID_SESSIONS_REVALIDATE_SECONDS": 0}


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    """Each server-side engine in turn, active as SESSION_ENGINE."""
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **{**IMMEDIATE, **eng.settings}):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="bob-password")


def signed_in(engine: Engine, user: User, **data: Any) -> SessionBase:
    """A saved session holding what ``login()`` stores for ``user``."""
    session: SessionBase = engine.store()
    session["_auth_user_id"] = user._meta.pk.value_to_string(user)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.update(data)
    session.save()
    return session


def request_with(session: SessionBase, user: Any) -> Any:
    request = RequestFactory().get("/")
    request.session = session
    request.user = user
    return request


def reloaded_user_id(engine: Engine, session: SessionBase) -> Any:
    """The user id the engine finds when the session's cookie comes back."""
    return engine.store(session.session_key).get("_auth_user_id")


# -- listing ---------------------------------------------------------------------------


def test_list_sessions_returns_each_live_session_of_the_user(
    engine: Engine, alice: User, bob: User
) -> None:
    first = signed_in(engine, alice)
    second = signed_in(engine, alice)
    signed_in(engine, bob)
    anonymous = engine.store()
    anonymous["cart"] = [1, 2]
    anonymous.save()

    sessions = api.list_sessions(alice)

    assert {info.digest for info in sessions} == {digest_of(first), digest_of(second)}
    assert {info.user_id for info in sessions} == {str(alice.pk)}
    for info in sessions:
        assert info.created_at <= info.last_activity < info.expires_at


def test_list_sessions_puts_the_most_recently_active_first(engine: Engine, alice: User) -> None:
    older = signed_in(engine, alice)
    time.sleep(0.003)  # activity times are kept to the millisecond: make them differ
    newer = signed_in(engine, alice)
    assert [i.digest for i in api.list_sessions(alice)] == [digest_of(newer), digest_of(older)]

    time.sleep(0.003)
    older["visited"] = True
    older.save()

    assert [i.digest for i in api.list_sessions(alice)] == [digest_of(older), digest_of(newer)]


def test_list_sessions_never_exposes_a_session_key(engine: Engine, alice: User) -> None:
    session = signed_in(engine, alice)
    (info,) = api.list_sessions(alice)
    assert session.session_key is not None
    assert session.session_key not in repr(info)
    assert len(info.digest) == 64


def test_list_sessions_of_an_anonymous_user_is_empty(engine: Engine, alice: User) -> None:
    signed_in(engine, alice)
    assert api.list_sessions(AnonymousUser()) == []


def test_a_session_follows_the_user_key_at_each_save(
    engine: Engine, alice: User, bob: User
) -> None:
    session = signed_in(engine, alice)
    session["_auth_user_id"] = str(bob.pk)
    session.save()
    assert api.list_sessions(alice) == []
    assert [i.digest for i in api.list_sessions(bob)] == [digest_of(session)]

    del session["_auth_user_id"]
    session.save()
    assert api.list_sessions(bob) == []


# -- revoking one ----------------------------------------------------------------------


def test_revoke_session_ends_that_session_and_no_other(engine: Engine, alice: User) -> None:
    doomed = signed_in(engine, alice)
    kept = signed_in(engine, alice)

    assert api.revoke_session(alice, digest_of(doomed)) is True

    assert [i.digest for i in api.list_sessions(alice)] == [digest_of(kept)]
    assert reloaded_user_id(engine, doomed) is None
    assert reloaded_user_id(engine, kept) == str(alice.pk)


def test_revoke_session_refuses_another_users_session(
    engine: Engine, alice: User, bob: User
) -> None:
    bobs = signed_in(engine, bob)

    assert api.revoke_session(alice, digest_of(bobs)) is False

    assert reloaded_user_id(engine, bobs) == str(bob.pk)


@pytest.mark.parametrize(
    "value",
    ["", "0" * 63, "0" * 65, "Z" * 64, "' OR 1=1 --", "*"],
    ids=["empty", "short", "long", "not-hex", "sql", "wildcard"],
)
def test_revoke_session_refuses_anything_but_a_digest(
    engine: Engine, alice: User, value: str
) -> None:
    session = signed_in(engine, alice)
    assert api.revoke_session(alice, value) is False
    assert reloaded_user_id(engine, session) == str(alice.pk)


def test_revoke_session_of_an_unknown_digest_is_false(engine: Engine, alice: User) -> None:
    signed_in(engine, alice)
    assert api.revoke_session(alice, "a" * 64) is False
    assert len(api.list_sessions(alice)) == 1


def test_revoke_session_for_an_anonymous_user_is_false(engine: Engine, alice: User) -> None:
    session = signed_in(engine, alice)
    assert api.revoke_session(AnonymousUser(), digest_of(session)) is False


# -- revoking many ---------------------------------------------------------------------


def test_revoke_other_sessions_keeps_the_current_one(
    engine: Engine, alice: User, bob: User
) -> None:
    current = signed_in(engine, alice)
    signed_in(engine, alice)
    signed_in(engine, alice)
    bobs = signed_in(engine, bob)
    request = request_with(engine.store(current.session_key), alice)

    assert api.revoke_other_sessions(request) == 2

    assert [i.digest for i in api.list_sessions(alice)] == [digest_of(current)]
    assert reloaded_user_id(engine, current) == str(alice.pk)
    assert reloaded_user_id(engine, bobs) == str(bob.pk)


def test_revoke_other_sessions_of_an_anonymous_request_ends_nothing(
    engine: Engine, alice: User
) -> None:
    signed_in(engine, alice)
    request = request_with(engine.store(), AnonymousUser())
    assert api.revoke_other_sessions(request) == 0
    assert len(api.list_sessions(alice)) == 1


def test_password_change_then_revoke_other_sessions_leaves_only_this_one(
    engine: Engine, alice: User
) -> None:
    """The recipe for a password change view: Django keeps this session, we end the rest."""
    this_device = signed_in(engine, alice)
    other_device = signed_in(engine, alice)
    request = request_with(engine.store(this_device.session_key), alice)
    alice.set_password("a-new-password")
    alice.save()

    update_session_auth_hash(request, alice)  # cycles this session's key
    request.session.save()
    ended = api.revoke_other_sessions(request)

    assert ended == 1
    assert [i.digest for i in api.list_sessions(alice)] == [api.current_digest(request)]
    assert reloaded_user_id(engine, other_device) is None
    assert reloaded_user_id(engine, request.session) == str(alice.pk)


def test_revoke_all_sessions_ends_every_session_of_the_user(
    engine: Engine, alice: User, bob: User
) -> None:
    sessions = [signed_in(engine, alice) for _ in range(3)]
    bobs = signed_in(engine, bob)

    assert api.revoke_all_sessions(alice) == 3

    assert api.list_sessions(alice) == []
    assert all(reloaded_user_id(engine, s) is None for s in sessions)
    assert reloaded_user_id(engine, bobs) == str(bob.pk)
    assert api.revoke_all_sessions(alice) == 0


# -- the current session ---------------------------------------------------------------


def test_current_digest_is_the_digest_of_the_requests_session(
    engine: Engine, alice: User
) -> None:
    session = signed_in(engine, alice)
    request = request_with(engine.store(session.session_key), alice)
    assert api.current_digest(request) == digest_of(session)
    assert api.current_digest(request) in {i.digest for i in api.list_sessions(alice)}


@pytest.mark.parametrize("cookie", [None, "x" * 40, "short", "\x00" * 40])
def test_current_digest_is_none_without_a_live_session(engine: Engine, cookie: str | None) -> None:
    request = request_with(engine.store(cookie), AnonymousUser())
    assert api.current_digest(request) is None


def test_current_digest_of_a_request_without_session_is_none() -> None:
    assert api.current_digest(RequestFactory().get("/")) is None


# -- async -------------------------------------------------------------------------------


def test_async_functions_match_the_sync_ones(engine: Engine, alice: User, bob: User) -> None:
    current = signed_in(engine, alice)
    doomed = signed_in(engine, alice)
    signed_in(engine, alice)
    bobs = signed_in(engine, bob)

    listed = async_to_sync(api.alist_sessions)(alice)
    assert {i.digest for i in listed} == {i.digest for i in api.list_sessions(alice)}
    assert async_to_sync(api.arevoke_session)(alice, digest_of(bobs)) is False
    assert async_to_sync(api.arevoke_session)(alice, digest_of(doomed)) is True

    request = request_with(engine.store(current.session_key), alice)

    async def auser() -> User:
        return alice

    request.auser = auser
    assert async_to_sync(api.arevoke_other_sessions)(request) == 1
    assert [i.digest for i in api.list_sessions(alice)] == [digest_of(current)]
    assert async_to_sync(api.arevoke_all_sessions)(alice) == 1
    assert async_to_sync(api.alist_sessions)(alice) == []
    assert reloaded_user_id(engine, bobs) == str(bob.pk)


# -- engines without a server store --------------------------------------------------


UNSUPPORTED = [e.path for e in COOKIE_ENGINES] + [
    "django.contrib.sessions.backends.signed_cookies",
    "django.contrib.sessions.backends.db",
]


@pytest.mark.parametrize("path", UNSUPPORTED)
def test_engines_without_a_server_store_refuse_clearly(path: str, alice: User) -> None:
    request = request_with(SessionBase(), alice)
    calls: list[Callable[[], object]] = [
        lambda: api.list_sessions(alice),
        lambda: api.revoke_session(alice, "a" * 64),
        lambda: api.revoke_other_sessions(request),
        lambda: api.revoke_all_sessions(alice),
        lambda: async_to_sync(api.alist_sessions)(alice),
    ]
    with override_settings(SESSION_ENGINE=path):
        for call in calls:
            with pytest.raises(RevocationNotSupported, match=path.replace(".", r"\.")):
                call()


def test_revocation_not_supported_is_one_of_the_packages_errors() -> None:
    assert issubclass(RevocationNotSupported, HybridSessionsError)
