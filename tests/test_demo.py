"""The demo site (``testproject/``), with its own settings and URLs, through a real client.

Hostile cookies against every page, login and logout through Django's own
views keeping the user link in step, the password change ending the other
sessions, the session playground, and ``rundemo`` starting a real server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils.crypto import get_random_string

from hybrid_sessions import api
from hybrid_sessions.stores.base import digest
from tests.engines import ENGINES, Engine

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "testproject"
if str(DEMO_DIR) not in sys.path:
    sys.path.append(str(DEMO_DIR))

from testproject import settings as demo_settings  # noqa: E402

#: Settings that stay the test suite's own: its databases, caches and key.
KEEP = {"DATABASES", "CACHES", "SECRET_KEY", "DEBUG", "BASE_DIR", "REDIS_URL"}
DEMO = {
    name: value
    for name, value in vars(demo_settings).items()
    if name.isupper() and name not in KEEP
}
SERVER_ENGINES = [e for e in ENGINES if e.server_side]
PASSWORD = "demo-password"
COOKIE = "sessionid"


def _demo_site(eng: Engine) -> Any:
    # The hybrid engine trusts a fresh cookie for a while; here revocation is checked at once.
    return override_settings(
        **{**DEMO, "SESSION_ENGINE": eng.path, "DEMO_SESSION_ENGINE": eng.path,
           "HYBRID_SESSIONS_REVALIDATE_SECONDS": 0, **eng.settings}
    )


@pytest.fixture(params=ENGINES, ids=[e.name for e in ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    """The demo site on each engine of the package."""
    eng: Engine = request.param
    with _demo_site(eng):
        yield eng


#: For the tests that need a server-side engine (logins that the server can end).
server_engines = pytest.mark.parametrize(
    "engine", SERVER_ENGINES, indirect=True, ids=[e.name for e in SERVER_ENGINES]
)

COOKIE_ENGINES = [e for e in ENGINES if not e.server_side]
HYBRID_ENGINES = [e for e in ENGINES if e.path.endswith(".hybrid")]
cookie_engines = pytest.mark.parametrize(
    "engine", COOKIE_ENGINES, indirect=True, ids=[e.name for e in COOKIE_ENGINES]
)
hybrid_engines = pytest.mark.parametrize(
    "engine", HYBRID_ENGINES, indirect=True, ids=[e.name for e in HYBRID_ENGINES]
)


@pytest.fixture
def demo_user(db: Any) -> User:
    return User.objects.create_superuser("demo", "demo@example.com", PASSWORD)


def browser() -> Client:
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT="DemoBrowser/1")


def submit(client: Client, form_page: str, url: str, data: dict[str, str]) -> Any:
    """Load a page to get the CSRF cookie, then post a form with its token, as a browser does."""
    assert client.get(form_page).status_code == 200
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def log_in(client: Client) -> Any:
    return submit(
        client, "/accounts/login/", "/accounts/login/",
        {"username": "demo", "password": PASSWORD},
    )


def current(engine: Engine, client: Client) -> str | None:
    """The digest of the session behind the client's cookie, as the engine sees it."""
    cookie = client.cookies.get(COOKIE)
    if cookie is None or not cookie.value:
        return None
    value: str | None = engine.store(cookie.value).session_digest
    return value


# -- hostile cookies -----------------------------------------------------------------------

FORGED = {
    "random-40": get_random_string(40),
    "too-short": "abc1234",
    "too-long": get_random_string(300),
    "path": "..%2F..%2Fetc%2Fpasswd",
    "jwt-none": "eyJhbGciOiJub25lIn0.eyJfYXV0aF91c2VyX2lkIjoiMSJ9.",
}
#: Every page a GET can reach; none of them writes a session that does not exist yet.
READ_ONLY_PAGES = ["/", "/accounts/login/", "/accounts/sessions/", "/admin/", "/admin/login/"]


@pytest.mark.parametrize("cookie", list(FORGED.values()), ids=list(FORGED))
def test_a_forged_cookie_creates_no_session_record(
    engine: Engine, demo_user: User, cookie: str
) -> None:
    client = Client()
    for page in READ_ONLY_PAGES:
        client.cookies[COOKIE] = cookie
        response = client.get(page)
        assert response.status_code in (200, 302), page
        assert response.wsgi_request.user.is_anonymous
        assert engine.records() == 0, page


