"""The signed-cookie engine through the full middleware stack, as a browser meets it."""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import jwt
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.backends import signed_cookies as django_signed_cookies
from django.contrib.sessions.backends.base import SessionBase
from django.core import checks
from django.test import Client, override_settings

from hybrid_sessions.backends.signed_cookies import PURPOSE_PREFIX, SessionStore
from hybrid_sessions.checks import check_settings
from hybrid_sessions.cookies import set_cookie_size
from hybrid_sessions.exceptions import CookieTooLarge
from hybrid_sessions.tokens import TokenCodec
from tests.hostile_tokens import HOSTILE_NAMES, hostile_tokens, unb64

ENGINE = "hybrid_sessions.backends.signed_cookies"
COOKIE = "sessionid"
PURPOSE = PURPOSE_PREFIX + COOKIE
SECURITY_LOGGER = "django.security.SuspiciousSession"
OLD_KEY = "old-secret-" + "o" * 50
NEW_KEY = "new-secret-" + "n" * 50

pytestmark = pytest.mark.usefixtures("signed_cookie_engine")


@pytest.fixture
def signed_cookie_engine() -> Any:
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_COOKIE_NAME=COOKIE):
        yield


def client_with(token: str) -> Client:
    client = Client()
    client.cookies[COOKIE] = token
    return client


def cookie_of(client: Client) -> str:
    return client.cookies[COOKIE].value


def token_of(session: SessionBase) -> str:
    """The cookie of a saved signed-cookie session: its session key is the token itself."""
    assert session.session_key is not None
    return session.session_key


def claims_of(token: str) -> dict[str, Any]:
    return TokenCodec(PURPOSE).decode(token).__dict__


def security_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SECURITY_LOGGER]


# -- the round trip ---------------------------------------------------------------------


def test_data_written_in_one_request_is_read_in_the_next_and_lives_in_the_cookie() -> None:
    client = Client()
    assert client.get("/write/", {"colour": "blue"}).json() == {"colour": "blue"}
    assert client.get("/read/").json() == {"colour": "blue"}
    assert claims_of(cookie_of(client))["payload"] == {"colour": "blue"}


def test_a_request_that_only_reads_does_not_set_the_cookie_again() -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    assert COOKIE not in client.get("/read/").cookies


def test_the_emitted_cookie_is_exactly_as_large_as_the_budget_check_computes() -> None:
    client = Client()
    response = client.get("/write/", {"a": "x" * 300})
    morsel = response.cookies[COOKIE]
    computed = set_cookie_size(COOKIE, morsel.value, max_age=int(morsel["max-age"]))
    assert computed == len(morsel.OutputString().encode())


# -- hostile cookies ---------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_cookie_reads_as_an_empty_session_is_logged_and_deleted(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = hostile_tokens(PURPOSE)[name]
    with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
        response = client_with(token).get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    if token:
        assert len(security_records(caplog)) == 1
        assert token not in caplog.text
        # The middleware removes the cookie it could not use.
        assert response.cookies[COOKIE].value == ""
        assert response.cookies[COOKIE]["max-age"] == 0


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_writing_under_a_hostile_cookie_starts_a_fresh_session(name: str) -> None:
    client = client_with(hostile_tokens(PURPOSE)[name])
    response = client.get("/write/", {"a": "1"})
    assert response.status_code == 200
    assert response.json() == {"a": "1"}
    assert claims_of(cookie_of(client))["payload"] == {"a": "1"}


def test_an_expired_cookie_is_logged_at_info_and_anything_else_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = hostile_tokens(PURPOSE)
    with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
        client_with(hostile["expired"]).get("/read/")
        client_with(hostile["alg-none"]).get("/read/")
    assert [(r.levelno, "Expired" in r.getMessage()) for r in security_records(caplog)] == [
        (logging.INFO, True),
        (logging.WARNING, False),
    ]


def test_a_cookie_of_djangos_own_signed_cookies_engine_reads_as_empty() -> None:
    django_session = django_signed_cookies.SessionStore()
    django_session["user"] = "42"
    django_session.save()
    response = client_with(token_of(django_session)).get("/read/")
    assert (response.status_code, response.json()) == (200, {})


# -- purpose binding ---------------------------------------------------------------------


