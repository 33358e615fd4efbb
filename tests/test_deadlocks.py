"""A deadlock the database breaks by rolling a save back is one more lost race, retried.

InnoDB (MariaDB) and PostgreSQL pick one of two writers caught in a lock cycle
and fail its statement (MariaDB 1213, PostgreSQL ``40P01``). Under load two
saves of one session can be caught so; the save must retry, not fail the
request. The deadlock here is a real one, made on the real server with two
connections that lock two sessions' rows in opposite orders.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction
from django.utils import timezone

from hybrid_sessions.backends.db import SessionStore
from hybrid_sessions.models import Session
from hybrid_sessions.stores.base import digest
from hybrid_sessions.stores.database import DatabaseStore

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deadlock() -> OperationalError:
    """The error the server gives the victim of a real lock cycle."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite lets one writer in at a time: no lock cycle can form")
    rows = []
    for name in ("a", "b"):
        session = SessionStore()
        session[name] = 1
        session.save()
        assert session.session_key is not None
        rows.append(digest(session.session_key))
    both_hold_one = threading.Barrier(2, timeout=10)
    errors: list[OperationalError] = []

    def lock(first: str, second: str) -> None:
        try:
            with transaction.atomic():
                Session.objects.select_for_update().filter(pk=first).exists()
                both_hold_one.wait()
                Session.objects.select_for_update().filter(pk=second).exists()
        except OperationalError as exc:
            # Classified outside the atomic block, as the store does after the statement.
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=lock, args=(rows[0], rows[1])),
        threading.Thread(target=lock, args=(rows[1], rows[0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1, errors  # the server broke the cycle by failing one of them
    return errors[0]


def test_the_victim_of_a_real_deadlock_is_recognised(deadlock: OperationalError) -> None:
    assert DatabaseStore._lost_to_a_deadlock(DEFAULT_DB_ALIAS, deadlock)


def test_inside_the_callers_transaction_a_deadlock_stays_the_callers(
    deadlock: OperationalError,
) -> None:
    with transaction.atomic():
        assert not DatabaseStore._lost_to_a_deadlock(DEFAULT_DB_ALIAS, deadlock)


def test_other_operational_errors_are_not_retried(deadlock: OperationalError) -> None:
    assert not DatabaseStore._lost_to_a_deadlock(
        DEFAULT_DB_ALIAS, OperationalError(2006, "MySQL server has gone away")
    )


def test_a_save_chosen_as_a_deadlocks_victim_is_retried_and_loses_nothing(
    deadlock: OperationalError, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session.session_key
    other = SessionStore(key)
    other["b"] = 2
    other.save()  # the session moved on: the retry must merge onto it
    execute = DatabaseStore._execute
    victims: list[str] = []

    def once_a_victim(store: Any, db: str, sql: str, params: Any) -> Any:
        if sql.startswith("UPDATE") and not victims:
            victims.append(sql)
            raise deadlock
        return execute(store, db, sql, params)

    monkeypatch.setattr(DatabaseStore, "_execute", once_a_victim)
    session["c"] = 3
    session.save()
    assert victims
    assert dict(SessionStore(key).items()) == {"a": 1, "b": 2, "c": 3}
    record = Session.objects.get(pk=digest(key or ""))
    assert record.expire_date > timezone.now()
