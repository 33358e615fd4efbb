"""Typed, lazily read ``HYBRID_SESSIONS_*`` settings.

Every property reads ``django.conf.settings`` on access, so
``override_settings`` works in tests and nothing is read at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from django.conf import settings as django_settings
from django.core.signals import setting_changed

T = TypeVar("T")

#: Keys that the hybrid engine keeps in the cookie even when the rest of the
#: session is spilled: enough for ``request.user`` and the expiry policy.
DEFAULT_COOKIE_KEYS: tuple[str, ...] = (
    "_auth_user_id",
    "_auth_user_backend",
    "_auth_user_hash",
    "_session_expiry",
)


#: The longest User-Agent kept with a session (the database column's length).
USER_AGENT_MAX_LENGTH = 512


class Settings:
    """One property per ``HYBRID_SESSIONS_*`` setting, with its default."""

    def _get(self, name: str, default: Any) -> Any:
        return getattr(django_settings, f"HYBRID_SESSIONS_{name}", default)

    @property
    def TRACK_IP_ADDRESS(self) -> bool:
        """Record the client's IP address with server-side sessions (personal data)."""
        return bool(self._get("TRACK_IP_ADDRESS", False))

    @property
    def TRACK_USER_AGENT(self) -> bool:
        """Record the client's User-Agent with server-side sessions (personal data)."""
        return bool(self._get("TRACK_USER_AGENT", False))

    @property
    def CLEAR_EXPIRED_BATCH_SIZE(self) -> int:
        """Rows deleted per statement by ``clear_expired()``: flat memory, short locks."""
        return int(self._get("CLEAR_EXPIRED_BATCH_SIZE", 1000))

    @property
    def SAVE_MAX_RETRIES(self) -> int:
        """Compare-and-set attempts before a save under contention gives up."""
        return int(self._get("SAVE_MAX_RETRIES", 20))

    @property
    def ON_STORE_ERROR(self) -> Literal["raise", "empty"]:
        """What a read does when the server store is down: raise, or act as an empty session."""
        value: Literal["raise", "empty"] = self._get("ON_STORE_ERROR", "raise")
        return value

    @property
    def JWT_ALGORITHM(self) -> str:
        """The one HMAC algorithm cookie tokens are signed and verified with."""
        return str(self._get("JWT_ALGORITHM", "HS256"))

    @property
    def ENCRYPT(self) -> bool:
        """Encrypt cookie payloads with AES-256-GCM, not only sign them."""
        return bool(self._get("ENCRYPT", False))

    @property
    def ENCRYPT_SERVER_DATA(self) -> bool:
        """Seal server-stored session data with a key derived from the session key."""
        return bool(self._get("ENCRYPT_SERVER_DATA", False))

    @property
    def COOKIE_MAX_BYTES(self) -> int:
        """Budget for the whole Set-Cookie (name, value, attributes); browsers drop > 4096."""
        return int(self._get("COOKIE_MAX_BYTES", 4096))

    @property
    def INLINE_MAX_BYTES(self) -> int:
        """Largest hybrid cookie value that still carries the data itself."""
        return int(self._get("INLINE_MAX_BYTES", 2048))

    @property
    def REQUEST_HEADERS_MAX_BYTES(self) -> int | None:
        """The request headers front servers accept; the hybrid spills to keep within them.

        4096 is uWSGI's default for a whole request's headers, so it fits nginx's
        and gunicorn's 8 KB per line too. ``None``: only the cookie budgets count.
        """
        value = self._get("REQUEST_HEADERS_MAX_BYTES", 4096)
        return None if value is None else int(value)

    @property
    def SPILL_ENGINE(self) -> str:
        """The server-side engine that holds the hybrid engine's records and spilled data."""
        return str(self._get("SPILL_ENGINE", "hybrid_sessions.backends.db"))

    @property
    def REVALIDATE_SECONDS(self) -> int:
        """How long a hybrid cookie is trusted on reads before the server is asked again."""
        return int(self._get("REVALIDATE_SECONDS", 60))

    @property
    def SERVER_KEYS(self) -> Sequence[str]:
        """Keys the hybrid engine never copies into the cookie: always read from the server."""
        return tuple(self._get("SERVER_KEYS", ()))

    @property
    def FEED(self) -> Literal["versions", "revocations", "off"]:
        """What the hybrid's store tells other processes: new versions and ends, ends, nothing."""
        value: Literal["versions", "revocations", "off"] = self._get("FEED", "versions")
        return value

    @property
    def FEED_IN_TESTS(self) -> bool:
        """Run the PostgreSQL feed under Django's test runner too (it must then be stopped,
        with ``hybrid_sessions.feeds.stop_all()``, before the test database is dropped)."""
        return bool(self._get("FEED_IN_TESTS", False))

    @property
    def GUARD_UNSAFE_REQUESTS(self) -> bool:
        """Without a healthy feed, unsafe requests of signed-in hybrid sessions ask the server."""
        return bool(self._get("GUARD_UNSAFE_REQUESTS", True))

    @property
    def COOKIE_KEYS(self) -> Sequence[str]:
        """Keys the hybrid engine keeps in the cookie when it spills the rest."""
        extra = tuple(self._get("COOKIE_KEYS", ()))
        return DEFAULT_COOKIE_KEYS + tuple(k for k in extra if k not in DEFAULT_COOKIE_KEYS)

    @property
    def BASE_TEMPLATE(self) -> str:
        """The template the devices page extends (the site's layout)."""
        return str(self._get("BASE_TEMPLATE", "base.html"))

    @property
    def ADMIN_MASKED_KEYS(self) -> str | None:
        """A regex of session keys whose values the admin masks; ``None``: Django's pattern."""
        value = self._get("ADMIN_MASKED_KEYS", None)
        return None if value is None else str(value)

    @property
    def MAX_PER_USER(self) -> int | None:
        """Most sessions one user keeps; a login beyond it ends the least recently active."""
        value = self._get("MAX_PER_USER", None)
        return None if value is None else int(value)

    @property
    def IDLE_TIMEOUT(self) -> int | None:
        """Seconds without activity after which a session ends; ``None``: no idle timeout."""
        value = self._get("IDLE_TIMEOUT", None)
        return None if value is None else int(value)

    @property
    def ABSOLUTE_TIMEOUT(self) -> int | None:
        """Seconds after its start at which a session ends, however active; ``None``: never."""
        value = self._get("ABSOLUTE_TIMEOUT", None)
        return None if value is None else int(value)

    @property
    def ACTIVITY_INTERVAL(self) -> int:
        """The least time between two recordings of a session's activity (idle timeout)."""
        return int(self._get("ACTIVITY_INTERVAL", 60))


conf = Settings()


class SettingsCache(Generic[T]):
    """A value derived from settings for hot paths: built on first use, dropped on any change.

    Reading a dozen settings on every request costs more than the work they
    configure; ``override_settings`` still works because any change drops it.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        setting_changed.connect(self._drop, weak=False)

    def __call__(self) -> T:
        value = self._value
        if value is None:
            value = self._value = self._build()
        return value

    def _drop(self, **kwargs: Any) -> None:
        self._value = None
