"""Sessions in Redis through a django-redis cache, keys hashed at rest.

A drop-in replacement for ``django.contrib.sessions.backends.cache``, reading
the same ``SESSION_CACHE_ALIAS``::

    SESSION_ENGINE = "hybrid_sessions.backends.cache"

Unlike Django's engine it creates sessions atomically, keeps a per-user index,
merges concurrent saves, and reports an unreachable Redis instead of logging
users out (see ``hybrid_sessions.stores.redis``).
"""

from __future__ import annotations

from ..stores.redis import RedisStore
from .base import ServerSessionBase


class SessionStore(ServerSessionBase):
    """Redis-backed session engine."""

    store_class = RedisStore
