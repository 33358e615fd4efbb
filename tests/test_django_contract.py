"""Django's own session contract, ``SessionTestsMixin``, against each of our engines.

The mixin is imported from the source distribution of the installed Django
(see ``tests/django_suite.py``); it holds 65 tests, 37 sync and 28 async.
"""

from __future__ import annotations

import unittest

import pytest
from django.test import SimpleTestCase, TestCase, override_settings
from sessions_tests.tests import SessionTestsMixin

from hybrid_sessions.backends import cache, db, hybrid, signed_cookies


class TestDatabaseEngine(SessionTestsMixin, TestCase):  # type: ignore[misc]
    backend = db.SessionStore


@pytest.mark.redis
class TestCacheEngine(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = cache.SessionStore


class TestSignedCookiesEngine(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    """Django's own relaxations for its cookie engine, and no more.

    ``test_actual_expiry`` (and its async twin) pass as written: the token's
    ``exp`` follows ``set_expiry()``. A hostile key loads as ``None``, so the
    "does not create record" tests pass too.
    """

    backend = signed_cookies.SessionStore

    @unittest.skip("exists() has no shared store to ask (Django skips it for its engine too).")
    def test_save(self) -> None:
        """Skipped, as for Django's cookie engine."""

    @unittest.skip("exists() has no shared store to ask (Django skips it for its engine too).")
    async def test_save_async(self) -> None:
        """Skipped, as for Django's cookie engine."""

    @unittest.skip("An issued token cannot be ended before its exp (Django skips it too).")
    def test_cycle(self) -> None:
        """Skipped, as for Django's cookie engine."""

    @unittest.skip("An issued token cannot be ended before its exp (Django skips it too).")
    async def test_cycle_async(self) -> None:
        """Skipped, as for Django's cookie engine."""

    @unittest.skip("The session lives in the client; there is no other context to ask.")
    def test_session_save_does_not_resurrect_session_logged_out_in_other_context(self) -> None:
        """Skipped, as for Django's cookie engine."""

    @unittest.skip("The session lives in the client; there is no other context to ask.")
    async def test_session_asave_does_not_resurrect_session_logged_out_in_other_context(
        self,
    ) -> None:
        """Skipped, as for Django's cookie engine."""


class TestHybridEngineSpillingToDatabase(SessionTestsMixin, TestCase):  # type: ignore[misc]
    backend = hybrid.SessionStore


@pytest.mark.redis
@override_settings(HYBRID_SESSIONS_SPILL_ENGINE="hybrid_sessions.backends.cache")
class TestHybridEngineSpillingToRedis(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = hybrid.SessionStore


@override_settings(HYBRID_SESSIONS_INLINE_MAX_BYTES=0)
class TestHybridEngineAlwaysSpillingToDatabase(SessionTestsMixin, TestCase):  # type: ignore[misc]
    """Every session spilled: the contract holds on the lazy-fetch path too."""

    backend = hybrid.SessionStore


@pytest.mark.redis
@override_settings(
    HYBRID_SESSIONS_SPILL_ENGINE="hybrid_sessions.backends.cache",
    HYBRID_SESSIONS_INLINE_MAX_BYTES=0,
)
class TestHybridEngineAlwaysSpillingToRedis(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = hybrid.SessionStore
