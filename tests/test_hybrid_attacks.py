"""Attacks on the hybrid engine's trust model: what a stolen, replayed or injected thing gets.

Each test is an attack that once worked, or one that must never work: a
message injected on the feed (anyone who may ``PUBLISH`` on the Redis server,
or connect to the PostgreSQL database, can send one) can make a process ask
the server or refuse a session, never serve one it would otherwise have
checked; an unsafe request of a signed-in session is never served from a copy
that no feed vouches for; a version confirmed before the feed reconnected is
confirmed again; what a process knows outlives every cookie it could serve.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django_redis import get_redis_connection

from hybrid_sessions import tokens
from hybrid_sessions.backends.hybrid import SessionStore, record_digest
from hybrid_sessions.backends.hybrid.cookie import parse
from hybrid_sessions.feeds import SUBSCRIBED, Feed, message
from hybrid_sessions.knowledge import CLOCK_SKEW, GONE, knowledge
from hybrid_sessions.stores.database import CHANNEL
from hybrid_sessions.stores.sql import listening_connection
from tests.waiting import eventually

from .test_hybrid_engine import (
    COOKIE,
    REDIS_SPILL,
    Spill,
    _use_spill,
    cookie,
    later,
    revoke_elsewhere,
    set_cookie,
    spilled_client,
)
from .test_hybrid_engine import alice as alice
from .test_hybrid_engine import spill as spill

# -- a feed, and a way to inject messages on it ---------------------------------------------------

Inject = Callable[[str], None]


def _redis_injector() -> Inject:
    channel = SessionStore.get_store().channel()  # type: ignore[attr-defined]
    client = get_redis_connection("default")
    return lambda text: client.publish(channel, text)


@contextmanager
def _postgres_injector() -> Iterator[Inject]:
    # A connection of its own, outside the test's transaction, as any other client's.
    notifier = listening_connection("default")
    try:
        yield lambda text: notifier.execute("SELECT pg_notify(%s, %s)", [CHANNEL, text])
    finally:
        notifier.close()


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "postgres"])
def feed(request: pytest.FixtureRequest, db: None, settings: Any) -> Iterator[tuple[Feed, Inject]]:
    """The hybrid engine with a live feed (Redis, or PostgreSQL when the tests run on it)."""
    if request.param == "postgres":
        if connection.vendor != "postgresql":
            pytest.skip("the PostgreSQL feed needs HYBRID_SESSIONS_TEST_DB=postgres")
        _use_spill("db", settings)
    else:
        _use_spill("cache", settings)
        settings.HYBRID_SESSIONS_SPILL_ENGINE = REDIS_SPILL
    live = SessionStore.get_store().feed()
    assert live is not None
    live.ensure_running()
    assert live.wait_until_up()
    if request.param == "redis":
        yield live, _redis_injector()
    else:
        with _postgres_injector() as inject:
            yield live, inject


def version_of(value: str) -> int:
    parsed = parse(value, SessionStore().serializer)
    assert parsed is not None
    return parsed.version


# -- injected messages ----------------------------------------------------------------------------


def test_an_injected_message_never_vouches_for_a_logged_out_cookie(
    feed: tuple[Feed, Inject], alice: User
) -> None:
    live, inject = feed
    client = Client()
    client.force_login(alice)
    client.get("/whoami/")
    stolen = cookie(client)
    key = record_digest(stolen)
    assert key is not None
    client.get("/logout/")
    knowledge.forget_all()  # a process whose memory of the logout has lapsed
    thief = Client()
    with later(61):  # the cookie is past the window: it must be checked
        before = live.stats.messages
        inject(message(key, version_of(stolen)))  # "this session is at the cookie's version"
        assert eventually(lambda: live.stats.messages > before)
        thief.cookies[COOKIE] = stolen
        assert thief.get("/whoami/").content == b""
        assert thief.post("/change/").content == b""


def test_an_injected_message_never_lets_a_replayed_cookie_roll_a_counter_back(
    feed: tuple[Feed, Inject],
) -> None:
    live, inject = feed
    client = Client()
    assert client.post("/attempt/").content == b"1"
    replay = cookie(client)
    key = record_digest(replay)
    assert key is not None
    assert client.post("/attempt/").content == b"2"
    assert client.post("/attempt/").content == b"3"
    knowledge.forget_all()
    attacker = Client()
    with later(61):
        before = live.stats.messages
        inject(message(key, version_of(replay)))
        assert eventually(lambda: live.stats.messages > before)
        attacker.cookies[COOKIE] = replay
        assert attacker.post("/attempt/").status_code == 429


def test_malformed_messages_are_counted_and_never_take_the_feed_down(
    feed: tuple[Feed, Inject],
) -> None:
    live, inject = feed
    since = live.since
    malformed, failures = live.stats.malformed, live.stats.failures
    hostile = [
        "a" * 64 + ":\u00b2",  # a superscript two: str.isdigit() says yes, int() says no
        "a" * 64 + ":\u0663",  # an Arabic-Indic three
        "a" * 64 + ":" + "9" * 5000,  # beyond int()'s digit limit
        "a" * 64 + ":-1",
        "a" * 64 + ":",
        "z" * 64 + ":1",  # not a digest
        "",
        ":" * 100,
    ]
    for text in hostile:
        inject(text)
    good = secrets.token_hex(32)  # unknown to this process: only this message can tell it
    inject(message(good, 7))
    assert eventually(lambda: (knowledge.lookup(good) or (0, 0.0))[0] == 7)
    assert live.stats.malformed - malformed == len(hostile)
    assert live.stats.failures == failures
    assert live.since == since  # never down: cookies issued meanwhile stay vouched for
    assert knowledge.lookup("z" * 64) is None


# -- unsafe requests, and what a process confirmed itself ------------------------------------------


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_an_unsafe_request_asks_the_server_even_after_this_process_confirmed_the_version(
    spill: Spill, alice: User, settings: Any, spilled: bool
) -> None:
    settings.HYBRID_SESSIONS_FEED = "off"
    client = spilled_client(alice) if spilled else Client()
    if not spilled:
        client.force_login(alice)
    client.get("/set/?a=1")  # this process wrote the version the cookie carries
    revoke_elsewhere(spill, client)  # another process ends it; nobody hears
    assert client.post("/change/").content == b""


def test_a_version_confirmed_before_the_feed_reconnected_is_checked_again(
    feed: tuple[Feed, Inject], spill_store: Any
) -> None:
    live, _inject = feed
    client = Client()
    client.get("/set/?a=1")  # this process wrote, so it knows this version
    live.stop()
    revoke_elsewhere(spill_store, client)  # ended while the feed was down: nobody heard
    live.ensure_running()
    assert live.wait_until_up()
    assert client.get("/get/?key=a").json() == {"value": None}


@pytest.fixture
def spill_store(feed: tuple[Feed, Inject], settings: Any) -> Spill:
    engine = getattr(settings, "HYBRID_SESSIONS_SPILL_ENGINE", "")
    return Spill("cache" if engine == REDIS_SPILL else "db")


# -- knowledge bounded by time ---------------------------------------------------------------------


def test_an_end_is_remembered_as_long_as_a_cookie_from_a_fast_clock_is_trusted(
    spill: Spill, alice: User, settings: Any
) -> None:
    """Servers' clocks differ by up to ``CLOCK_SKEW``: a cookie may claim a later ``iat``."""
    settings.HYBRID_SESSIONS_FEED = "off"
    ahead = CLOCK_SKEW - 1
    with later(-ahead):  # this process's clock is behind the one that issued the cookie
        client = Client()
        client.force_login(alice)
        client.get("/whoami/")
        stolen = cookie(client)
        client.get("/logout/")  # learned here, at this process's time
    key = record_digest(stolen)
    assert key is not None
    assert (knowledge.lookup(key) or (1, 0.0))[0] == GONE
    thief = Client()
    thief.cookies[COOKIE] = stolen
    with later(60 - ahead + 0.5):  # still inside the cookie's window by its own iat
        assert thief.get("/whoami/").content == b""


