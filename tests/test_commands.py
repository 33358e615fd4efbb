"""Management commands: ``hybrid_sessions_revoke``, ``hybrid_sessions_list``, and Django's
``clearsessions`` running through our engine in bounded batches."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hybrid_sessions import api
from hybrid_sessions.backends.db import SessionStore
from hybrid_sessions.models import Session
from hybrid_sessions.stores.base import digest


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="x")


def signed_in(user: User) -> SessionStore:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.save()
    return session


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# -- hybrid_sessions_revoke ------------------------------------------------------------


def test_revoke_ends_every_session_of_the_user_named(alice: User, bob: User) -> None:
    signed_in(alice), signed_in(alice)
    bobs = signed_in(bob)

    assert run("hybrid_sessions_revoke", "--user", "alice") == "Revoked 2 sessions of 'alice'.\n"

    assert api.list_sessions(alice) == []
    assert SessionStore(bobs.session_key).load() == {"_auth_user_id": str(bob.pk)}


def test_revoke_accepts_a_primary_key(alice: User) -> None:
    signed_in(alice)
    assert run("hybrid_sessions_revoke", "--user", str(alice.pk)) == (
        "Revoked 1 session of 'alice'.\n"
    )


def test_a_username_wins_over_a_primary_key(alice: User) -> None:
    numeric = User.objects.create_user(str(alice.pk), password="x")
    signed_in(alice)
    signed_in(numeric)
    run("hybrid_sessions_revoke", "--user", str(alice.pk))
    assert api.list_sessions(numeric) == []
    assert len(api.list_sessions(alice)) == 1


@pytest.mark.parametrize("value", ["nobody", "999999", "not a pk"])
def test_revoke_of_an_unknown_user_fails_clearly(db: Any, value: str) -> None:
    with pytest.raises(CommandError, match="No user with the username or primary key"):
        run("hybrid_sessions_revoke", "--user", value)


def test_the_user_is_required(db: Any) -> None:
    with pytest.raises(CommandError, match="--user"):
        run("hybrid_sessions_revoke")


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
def test_commands_explain_a_cookie_only_engine(alice: User) -> None:
    for command in ("hybrid_sessions_revoke", "hybrid_sessions_list"):
        with pytest.raises(CommandError, match="keeps no server-side session records"):
            run(command, "--user", "alice")


# -- hybrid_sessions_list ----------------------------------------------------------------


def test_list_prints_one_line_per_live_session(alice: User, bob: User) -> None:
    with override_settings(
        HYBRID_SESSIONS_TRACK_IP_ADDRESS=True, HYBRID_SESSIONS_TRACK_USER_AGENT=True
    ):
        session = SessionStore(ip_address="203.0.113.7", user_agent="Firefox/140")
        session["_auth_user_id"] = str(alice.pk)
        session.save()
    signed_in(bob)

    header, line = run("hybrid_sessions_list", "--user", "alice").splitlines()

    assert header.split("\t")[0] == "digest"
    fields = line.split("\t")
    assert fields[0] == session.session_digest
    assert fields[-2:] == ["203.0.113.7", "Firefox/140"]
    assert session.session_key is not None
    assert session.session_key not in line


def test_list_says_when_there_is_nothing(alice: User) -> None:
    assert run("hybrid_sessions_list", "--user", "alice") == "'alice' has no live sessions.\n"


# -- clearsessions -------------------------------------------------------------------------


def make_rows(expired: int, live: int) -> set[str]:
    """Insert rows directly (fast); return the digests of the live ones."""
    now = timezone.now()
    rows = [
        Session(
            key_digest=digest(f"key-{n:08d}"),
            data=b"{}",
            created_at=now,
            last_activity=now,
            expire_date=now + (timedelta(days=1) if n < live else -timedelta(seconds=1)),
        )
        for n in range(expired + live)
    ]
    Session.objects.bulk_create(rows, batch_size=500)
    return {row.key_digest for row in rows[:live]}


def deletes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith("DELETE") and "hybrid_sessions_session" in q["sql"]
    ]


@pytest.mark.parametrize(
    ("expired", "batch", "statements"),
    [(2500, 1000, 3), (20, 10, 2), (25, 100, 1), (0, 10, 0)],
)
def test_clearsessions_deletes_expired_rows_in_bounded_batches(
    db: Any, expired: int, batch: int, statements: int
) -> None:
    live = make_rows(expired=expired, live=7)

    with (
        override_settings(HYBRID_SESSIONS_CLEAR_EXPIRED_BATCH_SIZE=batch),
        CaptureQueriesContext(connection) as queries,
    ):
        call_command("clearsessions")

    assert len(deletes(queries)) == statements
    assert set(Session.objects.values_list("pk", flat=True)) == live


def test_clearsessions_leaves_live_sessions_usable(alice: User) -> None:
    session = signed_in(alice)
    make_rows(expired=3, live=0)
    call_command("clearsessions")
    assert SessionStore(session.session_key).load() == {"_auth_user_id": str(alice.pk)}
    assert Session.objects.count() == 1
