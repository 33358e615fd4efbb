"""The engines the contract suite runs against, and how to inspect their server side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.stores.base import digest


def _db_records() -> int:
    from hybrid_sessions.models import Session

    return Session.objects.count()


def _redis_records() -> int:
    from tests.redis_keys import run_keys

    return len(run_keys())


def _no_records() -> int:
    return 0


@dataclass(frozen=True)
class Engine:
    name: str
    path: str
    server_side: bool
    needs_redis: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    records: Callable[[], int] = _no_records

    @property
    def store(self) -> Any:
        return import_module(self.path).SessionStore

    def digest_of(self, session_key: str) -> str | None:
        """The store digest behind a cookie value (the hybrid's sits inside its token)."""
        record_digest: Callable[[str], str | None] | None = getattr(
            import_module(self.path), "record_digest", None
        )
        if record_digest is not None:
            return record_digest(session_key)
        return digest(session_key)

    def __repr__(self) -> str:
        return self.name


def saved_digest(session: SessionBase) -> str:
    """The digest a saved session of a server-side engine is stored under."""
    assert isinstance(session, ServerSessionBase), "a server-side engine's session"
    value = session.session_digest
    assert value is not None, "a saved session has a live record"
    return value


ENGINES: list[Engine] = [
    Engine("db", "hybrid_sessions.backends.db", server_side=True, records=_db_records),
    Engine(
        "cache", "hybrid_sessions.backends.cache", server_side=True, needs_redis=True,
        records=_redis_records,
    ),
    Engine("signed_cookies", "hybrid_sessions.backends.signed_cookies", server_side=False),
    Engine("hybrid-db", "hybrid_sessions.backends.hybrid", server_side=True, records=_db_records),
    Engine(
        "hybrid-cache", "hybrid_sessions.backends.hybrid", server_side=True, needs_redis=True,
        settings={"HYBRID_SESSIONS_SPILL_ENGINE": "hybrid_sessions.backends.cache"},
        records=_redis_records,
    ),
]
