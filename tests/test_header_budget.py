"""The hybrid keeps the browser's next request within ``HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES``.

Front servers refuse a request whose headers outgrow their buffers (uWSGI: 4096
bytes for all of them by default), and the browser sends the session cookie
with every other cookie of the site. So the hybrid carries the session inline
only while the next request still fits, spills otherwise, and comes back inline
when there is room again; the data is the same throughout. Driven through
Django's test client and the middleware stack of ``tests/settings.py``, with a
browser's usual headers, over each spill store. After each response the test
rebuilds the request the browser would send next, from the client's cookie jar
and the same headers, and measures it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, RequestFactory
from django.urls import path

from hybrid_sessions.backends.hybrid import SessionStore
from hybrid_sessions.backends.hybrid.cookie import (
    INLINE,
    SPILLED,
    SPILLED_PARTIAL,
    Parsed,
    parse,
)
from hybrid_sessions.header_room import VARYING_HEADERS_MARGIN, header_room
from hybrid_sessions.signals import session_inlined, session_spilled

HYBRID = "hybrid_sessions.backends.hybrid"
REDIS_SPILL = "hybrid_sessions.backends.cache"
COOKIE = django_settings.SESSION_COOKIE_NAME
LIMIT = 4096  # the default budget
#: What a desktop browser sends with every navigation, besides its cookies.
BROWSER_HEADERS = {
    "Host": "testserver",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.5",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}
#: What a form POST from a page of the site adds.
POST_HEADERS = {
    "Origin": "http://testserver",
    "Referer": "http://testserver/fill/?n=1400",
    "Content-Type": "application/x-www-form-urlencoded",
    "Content-Length": "1234",
    "X-CSRFToken": "x" * 64,
}
#: Random URL-safe text barely compresses: a session this size is a token of about 1.5 KB.
SESSION_CHARS = 1400
#: Other cookies of the site, in bytes: a 1.5 KB session no longer fits beside them.
OTHER_COOKIES = 3000


# -- views -----------------------------------------------------------------------------------------


def random_text(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


def fill(request: HttpRequest) -> JsonResponse:
    """Store ``n`` random characters under ``key`` (default ``blob``); answer them."""
    value = random_text(int(request.GET["n"]))
    request.session[request.GET.get("key", "blob")] = value
    return JsonResponse({"value": value})


def fill_and_set_cookie(request: HttpRequest) -> JsonResponse:
    """As :func:`fill`, and set a site cookie of ``cookie`` bytes."""
    response = fill(request)
    response.set_cookie("banner", "b" * int(request.GET["cookie"]))
    return response


def fill_and_delete_cookie(request: HttpRequest) -> JsonResponse:
    """As :func:`fill`, and delete the site cookie ``prefs``."""
    response = fill(request)
    response.delete_cookie("prefs")
    return response


def set_keys(request: HttpRequest) -> HttpResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def read_all(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session.items()))


def get_key(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"value": request.session.get(request.GET["key"])})


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


urlpatterns = [
    path("fill/", fill),
    path("fill-and-set-cookie/", fill_and_set_cookie),
    path("fill-and-delete-cookie/", fill_and_delete_cookie),
    path("set/", set_keys),
    path("read/", read_all),
    path("get/", get_key),
    path("whoami/", whoami),
]


# -- fixtures and what the browser holds -----------------------------------------------------------


@pytest.fixture(params=["db", pytest.param("cache", marks=pytest.mark.redis)])
def spill(request: pytest.FixtureRequest, db: None, settings: Any) -> str:
    """The hybrid engine as SESSION_ENGINE, over each spill store in turn."""
    settings.SESSION_ENGINE = HYBRID
    settings.ROOT_URLCONF = __name__
    if request.param == "cache":
        settings.HYBRID_SESSIONS_SPILL_ENGINE = REDIS_SPILL
    name: str = request.param
    return name


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


def browser() -> Client:
    return Client(headers=BROWSER_HEADERS)


def parsed(value: str) -> Parsed:
    token = parse(value, SessionStore().serializer)
    assert token is not None, "a token of ours"
    return token


def resident(client: Client | AsyncClient) -> dict[str, Any]:
    """The session keys the client's cookie carries."""
    return parsed(client.cookies[COOKIE].value).data


