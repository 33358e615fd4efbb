"""The session engines the demo can run on, by short name (``DEMO_SESSION_ENGINE``).

Read by the demo's settings before Django starts, so nothing here imports
Django models. An unknown name is not an import error at the first request:
the ``demo.E001`` system check names the choices, and ``rundemo`` and
``manage.py check`` stop on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

HYBRID = "hybrid_sessions.backends.hybrid"


@dataclass(frozen=True)
class DemoEngine:
    """One choice: the ``SESSION_ENGINE`` and the settings that go with it."""

    path: str
    summary: str
    needs_redis: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


CHOICES: dict[str, DemoEngine] = {
    "hybrid": DemoEngine(HYBRID, "a signed cookie; large sessions spill to SQLite (the default)"),
    "hybrid-redis": DemoEngine(
        HYBRID,
        "a signed cookie; large sessions spill to Redis",
        needs_redis=True,
        settings={"HYBRID_SESSIONS_SPILL_ENGINE": "hybrid_sessions.backends.cache"},
    ),
    "db": DemoEngine("hybrid_sessions.backends.db", "server side, in SQLite"),
    "cache": DemoEngine("hybrid_sessions.backends.cache", "server side, in Redis", True),
    "signed_cookies": DemoEngine(
        "hybrid_sessions.backends.signed_cookies", "the whole session in a signed cookie"
    ),
}
DEFAULT = "hybrid"


def help_text() -> str:
    """The choices, one per line, for ``rundemo --help`` and error messages."""
    lines = [f"  {name:<15} {engine.summary}" for name, engine in CHOICES.items()]
    return "\n".join(
        [*lines, "  or the dotted path of any SESSION_ENGINE (Redis for '...cache' engines)"]
    )


def resolve(value: str) -> DemoEngine | None:
    """The engine a short name or dotted path stands for; ``None`` if it is neither."""
    value = value.strip()
    if value in CHOICES:
        return CHOICES[value]
    if "." not in value:
        return None
    for engine in CHOICES.values():
        if engine.path == value and not engine.settings:
            return engine
    # Any other engine by path: Django's own included (their cache engines need Redis).
    return DemoEngine(value, value, needs_redis="cache" in value.rsplit(".", 1)[-1])


def problem(value: str) -> str | None:
    """Why ``value`` cannot be the demo's engine, or ``None`` if it can."""
    engine = resolve(value)
    if engine is not None:
        try:
            import_module(engine.path).SessionStore  # noqa: B018
        except (ImportError, AttributeError) as exc:
            reason = f"it cannot be imported ({exc})"
        else:
            return None
    else:
        reason = "it is not one of the names below, nor a dotted path"
    return f"DEMO_SESSION_ENGINE={value!r}: {reason}. Choose one of:\n{help_text()}"
