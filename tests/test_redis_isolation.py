"""The test suite never touches Redis data it did not create.

The Redis database the tests use may be a developer's own (db 1 by default):
each run writes under its own ``KEY_PREFIX`` and removes only those keys,
with SCAN and UNLINK, never ``FLUSHDB`` or ``KEYS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache

from tests.redis_keys import delete_run_keys, run_keys


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("default")


@pytest.fixture(scope="module")
def foreign_keys(redis_available: bool) -> Iterator[list[str]]:
    """Keys someone else keeps in the same database, written before any test here runs.

    One of them starts with this run's prefix but belongs to another namespace.
    """
    if not redis_available:
        pytest.skip("Redis is not reachable; skipping the Redis tests")
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    names = [f"someone-else:{uuid.uuid4().hex}", f"{prefix}0:1:{uuid.uuid4().hex}"]
    for name in names:
        _redis().set(name, b"keep", ex=600)
    yield names
    _redis().delete(*names)  # ours to remove: this module wrote them


@pytest.mark.redis
@pytest.mark.parametrize("visit", ["first", "second"])
def test_keys_outside_the_runs_prefix_survive_redis_tests(
    foreign_keys: list[str], visit: str
) -> None:
    # The second visit runs after the first test's cleanup and its own setup.
    cache.set(f"ours-{visit}", 1)

    assert [_redis().get(name) for name in foreign_keys] == [b"keep", b"keep"]
    assert {k.decode().rsplit(":", 1)[-1] for k in run_keys()} == {f"ours-{visit}"}


@pytest.mark.redis
def test_cleanup_removes_only_the_runs_keys(foreign_keys: list[str]) -> None:
    cache.set_many({"a": 1, "b": 2, "c": 3})

    removed = delete_run_keys()

    assert removed == 3
    assert run_keys() == set()
    assert [_redis().get(name) for name in foreign_keys] == [b"keep", b"keep"]


def test_the_run_prefix_is_unique_to_this_run() -> None:
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    assert settings.RUN_ID in prefix
    assert prefix != f"hstest{settings.SUFFIX}"
