"""A stolen hybrid cookie against two real app server processes sharing one store.

Two gunicorn processes, A and B, serve ``tests.app_urls`` with the hybrid
engine over the same database or Redis. What one process does to a session,
the other must honour: with a feed (Redis, PostgreSQL) at once, without one
(SQLite, MariaDB) within the revalidation window, and for unsafe requests at
once in both cases. A logged-out cookie never comes back, through
``cycle_key()`` or anything else; a replayed cookie never rolls state back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from hybrid_sessions.stores.base import digest

COOKIE = settings.SESSION_COOKIE_NAME
#: How long a process may take to hear of a write or an end through the feed.
FEED_DELAY = 1.0

GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
if not os.path.exists(GUNICORN):
    GUNICORN = shutil.which("gunicorn") or GUNICORN

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Reply:
    status: int
    body: str
    cookie: str | None  # the session cookie the response set, if any ("" when deleted)


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]

    def request(self, path: str, cookie: str | None, data: dict[str, str] | None = None) -> Reply:
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body)
        if cookie:
            request.add_header("Cookie", f"{COOKIE}={cookie}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text, headers = response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            status, text, headers = error.code, error.read().decode(), error.headers
        set_cookie = None
        for header in headers.get_all("Set-Cookie") or []:
            parsed: SimpleCookie = SimpleCookie(header)
            if COOKIE in parsed:
                set_cookie = parsed[COOKIE].value
        return Reply(status, text, set_cookie)


class Browser:
    """One cookie jar, sent to whichever process."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    def __call__(self, server: Server, path: str, data: dict[str, str] | None = None) -> Reply:
        reply = server.request(path, self.cookie, data)
        if reply.cookie is not None:
            self.cookie = reply.cookie or None
        return reply


