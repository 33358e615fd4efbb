"""Django's own session contract, ``SessionTestsMixin``, against each of our engines.

The mixin is imported from the source distribution of the installed Django
(see ``tests/django_suite.py``); it holds 65 tests, 37 sync and 28 async.
"""

from __future__ import annotations

from django.test import TestCase
from sessions_tests.tests import SessionTestsMixin

from hybrid_sessions.backends import db


class TestDatabaseEngine(SessionTestsMixin, TestCase):  # type: ignore[misc]
    backend = db.SessionStore
