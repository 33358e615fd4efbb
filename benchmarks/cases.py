"""The cases (one engine on one store), the sizes and the targets: the one place a goal
and its limit are written down; the report judges every run against them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Serialised session sizes: an anonymous visitor, a logged-in shopper, a large form.
SIZES = (100, 2048, 20480)
#: ``load``: open the session and read one key; ``modify``: also set one key and save.
CYCLES = ("load", "modify")
#: ``engine``: ``SessionStore`` alone; ``request``: through our ``SessionMiddleware``.
LEVELS = ("engine", "request")


def size_label(size: int) -> str:
    return {100: "100 B", 2048: "2 KB", 20480: "20 KB"}.get(size, f"{size} B")


@dataclass(frozen=True)
class Case:
    """One session engine on one store."""

    name: str
    label: str
    engine: str | None
    database: str | None = None  # "postgres", "mariadb", "sqlite"
    redis: bool = False
    sizes: tuple[int, ...] = SIZES
    settings: dict[str, Any] = field(default_factory=dict)
    default: bool = True  # part of a run unless asked for by name

    @property
    def ours(self) -> bool:
        return self.name.startswith("ours.")

    @property
    def servers(self) -> tuple[str, ...]:
        return tuple(s for s in (self.database, "redis" if self.redis else None)
                     if s and s != "sqlite")

    def session_settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"SESSION_ENGINE": self.engine} if self.engine else {}
        return {**values, **self.settings}


_COOKIE = (100, 2048)  # 20 KB does not fit in a cookie
_DJANGO, _OURS = "django.contrib.sessions.backends.", "hybrid_sessions.backends."

CASES: list[Case] = [
    Case("none", "no session", None, sizes=(2048,)),
    Case("django.signed", "Django signed_cookies", _DJANGO + "signed_cookies", sizes=_COOKIE),
    Case("ours.signed", "signed_cookies", _OURS + "signed_cookies", sizes=_COOKIE),
    Case("ours.hybrid", "hybrid (spills to cache)", _OURS + "hybrid", redis=True,
         settings={"HYBRID_SESSIONS_SPILL_ENGINE": _OURS + "cache"}),
    # The same hybrid with its server copy encrypted (HYBRID_SESSIONS_ENCRYPT_SERVER_DATA).
    Case("ours.hybrid.sealed", "hybrid, encrypted server data", _OURS + "hybrid", redis=True,
         sizes=(2048, 20480),
         settings={"HYBRID_SESSIONS_SPILL_ENGINE": _OURS + "cache",
                   "HYBRID_SESSIONS_ENCRYPT_SERVER_DATA": True}),
    Case("django.cache", "Django cache", _DJANGO + "cache", redis=True),
    Case("ours.cache", "cache", _OURS + "cache", redis=True),
    Case("django.db.pg", "Django db (PostgreSQL)", _DJANGO + "db", database="postgres",
         sizes=(2048,)),
    Case("ours.db.pg", "db (PostgreSQL)", _OURS + "db", database="postgres", sizes=(2048,)),
    # Only when named (``--cases db.sqlite,db.maria``): the same comparison on other databases.
    Case("django.db.sqlite", "Django db (SQLite)", _DJANGO + "db", database="sqlite",
         sizes=(2048,), default=False),
    Case("ours.db.sqlite", "db (SQLite)", _OURS + "db", database="sqlite", sizes=(2048,),
         default=False),
    Case("django.db.maria", "Django db (MariaDB)", _DJANGO + "db", database="mariadb",
         sizes=(2048,), default=False),
    Case("ours.db.maria", "db (MariaDB)", _OURS + "db", database="mariadb", sizes=(2048,),
         default=False),
]
BY_NAME: dict[str, Case] = {c.name: c for c in CASES}


def label(name: str) -> str:
    case = BY_NAME.get(name)
    return case.label if case else name


def select(patterns: list[str]) -> list[Case]:
    """The default cases, or those whose name contains one of ``patterns``, with every
    baseline they are compared with (and ``none``), so that each ratio can be computed."""
    if not patterns:
        return [c for c in CASES if c.default]
    chosen = {c.name for c in CASES if any(p in c.name for p in patterns)}
    chosen |= {OPTIONS[c] for c in list(chosen) if c in OPTIONS}
    chosen |= {t.baseline for t in TARGETS if t.case in chosen}
    chosen |= {b for c in list(chosen) for b in BASELINES.get(c, ())}
    return [c for c in CASES if c.name in chosen or c.name == "none"]


@dataclass(frozen=True)
class Target:
    """One goal: ``case`` over ``baseline`` at one size and cycle, and its limit."""

    text: str
    short: str  # for the chart
    case: str
    baseline: str
    size: int
    cycle: str
    limit: float
    endtoend: bool = False  # a ratio of requests per second: higher is better

    def met(self, ratio: float) -> bool:
        return ratio >= self.limit if self.endtoend else ratio <= self.limit

    @property
    def limit_text(self) -> str:
        return f"≥ {self.limit:g}" if self.endtoend else f"≤ {self.limit:g}"


_H, _DC, _DS = "ours.hybrid", "django.cache", "django.signed"

TARGETS: list[Target] = [
    Target("hybrid inline 100 B, load + modify + save, vs Django cache",
           "hybrid 100 B write\nvs Django cache", _H, _DC, 100, "modify", 0.5),
    Target("hybrid inline 2 KB, load + modify + save, vs Django cache",
           "hybrid 2 KB write\nvs Django cache", _H, _DC, 2048, "modify", 0.5),
    Target("hybrid spilled 20 KB, load + modify + save, vs Django cache",
           "hybrid 20 KB write\nvs Django cache", _H, _DC, 20480, "modify", 0.9),
    Target("hybrid spilled 20 KB, load and read one key, vs Django cache",
           "hybrid 20 KB read\nvs Django cache", _H, _DC, 20480, "load", 1.1),
    Target("our cache 2 KB load vs Django cache", "cache 2 KB read\nvs Django cache",
           "ours.cache", _DC, 2048, "load", 0.9),
    Target("our signed_cookies 100 B load vs Django's", "signed 100 B read\nvs Django's",
           "ours.signed", _DS, 100, "load", 0.8),
    Target("our signed_cookies 2 KB load vs Django's", "signed 2 KB read\nvs Django's",
           "ours.signed", _DS, 2048, "load", 0.8),
    Target("our signed_cookies 100 B load + modify + save vs Django's",
           "signed 100 B write\nvs Django's", "ours.signed", _DS, 100, "modify", 0.8),
    Target("our signed_cookies 2 KB load + modify + save vs Django's",
           "signed 2 KB write\nvs Django's", "ours.signed", _DS, 2048, "modify", 0.8),
    Target("hybrid inline 2 KB read vs Django signed_cookies",
           "hybrid 2 KB read\nvs Django signed", _H, _DS, 2048, "load", 1.0),
    Target("our db vs Django db (PostgreSQL), 2 KB write", "db 2 KB write\nvs Django db",
           "ours.db.pg", "django.db.pg", 2048, "modify", 0.6),
    Target("our db vs Django db (PostgreSQL), 2 KB read", "db 2 KB read\nvs Django db",
           "ours.db.pg", "django.db.pg", 2048, "load", 0.6),
    Target("end to end, hybrid inline 2 KB read vs no session (requests/s)",
           "hybrid 2 KB read, req/s\nvs no session", _H, "none", 2048, "read", 0.85,
           endtoend=True),
]

#: An option's cost: a case of ours against the same engine in its default configuration.
OPTIONS: dict[str, str] = {"ours.hybrid.sealed": _H}

#: Comparisons shown beside the targets: every case of ours against its Django counterpart.
BASELINES: dict[str, tuple[str, ...]] = {
    "ours.cache": (_DC,),
    "ours.signed": (_DS,),
    "ours.hybrid": (_DS, _DC),
    "ours.db.pg": ("django.db.pg",),
    "ours.db.sqlite": ("django.db.sqlite",),
    "ours.db.maria": ("django.db.maria",),
}
