"""What the database engine guarantees beyond Django's contract."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from hybrid_sessions.backends.db import SessionStore
from hybrid_sessions.models import Session

pytestmark = pytest.mark.django_db


def _row(session: SessionStore) -> Session:
    assert session.session_key is not None
    return Session.objects.get(pk=hashlib.sha256(session.session_key.encode()).hexdigest())


def test_the_table_holds_only_the_digest_of_the_key() -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session.session_key
    assert key is not None
    row = _row(session)
    assert row.key_digest == hashlib.sha256(key.encode()).hexdigest()
    for value in Session.objects.values_list().get():
        assert key not in str(value)


def test_the_row_records_creation_activity_and_expiry() -> None:
    before = timezone.now()
    session = SessionStore()
    session["a"] = 1
    session.set_expiry(3600)
    session.save()
    row = _row(session)
    assert before <= row.created_at <= timezone.now()
    assert abs(row.expire_date - (row.created_at + timedelta(seconds=3600))) < timedelta(seconds=2)
    created = row.created_at
    session["a"] = 2
    session.save()
    row = _row(session)
    assert row.created_at == created
    assert row.last_activity >= created
    assert row.version == 2


def test_the_user_link_follows_login_and_logout() -> None:
    user = get_user_model().objects.create_user("grace", password="pw")
    client = Client()
    client.get("/write/", {"cart": "1"})
    assert Session.objects.get().user_id is None
    assert client.login(username="grace", password="pw")
    assert Session.objects.get().user_id == user.pk
    client.logout()
    assert not Session.objects.exists()


def test_a_session_without_a_user_link_is_stored_for_an_unknown_user_id() -> None:
    session = SessionStore()
    session["_auth_user_id"] = "not-a-number"
    session.save()
    assert _row(session).user_id is None


def test_personal_data_is_not_recorded_by_default() -> None:
    session = SessionStore(ip_address="203.0.113.9", user_agent="Browser/1.0")
    session["a"] = 1
    session.save()
    row = _row(session)
    assert row.ip_address is None
    assert row.user_agent == ""


@override_settings(HYBRID_SESSIONS_TRACK_IP_ADDRESS=True, HYBRID_SESSIONS_TRACK_USER_AGENT=True)
def test_async_saves_keep_the_user_link_and_metadata() -> None:
    user = get_user_model().objects.create_user("alan", password="pw")

    async def scenario() -> SessionStore:
        session = SessionStore(ip_address="203.0.113.9", user_agent="Browser/1.0")
        await session.aset("_auth_user_id", str(user.pk))
        await session.asave()
        again = SessionStore(session.session_key, ip_address="198.51.100.7", user_agent="B/2")
        await again.aset("x", 1)
        await again.asave()
        return again

    session = async_to_sync(scenario)()
    row = _row(session)
    assert row.user_id == user.pk
    assert row.ip_address == "198.51.100.7"
    assert row.user_agent == "B/2"
    assert row.version == 2


def test_loading_an_unknown_key_creates_no_row_and_forgets_the_key() -> None:
    session = SessionStore("x" * 32)
    assert session.load() == {}
    assert session.session_key is None
    assert not Session.objects.exists()


def test_an_overlong_key_is_refused_before_any_query(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with django_assert_num_queries(0):
        assert SessionStore("k" * 5000).load() == {}


@pytest.mark.django_db(transaction=True)
def test_creating_a_session_is_one_insert(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    session = SessionStore()
    session["a"] = 1
    with django_assert_num_queries(1):
        session.save()


def test_load_modify_save_is_one_select_and_one_update(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    session = SessionStore()
    session["a"] = 1
    session.save()
    with django_assert_num_queries(2):
        again = SessionStore(session.session_key)
        again["b"] = 2
        again.save()


def test_an_expired_row_is_not_revived_by_a_late_save() -> None:
    from django.contrib.sessions.backends.base import UpdateError

    session = SessionStore()
    session["a"] = 1
    session.save()
    late = SessionStore(session.session_key)
    assert late["a"] == 1
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    late["a"] = 2
    with pytest.raises(UpdateError):
        late.save()



def test_reads_follow_a_change_of_use_tz() -> None:
    """The compiled statements convert as the ORM does under the settings of the moment."""
    session = SessionStore()
    session["a"] = 1
    session.save()
    assert session.session_key is not None
    key_digest = hashlib.sha256(session.session_key.encode()).hexdigest()
    store = SessionStore.get_store()
    record = store.get(key_digest)
    assert record is not None
    assert timezone.is_aware(record.expires_at)
    with override_settings(USE_TZ=False):
        record = store.get(key_digest)
        assert record is not None
        assert timezone.is_naive(record.expires_at)
        assert record.expires_at > timezone.now()