def storage(client: Client | AsyncClient) -> str:
    """How the session travels now: ``inline`` or ``spilled``."""
    token = parsed(client.cookies[COOKIE].value)
    if token.flag == INLINE:
        return "inline"
    assert token.flag in (SPILLED, SPILLED_PARTIAL)
    return "spilled"


def cookie_jar(client: Client | AsyncClient) -> dict[str, str]:
    """The cookies the browser sends: a cookie set with ``Max-Age=0`` is gone."""
    return {
        name: morsel.coded_value
        for name, morsel in client.cookies.items()
        if str(morsel["max-age"]) != "0"
    }


def next_request(
    client: Client | AsyncClient, target: str = "/read/", extra: dict[str, str] | None = None
) -> bytes:
    """The request line and headers the browser sends next, as on the wire."""
    headers = {**BROWSER_HEADERS, **(extra or {})}
    cookies = "; ".join(f"{name}={value}" for name, value in cookie_jar(client).items())
    lines = [f"{'POST' if extra else 'GET'} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Cookie: {cookies}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_next_requests_fit(client: Client | AsyncClient) -> None:
    """A navigation and a form POST from this page both stay within the budget."""
    assert len(next_request(client)) <= LIMIT
    assert len(next_request(client, "/set/", POST_HEADERS)) <= LIMIT


def give_other_cookies(client: Client | AsyncClient, total: int) -> None:
    """Site cookies (preferences, analytics) of ``total`` bytes as the browser sends them."""
    client.cookies["prefs"] = "p" * (total // 2 - len("prefs=; "))
    client.cookies["analytics"] = "a" * (total - total // 2 - len("analytics=; "))


@contextmanager
def receiving(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    signal.connect(receiver, weak=False)
    try:
        yield calls
    finally:
        signal.disconnect(receiver)


# -- inline while it fits, spilled when it does not ------------------------------------------------


def test_a_small_session_stays_inline_without_other_cookies(spill: str) -> None:
    client = browser()
    value = client.get(f"/fill/?n={SESSION_CHARS}").json()["value"]
    assert storage(client) == "inline"
    assert 1200 < len(client.cookies[COOKIE].value) < 2048  # about 1.5 KB
    assert_next_requests_fit(client)
    assert client.get("/read/").json() == {"blob": value}


def test_it_spills_when_the_request_carries_3_kb_of_other_cookies(spill: str) -> None:
    client = browser()
    give_other_cookies(client, OTHER_COOKIES)
    value = client.get(f"/fill/?n={SESSION_CHARS}").json()["value"]
    assert storage(client) == "spilled"
    assert_next_requests_fit(client)
    assert client.get("/read/").json() == {"blob": value}


def test_it_spills_beside_other_cookies_and_comes_back_inline_when_they_are_gone(
    spill: str,
) -> None:
    client = browser()
    with receiving(session_spilled) as spilled, receiving(session_inlined) as inlined:
        blob = client.get(f"/fill/?n={SESSION_CHARS}").json()["value"]
        assert storage(client) == "inline"
        inline_size = len(client.cookies[COOKIE].value)
        assert not spilled

        give_other_cookies(client, OTHER_COOKIES)
        assert inline_size + OTHER_COOKIES > LIMIT  # the inline cookie would not fit
        client.get("/set/?a=1")
        assert storage(client) == "spilled"
        assert len(spilled) == 1
        assert_next_requests_fit(client)
        assert client.get("/read/").json() == {"blob": blob, "a": "1"}

        del client.cookies["prefs"], client.cookies["analytics"]  # they expired
        client.get("/set/?b=2")
        assert storage(client) == "inline"
        assert len(inlined) == 1
        assert_next_requests_fit(client)
    assert client.get("/read/").json() == {"blob": blob, "a": "1", "b": "2"}


def test_a_large_cookie_the_response_sets_counts(spill: str) -> None:
    client = browser()
    value = client.get(f"/fill-and-set-cookie/?n={SESSION_CHARS}&cookie={OTHER_COOKIES}")
    assert len(client.cookies["banner"].value) == OTHER_COOKIES
    assert storage(client) == "spilled"
    assert_next_requests_fit(client)
    assert client.get("/read/").json() == {"blob": value.json()["value"]}


def test_a_cookie_the_response_deletes_does_not_count(spill: str) -> None:
    client = browser()
    client.cookies["prefs"] = "p" * OTHER_COOKIES
    value = client.get(f"/fill-and-delete-cookie/?n={SESSION_CHARS}").json()["value"]
    assert "prefs" not in cookie_jar(client)
    assert storage(client) == "inline"
    assert_next_requests_fit(client)
    assert client.get("/read/").json() == {"blob": value}


def test_cookie_keys_leave_a_spilled_cookie_before_the_user_does(
    spill: str, alice: User, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_COOKIE_KEYS = ["cart"]
    client = browser()
    client.force_login(alice)
    cart = client.get("/fill/?key=cart&n=1500").json()["value"]
    client.get("/fill/?n=6000")  # too much for any cookie
    assert storage(client) == "spilled"
    assert "cart" in resident(client)

    give_other_cookies(client, 2500)
    client.get("/set/?a=1")
    assert "cart" not in resident(client)
    assert resident(client)["_auth_user_id"] == str(alice.pk)  # request.user: no round trip
    assert_next_requests_fit(client)
    assert client.get("/whoami/").content == b"alice"
    assert client.get("/get/?key=cart").json() == {"value": cart}


# -- no room at all --------------------------------------------------------------------------------


def test_huge_other_cookies_get_a_bare_reference_a_normal_response_and_a_warning(
    spill: str, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    client = browser()
    client.force_login(alice)
    give_other_cookies(client, 3900)  # the rest of the request alone nearly fills the budget
    with caplog.at_level(logging.WARNING, logger="hybrid_sessions"):
        response = client.get(f"/fill/?n={SESSION_CHARS}")
    assert response.status_code == 200
    blob = response.json()["value"]
    bare = parsed(client.cookies[COOKIE].value)
    assert (bare.flag, bare.data) == (SPILLED_PARTIAL, {})  # not even the user's keys

    (warning,) = [r for r in caplog.records if r.name == "hybrid_sessions"]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "other cookies" in message
    for value in (*cookie_jar(client).values(), blob):
        assert value not in message  # no cookie value, no session data

    assert client.get("/whoami/").content == b"alice"  # fetched: the cookie had no room for it
    assert client.get("/read/").json()["blob"] == blob


# -- the budget's setting --------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [None, 8190], ids=["off", "nginx-gunicorn"])
def test_without_the_budget_or_with_a_larger_one_the_session_stays_inline(
    spill: str, settings: Any, budget: int | None
) -> None:
    settings.HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES = budget
    client = browser()
    give_other_cookies(client, OTHER_COOKIES)
    value = client.get(f"/fill/?n={SESSION_CHARS}").json()["value"]
    assert storage(client) == "inline"
    assert client.get("/read/").json() == {"blob": value}
    if budget is not None:
        assert len(next_request(client, "/set/", POST_HEADERS)) <= budget


def test_a_session_used_outside_the_middleware_keeps_the_cookie_budgets_alone(spill: str) -> None:
    session = SessionStore()
    assert session.header_room is None
    session["blob"] = random_text(SESSION_CHARS)
    session.save()
    value = session.cookie_value()
    assert value is not None
    assert parsed(value).flag == INLINE


# -- every place a cookie is built -----------------------------------------------------------------


def test_a_cookie_reissued_without_a_write_fits_the_room(spill: str, settings: Any) -> None:
    """``SESSION_SAVE_EVERY_REQUEST`` on a session read from the server: a new cookie, no write."""
    settings.SESSION_SAVE_EVERY_REQUEST = True
    settings.HYBRID_SESSIONS_REVALIDATE_SECONDS = 0  # every request reads the server
    client = browser()
    blob = client.get(f"/fill/?n={SESSION_CHARS}").json()["value"]
    assert storage(client) == "inline"
    give_other_cookies(client, OTHER_COOKIES)
    assert client.get("/read/").json() == {"blob": blob}
    assert storage(client) == "spilled"
    assert_next_requests_fit(client)
    del client.cookies["prefs"], client.cookies["analytics"]
    assert client.get("/read/").json() == {"blob": blob}
    assert storage(client) == "inline"


def test_the_touch_of_a_spilled_session_fits_the_room(
    spill: str, alice: User, settings: Any
) -> None:
    """A touch (only the expiry moves) re-issues a spilled cookie from its own keys."""
    store = SessionStore.get_store()
    feed = store.feed()
    if feed is None:
        pytest.skip("a touch re-issues the cookie only where a feed vouches for its version")
    feed.ensure_running()
    assert feed.wait_until_up()
    settings.SESSION_SAVE_EVERY_REQUEST = True
    settings.HYBRID_SESSIONS_COOKIE_KEYS = ["cart"]
    client = browser()
    client.force_login(alice)
    cart = client.get("/fill/?key=cart&n=1500").json()["value"]
    client.get("/fill/?n=6000")
    assert storage(client) == "spilled"

    give_other_cookies(client, 2500)
    before = client.cookies[COOKIE].value
    assert client.get("/whoami/").content == b"alice"
    assert client.cookies[COOKIE].value != before  # re-issued by the touch
    assert "cart" not in resident(client)
    assert resident(client)["_auth_user_id"] == str(alice.pk)
    assert_next_requests_fit(client)
    assert client.get("/get/?key=cart").json() == {"value": cart}


def test_the_async_stack_follows_the_same_budget(spill: str) -> None:
    client = AsyncClient(headers=BROWSER_HEADERS)

    async def browse() -> tuple[str, str, dict[str, Any]]:
        blob = (await client.get(f"/fill/?n={SESSION_CHARS}")).json()["value"]
        alone = storage(client)
        give_other_cookies(client, OTHER_COOKIES)
        await client.get("/set/?a=1")
        beside_others = storage(client)
        assert_next_requests_fit(client)
        return alone, beside_others, {"blob": blob, "a": "1"}

    alone, beside_others, expected = async_to_sync(browse)()
    assert (alone, beside_others) == ("inline", "spilled")

    async def read() -> Any:
        return (await client.get("/read/")).json()

    assert async_to_sync(read)() == expected


# -- how the room is measured ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_room_is_the_budget_less_the_next_request_but_our_cookie_value(method: str) -> None:
    factory = RequestFactory(headers=BROWSER_HEADERS)
    cookie_header = f"prefs=dark; {COOKIE}=old-value; consent=all-but-ads"
    if method == "GET":
        request = factory.get("/page/", {"q": "1"}, HTTP_COOKIE=cookie_header)
    else:
        request = factory.post("/page/?q=1", {"title": "x"}, HTTP_COOKIE=cookie_header)
    response = HttpResponse()
    response.set_cookie("banner", "seen")  # added
    response.set_cookie("prefs", "light-mode")  # replaced
    response.delete_cookie("consent")  # gone
    session = SessionStore()
    session.accessed = True

    lines = [f"{method} /page/?q=1 HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in BROWSER_HEADERS.items()]
    if method == "POST":
        lines.append(f"Content-Type: {request.META['CONTENT_TYPE']}")
        lines.append(f"Content-Length: {request.META['CONTENT_LENGTH']}")
    lines.append(f"Cookie: prefs=light-mode; banner=seen; {COOKIE}=")
    without_our_value = len(("\r\n".join(lines) + "\r\n\r\n").encode())
    expected = LIMIT - VARYING_HEADERS_MARGIN - without_our_value
    assert header_room(request, response, session) == expected


def test_no_room_is_worked_out_for_a_session_the_request_never_used() -> None:
    request = RequestFactory().get("/static/app.css")
    assert header_room(request, HttpResponse(), SessionStore()) is None


def test_the_room_is_worked_out_only_for_a_response_that_builds_a_cookie(
    spill: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most responses save nothing: they pay nothing for the budget."""
    import hybrid_sessions.middleware

    measured: list[int | None] = []

    def counting(*args: Any) -> int | None:
        measured.append(header_room(*args))
        return measured[-1]

    monkeypatch.setattr(hybrid_sessions.middleware, "header_room", counting)
    client = browser()
    value = client.get("/fill/?n=200").json()["value"]
    assert len(measured) == 1  # the save that built the cookie
    assert measured[0] is not None
    for _ in range(3):
        assert client.get("/read/").json() == {"blob": value}
    assert len(measured) == 1