def test_a_token_minted_for_another_purpose_reads_as_empty() -> None:
    token = TokenCodec("hybrid_sessions.hybrid:" + COOKIE).encode({"user": "42"}, expires_at=None)
    assert client_with(token).get("/read/").json() == {}


def test_a_token_minted_for_another_cookie_name_reads_as_empty() -> None:
    client = Client()
    client.get("/write/", {"user": "42"})
    token = cookie_of(client)
    with override_settings(SESSION_COOKIE_NAME="othersession"):
        other = Client()
        other.cookies["othersession"] = token
        assert other.get("/read/").json() == {}


# -- expiry ------------------------------------------------------------------------------


def test_the_token_expiry_follows_the_default_cookie_age() -> None:
    client = Client()
    response = client.get("/write/", {"a": "1"})
    decoded = claims_of(cookie_of(client))
    assert decoded["expires_at"] - decoded["issued_at"] in (
        settings.SESSION_COOKIE_AGE,
        settings.SESSION_COOKIE_AGE + 1,
    )
    assert int(response.cookies[COOKIE]["max-age"]) == settings.SESSION_COOKIE_AGE


class OneHourSessions(SessionStore):
    def get_session_cookie_age(self) -> int:
        return 3600


def test_the_token_expiry_follows_an_engine_that_overrides_get_session_cookie_age() -> None:
    """Django's hook for a custom engine's default age: its own cookie engine honours it."""
    session = OneHourSessions()
    session["a"] = 1
    before = int(time.time())
    session.save()
    assert session.get_expiry_age() == 3600
    assert claims_of(token_of(session))["expires_at"] - before in (3600, 3601)


def test_lowering_session_cookie_age_ends_cookies_already_issued(settings: Any) -> None:
    """As with Django's engine: a site shortens SESSION_COOKIE_AGE to end old sessions."""
    session = SessionStore()
    session["a"] = 1
    session.save()
    token = session.session_key
    with mock.patch("time.time", return_value=time.time() + 600):
        assert SessionStore(token).load() == {"a": 1}
        settings.SESSION_COOKIE_AGE = 300
        assert SessionStore(token).load() == {}


def test_an_explicit_expiry_is_not_cut_short_by_the_cookie_age(settings: Any) -> None:
    session = SessionStore()
    session["a"] = 1
    session.set_expiry(3600)
    session.save()
    settings.SESSION_COOKIE_AGE = 300
    with mock.patch("time.time", return_value=time.time() + 600):
        assert SessionStore(session.session_key).load()["a"] == 1


@pytest.mark.parametrize("expiry", [60, timedelta(minutes=5)])
def test_set_expiry_with_a_duration_sets_exp(expiry: int | timedelta) -> None:
    session = SessionStore()
    session["a"] = 1
    session.set_expiry(expiry)
    before = int(time.time())
    session.save()
    seconds = expiry if isinstance(expiry, int) else int(expiry.total_seconds())
    assert claims_of(token_of(session))["expires_at"] - before in (seconds, seconds + 1)


def test_set_expiry_with_a_date_sets_exp_to_that_date() -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    session = SessionStore()
    session.set_expiry(when)
    session.save()
    assert claims_of(token_of(session))["expires_at"] == int(when.timestamp())


def test_a_session_past_its_set_expiry_reads_as_empty_through_the_middleware() -> None:
    session = SessionStore()
    session["user"] = "42"
    session.set_expiry(60)
    session.save()
    assert client_with(token_of(session)).get("/read/").json()["user"] == "42"
    session.set_expiry(-1)
    session.save()
    assert client_with(token_of(session)).get("/read/").json() == {}


def test_a_browser_session_cookie_still_carries_an_exp_of_the_cookie_age() -> None:
    session = SessionStore()
    session.set_expiry(0)
    before = int(time.time())
    session.save()
    assert claims_of(token_of(session))["expires_at"] - before in (
        settings.SESSION_COOKIE_AGE,
        settings.SESSION_COOKIE_AGE + 1,
    )


# -- key rotation ------------------------------------------------------------------------


