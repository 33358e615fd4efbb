"""Idle and absolute timeouts, on every engine, through the whole middleware stack.

Time moves with time-machine, which moves every clock the code reads
(``time.time``, ``datetime.now``): the engines', the stores' and the tokens'.
Nothing sleeps. The last tests run two real app server processes, the second
with its clock ahead, as if a cookie were replayed there later.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from hybrid_sessions import feeds
from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.backends.hybrid import SessionStore as HybridSession
from hybrid_sessions.backends.hybrid.cookie import hybrid_settings
from hybrid_sessions.checks import check_settings
from hybrid_sessions.knowledge import GONE, knowledge
from hybrid_sessions.stores.base import StoredSession, digest
from tests.engines import Engine
from tests.test_hybrid_engine import IO, _warm_redis_scripts, redis_round_trips, sql_round_trips
from tests.test_hybrid_processes import (
    Browser,
    Server,
    _free_port,
    _start,
    _wait_up,
)

NAME = django_settings.SESSION_COOKIE_NAME
HYBRID = "hybrid_sessions.backends.hybrid"
IDLE = 600
ABSOLUTE = 3600
INTERVAL = 60


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Every clock of this process, from now on, moved only by ``clock.shift(seconds)``."""
    with time_machine.travel(time.time(), tick=True) as traveller:
        yield traveller
    # What the process learned "in the future" must not mislead the tests that follow:
    # versions, and a feed that (re)connected while the clock was ahead.
    knowledge.forget_all()
    for feed in list(feeds._feeds):
        if feed.since is not None and feed.since > time.time():
            feed.stop()  # started again, on the real clock, by its next use


@pytest.fixture
def timeouts(settings: Any) -> Any:
    """The settings fixture, with activity recorded once a minute."""
    settings.HYBRID_SESSIONS_ACTIVITY_INTERVAL = INTERVAL
    return settings


def cookie_of(client: Client) -> str:
    morsel = client.cookies.get(NAME)
    assert morsel is not None, "the client holds a session cookie"
    assert morsel.value, "the client holds a session cookie"
    return morsel.value


def session_key_of(engine: Engine, value: str) -> str:
    """The server key behind a cookie value, even an expired one (the hybrid's is in its token)."""
    if engine.path == HYBRID:
        sid: str = hybrid_settings().codec.decode(value, verify_exp=False).payload["sid"]
        return sid
    return value


def record(engine: Engine, value: str) -> StoredSession | None:
    store = engine.store.get_store()
    found: StoredSession | None = store.get(digest(session_key_of(engine, value)))
    return found


def deleted(response: Any) -> bool:
    morsel = response.cookies.get(NAME)
    return morsel is not None and morsel.value == ""


def refreshed(response: Any) -> bool:
    morsel = response.cookies.get(NAME)
    return morsel is not None and morsel.value != ""


# -- off by default ------------------------------------------------------------------------------


def test_without_timeouts_an_unused_session_lives_until_it_expires(
    engine: Engine, client: Client, clock: time_machine.Traveller
) -> None:
    client.get("/write/?cart=3")
    clock.shift(7 * 24 * 3600)  # a week unused: within SESSION_COOKIE_AGE (two weeks)
    response = client.get("/read/")
    assert response.json() == {"cart": "3"}
    assert not deleted(response)
    if engine.path == HYBRID:
        claims = hybrid_settings().codec.decode(cookie_of(client)).claims
        assert not {"st", "la"} & set(claims)  # no bytes spent on them


# -- idle ----------------------------------------------------------------------------------------


