"""Sessions in the site's relational database, keys hashed at rest.

A drop-in replacement for ``django.contrib.sessions.backends.db``::

    SESSION_ENGINE = "hybrid_sessions.backends.db"
"""

from __future__ import annotations

from ..stores.database import DatabaseStore
from .base import ServerSessionBase


class SessionStore(ServerSessionBase):
    """Database-backed session engine."""

    store_class = DatabaseStore
