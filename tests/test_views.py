"""The "your sessions" page (``hybrid_sessions.urls``), through the full middleware stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import include, path

from hybrid_sessions import api
from tests.engines import ENGINES, Engine

urlpatterns = [path("account/sessions/", include("hybrid_sessions.urls"))]

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
PAGE = "/account/sessions/"
REVOKE = "/account/sessions/revoke/"
REVOKE_OTHERS = "/account/sessions/revoke-others/"
MIDDLEWARE = [
    "hybrid_sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(
        SESSION_ENGINE=eng.path,
        ROOT_URLCONF=__name__,
        MIDDLEWARE=MIDDLEWARE,
        # The hybrid engine trusts a fresh cookie for this long; check revocation at once.
        **{"HYBRID_SESSIONS_REVALIDATE_SECONDS": 0, **eng.settings},
    ):
        yield eng


@pytest.fixture
def alice(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password")


def device(user: User, agent: str = "Browser/1") -> Client:
    """A browser signed in as ``user``, sending CSRF tokens like a real one."""
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=agent)
    client.force_login(user)
    return client


def post(client: Client, url: str, data: dict[str, str] | None = None) -> Any:
    """Submit a form of the page as a browser would: token from the page's cookie."""
    client.get(PAGE)
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


def page_rows(client: Client) -> list[dict[str, Any]]:
    response = client.get(PAGE)
    assert response.status_code == 200
    rows: list[dict[str, Any]] = response.context["sessions"]
    return rows


def test_the_page_lists_the_users_sessions_and_marks_this_one(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)
    rows = page_rows(laptop)

    assert len(rows) == 2
    (current,) = [row for row in rows if row["is_current"]]
    assert current["info"].digest == api.current_digest(_request_for(engine, laptop))
    assert [row["is_current"] for row in page_rows(phone)].count(True) == 1
    body = laptop.get(PAGE).content.decode()
    assert "This device" in body
    assert laptop.cookies["sessionid"].value not in body


def test_the_page_shows_nothing_of_other_users(engine: Engine, alice: User) -> None:
    device(User.objects.create_user("bob", password="x"))
    assert len(page_rows(device(alice))) == 1


def test_the_page_is_not_cached(engine: Engine, alice: User) -> None:
    assert "no-store" in device(alice).get(PAGE)["Cache-Control"]