@pytest.mark.parametrize("cookie", list(FORGED.values()), ids=list(FORGED))
def test_a_forged_cookie_on_a_write_gets_a_fresh_session(engine: Engine, cookie: str) -> None:
    client = Client()
    client.cookies[COOKIE] = cookie

    response = client.post("/", {"action": "set", "key": "colour", "value": "teal"})

    assert response.status_code == 302
    issued = response.cookies[COOKIE].value
    assert issued
    assert issued != cookie
    assert engine.records() == (1 if engine.server_side else 0)
    if engine.server_side:
        assert current(engine, client) != digest(cookie)
    assert client.get("/").context["request"].session["colour"] == "teal"


def test_a_first_visit_creates_no_session_and_a_later_one_counts(engine: Engine) -> None:
    client = Client()

    first = client.get("/")

    assert first.status_code == 200
    assert COOKIE not in first.cookies
    assert engine.records() == 0
    client.post("/", {"action": "set", "key": "colour", "value": "teal"})
    assert client.get("/").context["request"].session["counter"] == 1
    assert client.get("/").context["request"].session["counter"] == 2


# -- login and logout keep the user link in step -------------------------------------------


@server_engines
def test_login_links_the_session_to_the_user(engine: Engine, demo_user: User) -> None:
    client = browser()
    submit(client, "/", "/", {"action": "set", "key": "colour", "value": "teal"})  # anonymous
    anonymous = current(engine, client)

    response = log_in(client)

    assert response.status_code == 302
    assert response["Location"] == "/"
    (info,) = api.list_sessions(demo_user)
    assert info.digest == current(engine, client) != anonymous
    assert engine.records() >= 1
    assert client.get("/").context["request"].session["colour"] == "teal"  # kept over login


@server_engines
def test_logout_ends_the_session_on_the_server(engine: Engine, demo_user: User) -> None:
    laptop, phone = browser(), browser()
    log_in(laptop)
    log_in(phone)
    laptops = current(engine, laptop)
    assert len(api.list_sessions(demo_user)) == 2

    response = submit(laptop, "/", "/accounts/logout/", {})

    assert response.status_code == 302
    assert [i.digest for i in api.list_sessions(demo_user)] == [current(engine, phone)]
    assert laptops not in {i.digest for i in api.list_sessions(demo_user)}
    assert laptop.get("/accounts/sessions/").status_code == 302
    assert phone.get("/accounts/sessions/").status_code == 200


@server_engines
def test_the_old_cookie_does_not_come_back_after_logout(engine: Engine, demo_user: User) -> None:
    client = browser()
    log_in(client)
    stolen = client.cookies[COOKIE].value
    submit(client, "/", "/accounts/logout/", {})

    thief = Client()
    thief.cookies[COOKIE] = stolen
    response = thief.get("/accounts/sessions/")

    assert response.status_code == 302
    assert api.list_sessions(demo_user) == []


@server_engines
def test_changing_the_password_ends_the_other_sessions(engine: Engine, demo_user: User) -> None:
    laptop, phone = browser(), browser()
    log_in(laptop)
    log_in(phone)

    response = submit(
        laptop, "/accounts/password/", "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "n3w-pass", "new_password2": "n3w-pass"},
    )

    assert response.status_code == 302
    assert [i.digest for i in api.list_sessions(demo_user)] == [current(engine, laptop)]
    landing = laptop.get(response["Location"])
    assert landing.status_code == 200
    body = landing.content.decode()
    assert "Password changed; 1 other session(s) ended." in body
    assert '<a href="/">' in body  # the demo's menu: a way back, not a dead end
    assert phone.get("/accounts/sessions/").status_code == 302


