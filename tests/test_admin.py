"""The session admin, over the store of every server-side engine (database and Redis).

Sessions are made through each engine's ``SessionStore`` as a browser's
requests would leave them; the admin is driven through Django's test client.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from hybrid_sessions import api
from hybrid_sessions.models import Session
from hybrid_sessions.stores.base import SessionMeta
from hybrid_sessions.stores.database import DatabaseStore
from tests.engines import ENGINES, Engine, saved_digest

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
DB_ENGINES = [e for e in SERVER_ENGINES if not e.needs_redis]
HYBRID_ENGINES = [e for e in SERVER_ENGINES if e.path.endswith("hybrid")]
CHANGELIST = reverse("admin:hybrid_sessions_session_changelist")
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
TRACKING = {"HYBRID_SESSIONS_TRACK_IP_ADDRESS": True, "HYBRID_SESSIONS_TRACK_USER_AGENT": True}


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **TRACKING, **eng.settings):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="x")


@pytest.fixture
def bob(db: Any) -> User:
    return User.objects.create_user("bob", password="x")


@pytest.fixture
def root(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "x")


@pytest.fixture
def admin_client(engine: Engine, root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def stored(engine: Engine, user: User | None = None, agent: str = FIREFOX, **data: Any) -> str:
    """A saved session, as a browser's request leaves it; returns its digest."""
    session: SessionBase = engine.store(ip_address="203.0.113.7", user_agent=agent)
    if user is not None:
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
    session.update(data)
    session.save()
    return saved_digest(session)


def listed(client: Client, **params: str) -> set[str]:
    """The digests the list shows, but the admin's own session's."""
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return {
        row["info"].digest
        for row in response.context["rows"]
        if row["user"] is None or row["user"].get_username() != "root"
    }


def detail(digest: str) -> str:
    return reverse("admin:hybrid_sessions_session_change", args=[digest])


def revoke_url(digest: str) -> str:
    return reverse("admin:hybrid_sessions_session_delete", args=[digest])


def logout_url(user: User) -> str:
    return reverse("admin:hybrid_sessions_session_logout_user", args=[user.pk])


# -- the list ---------------------------------------------------------------------------


def test_the_list_shows_every_column(engine: Engine, admin_client: Client, alice: User) -> None:
    digest = stored(engine, alice, note="hello")
    body = admin_client.get(CHANGELIST).content.decode()
    assert digest[:10] in body
    assert "alice" in body
    assert "203.0.113.7" in body
    assert "Firefox 140.0 on Windows 10" in body
    assert "Signed in" in body
    for header in ("Last activity", "Created", "Expires", "Data", "IP address", "Device"):
        assert f"<span>{header}</span>" in body