# -- SESSION_SAVE_EVERY_REQUEST --------------------------------------------------------------------


@contextmanager
def clock(seconds: float) -> Iterator[None]:
    """Move every clock the engine reads: trust decisions and the tokens' ``iat``/``exp``."""
    moved = time.time() + seconds
    with later(seconds), mock.patch.object(tokens, "time", SimpleNamespace(time=lambda: moved)):
        yield


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_saving_every_request_never_launders_a_stale_cookie_into_a_fresh_one(
    spill: Spill, settings: Any, spilled: bool
) -> None:
    """Without a feed a stale copy is served for the window; re-issued, it would be for ever."""
    settings.HYBRID_SESSIONS_FEED = "off"
    settings.SESSION_SAVE_EVERY_REQUEST = True
    settings.HYBRID_SESSIONS_COOKIE_KEYS = ["plan"]
    client = spilled_client() if spilled else Client()
    client.get("/set/?plan=free")
    replay = cookie(client)
    client.get("/set/?plan=paid")
    knowledge.forget_all()  # the replay goes to a process that did not see the write
    attacker = Client()
    attacker.cookies[COOKIE] = replay
    with clock(40):
        attacker.get("/whoami/")  # inside the replayed cookie's window: served as it is
    with clock(80):  # past it: whatever the last response set, the server is asked
        assert attacker.get("/get/?key=plan").json() == {"value": "paid"}


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_saving_every_request_keeps_sending_a_token_not_the_bare_key(
    spill: Spill, settings: Any, spilled: bool
) -> None:
    settings.SESSION_SAVE_EVERY_REQUEST = True
    client = spilled_client() if spilled else Client()
    client.get("/set/?a=1")
    for _ in range(3):
        response = client.get("/whoami/")
        sent = set_cookie(response)
        assert sent is not None  # the expiry slides...
        assert "." in sent.value  # ...in a token: a bare key costs the next request a read


