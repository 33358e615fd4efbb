"""``hybrid_sessions_purge`` and ``hybrid_sessions_stats`` on every server-side engine.

Sessions are made through each engine as requests leave them; only their age is
moved, in the store's own representation, to make some expired or inactive.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import secrets
import select
import struct
import termios
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import timezone

from hybrid_sessions import api
from hybrid_sessions.maintenance import parse_duration
from hybrid_sessions.models import Session
from hybrid_sessions.stores.base import SessionFilter
from tests.engines import ENGINES, Engine, saved_digest

SERVER_ENGINES = [e for e in ENGINES if e.server_side]


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="x")


def stored(engine: Engine, user: User | None = None, **data: Any) -> str:
    session: SessionBase = engine.store()
    if user is not None:
        session["_auth_user_id"] = str(user.pk)
    session.update(data or {"cart": [1]})
    session.save()
    return saved_digest(session)


def age(engine: Engine, digest: str, days: int) -> None:
    """Make a session's last activity ``days`` old, in its store's own terms."""
    when = timezone.now() - timedelta(days=days)
    if engine.needs_redis:
        from django_redis import get_redis_connection

        store: Any = api.get_server_store()
        inner = getattr(store, "inner", store)
        get_redis_connection("default").hset(
            inner._session_key(digest), "a", int(when.timestamp() * 1000)
        )
    else:
        Session.objects.filter(pk=digest).update(last_activity=when)


def expire(digest: str) -> None:
    Session.objects.filter(pk=digest).update(expire_date=timezone.now() - timedelta(seconds=1))


def everything() -> set[str]:
    page, cursor = api.get_server_store().list_sessions(
        None, 10_000, filters=SessionFilter(expired=None)
    )
    assert cursor is None
    return {info.digest for info in page}


def purge(*args: str) -> str:
    out = StringIO()
    call_command("hybrid_sessions_purge", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


# -- purge --------------------------------------------------------------------------------


def test_by_default_only_expired_sessions_go(engine: Engine, alice: User) -> None:
    live = stored(engine, alice)
    old = stored(engine, alice)
    if engine.needs_redis:
        # Redis removes a session the moment it expires: there is never one to purge.
        assert purge() == "Ended 0 of 0 matching sessions."
        assert everything() == {live, old}
        return
    expire(old)
    assert purge("--dry-run") == "Dry run: 1 session would be ended; nothing changed."
    assert everything() == {live, old}
    assert purge() == "Ended 1 of 1 matching session."
    assert everything() == {live}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--inactive-for", "30d"], {"idle_alice", "idle_bob"}),
        (["--user", "alice"], {"idle_alice", "busy_alice"}),
        (["--user", "alice", "--inactive-for", "30d"], {"idle_alice"}),
        (["--all"], {"idle_alice", "busy_alice", "idle_bob", "anonymous"}),
        (["--all", "--batch-size", "1"], {"idle_alice", "busy_alice", "idle_bob", "anonymous"}),
    ],
)
def test_each_criterion_and_its_dry_run(
    engine: Engine, alice: User, bob: User, args: list[str], expected: set[str]
) -> None:
    sessions = {
        "idle_alice": stored(engine, alice),
        "busy_alice": stored(engine, alice),
        "idle_bob": stored(engine, bob),
        "anonymous": stored(engine),
    }
    for name in ("idle_alice", "idle_bob"):
        age(engine, sessions[name], days=40)
    before = everything()

    dry = purge(*args, "--dry-run")

    assert dry.startswith(f"Dry run: {len(expected)} session")
    assert everything() == before  # a dry run changes nothing

    assert purge(*args) == (
        f"Ended {len(expected)} of {len(expected)} matching "
        + ("session." if len(expected) == 1 else "sessions.")
    )
    assert everything() == before - {sessions[name] for name in expected}


def test_a_purged_browser_is_signed_out_on_its_next_request(engine: Engine, alice: User) -> None:
    browser = Client()
    browser.force_login(alice)
    assert browser.get("/whoami/").content == b"alice"
    purge("--user", "alice")
    assert browser.get("/whoami/").content == b""


@pytest.mark.parametrize(
    "args",
    [
        ["--all", "--user", "alice"],
        ["--all", "--expired"],
        ["--inactive-for", "soon"],
        ["--inactive-for", "0d"],
        ["--batch-size", "0"],
        ["--user", "nobody"],
    ],
)
def test_bad_arguments_fail_clearly(engine: Engine, alice: User, args: list[str]) -> None:
    stored(engine, alice)
    before = everything()
    with pytest.raises(CommandError):
        purge(*args)
    assert everything() == before


def test_a_cookie_only_engine_is_an_error(db: Any) -> None:
    with override_settings(SESSION_ENGINE="hybrid_sessions.backends.signed_cookies"):
        with pytest.raises(CommandError, match="keeps no server-side"):
            purge("--all")
        with pytest.raises(CommandError, match="keeps no server-side"):
            call_command("hybrid_sessions_stats", stdout=StringIO())


def test_an_unreachable_store_is_an_error(db: Any) -> None:
    unreachable = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    with (
        override_settings(SESSION_ENGINE="hybrid_sessions.backends.cache", CACHES=unreachable),
        pytest.raises(CommandError, match="unavailable"),
    ):
        purge("--all")


def test_a_terminal_gets_a_progress_bar(engine: Engine, alice: User) -> None:
    for _ in range(3):
        stored(engine, alice)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with os.fdopen(follower, "w") as terminal:
        out = StringIO()
        call_command("hybrid_sessions_purge", "--all", "--batch-size", "1", stdout=out,
                     stderr=terminal)
    shown = ""
    while select.select([leader], [], [], 0.5)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: everything was read
            break
        if not chunk:
            break
        shown += chunk.decode()
    os.close(leader)
    assert "Purging" in shown
    assert "3 sessions" in shown
    assert out.getvalue().strip() == "Ended 3 of 3 matching sessions."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "1d 2h", "0h"])
def test_malformed_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- stats --------------------------------------------------------------------------------


def stats(*args: str) -> Any:
    out = StringIO()
    call_command("hybrid_sessions_stats", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_stats_count_sessions_by_state_and_storage(engine: Engine, alice: User, bob: User) -> None:
    stored(engine, alice), stored(engine, alice), stored(engine, bob), stored(engine)
    big = stored(engine, alice, blob=secrets.token_hex(2500))
    figures = stats()
    assert figures["total"] == 5
    assert figures["by_state"] == {"signed_in": 4, "anonymous": 1, "expired": 0}
    hybrid = engine.path.endswith("hybrid")
    assert figures["by_storage"] == ({"server": 1, "cookie": 4} if hybrid else
                                     {"server": 5, "cookie": 0})
    assert figures["cookie_share"] == (0.8 if hybrid else 0.0)
    assert figures["top_users"][0] == {"user_id": str(alice.pk), "username": "alice",
                                       "sessions": 3}
    assert figures["top_users"][1]["username"] == "bob"
    info = api.get_server_store().describe(big)
    assert info is not None
    assert figures["size_max"] == info.size
    assert figures["size_percentiles"]["p50"] <= figures["size_percentiles"]["p99"] <= info.size


def test_stats_in_text_and_top_n(engine: Engine, alice: User, bob: User) -> None:
    stored(engine, alice), stored(engine, bob)
    out = StringIO()
    call_command("hybrid_sessions_stats", "--top", "1", stdout=out)
    text = out.getvalue()
    assert "Sessions: 2" in text
    assert "signed_in" in text
    assert "Kept in the cookie:" in text
    assert len(stats("--top", "1")["top_users"]) == 1


@pytest.mark.parametrize("engine", SERVER_ENGINES[:1], ids=["db"], indirect=True)
def test_stats_count_expired_rows_still_kept(engine: Engine, alice: User) -> None:
    old = stored(engine, alice)
    stored(engine, alice)
    expire(old)
    figures = stats()
    assert figures["by_state"]["expired"] == 1
    assert figures["top_users"][0]["sessions"] == 1  # live sessions only