@server_engines
def test_the_sessions_page_of_the_demo(engine: Engine, demo_user: User) -> None:
    client = browser()
    log_in(client)
    response = client.get("/accounts/sessions/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "This device" in body
    assert "DemoBrowser/1" in body  # the demo turns User-Agent tracking on
    assert "127.0.0.1" in body
    # In the demo's own layout: its menu and title, not the package's bare page.
    assert "<strong>hybrid_sessions demo</strong>" in body
    assert "Your sessions · hybrid_sessions demo</title>" in body
    assert 'href="/accounts/password/"' in body


def test_the_admin_of_the_demo_lists_sessions(demo_user: User) -> None:
    with _demo_site(ENGINES[0]):
        client = browser()
        log_in(client)
        response = client.get("/admin/hybrid_sessions/session/")
        assert response.status_code == 200
        assert "demo" in response.content.decode()
        user_page = client.get(f"/admin/auth/user/{demo_user.pk}/change/").content.decode()
        assert "Live sessions" in user_page
        assert f"/admin/hybrid_sessions/session/user/{demo_user.pk}/logout/" in user_page


# -- the playground ----------------------------------------------------------------------


@server_engines
def test_the_playground_sets_and_deletes_keys(engine: Engine) -> None:
    client = browser()
    submit(client, "/", "/", {"action": "set", "key": "colour", "value": "teal"})
    assert client.get("/").context["request"].session["colour"] == "teal"

    submit(client, "/", "/", {"action": "delete", "key": "colour"})
    assert "colour" not in client.get("/").context["request"].session


@server_engines
def test_the_playground_refuses_djangos_own_keys(engine: Engine, demo_user: User) -> None:
    client = browser()
    log_in(client)
    response = submit(client, "/", "/", {"action": "set", "key": "_auth_user_id", "value": "1"})
    assert response.status_code == 200
    assert "underscore" in response.content.decode()
    submit(client, "/", "/", {"action": "delete", "key": "_auth_user_id"})
    assert client.get("/accounts/sessions/").status_code == 200


@server_engines
def test_the_playground_adds_five_kilobytes(engine: Engine) -> None:
    client = browser()
    submit(client, "/", "/", {"action": "blob"})
    submit(client, "/", "/", {"action": "blob"})
    session = client.get("/").context["request"].session
    assert len(session["blob_1"]) == len(session["blob_2"]) == 5 * 1024

    submit(client, "/", "/", {"action": "clear"})
    assert "blob_1" not in client.get("/").context["request"].session


# -- rundemo, as the README runs it ---------------------------------------------------------


def test_rundemo_migrates_creates_the_user_and_serves(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "PYTHONUNBUFFERED": "1",
        # This tree's package, not whichever copy is installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [sys.executable, str(DEMO_DIR / "manage.py"), "rundemo", "127.0.0.1:0", "--noreload"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        output = []
        for line in server.stdout:
            output.append(line)
            if "Log in as demo / demo" in line:
                break
        text = "".join(output)
        match = re.search(r"Demo site: (http://127\.0\.0\.1:\d+/)", text)
        assert match, text
        assert "demo superuser created" in text
        with urllib.request.urlopen(match.group(1) + "accounts/login/", timeout=10) as page:
            assert page.status == 200
            assert "demo" in page.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- what the panel says each engine stores ------------------------------------------------


def panel(client: Client) -> str:
    body: str = client.get("/").content.decode()
    return re.sub(r"\s+", " ", body)


@cookie_engines
def test_a_cookie_only_engine_explains_a_session_too_large_for_it(engine: Engine) -> None:
    client = browser()
    submit(client, "/", "/", {"action": "set", "key": "colour", "value": "teal"})

    response = submit(client, "/", "/", {"action": "blob"})

    assert response.status_code == 302  # not a 500: the page explains
    body = panel(client)
    assert "Not added: this engine keeps the whole session in the cookie" in body
    assert "A cookie-only engine cannot hold this much" in body
    session = client.get("/").context["request"].session
    assert session["colour"] == "teal"  # the session is as it was
    assert "blob_1" not in session
    assert len(client.cookies[COOKIE].value) < 4096


def test_the_panel_says_what_the_engine_stores(engine: Engine) -> None:
    client = browser()
    submit(client, "/", "/", {"action": "set", "key": "colour", "value": "teal"})

    body = panel(client)

    if not engine.server_side:
        assert "In the cookie</span><span>the whole session, signed" in body
        assert "cannot be listed or ended before it expires" in body
        assert "Server record" not in body
        assert "none yet" not in body.split("Visits counted", 1)[1].split("Cookie received")[0]
    elif engine.path.endswith(".hybrid"):
        assert 'data-testid="data-in">the cookie<' in body
        assert "Server record</span><code" in body
    else:
        store = "Redis" if engine.needs_redis else "the database"
        assert f'data-testid="data-in">the server ({store})<' in body
        assert "In the cookie</span><span>the session key only" in body
        assert "Server record</span><code" in body


@hybrid_engines
def test_the_hybrid_panel_follows_the_data_to_the_server_and_back(engine: Engine) -> None:
    store = "Redis" if engine.needs_redis else "the database"
    client = browser()
    submit(client, "/", "/", {"action": "set", "key": "colour", "value": "teal"})
    assert 'data-testid="data-in">the cookie<' in panel(client)

    submit(client, "/", "/", {"action": "blob"})
    assert f'data-testid="data-in">the server ({store})<' in panel(client)
    assert len(client.cookies[COOKIE].value) < 4096

    submit(client, "/", "/", {"action": "clear"})
    assert 'data-testid="data-in">the cookie<' in panel(client)
