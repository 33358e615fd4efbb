"""Waiting for what another thread or process does: the feed's listeners, a server's restart."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], within: float = 3.0) -> bool:
    """Whether ``check()`` comes true within ``within`` seconds (polled every 10 ms)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
