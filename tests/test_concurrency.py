"""Overlapping requests on one session lose nothing, and hold no lock.

Every server-stored engine runs these tests against the real servers: threads
and separate processes write to one session at the same time, and every key of
every writer must be there at the end. A session ended by one request is never
brought back by another's late save; an unmodified session is not saved again.
The hybrid engine runs them in its spilled mode, where its data lives on the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.db import connection, connections, transaction
from django.test import Client, override_settings

from hybrid_sessions.stores.base import StoredSession
from tests.engines import ENGINES, Engine

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
HYBRID = "hybrid_sessions.backends.hybrid"
ROOT = Path(__file__).resolve().parent.parent

#: Requests per worker in the threaded and multi-process tests.
REQUESTS = 200
#: Seconds any worker may take before the test gives up on it.
TIMEOUT = 120

#: Single-connection interleavings run in a transaction rolled back at the end;
#: tests with other threads or processes need real commits that others can see.
pytestmark = pytest.mark.django_db
committed = pytest.mark.django_db(transaction=True)


def _spilled(engine: Engine) -> dict[str, Any]:
    """Settings that force the hybrid engine to keep its data on the server."""
    return {"HYBRID_SESSIONS_INLINE_MAX_BYTES": 0} if engine.path == HYBRID else {}


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Each server-stored engine in turn (the hybrid one with its data on the server)."""
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings, **_spilled(eng)):
        yield eng


# -- helpers ----------------------------------------------------------------------


def _new_session(engine: Engine, **data: Any) -> str:
    session = engine.store()
    session["seed"] = "s"
    session.update(data)
    session.save()
    assert session.session_key is not None
    return str(session.session_key)


def _digest(engine: Engine, key: str) -> str:
    """The digest the session's server record is kept under."""
    record_digest = engine.store(key).session_digest
    assert record_digest is not None
    return str(record_digest)


def _stored(engine: Engine, key: str) -> StoredSession | None:
    """The server's own record of a session: what the store, not the engine, holds."""
    record: StoredSession | None = engine.store.get_store().get(_digest(engine, key))
    return record


def _seconds_left(engine: Engine, key: str) -> float:
    record = _stored(engine, key)
    assert record is not None
    return float((record.expires_at - _now(record)).total_seconds())


def _now(record: StoredSession) -> Any:
    from django.utils import timezone

    return timezone.now().astimezone(record.expires_at.tzinfo)


def _in_threads(*workers: Callable[[], None]) -> None:
    """Run each worker in its own thread (its own database connection); re-raise a failure."""
    failures: list[BaseException] = []

    def run(worker: Callable[[], None]) -> None:
        try:
            worker()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a worker thread did not finish"
    if failures:
        raise failures[0]


def _request_loop(
    engine: Engine, key: str, prefix: str, barrier: threading.Barrier | None = None
) -> Callable[[], None]:
    """REQUESTS requests: open the session, set an own key and the shared "last", save.

    With a barrier, both workers load the same version before either saves, so
    every single save of the pair races: one of the two must merge and retry.
    """

    def loop() -> None:
        try:
            for i in range(REQUESTS):
                session = engine.store(key)
                assert "seed" in session  # loads, as a request reading its session
                if barrier is not None:
                    barrier.wait()
                session[f"{prefix}{i}"] = i
                session["last"] = f"{prefix}{i}"
                session.save()
                if barrier is not None:
                    barrier.wait()
        except BaseException:
            if barrier is not None:
                barrier.abort()
            raise

    return loop


def _assert_every_key_kept(engine: Engine, key: str, prefixes: list[str]) -> None:
    final = engine.store(key).load()
    missing = [
        f"{p}{i}" for p in prefixes for i in range(REQUESTS) if final.get(f"{p}{i}") != i
    ]
    assert not missing, f"{len(missing)} of {len(prefixes) * REQUESTS} updates lost"
    assert final["seed"] == "s"


# -- different keys: both persist ---------------------------------------------------


@committed
def test_two_threads_setting_their_own_keys_in_lockstep_lose_nothing(engine: Engine) -> None:
    key = _new_session(engine)
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    _in_threads(
        _request_loop(engine, key, "a", barrier),
        _request_loop(engine, key, "b", barrier),
    )
    _assert_every_key_kept(engine, key, ["a", "b"])
    # Same key written by both: one of the two final writes wins, whole.
    assert engine.store(key)["last"] in {f"a{REQUESTS - 1}", f"b{REQUESTS - 1}"}


