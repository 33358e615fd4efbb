"""The operators' listing of every session (``ServerStore.list_sessions``), on each store.

Sessions are created through the store itself; only their age is moved, in the
store's own representation, to make some of them inactive or expired.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from hybrid_sessions.stores.base import SessionFilter, SessionMeta
from hybrid_sessions.stores.database import DatabaseStore
from hybrid_sessions.stores.redis import RedisStore

STORES = [
    pytest.param("db", id="db"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, db: Any) -> Any:
    return DatabaseStore() if request.param == "db" else RedisStore()


def new(store: Any, user_id: str | None = None, data: bytes | None = b'{"k":"v"}') -> str:
    digest = secrets.token_hex(32)
    meta = SessionMeta(
        expires_at=timezone.now() + timedelta(hours=1), user_id=user_id,
        ip_address="198.51.100.4", user_agent="Agent/1",
    )
    assert store.create(digest, data, meta)
    return digest


def set_last_activity(store: Any, digest: str, when: datetime) -> None:
    if isinstance(store, DatabaseStore):
        store.model.objects.filter(pk=digest).update(last_activity=when)
    else:
        store._client().hset(store._session_key(digest), "a", int(when.timestamp() * 1000))


def expire(store: DatabaseStore, digest: str) -> None:
    store.model.objects.filter(pk=digest).update(expire_date=timezone.now() - timedelta(seconds=1))


def walk(store: Any, limit: int, **kwargs: Any) -> list[str]:
    """Every digest the listing yields, page after page."""
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page, cursor = store.list_sessions(cursor, limit, **kwargs)
        seen += [info.digest for info in page]
        if cursor is None:
            return seen
    raise AssertionError("the listing never ended")


@pytest.mark.parametrize("recent_first", [False, True])
def test_pages_cover_every_session_once(store: Any, recent_first: bool) -> None:
    made = {new(store, user_id=str(i % 3 + 1) if i % 2 else None) for i in range(23)}
    for i, digest in enumerate(sorted(made)):
        set_last_activity(store, digest, timezone.now() - timedelta(minutes=i))
    seen = walk(store, 5, recent_first=recent_first)
    assert sorted(seen) == sorted(made)


def test_the_database_lists_recent_activity_first(db: Any) -> None:
    store = DatabaseStore()
    made = [new(store) for _ in range(7)]
    for minutes, digest in enumerate(made):
        set_last_activity(store, digest, timezone.now() - timedelta(minutes=minutes))
    assert walk(store, 3, recent_first=True) == made


def test_the_listing_reports_what_an_operator_needs(store: Any) -> None:
    with_data = new(store, user_id="7", data=b'{"cart":[1,2,3]}')
    record_only = new(store, data=None)
    infos = {info.digest: info for info in walk_infos(store)}
    assert infos[with_data].user_id == "7"
    assert infos[with_data].size == len(b'{"cart":[1,2,3]}')
    assert infos[with_data].data_on_server
    assert infos[with_data].ip_address == "198.51.100.4"
    assert infos[with_data].user_agent == "Agent/1"
    assert not infos[record_only].data_on_server
    assert infos[record_only].size == 0


def walk_infos(store: Any, **kwargs: Any) -> list[Any]:
    page, cursor = store.list_sessions(None, 1000, **kwargs)
    assert cursor is None
    return list(page)


def test_filter_by_user(store: Any) -> None:
    alices = {new(store, user_id="1"), new(store, user_id="1")}
    bobs = {new(store, user_id="2")}
    new(store)
    assert set(walk(store, 1, filters=SessionFilter(user_ids=("1",)))) == alices
    assert set(walk(store, 1, filters=SessionFilter(user_ids=("1", "2")))) == alices | bobs
    assert walk(store, 1, filters=SessionFilter(user_ids=("404",))) == []


def test_filter_signed_in_or_anonymous(store: Any) -> None:
    signed_in = {new(store, user_id="1"), new(store, user_id="2")}
    anonymous = {new(store)}
    assert set(walk(store, 2, filters=SessionFilter(signed_in=True))) == signed_in
    assert set(walk(store, 2, filters=SessionFilter(signed_in=False))) == anonymous


def test_filter_by_where_the_data_lives(store: Any) -> None:
    on_server = {new(store)}
    in_cookie = {new(store, data=None)}
    assert set(walk(store, 2, filters=SessionFilter(data_on_server=True))) == on_server
    assert set(walk(store, 2, filters=SessionFilter(data_on_server=False))) == in_cookie


def test_filter_inactive_before(store: Any) -> None:
    idle, busy = new(store), new(store)
    set_last_activity(store, idle, timezone.now() - timedelta(days=40))
    cutoff = timezone.now() - timedelta(days=30)
    assert walk(store, 5, filters=SessionFilter(inactive_before=cutoff)) == [idle]
    assert busy in walk(store, 5)


def test_expired_sessions_are_listed_only_when_asked(db: Any) -> None:
    store = DatabaseStore()
    live, old = new(store), new(store)
    expire(store, old)
    assert walk(store, 5) == [live]
    assert walk(store, 5, filters=SessionFilter(expired=True)) == [old]
    assert sorted(walk(store, 5, filters=SessionFilter(expired=None))) == sorted([live, old])


@pytest.mark.redis
def test_redis_has_no_expired_sessions_to_list(db: Any) -> None:
    store = RedisStore()
    new(store)
    assert walk(store, 5, filters=SessionFilter(expired=True)) == []


def test_ending_each_page_while_walking_skips_nothing(store: Any) -> None:
    """The purge pattern: the cursor stays valid while the sessions behind it are removed."""
    for i in range(17):
        new(store, user_id="1" if i % 2 else None)
    for filters in (SessionFilter(user_ids=("1",)), SessionFilter()):
        cursor = None
        while True:
            page, cursor = store.list_sessions(cursor, 3, filters=filters)
            store.delete_many([info.digest for info in page])
            if cursor is None:
                break
        assert walk(store, 100, filters=filters) == []


def test_delete_many_removes_sessions_and_their_user_index(store: Any) -> None:
    gone = [new(store, user_id="1"), new(store, user_id="1")]
    kept = new(store, user_id="1")
    assert store.delete_many([*gone, secrets.token_hex(32)]) == 2
    assert [info.digest for info in store.list_user("1")] == [kept]
    assert all(store.get(digest) is None for digest in gone)
    assert store.delete_many([]) == 0


def test_describe_one_session(store: Any) -> None:
    digest = new(store, user_id="5", data=None)
    info = store.describe(digest)
    assert info is not None
    assert (info.digest, info.user_id, info.data_on_server) == (digest, "5", False)
    assert store.describe(secrets.token_hex(32)) is None


def test_a_malformed_cursor_is_refused(store: Any) -> None:
    new(store)
    for cursor in ("not a cursor", "u../..", "2024-01-01~zz"):
        with pytest.raises(ValueError):
            store.list_sessions(cursor, 10)
        with pytest.raises(ValueError):
            store.list_sessions(cursor, 10, filters=SessionFilter(user_ids=("1",)))


def test_async_twins_agree(store: Any) -> None:
    digest = new(store, user_id="1")
    page, _cursor = async_to_sync(store.alist_sessions)(None, 10)
    assert [info.digest for info in page] == [digest]
    assert async_to_sync(store.adescribe)(digest) == store.describe(digest)
    assert async_to_sync(store.adelete_many)([digest]) == 1
    assert store.describe(digest) is None
