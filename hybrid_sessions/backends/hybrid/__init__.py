"""A server session whose cookie carries it while small: cookie-speed reads, server control.

::

    SESSION_ENGINE = "hybrid_sessions.backends.hybrid"
    MIDDLEWARE = [..., "hybrid_sessions.middleware.SessionMiddleware", ...]

The server (``HYBRID_SESSIONS_SPILL_ENGINE``'s store) holds every session, as
with the ``db`` and ``cache`` engines, under a stable ``session_key``. The
cookie is a signed cache of one version of it: the whole session while it fits
(reads then cost no round trip), only the key and the cookie keys when it does
not. Every process learns of new versions and ends through the store's feed,
so a stale or ended cookie is not served. Modules:

* ``cookie``: the token's payload, and the inline or spilled choice;
* ``access``: dict access that fetches only what the cookie lacks;
* ``engine``: the ``SessionStore`` Django uses.
"""

from .engine import SessionStore, record_digest

__all__ = ["SessionStore", "record_digest"]
