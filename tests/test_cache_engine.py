"""The Redis engine, ``hybrid_sessions.backends.cache``, against the real Redis server.

What it promises beyond Django's cache engine: keys stored only as digests,
atomic creation, a Redis TTL that follows the session's expiry, a per-user
index whose entries never outlive their sessions, async methods that leave the
event loop free, and a bounded, logged, documented behaviour when Redis is
unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.core.cache import caches
from django.test import Client, override_settings
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from hybrid_sessions.backends.cache import SessionStore
from hybrid_sessions.checks import check_settings
from hybrid_sessions.exceptions import SessionStoreUnavailable
from hybrid_sessions.stores.base import CasResult, SessionMeta, digest
from hybrid_sessions.stores.redis import RedisStore
from tests.redis_keys import run_keys

pytestmark = pytest.mark.redis

COOKIE = settings.SESSION_COOKIE_NAME
ENGINE = "hybrid_sessions.backends.cache"
#: The socket timeouts of the outage aliases below, in seconds.
TIMEOUT = 0.3
#: Scheduling slack on a loaded machine; a second attempt would cost a whole TIMEOUT more.
SLACK = 0.2


def redis() -> Any:
    return get_redis_connection("default")


def all_keys() -> set[bytes]:
    """Every key of this test run (other keys in the database are not ours to see)."""
    return run_keys()


def session_key(session_digest: str) -> str:
    return str(caches["default"].make_key(f"hs:s:{session_digest}"))


def index_key(user_id: str) -> str:
    return str(caches["default"].make_key(f"hs:u:{user_id}"))


def meta(seconds: float = 300, user_id: str | None = None) -> SessionMeta:
    return SessionMeta(expires_at=timezone.now() + timedelta(seconds=seconds), user_id=user_id)


def login_session(user_id: str, **data: Any) -> SessionStore:
    session = SessionStore()
    session["_auth_user_id"] = user_id
    session.update(data)
    session.save()
    return session


def digest_of(session: SessionStore) -> str:
    assert session.session_key is not None
    return digest(session.session_key)


def seconds_left(key: str) -> float:
    return int(redis().pttl(key)) / 1000


@pytest.fixture
def store() -> RedisStore:
    return RedisStore()


@pytest.fixture(autouse=True)
def _engine() -> Iterator[None]:
    with override_settings(SESSION_ENGINE=ENGINE):
        yield


def outage_alias(location: str, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": TIMEOUT, "SOCKET_TIMEOUT": TIMEOUT, **options},
    }


@pytest.fixture
def redis_down() -> Iterator[None]:
    """The session cache points at a closed port: every connection is refused."""
    caches = {**settings.CACHES, "sessions": outage_alias("redis://127.0.0.1:6390/0")}
    with override_settings(CACHES=caches, SESSION_CACHE_ALIAS="sessions"):
        yield


@pytest.fixture
def redis_hung() -> Iterator[None]:
    """The session cache points at a peer that accepts connections and never answers.

    It stands for a Redis that hangs (paused, swapping, partitioned): the
    kernel completes the handshake, no reply ever comes, so only
    ``SOCKET_TIMEOUT`` ends a call.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        caches = {**settings.CACHES, "sessions": outage_alias(f"redis://127.0.0.1:{port}/0")}
        with override_settings(CACHES=caches, SESSION_CACHE_ALIAS="sessions"):
            yield


# -- keys at rest ------------------------------------------------------------------------------


def test_the_raw_session_key_appears_nowhere_in_redis() -> None:
    client = Client()
    client.get("/write/", {"colour": "blue"})
    raw = client.cookies[COOKIE].value
    login_session("7")
    dump = b""
    for key in all_keys():
        dump += key
        if redis().type(key) == b"hash":
            dump += b"".join(k + v for k, v in redis().hgetall(key).items())
        else:
            dump += b"".join(redis().zrange(key, 0, -1))
    assert session_key(digest(raw)).encode() in all_keys()
    assert raw.encode() not in dump
    assert digest(raw).encode() in dump


# -- creation ----------------------------------------------------------------------------------


def test_create_refuses_a_taken_digest_and_keeps_the_first_session(store: RedisStore) -> None:
    assert store.create("d" * 64, b"first", meta()) is True
    assert store.create("d" * 64, b"second", meta()) is False
    record = store.get("d" * 64)
    assert record is not None
    assert (record.data, record.version) == (b"first", 1)