def test_a_cookie_signed_with_a_fallback_key_is_read_and_re_signed_with_the_current_key() -> None:
    with override_settings(SECRET_KEY=OLD_KEY):
        client = Client()
        client.get("/write/", {"user": "42"})
        old_token = cookie_of(client)
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        response = client.get("/read/")
        assert response.json() == {"user": "42"}
        new_token = response.cookies[COOKIE].value
        assert new_token != old_token
        assert claims_of(new_token)["current_key"] is True
    with override_settings(SECRET_KEY=NEW_KEY):
        assert client_with(new_token).get("/read/").json() == {"user": "42"}


def test_a_cookie_signed_with_a_removed_key_reads_as_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(SECRET_KEY=OLD_KEY):
        client = Client()
        client.get("/write/", {"user": "42"})
    with override_settings(SECRET_KEY=NEW_KEY), caplog.at_level(logging.INFO):
        response = client.get("/read/")
    assert (response.status_code, response.json()) == (200, {})
    assert "InvalidSignature" in security_records(caplog)[0].getMessage()


# -- encryption --------------------------------------------------------------------------

encrypting = override_settings(HYBRID_SESSIONS_ENCRYPT=True)


@encrypting
def test_an_encrypted_cookie_round_trips_and_its_payload_cannot_be_read() -> None:
    client = Client()
    client.get("/write/", {"card": "4111-secret"})
    token = cookie_of(client)
    assert len(token.split(".")) == 5
    assert b"4111-secret" not in b"".join(unb64(part) for part in token.split("."))
    assert client.get("/read/").json() == {"card": "4111-secret"}


@encrypting
@pytest.mark.parametrize("segment", [0, 2, 3, 4])
def test_a_tampered_encrypted_cookie_reads_as_empty(segment: int) -> None:
    client = Client()
    client.get("/write/", {"user": "42"})
    parts = cookie_of(client).split(".")
    parts[segment] = ("A" if parts[segment][0] != "A" else "B") + parts[segment][1:]
    response = client_with(".".join(parts)).get("/read/")
    assert (response.status_code, response.json()) == (200, {})


def test_an_encrypted_cookie_from_a_fallback_key_is_re_encrypted_and_a_removed_key_empties() -> (
    None
):
    with encrypting, override_settings(SECRET_KEY=OLD_KEY):
        client = Client()
        client.get("/write/", {"user": "42"})
        old_token = cookie_of(client)
    with encrypting, override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        response = client.get("/read/")
        assert response.json() == {"user": "42"}
        assert claims_of(response.cookies[COOKIE].value)["current_key"] is True
    with encrypting, override_settings(SECRET_KEY=NEW_KEY):
        assert client_with(old_token).get("/read/").json() == {}


def test_turning_encryption_on_keeps_sessions_and_encrypts_them_on_the_next_response() -> None:
    client = Client()
    client.get("/write/", {"user": "42"})
    with encrypting:
        response = client.get("/read/")
        assert response.json() == {"user": "42"}
        assert len(response.cookies[COOKIE].value.split(".")) == 5


# -- compression -------------------------------------------------------------------------


def test_a_repetitive_session_is_compressed_when_signed_only() -> None:
    client = Client()
    client.get("/write/", {"cart": "item," * 400})
    assert jwt.get_unverified_header(cookie_of(client)).get("zip") == "DEF"
    assert len(cookie_of(client)) < 800
    assert client.get("/read/").json() == {"cart": "item," * 400}


def test_a_short_session_is_not_compressed() -> None:
    client = Client()
    client.get("/write/", {"u": secrets.token_hex(8)})
    assert "zip" not in jwt.get_unverified_header(cookie_of(client))


# -- the cookie budget -------------------------------------------------------------------


def test_a_session_too_large_for_browsers_raises_cookie_too_large_naming_its_size() -> None:
    client = Client(raise_request_exception=True)
    with pytest.raises(CookieTooLarge) as caught:
        client.get("/write/", {"blob": secrets.token_urlsafe(3500)})
    error = caught.value
    assert error.size > error.budget == 4096
    assert error.cookie_name == COOKIE
    assert str(error.size) in str(error)
    assert "hybrid_sessions.backends.hybrid" in str(error)