def test_a_session_idle_for_the_timeout_is_gone(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    client.get("/write/?cart=3")
    clock.shift(IDLE - 5)
    assert client.get("/read/").json() == {"cart": "3"}
    clock.shift(IDLE + 1)
    with caplog.at_level("INFO", "django.security.SuspiciousSession"):
        response = client.get("/read/")
    assert response.json() == {}
    assert deleted(response)
    if engine.path != "hybrid_sessions.backends.db":  # there the store has expired it itself
        assert "timed out (idle)" in caplog.text or "idle timeout" in caplog.text


def test_an_idle_timeout_within_the_revalidation_window_holds_cookies_served_alone(
    engine: Engine, client: Client, clock: time_machine.Traveller, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_IDLE_TIMEOUT = 30
    settings.HYBRID_SESSIONS_ACTIVITY_INTERVAL = 10
    settings.HYBRID_SESSIONS_REVALIDATE_SECONDS = 600
    client.get("/write/?cart=3")
    for _ in range(6):
        clock.shift(20)
        assert client.get("/read/").json() == {"cart": "3"}
    clock.shift(31)
    response = client.get("/read/")
    assert response.json() == {}
    assert deleted(response)


def test_a_session_used_within_the_idle_timeout_lives_on(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    client.get("/write/?cart=3")
    for _ in range(12):  # two hours in all, never ten minutes apart
        clock.shift(IDLE // 2)
        assert client.get("/read/").json() == {"cart": "3"}


def test_activity_is_recorded_at_most_once_per_interval_and_writes_no_data(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    client.get("/write/?cart=3")
    first = cookie_of(client)
    before = record(engine, first) if engine.server_side else None

    clock.shift(INTERVAL // 2)
    response = client.get("/read/")
    assert response.json() == {"cart": "3"}
    assert NAME not in response.cookies  # nothing recorded, nothing sent
    if before is not None:
        assert record(engine, first) == before

    clock.shift(INTERVAL)
    response = client.get("/read/")
    assert response.json() == {"cart": "3"}
    assert refreshed(response)
    if before is not None:
        after = record(engine, cookie_of(client))
        assert after is not None
        assert before.last_activity is not None
        assert after.last_activity is not None
        assert after.last_activity > before.last_activity
        assert (after.version, after.data) == (before.version, before.data)  # a touch
    if not engine.server_side or engine.path == HYBRID:
        assert cookie_of(client) != first  # the cookie carries the new activity


def test_turning_the_idle_timeout_on_holds_sessions_already_open(
    engine: Engine, client: Client, clock: time_machine.Traveller, settings: Any
) -> None:
    client.get("/write/?cart=3")
    other = Client()
    other.get("/write/?cart=4")
    clock.shift(IDLE + 1)
    other.get("/write/?cart=5")  # written just now, before the change
    settings.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    assert client.get("/read/").json() == {}
    response = other.get("/read/")
    assert response.json() == {"cart": "5"}
    if engine.path == HYBRID:
        # The cookie issued before carries no times: the server's were asked, and
        # the response carries them.
        assert refreshed(response)
        assert "la" in hybrid_settings().codec.decode(cookie_of(other)).claims


# -- absolute ------------------------------------------------------------------------------------


def test_the_absolute_timeout_ends_even_an_active_session(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    timeouts.HYBRID_SESSIONS_ABSOLUTE_TIMEOUT = ABSOLUTE
    client.get("/write/?cart=3")
    for _ in range(7):  # 3500 seconds, active every 500
        clock.shift(500)
        assert client.get("/read/").json() == {"cart": "3"}
    clock.shift(80)
    assert refreshed(client.get("/read/"))  # 3580: activity recorded, a fresh cookie
    clock.shift(30)
    response = client.get("/read/")  # 3610: the hybrid may serve a 30 s old cookie alone
    assert response.json() == {}
    assert deleted(response)


def test_a_new_key_keeps_the_absolute_clock(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_ABSOLUTE_TIMEOUT = ABSOLUTE
    client.get("/write/?cart=3")
    first = cookie_of(client)
    started = record(engine, first) if engine.server_side else None
    clock.shift(ABSOLUTE - 600)
    assert client.get("/cycle/").json() == {"cart": "3"}  # as login() does
    second = cookie_of(client)
    assert session_key_of(engine, second) != session_key_of(engine, first)
    if started is not None:
        now_record = record(engine, second)
        assert now_record is not None
        assert now_record.created_at == started.created_at
    clock.shift(601)
    assert client.get("/read/").json() == {}


def test_a_logout_starts_a_new_absolute_clock(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_ABSOLUTE_TIMEOUT = ABSOLUTE
    client.get("/write/?cart=3")
    clock.shift(ABSOLUTE - 600)
    client.get("/flush/")
    client.get("/write/?cart=4")
    clock.shift(601)
    assert client.get("/read/").json() == {"cart": "4"}


# -- on the server -------------------------------------------------------------------------------


def test_the_record_expires_in_the_store_when_it_would_time_out(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    if not engine.server_side:
        pytest.skip("no server record")
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    timeouts.HYBRID_SESSIONS_ABSOLUTE_TIMEOUT = ABSOLUTE
    client.get("/write/?cart=3")
    store = engine.store.get_store()
    key = digest(session_key_of(engine, cookie_of(client)))
    info = store.describe(key)
    assert info is not None
    assert info.expires_at <= timezone.now() + timedelta(seconds=IDLE)
    assert info.expires_at > timezone.now() + timedelta(seconds=IDLE - 5)
    for _ in range(7):
        clock.shift(500)
        client.get("/read/")
    info = store.describe(key)
    assert info is not None
    assert info.expires_at <= info.created_at + timedelta(seconds=ABSOLUTE)


def test_a_timed_out_session_loaded_by_its_key_is_ended_in_the_store(
    engine: Engine, client: Client, clock: time_machine.Traveller, settings: Any
) -> None:
    if not engine.server_side:
        pytest.skip("no server record")
    client.get("/write/?cart=3")
    key = session_key_of(engine, cookie_of(client))
    clock.shift(IDLE + 1)
    settings.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE  # the record still says "two weeks"
    assert record(engine, cookie_of(client)) is not None
    session = engine.store(session_key=key)
    assert isinstance(session, ServerSessionBase)
    assert session.load() == {}
    assert engine.store.get_store().get(digest(key)) is None
    if engine.path == HYBRID:
        entry = knowledge.lookup(digest(key))  # this process knows at once; others by the feed
        assert entry is not None
        assert entry[0] == GONE


def test_ending_a_timed_out_session_reports_the_timeout_path(
    engine: Engine, client: Client, clock: time_machine.Traveller, settings: Any
) -> None:
    if not engine.server_side:
        pytest.skip("no server record")
    from hybrid_sessions.signals import session_revoked

    client.get("/write/?cart=3")
    key = session_key_of(engine, cookie_of(client))
    paths: list[str] = []

    def heard(sender: Any, path: str, **kwargs: Any) -> None:
        paths.append(path)

    session_revoked.connect(heard)
    try:
        clock.shift(IDLE + 1)
        settings.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
        assert engine.store(session_key=key).load() == {}
    finally:
        session_revoked.disconnect(heard)
    assert paths == ["timeout"]


def test_a_timed_out_session_reads_as_empty_asynchronously(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    client.get("/write/?cart=3")
    value = cookie_of(client)
    assert async_to_sync(engine.store(value).aload)() == {"cart": "3"}
    clock.shift(IDLE + 1)
    assert async_to_sync(engine.store(value).aload)() == {}


# -- replayed cookies ----------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["idle", "absolute"])
def test_a_timed_out_cookie_replayed_later_is_empty_in_a_process_that_knows_nothing(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any,
    timeout: str,
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    if timeout == "absolute":
        timeouts.HYBRID_SESSIONS_ABSOLUTE_TIMEOUT = ABSOLUTE
    client.get("/write/?cart=3")
    stolen = cookie_of(client)
    if timeout == "absolute":
        for _ in range(8):  # kept active, past the absolute timeout
            clock.shift(IDLE - 100)
            client.get("/read/")
    else:
        clock.shift(IDLE + 1)
    for _ in range(2):
        knowledge.forget_all()  # a process that has heard nothing of this session
        replay = Client()
        replay.cookies[NAME] = stolen
        response = replay.get("/read/")
        assert response.json() == {}
        assert deleted(response)
        if engine.server_side:
            assert engine.store(session_key=session_key_of(engine, stolen)).load() == {}


# -- the hybrid's round trips ----------------------------------------------------------------------


@pytest.fixture
def hybrid_io(engine: Engine) -> Any:
    if engine.path != HYBRID:
        pytest.skip("the hybrid's round trips")
    spill = engine.settings.get("HYBRID_SESSIONS_SPILL_ENGINE", "hybrid_sessions.backends.db")
    return redis_round_trips if spill.endswith(".cache") else sql_round_trips


@pytest.mark.parametrize("size", ["inline", "spilled"])
def test_the_hybrid_reads_its_cookie_with_no_round_trip_and_records_activity_with_one(
    engine: Engine, client: Client, clock: time_machine.Traveller, timeouts: Any,
    hybrid_io: Any, size: str,
) -> None:
    timeouts.HYBRID_SESSIONS_IDLE_TIMEOUT = IDLE
    timeouts.HYBRID_SESSIONS_ACTIVITY_INTERVAL = 30  # within the 60 s revalidation window
    store = HybridSession.get_store()
    if hybrid_io is redis_round_trips:
        _warm_redis_scripts(store)
    feed = store.feed()
    if feed is not None:
        feed.ensure_running()
        assert feed.wait_until_up()
    # Too large for the cookie, a cart spills: the cookie holds only the auth keys.
    cart = "3" if size == "inline" else secrets.token_hex(2500)
    client.get(f"/write/?cart={cart}")
    payload = hybrid_settings().codec.decode(cookie_of(client)).payload
    assert ("d" in payload and payload["d"].get("cart") == cart) == (size == "inline")
    # Reading the cart of a spilled session is a read whatever the timeouts: look at
    # request.user then, which its cookie answers.
    path, body = ("/read/", '{"cart": "3"}') if size == "inline" else ("/whoami/", "")
    clock.shift(10)
    io: IO
    with hybrid_io() as io:
        assert client.get(path).content.decode() == body
    assert io.total == 0
    clock.shift(25)
    with hybrid_io() as io:
        response = client.get(path)
    assert response.content.decode() == body
    assert refreshed(response)
    assert client.get("/read/").json() == {"cart": cart}
    # A touch; without a feed to confirm its version, the cookie is read first.
    assert (io.reads, io.writes) == (0 if feed is not None else 1, 1), io.commands


# -- checks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"HYBRID_SESSIONS_IDLE_TIMEOUT": 900, "HYBRID_SESSIONS_ABSOLUTE_TIMEOUT": 28800}, []),
        ({"HYBRID_SESSIONS_IDLE_TIMEOUT": 0}, ["hybrid_sessions.E020"]),
        ({"HYBRID_SESSIONS_IDLE_TIMEOUT": "900"}, ["hybrid_sessions.E020"]),
        ({"HYBRID_SESSIONS_ABSOLUTE_TIMEOUT": -1}, ["hybrid_sessions.E021"]),
        ({"HYBRID_SESSIONS_ABSOLUTE_TIMEOUT": True}, ["hybrid_sessions.E021"]),
        ({"HYBRID_SESSIONS_ACTIVITY_INTERVAL": -1}, ["hybrid_sessions.E022"]),
        ({"HYBRID_SESSIONS_ACTIVITY_INTERVAL": 0}, []),
        ({"HYBRID_SESSIONS_IDLE_TIMEOUT": 60}, ["hybrid_sessions.W023"]),
        (
            {"HYBRID_SESSIONS_IDLE_TIMEOUT": 300, "HYBRID_SESSIONS_ACTIVITY_INTERVAL": 400},
            ["hybrid_sessions.W023"],
        ),
    ],
)
def test_timeout_settings_are_checked(overrides: dict[str, Any], expected: list[str]) -> None:
    with override_settings(**overrides):
        ids = [m.id for m in check_settings() if m.id in {
            "hybrid_sessions.E020", "hybrid_sessions.E021", "hybrid_sessions.E022",
            "hybrid_sessions.W023",
        }]
    assert ids == expected


# -- two real processes --------------------------------------------------------------------------


@pytest.fixture(params=["db", pytest.param("cache", marks=pytest.mark.redis)])
def spill(request: pytest.FixtureRequest) -> str:
    return str(request.param)


#: A revalidation window longer than the timeouts: without a feed, B may serve the
#: cookie alone, so its own times are what refuse it.
WINDOW = {"HYBRID_SESSIONS_REVALIDATE_SECONDS": 2 * ABSOLUTE}
#: How far past the timeout B's clock runs. Not one second: a process's travelled clock
#: starts when its app is imported, and on a busy machine it can trail the real clock's
#: offset by seconds by the time the first request arrives.
PAST = 60
TIMEOUTS = {
    "idle": ({"HYBRID_SESSIONS_IDLE_TIMEOUT": IDLE, **WINDOW}, IDLE + PAST),
    "absolute": ({"HYBRID_SESSIONS_ABSOLUTE_TIMEOUT": ABSOLUTE, **WINDOW}, ABSOLUTE + PAST),
}


@pytest.fixture(params=list(TIMEOUTS))
def later(
    request: pytest.FixtureRequest, spill: str, transactional_db: None
) -> Iterator[tuple[Server, Server]]:
    """Process A, and process B whose clock runs past the timeout: a replay there is "later"."""
    overrides, ahead = TIMEOUTS[request.param]
    env = {
        **os.environ,
        "HYBRID_SESSIONS_APP_DATABASE": str(connection.settings_dict["NAME"]),
        "HYBRID_SESSIONS_APP_SPILL": f"hybrid_sessions.backends.{spill}",
        "HYBRID_SESSIONS_TEST_REDIS": django_settings.CACHES["default"]["LOCATION"],
        "HYBRID_SESSIONS_APP_SETTINGS": json.dumps(overrides),
        "PYTHONPATH": os.getcwd(),
    }
    started = []
    try:
        for clock_ahead in (0, ahead):
            port = _free_port()
            process = _start(port, {**env, "HYBRID_SESSIONS_APP_CLOCK_AHEAD": str(clock_ahead)})
            started.append(Server(port, process))
        for server in started:
            _wait_up(server.port, server.process)
        yield started[0], started[1]
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            server.process.wait(10)


@pytest.mark.slow
def test_a_timed_out_cookie_replayed_in_another_process_is_empty(
    later: tuple[Server, Server], spill: str
) -> None:
    a, b = later
    User.objects.create_user("alice", password="pw")
    for server in (a, b):
        assert server.request("/feed/", None).status == 200  # feeds up, where there are
    browser = Browser()
    assert browser(a, "/login/", {"username": "alice", "password": "pw"}).body == "alice"
    stolen = browser.cookie
    assert stolen is not None
    assert a.request("/whoami/", stolen).body == "alice"  # now, in A: a live session

    # B has heard nothing of the session; to its clock the cookie has timed out.
    for _ in range(2):
        replay = b.request("/whoami/", stolen)
        assert (replay.status, replay.body, replay.cookie) == (200, "", "")  # deleted
    assert b.request("/change-user/", stolen, {"first_name": "mallory"}).status == 403
    # Nor does its key alone load it there.
    key = hybrid_settings().codec.decode(stolen, verify_exp=False).payload["sid"]
    assert b.request("/whoami/", key).body == ""