# -- lost updates ----------------------------------------------------------------------------------


def test_two_processes_writing_one_inline_session_with_their_own_stale_cookies_lose_nothing(
    spill: Spill, settings: Any
) -> None:
    """Each browser tab keeps its own cookie; each write lands on a process that heard nothing."""
    settings.HYBRID_SESSIONS_FEED = "off"
    first = Client()
    first.get("/set/?seed=s")
    second = Client()
    second.cookies[COOKIE] = cookie(first)
    for i in range(5):
        knowledge.forget_all()
        first.get(f"/set/?a{i}={i}")
        knowledge.forget_all()
        second.get(f"/set/?b{i}={i}")
    record = spill.record(cookie(first))
    assert record is not None
    stored = SessionStore()._loads(record.data)
    assert stored == {"seed": "s", **{f"{p}{i}": str(i) for i in range(5) for p in "ab"}}


# -- fork safety ----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads: the point
def test_a_worker_forked_while_the_feed_thread_was_learning_can_learn() -> None:
    """gunicorn forks workers from a process whose feed thread may hold the knowledge's lock."""
    holding, release = threading.Event(), threading.Event()

    def feed_thread() -> None:
        with knowledge._lock:  # what the feed thread holds while it learns a message
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=feed_thread)
    thread.start()
    holding.wait(5)
    try:
        pid = os.fork()
        if pid == 0:  # the worker: a learn must not wait for a thread that does not exist
            done = threading.Event()

            def learn() -> None:
                knowledge.learn("c" * 64, 1)
                done.set()

            threading.Thread(target=learn, daemon=True).start()
            os._exit(0 if done.wait(3) else 1)
    finally:
        release.set()
        thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- a listener thread that dies ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_feed_whose_thread_died_vouches_for_nothing_and_is_restarted() -> None:
    subscriptions = []

    def listener() -> Iterator[str | None]:
        subscriptions.append(time.time())
        yield SUBSCRIBED
        if len(subscriptions) == 1:
            raise SystemExit  # not an Exception: the reconnection loop does not catch it
        while True:
            yield None

    dying = Feed("dies", listener)
    try:
        dying.ensure_running()
        assert eventually(lambda: dying._thread is not None and not dying._thread.is_alive())
        assert dying.since is None
        dying.ensure_running()
        assert dying.wait_until_up()
        assert len(subscriptions) == 2
    finally:
        dying.stop()