def test_sessions_are_accepted_up_to_exactly_the_budget_and_refused_beyond() -> None:
    text = secrets.token_urlsafe(4000)

    def save(length: int) -> int:
        session = SessionStore()
        session["blob"] = text[:length]
        session.save()
        return set_cookie_size(COOKIE, token_of(session), max_age=settings.SESSION_COOKIE_AGE)

    fits, too_long = 0, len(text)
    while too_long - fits > 1:  # the longest blob that still fits, by bisection
        middle = (fits + too_long) // 2
        try:
            save(middle)
        except CookieTooLarge:
            too_long = middle
        else:
            fits = middle
    assert 4090 <= save(fits) <= 4096
    with pytest.raises(CookieTooLarge) as caught:
        save(too_long)
    assert caught.value.size > 4096


def test_a_lower_budget_setting_refuses_smaller_sessions() -> None:
    blob = secrets.token_urlsafe(900)
    session = SessionStore()
    session["blob"] = blob
    session.save()
    with override_settings(HYBRID_SESSIONS_COOKIE_MAX_BYTES=1024), pytest.raises(CookieTooLarge):
        session.save()


def test_cookie_attributes_count_against_the_budget() -> None:
    session = SessionStore()
    session["blob"] = secrets.token_urlsafe(1000)
    session.save()
    size = set_cookie_size(COOKIE, token_of(session), max_age=settings.SESSION_COOKIE_AGE)
    with (
        override_settings(
            SESSION_COOKIE_DOMAIN="." + "sub." * 10 + "example.com",
            HYBRID_SESSIONS_COOKIE_MAX_BYTES=size + 20,
        ),
        pytest.raises(CookieTooLarge),
    ):
        session.save()


def test_a_session_that_would_compress_into_the_budget_but_inflates_past_8x_is_refused() -> None:
    session = SessionStore()
    session["cart"] = "item," * 200_000  # a megabyte that deflates to about 2 KB
    with pytest.raises(CookieTooLarge) as caught:
        session.save()
    error = caught.value
    assert error.uncompressed
    assert error.cookie_name == COOKIE
    assert error.budget == 8 * 4096 < 1_000_000 < error.size
    assert session.session_key is None  # no cookie was made


def test_an_inflation_bomb_cookie_is_refused_as_too_large_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=SECURITY_LOGGER):
        response = client_with(hostile_tokens(PURPOSE)["inflation-bomb"]).get("/read/")
    assert response.json() == {}
    [record] = security_records(caplog)
    assert "TokenTooLarge" in record.getMessage()
    assert "32768" in record.getMessage()
    assert response.cookies[COOKIE].value == ""


def test_non_ascii_text_travels_as_utf8_and_edge_values_round_trip() -> None:
    session = SessionStore()
    value = {"name": "Zoë Łukasz 東京 😀", "big": 2**80, "lone": "\ud800", "k": [1.5, None]}
    session["v"] = value
    session.save()
    token = session.session_key
    assert token is not None
    assert "zip" not in jwt.get_unverified_header(token)
    assert "Zoë Łukasz 東京 😀".encode() in unb64(token.split(".")[1])
    assert SessionStore(token)["v"] == value


@pytest.mark.parametrize(("budget", "warned"), [(4096, False), (2048, False), (4097, True)])
def test_a_budget_above_what_browsers_accept_is_warned_about(budget: int, warned: bool) -> None:
    with override_settings(HYBRID_SESSIONS_COOKIE_MAX_BYTES=budget):
        messages = check_settings()
    w003 = [m for m in messages if m.id == "hybrid_sessions.W003"]
    assert bool(w003) is warned
    if warned:
        assert w003[0].level == checks.WARNING


# -- the engine's own surface ------------------------------------------------------------


def test_flush_empties_the_session_and_deletes_the_cookie() -> None:
    session = SessionStore()
    session["user"] = "42"
    session.save()
    session.flush()
    assert (session.session_key, dict(session.items())) == (None, {})
    assert session.is_empty()


def test_the_async_api_reads_and_refuses_like_the_sync_one() -> None:
    async_to_sync(async_round_trip)()


async def async_round_trip() -> None:
    session = SessionStore()
    await session.aset("user", "42")
    await session.asave()
    assert await SessionStore(session.session_key).aget("user") == "42"
    hostile = SessionStore(token_of(session)[:-2])
    assert await hostile.aload() == {}
    assert hostile.session_key is None