def test_anonymous_visitors_are_sent_to_log_in(engine: Engine) -> None:
    for response in (
        Client().get(PAGE),
        Client().post(REVOKE, {"digest": "a" * 64}),
        Client().post(REVOKE_OTHERS),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_end_one_other_session(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)
    phones = _digest(engine, phone)

    response = post(laptop, REVOKE, {"digest": phones})

    assert response.status_code == 302
    assert response["Location"] == PAGE
    remaining = page_rows(laptop)
    assert [row["is_current"] for row in remaining] == [True]
    assert phones not in {row["info"].digest for row in remaining}
    assert phone.get(PAGE).status_code == 302  # the phone is logged out


def test_ending_this_session_logs_out(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)

    response = post(laptop, REVOKE, {"digest": _digest(engine, laptop)})

    assert response.status_code == 302
    assert laptop.get(PAGE).status_code == 302
    assert len(page_rows(phone)) == 1


def test_another_users_session_cannot_be_ended(engine: Engine, alice: User) -> None:
    bob = device(User.objects.create_user("bob", password="x"))
    bobs = _digest(engine, bob)

    response = post(device(alice), REVOKE, {"digest": bobs})

    assert response.status_code == 302
    assert len(page_rows(bob)) == 1


def test_end_every_other_session(engine: Engine, alice: User) -> None:
    laptop = device(alice)
    others = [device(alice) for _ in range(3)]

    post(laptop, REVOKE_OTHERS)

    rows = page_rows(laptop)
    assert [row["is_current"] for row in rows] == [True]
    assert all(other.get(PAGE).status_code == 302 for other in others)


def test_changes_need_a_csrf_token(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)
    assert laptop.post(REVOKE, {"digest": _digest(engine, phone)}).status_code == 403
    assert laptop.post(REVOKE_OTHERS).status_code == 403
    assert len(page_rows(laptop)) == 2


@override_settings(MIDDLEWARE=MIDDLEWARE[:1] + MIDDLEWARE[2:])
def test_csrf_is_enforced_even_without_the_csrf_middleware(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)
    assert laptop.post(REVOKE, {"digest": _digest(engine, phone)}).status_code == 403
    assert len(page_rows(laptop)) == 2


def test_changes_need_post(engine: Engine, alice: User) -> None:
    laptop = device(alice)
    assert laptop.get(REVOKE, {"digest": _digest(engine, laptop)}).status_code == 405
    assert laptop.get(REVOKE_OTHERS).status_code == 405
    assert post(laptop, PAGE).status_code == 405


@override_settings(
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    ROOT_URLCONF=__name__,
    MIDDLEWARE=MIDDLEWARE,
)
def test_a_cookie_only_engine_gets_an_explanation(alice: User) -> None:
    laptop = device(alice)
    response = laptop.get(PAGE)
    assert response.status_code == 200
    assert "cannot be listed" in response.content.decode()
    lenient = Client()
    lenient.force_login(alice)
    assert lenient.post(REVOKE_OTHERS).status_code == 302
    assert lenient.post(REVOKE, {"digest": "a" * 64}).status_code == 302


# -- helpers -------------------------------------------------------------------------------


def _request_for(engine: Engine, client: Client) -> Any:
    """Enough of a request for ``api.current_digest``: the session behind a client's cookie."""
    return SimpleNamespace(session=engine.store(client.cookies["sessionid"].value))


def _digest(engine: Engine, client: Client) -> str:
    value = api.current_digest(_request_for(engine, client))
    assert value is not None
    return value


# -- what people read ----------------------------------------------------------------------

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
TRACKING = {"HYBRID_SESSIONS_TRACK_IP_ADDRESS": True, "HYBRID_SESSIONS_TRACK_USER_AGENT": True}
SITE_TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(Path(__file__).parent / "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def signed_in_from(engine: Engine, user: User, agent: str) -> Client:
    """A browser whose session was saved by a request from ``agent``, as a login leaves it."""
    with override_settings(**TRACKING):
        session = engine.store(ip_address="198.51.100.9", user_agent=agent)
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.save()
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=agent)
    client.cookies["sessionid"] = session.session_key
    return client


def test_devices_are_named_from_their_user_agent(engine: Engine, alice: User) -> None:
    laptop = signed_in_from(engine, alice, FIREFOX)
    signed_in_from(engine, alice, IPHONE)
    body = laptop.get(PAGE).content.decode()
    assert "Firefox 140.0 on Windows 10" in body
    assert "Mobile Safari 17.5 on iOS 17.5" in body
    assert f">{FIREFOX}<" not in body  # the raw string is only a tooltip
    assert f'title="{FIREFOX}"' in body


def test_this_device_comes_first_and_times_are_relative(engine: Engine, alice: User) -> None:
    laptop = device(alice)
    others = [device(alice) for _ in range(2)]
    for other in others:
        other.get(PAGE)  # more recently active than the laptop
    rows = page_rows(laptop)
    assert [row["is_current"] for row in rows] == [True, False, False]
    body = laptop.get(PAGE).content.decode()
    assert body.index("This device") < body.index("End session")
    assert "just now" in body  # relative, not "0 minutes ago"
    assert "in 1\xa0week" in body or "in 2\xa0weeks" in body  # SESSION_COOKIE_AGE


def test_actions_are_confirmed_with_a_message(engine: Engine, alice: User) -> None:
    laptop, phone, tablet = device(alice), device(alice), device(alice)
    phones = _digest(engine, phone)
    post(laptop, REVOKE, {"digest": phones})
    assert "The session was ended." in laptop.get(PAGE).content.decode()
    post(laptop, REVOKE, {"digest": phones})
    assert "no longer exists or is not yours" in laptop.get(PAGE).content.decode()
    post(laptop, REVOKE_OTHERS)
    assert "1 other session was ended." in laptop.get(PAGE).content.decode()
    assert tablet.get(PAGE).status_code == 302


@override_settings(TEMPLATES=SITE_TEMPLATES, HYBRID_SESSIONS_BASE_TEMPLATE="site/layout.html")
def test_the_page_extends_the_base_template_the_site_names(engine: Engine, alice: User) -> None:
    laptop, phone = device(alice), device(alice)
    post(laptop, REVOKE, {"digest": _digest(engine, phone)})
    body = laptop.get(PAGE).content.decode()
    assert '<nav id="site-menu">' in body
    assert "Your sessions | Example site" in body
    assert '<p class="site-message">The session was ended.</p>' in body


def test_without_a_site_base_template_the_page_stands_alone(engine: Engine, alice: User) -> None:
    body = device(alice).get(PAGE).content.decode()  # the tests have no base.html
    assert body.startswith("<!DOCTYPE html>")
    assert "Your sessions" in body
