"""Values as the Redis store keeps them: times as milliseconds since the epoch, text as bytes."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

__all__ = ["aware_now", "from_ms", "maybe_from_ms", "now_ms", "text", "to_ms"]


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are in the current time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = timezone.make_aware(value)
    return math.floor(value.timestamp() * 1000)


def now_ms() -> int:
    return math.floor(time.time() * 1000)


def from_ms(ms: bytes | int) -> datetime:
    """The datetime Django expects for ``ms``: aware in UTC, or naive local without USE_TZ."""
    value = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def aware_now() -> datetime:
    return timezone.now() if settings.USE_TZ else datetime.now()


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def maybe_from_ms(ms: bytes | None) -> datetime | None:
    """:func:`from_ms`, or ``None`` for a field the record lacks."""
    return None if ms is None else from_ms(ms)