@committed
def test_two_free_running_threads_lose_nothing(engine: Engine) -> None:
    key = _new_session(engine)
    _in_threads(_request_loop(engine, key, "a"), _request_loop(engine, key, "b"))
    _assert_every_key_kept(engine, key, ["a", "b"])


@committed
def test_two_processes_setting_their_own_keys_lose_nothing(engine: Engine) -> None:
    key = _new_session(engine)
    overrides = {"SESSION_ENGINE": engine.path, **engine.settings, **_spilled(engine)}
    workers = []
    for prefix in ("a", "b"):
        job = {
            "engine": engine.path,
            "key": key,
            "prefix": prefix,
            "count": REQUESTS,
            "database": connection.settings_dict["NAME"],
            "settings": overrides,
        }
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.session_worker", json.dumps(job)],
                cwd=ROOT,
                env=os.environ.copy(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            assert line == "ready", worker.communicate(timeout=TIMEOUT)[1]
        for worker in workers:  # both start at once
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            out, err = worker.communicate(timeout=TIMEOUT)
            assert worker.returncode == 0, err
            assert json.loads(out.strip().splitlines()[-1]) == {"errors": []}
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    _assert_every_key_kept(engine, key, ["a", "b"])


# -- deterministic interleavings --------------------------------------------------------


@pytest.mark.parametrize("last", ["first", "second"])
def test_same_key_the_last_save_wins_whole(engine: Engine, last: str) -> None:
    key = _new_session(engine)
    first, second = engine.store(key), engine.store(key)
    first["colour"], first["first"] = {"name": "red", "rgb": [255, 0, 0]}, 1
    second["colour"], second["second"] = {"name": "blue", "rgb": [0, 0, 255]}, 2
    if last == "second":
        first.save()
        second.save()
    else:
        second.save()
        first.save()
    winner = first if last == "first" else second
    assert engine.store(key).load() == {
        "seed": "s", "first": 1, "second": 2, "colour": winner["colour"],
    }


def test_a_deleted_key_stays_deleted_while_another_request_sets_a_key(engine: Engine) -> None:
    key = _new_session(engine, gone="x")
    deleter, setter = engine.store(key), engine.store(key)
    del deleter["gone"]
    setter["new"] = 1
    deleter.save()
    setter.save()
    assert engine.store(key).load() == {"seed": "s", "new": 1}


def test_an_in_place_mutation_is_saved_and_merged(engine: Engine) -> None:
    key = _new_session(engine, cart=["apple"])
    mutator, other = engine.store(key), engine.store(key)
    mutator["cart"].append("pear")  # no __setitem__: found by comparing with what was loaded
    other["other"] = 1
    other.save()
    mutator.save()
    assert engine.store(key).load() == {"seed": "s", "cart": ["apple", "pear"], "other": 1}


def test_clear_drops_what_was_there_but_not_what_is_saved_after_it(engine: Engine) -> None:
    key = _new_session(engine, old=1)
    clearer = engine.store(key)
    clearer.clear()
    clearer["fresh"] = 1
    clearer.save()
    later = engine.store(key)
    later["later"] = 1
    later.save()
    assert engine.store(key).load() == {"fresh": 1, "later": 1}


def test_the_stored_expiry_follows_the_merged_data(engine: Engine) -> None:
    key = _new_session(engine)
    shortener, writer = engine.store(key), engine.store(key)
    shortener.set_expiry(300)
    writer["x"] = 1
    shortener.save()
    writer.save()  # merged onto the shortened session: its expiry must stay short
    assert engine.store(key).load() == {"seed": "s", "_session_expiry": 300, "x": 1}
    assert 250 < _seconds_left(engine, key) <= 300


def test_async_saves_merge_too(engine: Engine) -> None:
    key = _new_session(engine)

    async def overlap() -> None:
        first, second = engine.store(key), engine.store(key)
        await first.aset("first", 1)
        await second.aset("second", 2)
        await first.asave()
        await second.asave()

    async_to_sync(overlap)()
    assert engine.store(key).load() == {"seed": "s", "first": 1, "second": 2}


# -- a session ended by one request stays ended ------------------------------------


@pytest.mark.parametrize("end", ["delete", "flush"])
def test_a_late_save_does_not_bring_back_a_session_ended_meanwhile(
    engine: Engine, end: str
) -> None:
    key = _new_session(engine)
    late = engine.store(key)
    assert late["seed"] == "s"
    getattr(engine.store(key), end)()  # logout in a concurrent request
    late["after_logout"] = 1
    with pytest.raises(UpdateError):
        late.save()
    assert engine.store(key).load() == {}
    assert engine.records() == 0


def test_a_late_unmodified_save_does_not_bring_back_an_ended_session(engine: Engine) -> None:
    key = _new_session(engine)
    late = engine.store(key)
    assert late["seed"] == "s"
    engine.store(key).flush()
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True), pytest.raises(UpdateError):
        late.save()
    assert engine.records() == 0


