"""Switching from Django's db, cache or cached_db engine to ours logs no one out.

Cookies are issued by Django's own engines through the test client, before the
switch; after ``manage.py hybrid_sessions_import`` the same cookies are still
logged in under our engine, with their data and expiry. Run it on PostgreSQL
(``HYBRID_SESSIONS_TEST_DB=postgres``) and with Redis to cover both stores.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session as DjangoSession
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import timezone
from django_redis.cache import RedisCache

from hybrid_sessions import api
from hybrid_sessions.migration import import_sessions
from hybrid_sessions.stores.base import digest
from tests.engines import ENGINES, Engine

PASSWORD = "pw"
COOKIE = "sessionid"
SERVER_ENGINES = [e for e in ENGINES if e.server_side]
def _target_params() -> list[Any]:
    params = []
    for engine in SERVER_ENGINES:
        marks = []
        if engine.needs_redis:
            marks.append(pytest.mark.redis)
        params.append(pytest.param(engine, id=engine.name, marks=marks))
    return params


SOURCES = [
    pytest.param("db", id="from-db"),
    pytest.param("cache", id="from-cache", marks=pytest.mark.redis),
    pytest.param("cached_db", id="from-cached_db", marks=pytest.mark.redis),
]


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password=PASSWORD)


def djangos(source: str) -> Any:
    return override_settings(SESSION_ENGINE=f"django.contrib.sessions.backends.{source}")


def ours(engine: Engine) -> Any:
    return override_settings(
        SESSION_ENGINE=engine.path, HYBRID_SESSIONS_REVALIDATE_SECONDS=0, **engine.settings
    )


def logged_in_with_django(source: str, username: str = "alice", **data: str) -> Client:
    """A browser that logged in while Django's ``source`` engine was the site's."""
    client = Client()
    with djangos(source):
        assert client.login(username=username, password=PASSWORD)
        if data:
            client.get("/write/", data)
        assert client.get("/whoami/").content.decode() == username
    return client


def same_browser(client: Client) -> Client:
    """The browser again after the switch (a test client keeps the engine it first used)."""
    again = Client()
    again.cookies = client.cookies
    return again


def run_import(source: str, *args: str) -> str:
    out = StringIO()
    call_command("hybrid_sessions_import", "--from", source, *args, stdout=out)
    return out.getvalue()


def old_sessions_left(source: str) -> int:
    if source == "cache":
        cache = caches["default"]
        assert isinstance(cache, RedisCache)  # iter_keys() is django-redis's own
        return sum(1 for _ in cache.iter_keys("django.contrib.sessions.cache*"))
    return DjangoSession.objects.count()


@pytest.mark.parametrize("engine", _target_params())
@pytest.mark.parametrize("source", SOURCES)
def test_a_visitor_stays_logged_in_across_the_switch(
    alice: User, source: str, engine: Engine
) -> None:
    client = same_browser(logged_in_with_django(source, cart="3 apples"))
    cookie = client.cookies["sessionid"].value
    with ours(engine):
        unimported = Client()
        unimported.cookies[COOKIE] = cookie
        assert unimported.get("/whoami/").content.decode() == ""  # the switch alone logs out

        output = run_import(source)

        assert output == (
            f"Imported 1 session(s) from Django's {source} engine; "
            "0 already there, 0 empty or undecodable skipped.\n"
        )
        assert client.get("/whoami/").content.decode() == "alice"
        assert client.get("/read/").json()["cart"] == "3 apples"
        assert [info.user_id for info in api.list_sessions(alice)] == [str(alice.pk)]
        client.get("/write/", {"cart": "4 apples"})  # and it saves under our engine
        assert client.get("/read/").json()["cart"] == "4 apples"
    if engine.path.endswith(".hybrid"):
        # The hybrid turned the imported key into its signed copy, for the same session.
        from hybrid_sessions.backends.hybrid import record_digest

        assert record_digest(client.cookies["sessionid"].value) == digest(cookie)
    else:
        assert client.cookies["sessionid"].value == cookie
    assert old_sessions_left(source) == 1  # Django's copy is the operator's to drop


@pytest.mark.parametrize("source", SOURCES)
def test_an_imported_session_keeps_its_expiry(alice: User, source: str) -> None:
    client = logged_in_with_django(source)
    with djangos(source):
        expected = client.session.get_expiry_date()
    db_engine = SERVER_ENGINES[0]
    with ours(db_engine):
        run_import(source)
        record = db_engine.store.get_store().get(digest(client.cookies["sessionid"].value))
    assert record is not None
    assert abs(record.expires_at - expected) < timedelta(seconds=5)


@pytest.mark.parametrize("source", SOURCES)
def test_a_second_run_skips_what_the_first_imported(alice: User, source: str) -> None:
    User.objects.create_user("bob", password=PASSWORD)
    first = same_browser(logged_in_with_django(source))
    with ours(SERVER_ENGINES[0]):
        assert run_import(source, "--batch-size", "1").startswith("Imported 1 session(s)")
        first.get("/write/", {"since": "the switch"})  # changed under our engine
    second = same_browser(logged_in_with_django(source, username="bob"))

    with ours(SERVER_ENGINES[0]):
        output = run_import(source, "--batch-size", "1")

        assert output.startswith("Imported 1 session(s)")
        assert "1 already there" in output
        assert first.get("/read/").json()["since"] == "the switch"  # not overwritten
        assert second.get("/whoami/").content.decode() == "bob"


def test_a_dry_run_counts_and_writes_nothing(alice: User) -> None:
    client = same_browser(logged_in_with_django("db"))
    engine = SERVER_ENGINES[0]
    with ours(engine):
        output = run_import("db", "--dry-run")

        assert output.startswith("Would import 1 session(s) from Django's db engine")
        assert engine.records() == 0
        assert client.get("/whoami/").content.decode() == ""


def test_expired_and_undecodable_sessions_are_not_imported(alice: User) -> None:
    logged_in_with_django("db")
    live = DjangoSession.objects.get()
    DjangoSession.objects.create(
        session_key="e" * 32, session_data=live.session_data,
        expire_date=timezone.now() - timedelta(seconds=1),
    )
    DjangoSession.objects.create(
        session_key="f" * 32, session_data="forged:data",
        expire_date=timezone.now() + timedelta(days=1),
    )
    with ours(SERVER_ENGINES[0]):
        result = import_sessions("db")

    assert (result.imported, result.existing, result.empty) == (1, 0, 1)
    assert SERVER_ENGINES[0].records() == 1


def test_progress_is_reported_per_batch(alice: User) -> None:
    for _ in range(5):
        logged_in_with_django("db")
    batches: list[int] = []
    with ours(SERVER_ENGINES[0]):
        result = import_sessions("db", batch_size=2, progress=batches.append)

    assert result.imported == 5
    assert batches == [2, 2, 1]


@pytest.mark.redis
def test_the_cache_source_ignores_cached_db_keys(alice: User) -> None:
    logged_in_with_django("cached_db")  # its cache keys share the cache engine's prefix
    with ours(SERVER_ENGINES[0]):
        assert run_import("cache").startswith("Imported 0 session(s)")
        assert run_import("cached_db").startswith("Imported 1 session(s)")


def test_the_cache_source_needs_a_cache_that_can_scan(alice: User) -> None:
    with (
        ours(SERVER_ENGINES[0]),
        override_settings(SESSION_CACHE_ALIAS="local"),
        pytest.raises(CommandError, match="SCAN, never KEYS"),
    ):
        run_import("cache")


def test_importing_into_djangos_own_engine_is_refused(alice: User) -> None:
    with djangos("db"), pytest.raises(CommandError, match="set it to the engine to import"):
        run_import("db")


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'file'"):
        run_import("file")
