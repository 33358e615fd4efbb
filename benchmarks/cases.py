"""The engines under test: ours and Django's, each with the stores it runs on.

A case is one engine on one store. Every case of ours names the Django cases it
is compared with; a ratio below 1.0 means ours is faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

#: Database aliases of ``benchmarks.settings`` and the server each needs.
DATABASE_SERVERS = {"sqlite": None, "postgres": "postgres", "mariadb": "mariadb"}


@dataclass(frozen=True)
class Case:
    """One session engine on one store."""

    name: str
    label: str
    engine: str | None
    ours: bool = False
    database: str | None = None
    redis: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()

    @property
    def cookie_only(self) -> bool:
        """No server store at all: the session key is the cookie value itself."""
        return self.engine is not None and self.engine.endswith("signed_cookies")

    @property
    def alias(self) -> str:
        """The ``DATABASES`` alias of ``benchmarks.settings`` this case uses."""
        return "default" if self.database in (None, "sqlite") else self.database

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers this case needs running (``postgres``, ``mariadb``, ``redis``)."""
        needed: list[str] = []
        server = DATABASE_SERVERS.get(self.database or "sqlite")
        if server:
            needed.append(server)
        if self.redis:
            needed.append("redis")
        return tuple(needed)

    def import_error(self) -> str | None:
        """Why this engine cannot be imported, or ``None`` if it can."""
        if self.engine is None:
            return None
        try:
            module = import_module(self.engine)
            module.SessionStore  # noqa: B018 - the attribute must exist
        except Exception as exc:  # any failure means "not available"
            return f"{type(exc).__name__}: {exc}"
        return None

    def session_settings(self) -> dict[str, Any]:
        """The settings that make this case the active session engine."""
        values: dict[str, Any] = {"SESSION_ENGINE": self.engine} if self.engine else {}
        values.update(self.settings)
        return values


_CACHE = "hybrid_sessions.backends.cache"
_DB = "hybrid_sessions.backends.db"

DJANGO_CASES: list[Case] = [
    Case("django.db.sqlite", "Django db (SQLite)", "django.contrib.sessions.backends.db",
         database="sqlite"),
    Case("django.db.pg", "Django db (PostgreSQL)", "django.contrib.sessions.backends.db",
         database="postgres"),
    Case("django.db.maria", "Django db (MariaDB)", "django.contrib.sessions.backends.db",
         database="mariadb"),
    Case("django.cache", "Django cache (django-redis)", "django.contrib.sessions.backends.cache",
         redis=True),
    Case("django.cached_db.pg", "Django cached_db (PostgreSQL + Redis)",
         "django.contrib.sessions.backends.cached_db", database="postgres", redis=True),
    Case("django.signed", "Django signed_cookies",
         "django.contrib.sessions.backends.signed_cookies"),
]

OUR_CASES: list[Case] = [
    Case("ours.db.sqlite", "db (SQLite)", _DB, ours=True, database="sqlite",
         baselines=("django.db.sqlite",)),
    Case("ours.db.pg", "db (PostgreSQL)", _DB, ours=True, database="postgres",
         baselines=("django.db.pg",)),
    Case("ours.db.maria", "db (MariaDB)", _DB, ours=True, database="mariadb",
         baselines=("django.db.maria",)),
    Case("ours.cache", "cache (django-redis)", _CACHE, ours=True, redis=True,
         baselines=("django.cache",)),
    Case("ours.signed", "signed_cookies (JWT)", "hybrid_sessions.backends.signed_cookies",
         ours=True, baselines=("django.signed",)),
    Case("ours.hybrid.cache", "hybrid, spill to cache", "hybrid_sessions.backends.hybrid",
         ours=True, redis=True, settings={"HYBRID_SESSIONS_SPILL_ENGINE": _CACHE},
         baselines=("django.signed", "django.cache")),
    Case("ours.hybrid.pg", "hybrid, spill to db (PostgreSQL)", "hybrid_sessions.backends.hybrid",
         ours=True, database="postgres", settings={"HYBRID_SESSIONS_SPILL_ENGINE": _DB},
         baselines=("django.signed", "django.db.pg")),
]

#: The end-to-end reference: the same app with no session middleware at all.
NO_SESSION = Case("none", "no session (baseline)", None)

ALL_CASES: list[Case] = DJANGO_CASES + OUR_CASES
BY_NAME: dict[str, Case] = {c.name: c for c in [*ALL_CASES, NO_SESSION]}


def select(patterns: list[str] | None, cases: list[Case] | None = None) -> list[Case]:
    """The cases whose name contains any of ``patterns`` (all when none are given).

    A case of ours pulls in its baselines so every ratio it has can be computed.
    """
    pool = ALL_CASES if cases is None else cases
    if not patterns:
        return list(pool)
    chosen = {c.name for c in pool if any(p in c.name for p in patterns)}
    for case in pool:
        if case.name in chosen:
            chosen.update(b for b in case.baselines if b in BY_NAME)
    return [c for c in pool if c.name in chosen]