@committed
def test_a_session_flushed_while_another_thread_writes_stays_gone(engine: Engine) -> None:
    key = _new_session(engine)
    writing = threading.Event()
    flushed = threading.Event()

    def writer() -> None:
        # Write until the flush is seen. The thread scheduler decides when the flush lands,
        # so the loop is bounded by time, not by a count; a request that begins after the
        # flush has returned must see it.
        deadline = time.monotonic() + TIMEOUT
        i = 0
        while time.monotonic() < deadline:
            begun_after_flush = flushed.is_set()
            session = engine.store(key)
            session[f"w{i}"] = i
            if session.session_key != key:
                return  # the load found no session: this client would get a new one
            try:
                session.save()
            except UpdateError:
                return
            assert not begun_after_flush, "a request begun after the flush did not see it"
            if i == 10:
                writing.set()
            i += 1
        raise AssertionError("the session was never flushed")

    def logout() -> None:
        assert writing.wait(TIMEOUT)
        engine.store(key).flush()
        flushed.set()

    _in_threads(writer, logout)
    assert engine.store(key).load() == {}
    assert engine.records() == 0


# -- a touch (SESSION_SAVE_EVERY_REQUEST) from a stale request ------------------------


def test_a_stale_touch_keeps_the_user_another_request_logged_in(engine: Engine) -> None:
    key = _new_session(engine)
    stale = engine.store(key)
    assert stale["seed"] == "s"
    login = engine.store(key)
    login["_auth_user_id"] = "42"
    login.save()
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        stale.save()  # nothing changed here: only the expiry is extended
    record = _stored(engine, key)
    assert record is not None
    assert record.user_id == "42"
    listed = engine.store.get_store().list_user("42")
    assert [info.digest for info in listed] == [_digest(engine, key)]


# -- inside a transaction -------------------------------------------------------------


@pytest.fixture(params=["default", "repeatable read"])
def isolation(request: pytest.FixtureRequest, engine: Engine) -> Iterator[str]:
    """The isolation level of this test's connection (MariaDB's REPEATABLE READ too)."""
    level: str = request.param
    if connection.vendor == "sqlite":
        pytest.skip("SQLite: a transaction that has read blocks other writers until it ends")
    if level == "default":
        yield level
        return
    if connection.vendor != "mysql":
        pytest.skip("only MySQL/MariaDB can save at REPEATABLE READ: PostgreSQL aborts the "
                    "transaction on a concurrent update at that level")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        yield level
    finally:
        with connection.cursor() as cursor:
            default = connection.isolation_level  # type: ignore[attr-defined]
            cursor.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {default.upper()}")


@committed
def test_a_save_inside_a_transaction_merges_with_a_write_committed_after_it_began(
    engine: Engine, isolation: str
) -> None:
    key = _new_session(engine)

    def concurrent() -> None:
        other = engine.store(key)
        other["theirs"] = 1
        other.save()

    with transaction.atomic():
        mine = engine.store(key)
        assert mine["seed"] == "s"  # the transaction's snapshot is taken here
        _in_threads(concurrent)
        mine["mine"] = 1
        mine.save()
    assert engine.store(key).load() == {"seed": "s", "theirs": 1, "mine": 1}


# -- through the middleware: no save, no cookie, unless asked --------------------------


def test_an_unmodified_session_is_not_saved_again_nor_its_cookie_sent(engine: Engine) -> None:
    client = Client()
    with override_settings(SESSION_COOKIE_AGE=60):
        client.get("/write/?a=1")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    with override_settings(SESSION_COOKIE_AGE=3600):
        response = client.get("/read/")
    assert response.json() == {"a": "1"}
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert _seconds_left(engine, key) <= 60  # not written: the expiry is still the old one


def test_save_every_request_resends_the_cookie_and_extends_the_expiry(engine: Engine) -> None:
    client = Client()
    with override_settings(SESSION_COOKIE_AGE=60):
        client.get("/write/?a=1")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    with override_settings(SESSION_COOKIE_AGE=3600, SESSION_SAVE_EVERY_REQUEST=True):
        response = client.get("/read/")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == 3600
    assert _digest(engine, cookie.value) == _digest(engine, key)  # the same session
    assert _seconds_left(engine, cookie.value) > 3500
    assert client.get("/read/").json() == {"a": "1"}


