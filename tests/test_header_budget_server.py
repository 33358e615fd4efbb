"""The header budget against a real front server that refuses long header lines.

gunicorn answers 431 (or, in older releases, 400) to a request whose ``Cookie``
line is longer than its ``--limit-request-field_size``. A browser that already
holds 3 KB of the site's other cookies, and whose session grows to 1.5 KB,
sends such a request on its next visit unless the hybrid spills: with the
budget at the server's limit it does, and the visitor reads the session back;
with the budget off, the front server refuses the visitor. Over each spill
store, on the test database.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie

import pytest
from django.conf import settings
from django.db import connection

from tests.test_hybrid_processes import GUNICORN, _free_port, _wait_up

COOKIE = settings.SESSION_COOKIE_NAME
#: The front server's limit on one header line, and the budget that matches it.
LIMIT = 4096
OTHER_COOKIES = {"site_preferences": "p" * 1500, "analytics": "a" * 1500}

pytestmark = pytest.mark.slow


@pytest.fixture(params=["db", pytest.param("cache", marks=pytest.mark.redis)])
def spill(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _serve(spill: str, budget: int | None) -> tuple[int, subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "HYBRID_SESSIONS_APP_DATABASE": str(connection.settings_dict["NAME"]),
        "HYBRID_SESSIONS_APP_SPILL": f"hybrid_sessions.backends.{spill}",
        "HYBRID_SESSIONS_TEST_REDIS": settings.CACHES["default"]["LOCATION"],
        "HYBRID_SESSIONS_APP_SETTINGS": json.dumps(
            {"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": budget}
        ),
        "PYTHONPATH": os.getcwd(),
    }
    port = _free_port()
    process = subprocess.Popen(
        [GUNICORN, "--workers", "1", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "1",
         "--limit-request-field_size", str(LIMIT), "tests.app_server:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _wait_up(port, process)
    return port, process


@pytest.fixture
def front_server(spill: str, transactional_db: None) -> Iterator[Callable[[int | None], int]]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(budget: int | None) -> int:
        port, process = _serve(spill, budget)
        processes.append(process)
        return port

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def visit(port: int, path: str, jar: dict[str, str]) -> tuple[int, str]:
    """One request with every cookie of ``jar``, as a browser sends them; the jar is updated."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Cookie", "; ".join(f"{name}={value}" for name, value in jar.items()))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body, headers = response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        status, body, headers = error.code, error.read().decode(errors="replace"), error.headers
    for header in headers.get_all("Set-Cookie") or []:
        parsed: SimpleCookie = SimpleCookie(header)
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    return status, body


def grow_session(port: int) -> tuple[dict[str, str], str]:
    """A visitor with 3 KB of other cookies stores 1.5 KB of incompressible data."""
    jar = dict(OTHER_COOKIES)
    value = secrets.token_urlsafe(1100)
    status, body = visit(port, f"/set/?value={value}", jar)
    assert (status, body) == (200, "ok")
    assert COOKIE in jar
    return jar, value


def test_with_the_budget_at_the_servers_limit_the_next_request_is_accepted(
    front_server: Callable[[int | None], int],
) -> None:
    port = front_server(LIMIT)
    jar, value = grow_session(port)
    cookie_line = len("Cookie: " + "; ".join(f"{n}={v}" for n, v in jar.items()))
    assert cookie_line <= LIMIT
    assert visit(port, "/get/", jar) == (200, value)


def test_without_the_budget_the_front_server_refuses_the_visitor(
    front_server: Callable[[int | None], int],
) -> None:
    """What the budget prevents: the same visit with it off is refused by gunicorn."""
    port = front_server(None)
    jar, _value = grow_session(port)
    status, _body = visit(port, "/get/", jar)
    assert status in (400, 431)  # 431 Request Header Fields Too Large, from gunicorn