def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [GUNICORN, "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "1", "tests.app_server:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((process.stderr.read() if process.stderr else b"").decode())
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the app server did not start")


@pytest.fixture(params=["db", pytest.param("cache", marks=pytest.mark.redis)])
def spill(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(spill: str, transactional_db: None) -> Iterator[tuple[Server, Server]]:
    """Processes A and B, over the test database pytest created."""
    env = {
        **os.environ,
        "HYBRID_SESSIONS_APP_DATABASE": str(connection.settings_dict["NAME"]),
        "HYBRID_SESSIONS_APP_SPILL": f"hybrid_sessions.backends.{spill}",
        "HYBRID_SESSIONS_TEST_REDIS": settings.CACHES["default"]["LOCATION"],
        "PYTHONPATH": os.getcwd(),
    }
    started = []
    try:
        for _ in range(2):
            port = _free_port()
            started.append(Server(port, _start(port, env)))
        for server in started:
            _wait_up(server.port, server.process)
        yield started[0], started[1]
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                server.process.kill()


def has_feed(spill: str) -> bool:
    return spill == "cache" or connection.vendor == "postgresql"


@pytest.fixture
def alice(transactional_db: None) -> User:
    return User.objects.create_user("alice", password="pw")


def logged_in(server: Server) -> Browser:
    browser = Browser()
    assert browser(server, "/login/", {"username": "alice", "password": "pw"}).body == "alice"
    assert browser.cookie is not None
    assert "." in browser.cookie  # a token, not a bare key
    return browser


def warm(server: Server, spill: str) -> None:
    """Wait until the process's feed is up (the first request starts it)."""
    reply = server.request("/feed/", None)
    assert reply.status == 200
    if has_feed(spill):
        assert '"up": true' in reply.body, reply.body


def eventually(check: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_a_logged_out_cookie_sent_to_the_other_process_is_refused(
    servers: tuple[Server, Server], spill: str, alice: User
) -> None:
    a, b = servers
    warm(a, spill)
    warm(b, spill)
    browser = logged_in(a)
    stolen = browser.cookie
    assert b.request("/whoami/", stolen).body == "alice"
    browser(a, "/logout/", {})
    if has_feed(spill):
        assert eventually(lambda: b.request("/whoami/", stolen).body == "", FEED_DELAY)
    # Unsafe requests ask the server when no feed vouches for the cookie.
    reply = b.request("/change-user/", stolen, {"first_name": "mallory"})
    assert reply.status == 403
    alice.refresh_from_db()
    assert alice.first_name == ""


def test_cycle_key_never_brings_a_logged_out_session_back(
    servers: tuple[Server, Server], spill: str, alice: User
) -> None:
    a, b = servers
    warm(b, spill)
    browser = logged_in(a)
    stolen = browser.cookie
    assert b.request("/whoami/", stolen).body == "alice"  # B has served it
    browser(a, "/logout/", {})
    # Even inside the window, before any feed delivery: cycle_key confirms on the server.
    reply = b.request("/cycle/", stolen, {})
    assert reply.status == 200
    assert reply.body == ""
    if reply.cookie:
        assert b.request("/whoami/", reply.cookie).body == ""
    from hybrid_sessions.models import Session

    if spill == "db":
        assert not Session.objects.filter(user__username="alice").exists()
    assert b.request("/whoami/", stolen).body == "" or not has_feed(spill)
    assert a.request("/whoami/", stolen).body == ""


def test_an_operator_revocation_reaches_the_other_process(
    servers: tuple[Server, Server], spill: str, alice: User
) -> None:
    a, b = servers
    warm(a, spill)
    warm(b, spill)
    victim = logged_in(a)
    operator = logged_in(a)
    assert b.request("/whoami/", victim.cookie).body == "alice"
    assert operator(a, "/revoke-all/", {}).body == "2"
    assert a.request("/whoami/", victim.cookie).body == ""  # the revoking process: at once
    if has_feed(spill):
        assert eventually(lambda: b.request("/whoami/", victim.cookie).body == "", FEED_DELAY)
    assert b.request("/change-user/", victim.cookie, {"first_name": "x"}).status == 403


@pytest.mark.parametrize("key", ["attempts", "server_attempts"])
def test_a_replayed_cookie_does_not_roll_a_counter_back(
    servers: tuple[Server, Server], spill: str, alice: User, key: str
) -> None:
    if key == "attempts" and not has_feed(spill):
        pytest.skip("without a feed, an anonymous cookie is trusted for the window: "
                    "counters belong in HYBRID_SESSIONS_SERVER_KEYS (the other case)")
    a, b = servers
    warm(a, spill)
    warm(b, spill)
    browser = Browser()
    assert browser(a, f"/attempt/?key={key}", {}).body == "1"
    after_first = browser.cookie
    assert browser(a, f"/attempt/?key={key}", {}).body == "2"
    assert browser(a, f"/attempt/?key={key}", {}).body == "3"
    assert browser(a, f"/attempt/?key={key}", {}).status == 429
    # The same process knows the newer version at once, the other through the
    # feed; a server-only key is read from the server every time.
    if has_feed(spill):
        time.sleep(FEED_DELAY)
    allowed = 0
    for server in (a, b) * 10:
        if server.request(f"/attempt/?key={key}", after_first, {}).status == 200:
            allowed += 1
    assert allowed == 0


def test_a_write_on_one_process_is_what_the_other_serves(
    servers: tuple[Server, Server], spill: str, alice: User
) -> None:
    a, b = servers
    warm(a, spill)
    warm(b, spill)
    browser = Browser()
    browser(a, "/set/?value=one", {})
    old = browser.cookie
    assert b.request("/get/", old).body == "one"
    browser(a, "/set/?value=two", {})
    if has_feed(spill):
        assert eventually(lambda: b.request("/get/", old).body == "two", FEED_DELAY)
    assert b.request("/get/", browser.cookie).body == "two"


def test_the_session_key_is_stable_and_loads_anywhere(
    servers: tuple[Server, Server], spill: str, alice: User
) -> None:
    a, _b = servers
    browser = Browser()
    browser(a, "/set/?value=one", {})
    from hybrid_sessions.backends.hybrid import record_digest

    first = record_digest(browser.cookie)
    browser(a, "/set/?value=two", {})
    assert record_digest(browser.cookie) == first
    assert first is not None
    assert len(first) == len(digest("x"))