def test_concurrent_creates_of_one_digest_have_exactly_one_winner(store: RedisStore) -> None:
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def create(n: int) -> None:
        barrier.wait()
        results.append(store.create("e" * 64, str(n).encode(), meta()))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_a_session_without_data_is_a_record_without_a_data_field(store: RedisStore) -> None:
    assert store.create("f" * 64, None, meta(user_id="3"))
    record = store.get("f" * 64)
    assert record is not None
    assert (record.data, record.user_id) == (None, "3")
    assert redis().hexists(session_key("f" * 64), "d") is False


# -- saving ------------------------------------------------------------------------------------


def test_overlapping_saves_of_different_keys_are_both_kept() -> None:
    first = SessionStore()
    first["a"] = 1
    first.save()
    one, two = SessionStore(first.session_key), SessionStore(first.session_key)
    one["b"] = 2
    two["c"] = 3
    one.save()
    two.save()
    assert dict(SessionStore(first.session_key).items()) == {"a": 1, "b": 2, "c": 3}
    assert redis().hget(session_key(digest_of(first)), "v") == b"3"


def test_saving_a_session_deleted_elsewhere_raises_update_error() -> None:
    session = login_session("7", a=1)
    stale = SessionStore(session.session_key)
    assert stale["a"] == 1
    session.delete()
    stale["b"] = 2
    with pytest.raises(UpdateError):
        stale.save()
    assert all_keys() == set()


# -- expiry ------------------------------------------------------------------------------------


def test_the_redis_ttl_follows_the_session_expiry_and_set_expiry() -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session_key(digest_of(session))
    assert seconds_left(key) == pytest.approx(settings.SESSION_COOKIE_AGE, abs=2)

    session.set_expiry(300)
    session.save()
    assert seconds_left(key) == pytest.approx(300, abs=2)

    session.set_expiry(timezone.now() + timedelta(hours=1))
    session.save()
    assert seconds_left(key) == pytest.approx(3600, abs=2)

    session.set_expiry(0)  # until the browser closes: the server keeps it SESSION_COOKIE_AGE
    session.save()
    assert seconds_left(key) == pytest.approx(settings.SESSION_COOKIE_AGE, abs=2)

    session.set_expiry(-10)
    session.save()
    assert redis().exists(key) == 0


def test_an_unchanged_save_extends_the_ttl() -> None:
    session = SessionStore()
    session.set_expiry(300)
    session["a"] = 1
    session.save()
    key = session_key(digest_of(session))
    redis().pexpire(key, 5000)
    again = SessionStore(session.session_key)
    assert again["a"] == 1
    again.save()  # SESSION_SAVE_EVERY_REQUEST's path: nothing changed, only the expiry moves
    assert seconds_left(key) == pytest.approx(300, abs=2)
    assert redis().hget(key, "v") == b"1"


def test_redis_drops_an_expired_session_on_time(store: RedisStore) -> None:
    store.create("a" * 64, b"x", meta(seconds=0.05))
    time.sleep(0.1)
    assert store.get("a" * 64) is None
    assert store.exists("a" * 64) is False


# -- the per-user index ------------------------------------------------------------------------


def test_a_thousand_sessions_of_one_user_are_listed_and_revoked_leaving_nothing(
    store: RedisStore,
) -> None:
    sessions = [login_session("42") for _ in range(1000)]
    other = login_session("43")

    listed = store.list_user("42")
    assert {s.digest for s in listed} == {digest_of(s) for s in sessions}
    assert store.delete_user("42") == 1000

    assert all_keys() == {
        session_key(digest_of(other)).encode(), index_key("43").encode()
    }
    assert store.list_user("42") == []
    assert not any(SessionStore().exists(s.session_key) for s in sessions)


def test_delete_user_can_keep_the_current_session(store: RedisStore) -> None:
    current, *others = [login_session("42") for _ in range(3)]
    assert store.delete_user("42", keep=digest_of(current)) == 2
    assert [s.digest for s in store.list_user("42")] == [digest_of(current)]
    assert redis().zcard(index_key("42")) == 1
    assert not any(SessionStore().exists(s.session_key) for s in others)


def test_list_user_describes_each_session_newest_activity_first(store: RedisStore) -> None:
    with override_settings(
        HYBRID_SESSIONS_TRACK_IP_ADDRESS=True, HYBRID_SESSIONS_TRACK_USER_AGENT=True
    ):
        old = SessionStore(ip_address="192.0.2.1", user_agent="Old/1.0")
        old["_auth_user_id"] = "42"
        old.save()
        time.sleep(0.01)
        new = SessionStore(ip_address="2001:db8::1", user_agent="New/2.0")
        new["_auth_user_id"] = "42"
        new["cart"] = "x" * 100
        new.save()
    first, second = store.list_user("42")
    assert (first.digest, first.ip_address, first.user_agent) == (
        digest_of(new), "2001:db8::1", "New/2.0",
    )
    assert (second.digest, second.ip_address, second.user_agent) == (
        digest_of(old), "192.0.2.1", "Old/1.0",
    )
    assert first.user_id == "42"
    assert first.size > 100 > second.size > 0
    assert first.created_at <= first.last_activity < first.expires_at


