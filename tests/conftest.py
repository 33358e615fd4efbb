"""Fixtures shared by every test module.

Servers: on a developer's machine a missing Redis skips the tests that need it,
with a message; under ``CI=true`` a missing server fails the run instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import override_settings

from tests.engines import ENGINES, Engine
from tests.redis_keys import delete_run_keys

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _stop_feeds(django_db_setup: None) -> Iterator[None]:
    """The feeds' listening connections would keep the test database from being dropped.

    Set up after the test database, so torn down before it is dropped.
    """
    yield
    from hybrid_sessions.feeds import stop_all

    stop_all()


@pytest.fixture(scope="session")
def redis_available() -> bool:
    return _reachable(settings.CACHES["default"]["LOCATION"])


@pytest.fixture(autouse=True)
def _redis_guard(request: pytest.FixtureRequest, redis_available: bool) -> Iterator[None]:
    """Skip (or, in CI, fail) Redis tests without a server; start and end each with no run keys.

    Only this run's keys (its ``KEY_PREFIX``) are removed: the Redis database may
    be shared, and everything else in it is left alone.
    """
    if request.node.get_closest_marker("redis") is None:
        yield
        return
    if not redis_available:
        message = "Redis is not reachable on " + settings.CACHES["default"]["LOCATION"]
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message + "; skipping the Redis tests")
    delete_run_keys()
    yield
    delete_run_keys()


#: What was not run for want of a server, one line each, for the end of the report.
NOT_RUN: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests parametrised over a Redis engine carry the ``redis`` mark.

    Without a Redis server (outside CI) the Redis tests are left out at once, and
    the report ends with one line that says so and how to run them.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("engine") if callspec else None
        if isinstance(engine, Engine) and engine.needs_redis:
            item.add_marker(pytest.mark.redis)
    location = settings.CACHES["default"]["LOCATION"]
    redis_items = [item for item in items if item.get_closest_marker("redis") is not None]
    if IN_CI or not redis_items or _reachable(location):
        return
    items[:] = [item for item in items if item.get_closest_marker("redis") is None]
    config.hook.pytest_deselected(items=redis_items)
    NOT_RUN.append(
        f"Redis is not reachable on {location}: {len(redis_items)} Redis tests not run "
        "(start redis-server, or set HYBRID_SESSIONS_TEST_REDIS to a Redis URL)"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in NOT_RUN:
        terminalreporter.write_line(f"SKIPPED {line}", yellow=True)


@pytest.fixture(params=ENGINES, ids=[e.name for e in ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    """Every engine of the package in turn, active as SESSION_ENGINE."""
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings):
        yield eng
