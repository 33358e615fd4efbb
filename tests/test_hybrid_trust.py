"""When a hybrid cookie may be served without the server, and what a stale or stolen one gets.

The cookie is a signed cache of one version of a server record. It is served
as it is only while nothing newer is known and the feed (or, without one, the
revalidation window) vouches for it. A key is stable, as with the ``db``
engine; ``cycle_key()`` never carries an ended session into a new one; a
replayed cookie never rolls state back once a newer version is known.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from django_redis import get_redis_connection

from hybrid_sessions.backends.hybrid import SessionStore, record_digest
from hybrid_sessions.backends.hybrid.cookie import parse
from hybrid_sessions.feeds import Feed
from hybrid_sessions.knowledge import (
    GONE,
    UNCONFIRMED,
    Decision,
    Knowledge,
    Token,
    decide,
    knowledge,
)
from hybrid_sessions.stores.base import digest
from hybrid_sessions.stores.redis import RedisStore
from tests.waiting import eventually

from .test_hybrid_engine import (
    COOKIE,
    REDIS_SPILL,
    Spill,
    cookie,
    later,
    revoke_elsewhere,
    spilled_client,
    value_of,
)
from .test_hybrid_engine import alice as alice
from .test_hybrid_engine import spill as spill

# -- the decision, as a table -------------------------------------------------------------------

NOW, WINDOW = 10_000.0, 60.0
T = Token(version=3, issued_at=NOW - 10)


@pytest.mark.parametrize(
    ("token", "entry", "feed_since", "guarded", "expected"),
    [
        # What this process knows decides first.
        (T, (GONE, NOW - 1), NOW - 100, False, Decision.GONE),
        (T, (4, NOW - 1), NOW - 100, False, Decision.ASK),  # a newer write: never roll back
        (T, (3, NOW - 1), None, False, Decision.TRUST),  # confirmed at this version just now
        (T, (3, NOW - 1), NOW - 100, True, Decision.TRUST),  # ...and the feed listened since
        # ...but without a feed an unsafe signed-in request asks all the same (an end
        # elsewhere since the confirmation would go unheard), and so does a cookie
        # whose confirmation came before the feed's last reconnection.
        (T, (3, NOW - 1), None, True, Decision.ASK),
        (Token(3, NOW - 100), (3, NOW - 2), NOW - 1, False, Decision.ASK),
        (Token(3, NOW - 100), (3, UNCONFIRMED), NOW - 100, False, Decision.ASK),  # only heard
        (T, (3, NOW - 61), None, False, Decision.TRUST),  # an old confirmation: the token's age
        (T, (2, NOW - 1), None, False, Decision.TRUST),  # an older version known: the token wins
        # A healthy feed vouches for tokens issued since it has been listening.
        (T, None, NOW - 100, False, Decision.TRUST),
        (T, None, NOW - 100, True, Decision.TRUST),
        (T, None, NOW - 5, False, Decision.ASK),  # reconnected after the token was issued
        # No feed (or down): the window alone, and unsafe signed-in requests ask.
        (T, None, None, False, Decision.TRUST),
        (T, None, None, True, Decision.ASK),
        (Token(3, NOW - 60), None, None, False, Decision.ASK),  # past the window
        (Token(3, NOW - 60), None, NOW - 100, False, Decision.ASK),  # even with a feed
        (Token(3, NOW + 60), None, None, False, Decision.ASK),  # from the future
        (Token(3, NOW + 2), None, None, False, Decision.TRUST),  # small clock skew
    ],
)
def test_when_a_cookie_is_served_without_the_server(
    token: Token,
    entry: tuple[int, float] | None,
    feed_since: float | None,
    guarded: bool,
    expected: Decision,
) -> None:
    assert decide(
        token, entry, at=NOW, window=WINDOW, feed_since=feed_since, guarded=guarded
    ) is expected


def test_a_window_of_0_never_trusts_a_cookie_it_has_not_just_confirmed() -> None:
    assert decide(T, None, at=NOW, window=0, feed_since=NOW - 100, guarded=False) is Decision.ASK


# -- what a process knows ---------------------------------------------------------------------


def test_knowledge_is_kept_for_the_window_and_never_evicted_by_traffic() -> None:
    known = Knowledge(retention=60)
    start = time.time()
    known.learn("gone", GONE, start)
    for i in range(20_000):  # new sessions, cookieless requests: none pushes it out
        known.learn(f"s{i}", 1, start + 1)
    assert known.lookup("gone") == (GONE, start)
    known.learn("later", 1, start + 61)  # the next write after the window prunes
    assert known.lookup("gone") is None
    assert len(known) == 20_001


def test_an_end_is_final_and_an_older_version_never_replaces_a_newer_one() -> None:
    known = Knowledge(retention=60)
    known.learn("a", 5)
    known.learn("a", 4)
    first = known.lookup("a")
    assert first is not None
    assert first[0] == 5
    known.learn("a", GONE)
    known.learn("a", 6)
    then = known.lookup("a")
    assert then is not None
    assert then[0] == GONE


# -- a stable key ------------------------------------------------------------------------------


def test_the_session_key_is_short_stable_and_loads_like_the_db_engines(spill: Spill) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session.session_key
    assert key is not None
    assert len(key) <= 40
    first_cookie = value_of(session)
    session["b"] = 2
    session.save()
    assert session.session_key == key
    assert value_of(session) != first_cookie  # the cookie caches the new version
    elsewhere = SessionStore(session_key=key)
    assert elsewhere.exists(key)
    assert dict(elsewhere.items()) == {"a": 1, "b": 2}
    elsewhere.delete(key)
    assert not SessionStore().exists(key)
    assert SessionStore(first_cookie).load() == {}


def test_django_test_client_edit_and_save_pattern(spill: Spill) -> None:
    client = Client()
    session = client.session  # no cookie yet: Django creates one with the bare key
    session["x"] = "1"
    session.save()
    assert session.session_key is not None
    client.cookies[COOKIE] = session.session_key
    assert client.get("/get/?key=x").json() == {"value": "1"}
    assert "." in cookie(client)  # the response turned the key into a token
    session = client.session  # from the token cookie, as Django's client builds it
    session["x"] = "2"
    session.save()  # the cookie still holds version 1
    assert client.get("/get/?key=x").json() == {"value": "2"}


# -- stale and replayed cookies ------------------------------------------------------------------


def test_a_replayed_cookie_cannot_roll_a_counter_back_once_a_newer_write_is_known(
    spill: Spill,
) -> None:
    client = Client()
    assert client.post("/attempt/").content == b"1"
    replay = cookie(client)
    for expected in (b"2", b"3"):
        assert client.post("/attempt/").content == expected
    attacker = Client()
    for _ in range(20):
        attacker.cookies[COOKIE] = replay
        assert attacker.post("/attempt/").status_code == 429


def test_server_keys_are_never_in_the_cookie_and_are_read_every_time(
    spill: Spill, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_SERVER_KEYS = ["attempts"]
    client = Client()
    client.get("/set/?a=1")
    client.post("/attempt/")
    parsed = parse(cookie(client), SessionStore().serializer)
    assert parsed is not None
    assert "attempts" not in parsed.data
    assert parsed.data["a"] == "1"
    replay = cookie(client)
    client.post("/attempt/")
    client.post("/attempt/")
    knowledge.forget_all()  # another process, which heard nothing
    attacker = Client()
    attacker.cookies[COOKIE] = replay
    with spill.io() as io:
        assert attacker.post("/attempt/").status_code == 429
    assert io.reads == 1  # the key was read from the server
    with spill.io() as io:
        assert attacker.get("/get/?key=a").json() == {"value": "1"}
    assert io.total == 0  # the other keys still come from the cookie


# -- no resurrection ---------------------------------------------------------------------------


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_cycle_key_on_a_logged_out_cookie_starts_empty(
    spill: Spill, alice: User, spilled: bool
) -> None:
    client = spilled_client(alice) if spilled else Client()
    if not spilled:
        client.force_login(alice)
        client.get("/whoami/")
    stolen = cookie(client)
    client.get("/logout/")
    knowledge.forget_all()  # a process that did not see the logout
    thief = Client()
    thief.cookies[COOKIE] = stolen
    response = thief.get("/cycle/")
    assert response.status_code == 200
    assert response.content == b""
    assert thief.get("/whoami/").content == b""
    assert thief.get("/get/?key=blob").json() == {"value": None}


def test_cycle_key_carries_the_servers_latest_data_not_a_stale_cookie(spill: Spill) -> None:
    client = Client()
    client.get("/set/?a=1")
    stale = Client()
    stale.cookies[COOKIE] = cookie(client)
    client.get("/set/?a=2")
    knowledge.forget_all()  # the stale cookie goes to a process that did not see the write
    stale.get("/cycle/")
    assert stale.get("/get/?key=a").json() == {"value": "2"}


def test_an_unsafe_request_of_a_signed_in_session_asks_the_server_without_a_feed(
    spill: Spill, alice: User, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_FEED = "off"
    client = Client()
    client.force_login(alice)
    client.get("/whoami/")
    revoke_elsewhere(spill, client)
    knowledge.forget_all()
    assert client.get("/change/").content == b"alice"  # a GET: the window's price
    assert client.post("/change/").content == b""  # a POST asks: ended


# -- the feed ----------------------------------------------------------------------------------


@pytest.fixture
def redis_feed(redis_spill: Spill, settings: Any) -> Feed:
    settings.HYBRID_SESSIONS_SPILL_ENGINE = REDIS_SPILL
    store = SessionStore.get_store()
    feed = store.feed()
    assert feed is not None
    feed.ensure_running()
    assert feed.wait_until_up()
    return feed


@pytest.fixture
def redis_spill(db: None, settings: Any) -> Spill:
    from .test_hybrid_engine import _use_spill

    return _use_spill("cache", settings)


class AnotherProcessStore(RedisStore):
    """The Redis spill store as another process holds it: its writes reach us by the feed only."""

    def _learn(self, digest: str, version: int) -> None:
        """What it writes is that process's knowledge, never this one's."""


@pytest.mark.redis
def test_the_redis_feed_tells_this_process_of_another_process_write_and_end(
    redis_feed: Feed,
) -> None:
    assert isinstance(SessionStore.get_store(), RedisStore)
    other = AnotherProcessStore(announce="versions")
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = digest(session.session_key or "")
    knowledge.forget_all()
    record = other.get(key)
    assert record is not None
    other.compare_and_set(key, record.version, record.data, SessionStore()._meta({"a": 1}))
    assert eventually(
        lambda: (knowledge.lookup(key) or (0, 0))[0] == record.version + 1, within=2.0
    )
    other.delete(key)
    assert eventually(lambda: (knowledge.lookup(key) or (1, 0))[0] == GONE, within=2.0)
    assert redis_feed.stats.messages >= 2


@pytest.mark.redis
def test_revocations_only_mode_publishes_ends_but_not_versions(
    redis_spill: Spill, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_FEED = "revocations"
    feed = SessionStore.get_store().feed()
    assert feed is not None
    feed.ensure_running()
    assert feed.wait_until_up()
    session = SessionStore()
    session["a"] = 1
    session.save()
    before = feed.stats.messages
    session["a"] = 2
    session.save()
    time.sleep(0.3)
    assert feed.stats.messages == before
    session.delete()
    assert eventually(lambda: feed.stats.messages == before + 1, within=2.0)


@pytest.mark.redis
def test_after_a_reconnection_older_cookies_are_checked_once(redis_feed: Feed) -> None:
    client = Client()
    client.get("/set/?a=1")
    knowledge.forget_all()
    first_since = redis_feed.since
    assert first_since is not None
    time.sleep(1.1)  # tokens carry whole seconds
    # Drop the feed's connection, as a network blip or a Redis restart would.
    connection = get_redis_connection("default")
    killed = connection.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 1
    assert eventually(lambda: (redis_feed.since or 0) > first_since, within=10.0)
    with later(0):
        from .test_hybrid_engine import redis_round_trips

        with redis_round_trips() as io:
            assert client.get("/get/?key=a").json() == {"value": "1"}
        assert io.reads == 1  # issued before the reconnection: asked once
        with redis_round_trips() as io:
            assert client.get("/get/?key=a").json() == {"value": "1"}
        assert io.total == 0


def test_record_digest_names_the_same_record_for_a_token_and_its_key(spill: Spill) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert record_digest(value_of(session)) == record_digest(session.session_key)
    assert record_digest("garbage") is None


def test_the_settings_default_to_a_feed_of_versions() -> None:
    assert getattr(django_settings, "HYBRID_SESSIONS_FEED", "versions") == "versions"