def test_logout_removes_the_index_entry_and_the_empty_index() -> None:
    session = login_session("42")
    assert redis().zcard(index_key("42")) == 1
    session.flush()
    assert all_keys() == set()


def test_cycle_key_moves_the_index_entry_to_the_new_key(store: RedisStore) -> None:
    session = login_session("42")
    old = session.session_key
    session.cycle_key()
    assert [s.digest for s in store.list_user("42")] == [digest_of(session)]
    assert redis().zrange(index_key("42"), 0, -1) == [digest_of(session).encode()]
    assert old != session.session_key


def test_a_change_of_user_moves_the_index_entry(store: RedisStore) -> None:
    session = login_session("42")
    session["_auth_user_id"] = "43"
    session.save()
    assert redis().exists(index_key("42")) == 0
    assert [s.digest for s in store.list_user("43")] == [digest_of(session)]
    session.pop("_auth_user_id")
    session.save()
    assert redis().exists(index_key("43")) == 0
    assert redis().hget(session_key(digest_of(session)), "u") is None


def test_the_index_expires_with_its_longest_lived_session(store: RedisStore) -> None:
    store.create("1" * 64, None, meta(seconds=300, user_id="42"))
    store.create("2" * 64, None, meta(seconds=600, user_id="42"))
    assert seconds_left(index_key("42")) == pytest.approx(600, abs=2)
    store.delete("2" * 64)
    assert seconds_left(index_key("42")) == pytest.approx(300, abs=2)
    store.touch("1" * 64, meta(seconds=900, user_id="42"))
    assert seconds_left(index_key("42")) == pytest.approx(900, abs=2)


def test_a_save_by_the_same_user_carries_its_entry_and_the_index_expiry_along(
    store: RedisStore,
) -> None:
    store.create("1" * 64, b"a", meta(seconds=300, user_id="42"))
    store.create("2" * 64, b"b", meta(seconds=600, user_id="42"))
    longer = meta(seconds=900, user_id="42")
    assert store.compare_and_set("1" * 64, 1, b"a2", longer).ok
    assert redis().zscore(index_key("42"), "1" * 64) == int(longer.expires_at.timestamp() * 1000)
    assert seconds_left(index_key("42")) == pytest.approx(900, abs=2)
    # Shorter again: the index now lives as long as the other session.
    assert store.compare_and_set("1" * 64, 2, b"a3", meta(seconds=60, user_id="42")).ok
    assert seconds_left(index_key("42")) == pytest.approx(600, abs=2)
    assert store.touch("2" * 64, meta(seconds=30, user_id="42"))
    assert seconds_left(index_key("42")) == pytest.approx(60, abs=2)
    assert {s.digest for s in store.list_user("42")} == {"1" * 64, "2" * 64}


def test_a_save_without_data_removes_the_data_field_and_keeps_the_user(store: RedisStore) -> None:
    store.create("f" * 64, b"x", meta(user_id="3"))
    assert store.compare_and_set("f" * 64, 1, None, meta(user_id="3")) == CasResult(
        ok=True, version=2
    )
    record = store.get("f" * 64)
    assert record is not None
    assert (record.data, record.version, record.user_id) == (None, 2, "3")
    assert redis().hexists(session_key("f" * 64), "d") is False
    assert redis().zrange(index_key("3"), 0, -1) == [b"f" * 64]


def test_an_entry_joining_the_index_prunes_the_expired_ones(store: RedisStore) -> None:
    store.create("1" * 64, None, meta(seconds=0.05, user_id="42"))
    store.create("2" * 64, None, meta(user_id="42"))
    store.create("3" * 64, None, meta(user_id="43"))
    time.sleep(0.1)
    assert redis().zcard(index_key("42")) == 2  # nobody has used the index since
    assert store.compare_and_set("2" * 64, 1, None, meta(user_id="42")).ok
    assert store.compare_and_set("3" * 64, 1, None, meta(user_id="42")).ok
    assert set(redis().zrange(index_key("42"), 0, -1)) == {b"2" * 64, b"3" * 64}


def test_an_index_vanishes_with_its_last_session_untouched(store: RedisStore) -> None:
    store.create("1" * 64, None, meta(seconds=0.05, user_id="42"))
    time.sleep(0.1)
    assert all_keys() == set()


