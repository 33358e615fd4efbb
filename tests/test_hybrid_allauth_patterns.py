"""What third-party apps (django-allauth, for one) do with sessions, with Django alone.

django-allauth's own test suite runs with the hybrid engine; these are the
patterns behind it that the engine must keep working: session keys kept in a
table of the app's own (a 40-character column) to list a user's sessions and
end the others, and Django's test-client edit-and-save.
"""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client

from hybrid_sessions.backends.hybrid import SessionStore

from .test_hybrid_engine import COOKIE, Spill
from .test_hybrid_engine import alice as alice
from .test_hybrid_engine import spill as spill


def test_keys_kept_by_an_app_list_every_browser_and_end_exactly_the_others(
    spill: Spill, alice: User
) -> None:
    """django-allauth's ``usersessions``: its own table of session keys (40 characters)."""
    browsers = [Client(), Client(), Client()]
    table: dict[str, str] = {}  # session_key -> browser, as an app's model would hold it
    for number, browser in enumerate(browsers):
        browser.force_login(alice)
        browser.get("/set/?x=1")  # a save: the key must not change
        request_session = browser.get("/get/?key=x").wsgi_request.session
        key = request_session.session_key
        assert key is not None
        assert len(key) <= 40
        assert browser.cookies[COOKIE].value != key  # the browser holds the signed copy
        table[key] = f"browser {number}"
    assert len(table) == 3
    for key in table:  # listing: each key still names a live session of the user
        assert SessionStore().exists(key)
        assert SessionStore(key)[SESSION_KEY] == str(alice.pk)
    current = browsers[0].get("/get/?key=x").wsgi_request.session.session_key
    for key in [k for k in table if k != current]:  # "sign out the others"
        SessionStore().delete(key)
    assert [k for k in table if SessionStore().exists(k)] == [current]
    assert browsers[0].get("/whoami/").content == alice.username.encode()
    for browser in browsers[1:]:
        assert browser.get("/whoami/").content == b""
        assert browser.post("/whoami/").content == b""


def test_the_test_clients_edit_and_save_is_seen_by_the_next_request(
    spill: Spill, alice: User
) -> None:
    """Django's documented ``s = client.session; s[k] = v; s.save()``, after the login cookie."""
    client = Client()
    client.force_login(alice)
    for value in ("1", "2", "3"):
        session = client.session
        session["x"] = value
        session.save()
        assert client.get("/get/?key=x").json() == {"value": value}
        assert client.session["x"] == value
        assert client.get("/whoami/").content == alice.username.encode()

