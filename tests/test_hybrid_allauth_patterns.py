"""What third-party apps (django-allauth, for one) do with sessions, with Django alone.

django-allauth's own test suite runs with the hybrid engine; these are the
patterns behind it that the engine must keep working: a site's test suite run
by Django's runner on PostgreSQL, session keys kept in a table of the app's own
(a 40-character column) to list a user's sessions and end the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from hybrid_sessions.backends.hybrid import SessionStore

from .test_hybrid_engine import COOKIE, Spill
from .test_hybrid_engine import alice as alice
from .test_hybrid_engine import spill as spill

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = os.environ.get("HYBRID_SESSIONS_TEST_SUFFIX", "")

RUN_SITE_TESTS = """
import json, sys
import django
from django.conf import settings
settings.configure(
    DATABASES={"default": json.loads(sys.argv[1])},
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "hybrid_sessions"],
    MIDDLEWARE=["hybrid_sessions.middleware.SessionMiddleware"],
    ROOT_URLCONF="tests.runner_app",
    SECRET_KEY="runner-" + "x" * 50,
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    SESSION_ENGINE="hybrid_sessions.backends.hybrid",
    HYBRID_SESSIONS_SPILL_ENGINE="hybrid_sessions.backends.db",
)
django.setup()
from django.test.utils import get_runner
failures = get_runner(settings)(verbosity=1, interactive=False).run_tests(["tests.runner_app"])
sys.exit(1 if failures else 0)
"""


def _admin_connection() -> Any:
    params = connection.get_connection_params()
    return psycopg.connect(
        host=params.get("host"), port=params.get("port"), user=params.get("user"),
        password=params.get("password"), dbname="postgres", autocommit=True,
    )


def test_a_sites_test_suite_on_postgresql_drops_its_test_database(db: None) -> None:
    """Django's runner drops the test database at the end: no feed connection may hold it."""
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL has a feed (LISTEN) connection to the database")
    name = f"test_hs_runner{SUFFIX}"
    database = {
        key: value for key, value in connection.settings_dict.items()
        if key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")
    }
    database["TEST"] = {"NAME": name}
    try:
        run = subprocess.run(
            [sys.executable, "-c", RUN_SITE_TESTS, json.dumps(database)],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        )
        assert "OK" in run.stderr, run.stderr
        assert "being accessed by other users" not in run.stderr
        assert run.returncode == 0, run.stderr
        with _admin_connection() as admin:
            left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            assert left.fetchone() is None
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


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