def test_expired_entries_are_pruned_on_use_and_by_clear_expired(store: RedisStore) -> None:
    store.create("1" * 64, None, meta(seconds=0.05, user_id="42"))
    store.create("2" * 64, None, meta(seconds=300, user_id="42"))
    time.sleep(0.1)
    assert redis().zcard(index_key("42")) == 2  # nobody has used the index since
    assert SessionStore.get_store().clear_expired() == 1
    assert redis().zrange(index_key("42"), 0, -1) == [b"2" * 64]

    store.create("3" * 64, None, meta(seconds=0.05, user_id="42"))
    time.sleep(0.1)
    assert [s.digest for s in store.list_user("42")] == ["2" * 64]
    assert redis().zcard(index_key("42")) == 1


def test_an_entry_whose_session_vanished_behind_its_back_is_dropped(store: RedisStore) -> None:
    store.create("1" * 64, None, meta(user_id="42"))
    store.create("2" * 64, None, meta(user_id="42"))
    redis().delete(session_key("1" * 64))  # as an eviction or a manual DEL would
    assert [s.digest for s in store.list_user("42")] == ["2" * 64]
    assert redis().zrange(index_key("42"), 0, -1) == [b"2" * 64]


def test_a_pooled_connection_closed_by_redis_is_replaced_without_an_error(
    store: RedisStore,
) -> None:
    store.create("1" * 64, b"x", meta())
    victim = redis().client_id()  # the connection the next call will reuse
    with Redis.from_url(settings.CACHES["default"]["LOCATION"]) as admin:
        admin.client_kill_filter(_id=victim)  # as a restart of Redis would
    time.sleep(0.05)
    record = store.get("1" * 64)
    assert record is not None
    assert record.data == b"x"
    assert redis().client_id() != victim


# -- async -------------------------------------------------------------------------------------


def test_async_methods_round_trip(store: RedisStore) -> None:
    async def scenario() -> None:
        assert await store.acreate("1" * 64, b"a", meta(user_id="42"))
        assert await store.aexists("1" * 64)
        result = await store.acompare_and_set("1" * 64, 1, b"b", meta(user_id="42"))
        assert (result.ok, result.version) == (True, 2)
        record = await store.aget("1" * 64)
        assert record is not None
        assert record.data == b"b"
        assert await store.atouch("1" * 64, meta(user_id="42"))
        assert [s.digest for s in await store.alist_user("42")] == ["1" * 64]
        assert await store.adelete_user("42") == 1
        await store.adelete("1" * 64)
        assert await store.aclear_expired() == 0

    asyncio.run(scenario())
    assert all_keys() == set()


