"""``HYBRID_SESSIONS_MAX_PER_USER``: a login beyond the limit ends the least recently active."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from hybrid_sessions import api
from tests.engines import ENGINES, Engine

SERVER_ENGINES = [e for e in ENGINES if e.server_side]


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password")


def browser(user: User) -> Client:
    """A browser that logs in through ``django.contrib.auth.login`` (the signal included)."""
    client = Client()
    assert client.login(username=user.get_username(), password="alice-password")
    client.get("/whoami/")
    time.sleep(0.003)  # activity is kept to the millisecond: keep the order unambiguous
    return client


def whoami(client: Client) -> bytes:
    return client.get("/whoami/").content


@override_settings(HYBRID_SESSIONS_MAX_PER_USER=2)
def test_a_login_beyond_the_limit_ends_the_least_recently_active(
    engine: Engine, alice: User
) -> None:
    first, second = browser(alice), browser(alice)
    first.get("/write/", {"seen": "1"})  # a save: now the second is the least recently active
    time.sleep(0.003)

    third = browser(alice)

    assert whoami(second) == b""
    assert whoami(first) == b"alice"
    assert whoami(third) == b"alice"
    assert len(api.list_sessions(alice)) == 2


@override_settings(HYBRID_SESSIONS_MAX_PER_USER=1)
def test_a_limit_of_one_keeps_only_the_newest_login(engine: Engine, alice: User) -> None:
    old = [browser(alice) for _ in range(2)]
    newest = browser(alice)
    assert [whoami(client) for client in old] == [b"", b""]
    assert whoami(newest) == b"alice"


def test_without_a_limit_every_session_stays(engine: Engine, alice: User) -> None:
    clients = [browser(alice) for _ in range(4)]
    assert [whoami(client) for client in clients] == [b"alice"] * 4


@override_settings(HYBRID_SESSIONS_MAX_PER_USER=1)
def test_other_users_are_untouched(engine: Engine, alice: User) -> None:
    User.objects.create_user("bob", password="alice-password")
    bob = Client()
    assert bob.login(username="bob", password="alice-password")
    browser(alice), browser(alice)
    assert whoami(bob) == b"bob"
