"""``hybrid_sessions.middleware.SessionMiddleware``: IP address and User-Agent, only on request.

Also the engines' side of it: the user link and the metadata survive every
kind of save, sync and async.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client, override_settings

from hybrid_sessions import api
from hybrid_sessions.conf import USER_AGENT_MAX_LENGTH
from hybrid_sessions.middleware import _accepted_kwargs
from tests.engines import ENGINES, Engine

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
OUR_MIDDLEWARE = [
    "hybrid_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TRACK_BOTH = {"HYBRID_SESSIONS_TRACK_IP_ADDRESS": True, "HYBRID_SESSIONS_TRACK_USER_AGENT": True}
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    """Each server-side engine in turn, behind our middleware."""
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, MIDDLEWARE=OUR_MIDDLEWARE, **eng.settings):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password")


def browse(user: User, **meta: str) -> dict[str, Any]:
    """Log in, make one request that changes the session, and return what the store lists."""
    client = Client()
    client.defaults.update(meta)  # what Client(**meta) does, with each value typed as a str
    client.force_login(user)
    assert client.get("/write/", {"visited": "yes"}).status_code == 200
    (info,) = api.list_sessions(user)
    return {"ip": info.ip_address, "ua": info.user_agent}


def test_nothing_personal_is_recorded_by_default(engine: Engine, alice: User) -> None:
    assert browse(alice, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=FIREFOX) == {
        "ip": None,
        "ua": None,
    }


def test_ip_address_and_user_agent_are_recorded_when_enabled(engine: Engine, alice: User) -> None:
    with override_settings(**TRACK_BOTH):
        seen = browse(alice, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=FIREFOX)
    assert seen == {"ip": "203.0.113.7", "ua": FIREFOX}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("HYBRID_SESSIONS_TRACK_IP_ADDRESS", {"ip": "203.0.113.7", "ua": None}),
        ("HYBRID_SESSIONS_TRACK_USER_AGENT", {"ip": None, "ua": FIREFOX}),
    ],
)
def test_each_setting_enables_only_its_own_field(
    engine: Engine, alice: User, setting: str, expected: dict[str, Any]
) -> None:
    with override_settings(**{setting: True}):
        seen = browse(alice, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=FIREFOX)
    assert seen == expected


def test_forwarded_headers_are_ignored(engine: Engine, alice: User) -> None:
    with override_settings(**TRACK_BOTH):
        seen = browse(
            alice,
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="198.51.100.66",
            HTTP_X_REAL_IP="198.51.100.66",
        )
    assert seen["ip"] == "10.0.0.2"


@pytest.mark.parametrize(
    ("remote_addr", "expected"),
    [
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("", None),
        ("unix:/run/gunicorn.sock", None),
        ("203.0.113.7, 10.0.0.1", None),
    ],
)
def test_only_a_valid_ip_address_is_kept(
    engine: Engine, alice: User, remote_addr: str, expected: str | None
) -> None:
    with override_settings(**TRACK_BOTH):
        assert browse(alice, REMOTE_ADDR=remote_addr)["ip"] == expected


def test_a_long_user_agent_is_cut_to_the_column_length(engine: Engine, alice: User) -> None:
    with override_settings(**TRACK_BOTH):
        seen = browse(alice, HTTP_USER_AGENT="U" * 5000)
    assert seen["ua"] == "U" * USER_AGENT_MAX_LENGTH


def test_metadata_follows_the_latest_request(engine: Engine, alice: User) -> None:
    with override_settings(**TRACK_BOTH):
        client = Client(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Old/1")
        client.force_login(alice)
        client.get("/write/", {"n": "1"})
        client.defaults.update(REMOTE_ADDR="198.51.100.9", HTTP_USER_AGENT="New/2")
        client.get("/write/", {"n": "2"})
    (info,) = api.list_sessions(alice)
    assert (info.ip_address, info.user_agent) == ("198.51.100.9", "New/2")


@override_settings(
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    MIDDLEWARE=OUR_MIDDLEWARE,
    **TRACK_BOTH,
)
def test_engines_that_take_no_metadata_get_none() -> None:
    client = Client(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=FIREFOX)
    response = client.get("/write/", {"a": "1"})
    assert response.status_code == 200
    assert client.get("/read/").json() == {"a": "1"}


def test_accepted_kwargs_reads_the_engine_constructor() -> None:
    class Both(SessionBase):
        def __init__(self, session_key: str | None = None, **kwargs: Any) -> None:
            super().__init__(session_key)

    class IpOnly(SessionBase):
        def __init__(self, session_key: str | None = None, *, ip_address: str = "") -> None:
            super().__init__(session_key)

    assert _accepted_kwargs(SessionBase) == frozenset()
    assert _accepted_kwargs(Both) == {"ip_address", "user_agent"}
    assert _accepted_kwargs(IpOnly) == {"ip_address"}
    for eng in SERVER_ENGINES:
        assert _accepted_kwargs(eng.store) == {"ip_address", "user_agent"}, eng.name


# -- the user link and metadata through every kind of save ----------------------------


def test_async_saves_keep_the_user_link_and_metadata(engine: Engine, alice: User) -> None:
    user_id = str(alice.pk)

    async def scenario() -> str | None:
        session: SessionBase = engine.store(ip_address="203.0.113.7", user_agent="First/1")
        await session.acreate()
        await session.aset("_auth_user_id", user_id)
        await session.asave()
        again: SessionBase = engine.store(
            session.session_key, ip_address="198.51.100.9", user_agent="Second/2"
        )
        await again.aload()
        await again.aset("cart", [1, 2, 3])
        await again.asave()
        return again.session_key  # the cookie the browser now holds

    with override_settings(**TRACK_BOTH):
        key = async_to_sync(scenario)()

    (info,) = api.list_sessions(alice)
    assert (info.user_id, info.ip_address, info.user_agent) == (user_id, "198.51.100.9", "Second/2")
    reloaded = engine.store(key)
    assert reloaded["_auth_user_id"] == user_id
    assert reloaded["cart"] == [1, 2, 3]


def test_sync_saves_keep_the_user_link_and_metadata(engine: Engine, alice: User) -> None:
    user_id = str(alice.pk)
    with override_settings(**TRACK_BOTH):
        session = engine.store(ip_address="203.0.113.7", user_agent="First/1")
        session.create()
        session["_auth_user_id"] = user_id
        session.save()
        again = engine.store(session.session_key, ip_address="198.51.100.9", user_agent="Two/2")
        again["cart"] = [1]
        again.save()
        # A save with nothing new still refreshes the activity and the client metadata.
        third = engine.store(again.session_key, ip_address="192.0.2.1", user_agent="Three/3")
        third.load()
        third.save()

    (info,) = api.list_sessions(alice)
    assert (info.user_id, info.ip_address, info.user_agent) == (user_id, "192.0.2.1", "Three/3")
