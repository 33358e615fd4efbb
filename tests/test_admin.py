"""The session admin: read-only, filterable, searchable, and able to revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from hybrid_sessions.backends.db import SessionStore
from hybrid_sessions.models import Session

CHANGELIST = reverse("admin:hybrid_sessions_session_changelist")


def change_url(session: SessionStore) -> str:
    return reverse("admin:hybrid_sessions_session_change", args=[session.session_digest])


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="x")


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


def stored(user: User | None = None, **data: Any) -> SessionStore:
    with override_settings(
        HYBRID_SESSIONS_TRACK_IP_ADDRESS=True, HYBRID_SESSIONS_TRACK_USER_AGENT=True
    ):
        session = SessionStore(ip_address="203.0.113.7", user_agent="Firefox/140")
        if user is not None:
            session["_auth_user_id"] = str(user.pk)
        session.update(data)
        session.save()
    return session


def expire(session: SessionStore) -> None:
    Session.objects.filter(pk=session.session_digest).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )


def listed(client: Client, **params: str) -> set[str]:
    """The digests the changelist shows, but the admin's own session's."""
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list if not is_admins(obj)}


def is_admins(row: Session) -> bool:
    return row.user is not None and row.user.get_username() == "root"


def test_the_list_shows_every_column(admin_client: Client, alice: User) -> None:
    session = stored(alice, note="hello")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    body = response.content.decode()
    assert session.session_digest[:12] in body  # type: ignore[index]
    assert "alice" in body
    assert "203.0.113.7" in body
    assert "Firefox/140" in body
    (row,) = [r for r in response.context["cl"].result_list if not is_admins(r)]
    assert row._data_size == len(Session.objects.get(pk=row.pk).data)


def test_the_list_never_shows_a_session_key(admin_client: Client, alice: User) -> None:
    session = stored(alice)
    assert session.session_key not in admin_client.get(CHANGELIST).content.decode()
    assert session.session_key not in admin_client.get(change_url(session)).content.decode()


def test_the_list_does_not_load_session_data(admin_client: Client, alice: User) -> None:
    stored(alice, blob="x" * 1000)
    rows = admin_client.get(CHANGELIST).context["cl"].result_list
    assert all("data" in row.get_deferred_fields() for row in rows)


def test_filter_by_status(admin_client: Client, alice: User) -> None:
    live = stored(alice)
    old = stored(alice)
    expire(old)
    assert listed(admin_client, active="yes") == {live.session_digest}
    assert listed(admin_client, active="no") == {old.session_digest}
    assert listed(admin_client) == {live.session_digest, old.session_digest}


def test_filter_by_data_on_the_server(admin_client: Client, alice: User) -> None:
    with_data = stored(alice)
    record_only = stored(alice)
    Session.objects.filter(pk=record_only.session_digest).update(data=None)
    assert listed(admin_client, has_data="yes") == {with_data.session_digest}
    assert listed(admin_client, has_data="no") == {record_only.session_digest}


def test_search_by_username(admin_client: Client, alice: User, bob: User) -> None:
    alices = stored(alice)
    stored(bob)
    stored()
    assert listed(admin_client, q="alic") == {alices.session_digest}


def test_the_detail_page_shows_decoded_data_read_only(admin_client: Client, alice: User) -> None:
    session = stored(alice, cart=["apple", "<script>"])
    response = admin_client.get(change_url(session))
    assert response.status_code == 200
    body = response.content.decode()
    assert "&quot;apple&quot;" in body
    assert "&lt;script&gt;" in body
    assert "<script>\"" not in body
    assert 'name="_save"' not in body
    assert 'name="user_agent"' not in body


def test_the_detail_page_of_a_record_without_data_says_so(
    admin_client: Client, alice: User
) -> None:
    session = stored(alice)
    Session.objects.filter(pk=session.session_digest).update(data=None)
    assert "kept in the cookie" in admin_client.get(change_url(session)).content.decode()


def test_the_detail_page_survives_undecodable_data(admin_client: Client, alice: User) -> None:
    session = stored(alice)
    Session.objects.filter(pk=session.session_digest).update(data=b"\xff not json")
    response = admin_client.get(change_url(session))
    assert response.status_code == 200
    assert "Could not be decoded" in response.content.decode()


def test_sessions_cannot_be_added_or_edited(admin_client: Client, alice: User) -> None:
    session = stored(alice)
    assert admin_client.get(reverse("admin:hybrid_sessions_session_add")).status_code == 403
    response = admin_client.post(change_url(session), {"user_agent": "edited"})
    assert response.status_code == 403
    assert Session.objects.get(pk=session.session_digest).user_agent == "Firefox/140"


def test_revoke_selected_sessions(admin_client: Client, alice: User, bob: User) -> None:
    first, second = stored(alice), stored(alice)
    kept = stored(bob)
    response = admin_client.post(
        CHANGELIST,
        {
            "action": "revoke_sessions",
            "_selected_action": [first.session_digest, second.session_digest],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 2 sessions." in response.content.decode()
    assert set(Session.objects.exclude(user__username="root").values_list("pk", flat=True)) == {
        kept.session_digest
    }
    assert SessionStore(first.session_key).load() == {}


def test_only_the_revoke_action_is_offered(admin_client: Client, alice: User) -> None:
    stored(alice)
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert [name for name, _label in actions if name] == ["revoke_sessions"]


def test_staff_without_permissions_see_nothing(db: Any, alice: User) -> None:
    session = stored(alice)
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(session)).status_code == 403


def test_view_permission_cannot_revoke(db: Any, alice: User) -> None:
    session = stored(alice)
    staff = User.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_session",
                                                      content_type__app_label="hybrid_sessions"))
    client = Client()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 200
    client.post(CHANGELIST, {"action": "revoke_sessions",
                             "_selected_action": [session.session_digest]})
    assert Session.objects.filter(pk=session.session_digest).exists()