def test_async_calls_leave_the_event_loop_free_while_redis_hangs(
    store: RedisStore, redis_hung: None
) -> None:
    async def scenario() -> tuple[int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        results = await asyncio.gather(
            *(store.aget(str(n) * 64) for n in range(3)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        task.cancel()
        assert all(isinstance(r, SessionStoreUnavailable) for r in results)
        return ticks, elapsed

    ticks, elapsed = asyncio.run(scenario())
    assert ticks >= 10  # a blocked loop would not have ticked at all
    assert elapsed < TIMEOUT + SLACK  # the three calls waited side by side


# -- outages -----------------------------------------------------------------------------------


def _each_call(store: RedisStore) -> dict[str, Any]:
    d = "0" * 64
    return {
        "get": lambda: store.get(d),
        "exists": lambda: store.exists(d),
        "create": lambda: store.create(d, b"x", meta(user_id="42")),
        "compare_and_set": lambda: store.compare_and_set(d, 1, b"x", meta(user_id="42")),
        "touch": lambda: store.touch(d, meta(user_id="42")),
        "delete": lambda: store.delete(d),
        "list_user": lambda: store.list_user("42"),
        "delete_user": lambda: store.delete_user("42"),
        "clear_expired": lambda: store.clear_expired(),
        "aget": lambda: asyncio.run(store.aget(d)),
        "acompare_and_set": lambda: asyncio.run(
            store.acompare_and_set(d, 1, b"x", meta(user_id="42"))
        ),
    }


def test_with_redis_down_every_call_fails_fast_with_a_logged_error(
    store: RedisStore, redis_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    for name, call in _each_call(store).items():
        caplog.clear()
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable, match="'sessions'"):
            call()
        assert time.monotonic() - started < TIMEOUT, name
        (record,) = caplog.records
        assert (record.name, record.levelno) == ("hybrid_sessions", logging.ERROR)
        assert "Redis session store unavailable (cache alias 'sessions')" in record.getMessage()
        assert "127.0.0.1:6390" in record.getMessage()


def test_with_redis_hung_a_call_fails_after_one_socket_timeout_without_retry(
    store: RedisStore, redis_hung: None, caplog: pytest.LogCaptureFixture
) -> None:
    for call in (lambda: store.get("0" * 64), lambda: store.create("0" * 64, b"x", meta())):
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable):
            call()
        assert TIMEOUT * 0.9 <= time.monotonic() - started < TIMEOUT + SLACK
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 2


def test_by_default_a_session_read_during_an_outage_raises(redis_down: None) -> None:
    session = SessionStore("k" * 32)
    with pytest.raises(SessionStoreUnavailable):
        session.load()
    assert session.session_key == "k" * 32


@override_settings(HYBRID_SESSIONS_ON_STORE_ERROR="empty")
def test_in_empty_mode_a_read_during_an_outage_is_empty_and_writes_refused(
    redis_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    session = SessionStore("k" * 32)
    assert dict(session.items()) == {}
    assert session.session_key == "k" * 32  # kept: the user is not logged out
    assert "serving an empty session" in caplog.text
    session["a"] = 1
    with pytest.raises(SessionStoreUnavailable):
        session.save()


def _signed_in_client() -> Client:
    client = Client()
    client.get("/write/", {"colour": "blue"})
    return client


def test_during_an_outage_a_view_that_ignores_the_session_still_answers() -> None:
    client = _signed_in_client()
    caches = {**settings.CACHES, "sessions": outage_alias("redis://127.0.0.1:6390/0")}
    with override_settings(CACHES=caches, SESSION_CACHE_ALIAS="sessions"):
        response = client.get("/untouched/")
    assert response.status_code == 200
    assert COOKIE not in response.cookies


def test_during_an_outage_a_view_that_reads_the_session_fails_loudly_by_default() -> None:
    client = _signed_in_client()
    caches = {**settings.CACHES, "sessions": outage_alias("redis://127.0.0.1:6390/0")}
    with (
        override_settings(CACHES=caches, SESSION_CACHE_ALIAS="sessions"),
        pytest.raises(SessionStoreUnavailable),
    ):
        client.get("/read/")
    assert client.get("/read/").json() == {"colour": "blue"}


def test_in_empty_mode_an_outage_reads_as_empty_and_the_session_survives_it() -> None:
    client = _signed_in_client()
    caches = {**settings.CACHES, "sessions": outage_alias("redis://127.0.0.1:6390/0")}
    with override_settings(
        CACHES=caches, SESSION_CACHE_ALIAS="sessions", HYBRID_SESSIONS_ON_STORE_ERROR="empty"
    ):
        response = client.get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    assert COOKIE not in response.cookies  # the cookie is neither replaced nor deleted
    assert client.get("/read/").json() == {"colour": "blue"}


def test_in_empty_mode_an_outage_with_save_every_request_keeps_the_session() -> None:
    client = _signed_in_client()
    cookie = client.cookies[COOKIE].value
    caches = {**settings.CACHES, "sessions": outage_alias("redis://127.0.0.1:6390/0")}
    with override_settings(
        CACHES=caches,
        SESSION_CACHE_ALIAS="sessions",
        HYBRID_SESSIONS_ON_STORE_ERROR="empty",
        SESSION_SAVE_EVERY_REQUEST=True,
    ):
        response = client.get("/read/")
        assert response.status_code == 200
        assert response.json() == {}
        with pytest.raises(SessionStoreUnavailable):
            client.get("/write/", {"colour": "red"})  # a write is refused, not dropped
    assert client.cookies[COOKIE].value == cookie
    assert client.get("/read/").json() == {"colour": "blue"}


# -- the time-bound check ----------------------------------------------------------------------


def _w013(location: str, **options: Any) -> list[str]:
    caches = {**settings.CACHES, "sessions": outage_alias(location, **options)}
    with override_settings(CACHES=caches, SESSION_CACHE_ALIAS="sessions"):
        return [m.msg for m in check_settings() if m.id == "hybrid_sessions.W013"]


def test_the_time_bound_check_accepts_django_redis_defaults() -> None:
    assert _w013("redis://127.0.0.1:6390/1") == []


def test_the_time_bound_check_warns_of_retries_in_pool_kwargs_or_the_url() -> None:
    (message,) = _w013(
        "redis://127.0.0.1:6390/2", CONNECTION_POOL_KWARGS={"retry_on_timeout": True}
    )
    assert "retry failed commands (retries: 1)" in message
    (message,) = _w013("redis://127.0.0.1:6390/3?retry_on_timeout=true")
    assert "retry failed commands" in message
