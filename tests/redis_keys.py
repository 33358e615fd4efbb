"""This test run's keys in Redis, found with SCAN and removed with UNLINK.

The Redis database the tests use may hold other people's data, so nothing
here lists every key (``KEYS``) or empties the database (``FLUSHDB``): every
pattern is anchored on the run's own ``KEY_PREFIX`` (see ``tests/settings.py``).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

#: Keys removed per UNLINK: one round trip per batch, never a long server stall.
BATCH = 500


def _connection() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def pattern(tail: str = "*") -> str:
    """A SCAN pattern for this run's keys; ``tail`` matches after the cache's own prefix.

    The prefix is escaped, so no character of it acts as a wildcard, and the
    ``:`` django-redis puts after it keeps ``<prefix>0:...`` (another run) out.
    """
    prefix = re.sub(r"([\\\[\]*?])", r"\\\1", settings.CACHES["default"]["KEY_PREFIX"])
    return f"{prefix}:{tail}"


def run_keys(tail: str = "*") -> set[bytes]:
    """This run's keys (a set: SCAN may return a key twice)."""
    return set(_connection().scan_iter(match=pattern(tail), count=BATCH))


def delete_run_keys() -> int:
    """Remove this run's keys, and only them; return how many were removed."""
    connection = _connection()
    removed, batch = 0, []
    for key in connection.scan_iter(match=pattern(), count=BATCH):
        batch.append(key)
        if len(batch) >= BATCH:
            removed += int(connection.unlink(*batch))
            batch = []
    if batch:
        removed += int(connection.unlink(*batch))
    return removed