@committed
def test_no_lock_is_held_across_a_request(engine: Engine) -> None:
    """A request that loaded a session and is still running does not make others wait."""
    key = _new_session(engine)
    slow = engine.store(key)
    assert slow["seed"] == "s"  # a long request, mid-way, its session loaded
    started = time.monotonic()

    def quick() -> None:
        other = engine.store(key)
        other["quick"] = 1
        other.save()

    _in_threads(quick)
    assert time.monotonic() - started < 5
    slow["slow"] = 1
    slow.save()
    assert engine.store(key).load() == {"seed": "s", "quick": 1, "slow": 1}


# -- a losing streak ends in a merge under a short lock (the database store) ------------

LOCKING_ENGINES = {
    "db": {"SESSION_ENGINE": "hybrid_sessions.backends.db"},
    "hybrid-db-spilled": {
        "SESSION_ENGINE": "hybrid_sessions.backends.hybrid",
        "HYBRID_SESSIONS_INLINE_MAX_BYTES": 0,
    },
}


@pytest.mark.parametrize("overrides", LOCKING_ENGINES.values(), ids=LOCKING_ENGINES.keys())
def test_a_save_that_loses_every_race_merges_under_a_short_lock(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> None:
    from django.utils.module_loading import import_string

    from hybrid_sessions.backends.base import ServerSessionBase
    from hybrid_sessions.stores.database import DatabaseStore

    with override_settings(**overrides):
        engine: type[ServerSessionBase] = import_string(
            overrides["SESSION_ENGINE"] + ".SessionStore"
        )
        store = engine.get_store()
        compare_and_set = DatabaseStore.compare_and_set
        intrusions: list[int] = []

        def always_beaten(self: DatabaseStore, digest: str, version: int, *args: Any) -> Any:
            # A writer in a tight loop commits just before each of our writes.
            current = store.get(digest)
            assert current is not None
            intruder = json.loads(current.data or b"{}")
            intruder[f"intruder{len(intrusions)}"] = 1
            blob = json.dumps(intruder).encode()
            assert compare_and_set(self, digest, current.version, blob, *args[1:]).ok
            intrusions.append(current.version)
            return compare_and_set(self, digest, version, *args)

        session = engine()
        session["seed"] = "s"
        session.save()
        mine = engine(session.session_key)
        mine["mine"] = 1
        monkeypatch.setattr(DatabaseStore, "compare_and_set", always_beaten)
        mine.save()
        monkeypatch.undo()
        assert len(intrusions) == 3  # three lost races, then the locked merge
        assert dict(engine(mine.session_key).items()) == {
            "seed": "s", "intruder0": 1, "intruder1": 1, "intruder2": 1, "mine": 1,
        }


@committed
def test_the_merge_lock_makes_only_writes_to_that_session_wait_and_only_for_it() -> None:
    from hybrid_sessions.backends import db
    from hybrid_sessions.stores.base import SessionMeta
    from hybrid_sessions.stores.database import DatabaseStore

    store = DatabaseStore()
    session = db.SessionStore()
    session["seed"] = "s"
    session.save()
    other = db.SessionStore()
    other["seed"] = "o"
    other.save()
    key, other_key = session.session_digest, other.session_digest
    assert key is not None
    assert other_key is not None
    inside, release = threading.Event(), threading.Event()
    timeline: list[str] = []

    def build(current: StoredSession) -> tuple[bytes, SessionMeta]:
        inside.set()
        assert release.wait(TIMEOUT)
        timeline.append("locked write")
        return b'{"seed":"s","locked":1}', SessionMeta(expires_at=current.expires_at)

    def locked() -> None:
        assert store.update_locked(key, build).ok

    def concurrent() -> None:
        assert inside.wait(TIMEOUT)
        record = store.get(key)  # reads do not wait
        assert record is not None
        timeline.append("read")
        other_record = store.get(other_key)
        assert other_record is not None
        meta = SessionMeta(expires_at=other_record.expires_at)
        if connection.vendor != "sqlite":  # SQLite locks the whole database for a write
            assert store.compare_and_set(other_key, other_record.version, b"{}", meta).ok
            timeline.append("other session written")
        release.set()
        result = store.compare_and_set(key, record.version, b'{"late":1}', meta)
        timeline.append("waited, then lost" if not result.ok else "won")

    _in_threads(locked, concurrent)
    expected = ["read", "other session written", "locked write", "waited, then lost"]
    if connection.vendor == "sqlite":
        expected.remove("other session written")
    assert timeline == expected
    assert db.SessionStore(session.session_key).load() == {"seed": "s", "locked": 1}
