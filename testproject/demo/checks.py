"""The demo's own system check: the engine named by ``DEMO_SESSION_ENGINE`` exists."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from . import engines


@register()
def check_demo_engine(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "DEMO_SESSION_ENGINE", engines.DEFAULT)
    message = engines.problem(value)
    if message is None:
        return []
    return [Error(message, hint="Unset it for the default, 'hybrid'.", id="demo.E001")]