def test_the_list_shows_sessions_of_the_active_engines_store_only(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    """A leftover database row is not a session of a Redis engine, and is not listed."""
    digest = stored(engine, alice)
    leftover = "f" * 64
    DatabaseStore().create(leftover, b"{}", SessionMeta(timezone.now() + timedelta(hours=1)))
    shown = listed(admin_client)
    assert digest in shown
    assert (leftover in shown) == (not engine.needs_redis)


def test_the_list_never_shows_a_session_key(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    session: SessionBase = engine.store()
    session["_auth_user_id"] = str(alice.pk)
    session.save()
    digest = saved_digest(session)
    assert session.session_key
    assert session.session_key not in admin_client.get(CHANGELIST).content.decode()
    assert session.session_key not in admin_client.get(detail(digest)).content.decode()


def test_the_size_and_where_the_data_lives(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    """The server holds every session; a small hybrid one also rides in its cookie."""
    small = stored(engine, alice)
    (row,) = [r for r in admin_client.get(CHANGELIST).context["rows"] if r["info"].digest == small]
    assert row["size"] > 0
    assert row["storage"] == ("cookie" if engine.path.endswith("hybrid") else "server")


def test_filter_by_state(engine: Engine, admin_client: Client, alice: User) -> None:
    signed_in = stored(engine, alice)
    anonymous = stored(engine, cart=[1])
    assert listed(admin_client, state="signed_in") == {signed_in}
    assert listed(admin_client, state="anonymous") == {anonymous}
    assert listed(admin_client) == {signed_in, anonymous}
    assert listed(admin_client, state="expired") == set()


@pytest.mark.parametrize("engine", DB_ENGINES, ids=[e.name for e in DB_ENGINES], indirect=True)
def test_expired_rows_of_the_database_have_their_own_filter(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    live, old = stored(engine, alice), stored(engine, alice)
    Session.objects.filter(pk=old).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert listed(admin_client, state="expired") == {old}
    assert listed(admin_client) == {live, old}
    assert "Expired" in admin_client.get(CHANGELIST, {"state": "expired"}).content.decode()


def test_filter_by_where_the_data_lives(engine: Engine, admin_client: Client, alice: User) -> None:
    small = stored(engine, alice)
    large = stored(engine, alice, blob=secrets.token_hex(2500))  # incompressible
    if engine.path.endswith("hybrid"):
        assert listed(admin_client, storage="cookie") == {small}
        assert listed(admin_client, storage="server") == {large}
    else:
        assert listed(admin_client, storage="cookie") == set()
        assert listed(admin_client, storage="server") == {small, large}


def test_search_by_username(engine: Engine, admin_client: Client, alice: User, bob: User) -> None:
    alices = stored(engine, alice)
    stored(engine, bob)
    stored(engine, cart=[1])
    assert listed(admin_client, q="alic") == {alices}
    assert listed(admin_client, q="nobody") == set()


def test_pages_follow_a_cursor(engine: Engine, admin_client: Client, alice: User) -> None:
    from hybrid_sessions import admin as session_admin

    made = {stored(engine, alice) for _ in range(5)}
    original, session_admin.PAGE_SIZE = session_admin.PAGE_SIZE, 2
    try:
        seen: set[str] = set()
        params = {"state": "signed_in", "q": "alice"}
        for _ in range(10):
            response = admin_client.get(CHANGELIST, params)
            seen |= {row["info"].digest for row in response.context["rows"]}
            next_page = response.context["next_page"]
            if next_page is None:
                break
            params = dict(parse_qsl(next_page.lstrip("?")))
            assert params["q"] == "alice"
    finally:
        session_admin.PAGE_SIZE = original
    assert seen == made


def test_a_bad_cursor_starts_again(engine: Engine, admin_client: Client, alice: User) -> None:
    digest = stored(engine, alice)
    assert digest in listed(admin_client, cursor="../../etc")


# -- one session ------------------------------------------------------------------------


def test_the_detail_page_shows_data_as_a_table_with_secrets_masked(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    digest = stored(
        engine, alice, cart=["apple", "<script>"], api_token="tok-123",
        profile={"name": "Alice", "password": "hunter2"}, blob=secrets.token_hex(2500),
    )
    response = admin_client.get(detail(digest))
    assert response.status_code == 200
    items = {key: (value, masked) for key, value, masked in response.context["items"]}
    assert items["_auth_user_hash"][1]
    assert items["api_token"] == ("********************", True)
    assert items["_auth_user_id"] == (str(alice.pk), False)
    assert "hunter2" not in items["profile"][0]
    assert "Alice" in items["profile"][0]
    body = response.content.decode()
    assert alice.get_session_auth_hash() not in body
    assert "tok-123" not in body
    assert "hunter2" not in body
    assert "&quot;apple&quot;" in body
    assert "&lt;script&gt;" in body
    assert "<script>\"" not in body
    assert 'name="_save"' not in body


def test_the_masked_keys_are_configurable(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    digest = stored(engine, alice, blob=secrets.token_hex(2500), favourite="tea", api_token="x")
    with override_settings(HYBRID_SESSIONS_ADMIN_MASKED_KEYS=r"^favourite$"):
        items = {k: m for k, _v, m in admin_client.get(detail(digest)).context["items"]}
    assert items["favourite"]
    assert not items["api_token"]
    assert items["_auth_user_hash"]  # always


@pytest.mark.parametrize(
    "engine", HYBRID_ENGINES, ids=[e.name for e in HYBRID_ENGINES], indirect=True
)
def test_the_detail_page_of_a_small_hybrid_session_shows_its_data_and_its_cookie_copy(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    digest = stored(engine, alice, note="also-in-the-cookie")
    body = admin_client.get(detail(digest)).content.decode()
    assert "also-in-the-cookie" in body  # the server holds every session
    assert "signed copy" in body


@pytest.mark.parametrize("engine", DB_ENGINES[:1], ids=["db"], indirect=True)
def test_the_detail_page_survives_undecodable_data(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    digest = stored(engine, alice)
    Session.objects.filter(pk=digest).update(data=b"\xff not json")
    response = admin_client.get(detail(digest))
    assert response.status_code == 200
    assert "Could not be decoded" in response.content.decode()


def test_an_unknown_session_leads_back_to_the_list(engine: Engine, admin_client: Client) -> None:
    for value in ("0" * 64, "not-a-digest"):
        response = admin_client.get(detail(value))
        assert response.status_code == 302
        assert response["Location"] == CHANGELIST


def test_sessions_cannot_be_added_or_edited(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    digest = stored(engine, alice)
    assert admin_client.get(reverse("admin:hybrid_sessions_session_add")).status_code == 403
    assert admin_client.post(detail(digest), {"user_agent": "edited"}).status_code == 403


# -- ending sessions --------------------------------------------------------------------


def test_revoke_from_the_admin_makes_the_browsers_next_request_anonymous(
    engine: Engine, admin_client: Client, alice: User
) -> None:
    browser = Client()
    browser.force_login(alice)
    assert browser.get("/whoami/").content == b"alice"
    (info,) = api.list_sessions(alice)

    assert admin_client.get(revoke_url(info.digest)).status_code == 200  # the confirmation
    assert browser.get("/whoami/").content == b"alice"
    response = admin_client.post(revoke_url(info.digest), follow=True)

    assert "The session was revoked." in response.content.decode()
    assert browser.get("/whoami/").content == b""
    assert api.list_sessions(alice) == []


def test_revoke_selected_sessions(
    engine: Engine, admin_client: Client, alice: User, bob: User
) -> None:
    first, second = stored(engine, alice), stored(engine, alice)
    kept = stored(engine, bob)
    response = admin_client.post(
        CHANGELIST, {"action": "revoke_sessions", "_selected_action": [first, second]},
        follow=True,
    )
    assert "Revoked 2 sessions." in response.content.decode()
    assert listed(admin_client) == {kept}


def test_log_the_selected_sessions_users_out_everywhere(
    engine: Engine, admin_client: Client, alice: User, bob: User
) -> None:
    one_of_alices = stored(engine, alice)
    stored(engine, alice)
    bobs = stored(engine, bob)
    response = admin_client.post(
        CHANGELIST, {"action": "logout_users", "_selected_action": [one_of_alices]}, follow=True
    )
    assert "Logged out everywhere: alice (2 sessions ended)." in response.content.decode()
    assert listed(admin_client) == {bobs}


def test_log_a_user_out_everywhere_after_confirming(
    engine: Engine, admin_client: Client, alice: User, bob: User
) -> None:
    stored(engine, alice), stored(engine, alice)
    bobs = stored(engine, bob)
    page = admin_client.get(logout_url(alice))
    assert "End all 2 live sessions of alice?" in page.content.decode()
    response = admin_client.post(logout_url(alice), {"next": "https://evil.example/"})
    assert response["Location"] == CHANGELIST  # never off the site
    assert api.list_sessions(alice) == []
    assert listed(admin_client) == {bobs}


# -- permissions ------------------------------------------------------------------------


def staff_with(*codenames: str) -> Client:
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    for codename in codenames:
        staff.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="hybrid_sessions")
        )
    client = Client()
    client.force_login(staff)
    return client


def test_staff_without_permissions_see_nothing(engine: Engine, alice: User) -> None:
    digest = stored(engine, alice)
    client = staff_with()
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(detail(digest)).status_code == 403


def test_the_view_permission_cannot_end_sessions(engine: Engine, alice: User) -> None:
    digest = stored(engine, alice)
    client = staff_with("view_session")
    assert client.get(CHANGELIST).status_code == 200
    assert "Revoke this session" not in client.get(detail(digest)).content.decode()
    action = {"action": "revoke_sessions", "_selected_action": [digest]}
    assert client.post(CHANGELIST, action).status_code == 403
    assert client.post(revoke_url(digest)).status_code == 403
    assert client.post(logout_url(alice)).status_code == 403
    assert len(api.list_sessions(alice)) == 1


# -- the user's own admin page ----------------------------------------------------------


def user_page(user: User) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def test_the_users_page_lists_their_sessions_with_a_log_out_button(
    engine: Engine, admin_client: Client, alice: User, bob: User
) -> None:
    alices = stored(engine, alice, agent=IPHONE)
    bobs = stored(engine, bob)
    body = admin_client.get(user_page(alice)).content.decode()
    assert alices[:10] in body
    assert bobs[:10] not in body
    assert "Mobile Safari 17.5 on iOS 17.5" in body
    assert logout_url(alice) + "?next=" + user_page(alice) in body


def test_the_users_page_hides_sessions_from_staff_without_the_permission(
    engine: Engine, alice: User
) -> None:
    stored(engine, alice)
    client = staff_with()
    staff = User.objects.get(username="staff")
    for codename in ("view_user", "change_user"):
        staff.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="auth")
        )
    body = client.get(user_page(alice)).content.decode()
    assert "Live sessions" not in body
    client = Client()
    staff.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="hybrid_sessions")
    )
    client.force_login(User.objects.get(pk=staff.pk))
    body = client.get(user_page(alice)).content.decode()
    assert "Live sessions" in body
    assert "Log out everywhere" not in body
