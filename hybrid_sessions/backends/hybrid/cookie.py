"""The hybrid cookie: a signed cache of one version of a server record.

The cookie value is a token from :class:`~hybrid_sessions.tokens.TokenCodec`
whose payload holds ``sid`` (the session key), ``v`` (the record's version)
and ``d``: the whole session while the token fits in
``HYBRID_SESSIONS_INLINE_MAX_BYTES`` (``s`` = :data:`INLINE`), else only the
cookie-resident keys (``HYBRID_SESSIONS_COOKIE_KEYS``, ``s`` = :data:`SPILLED`,
or :data:`SPILLED_PARTIAL` when even some of those did not fit). Keys named in
``HYBRID_SESSIONS_SERVER_KEYS`` are never copied in; ``x`` says the session has
some. The server always holds the whole session: the cookie only saves reads.
Given the room the cookie has in the browser's next request (the middleware's
``header_room``), the token is inline only if it also fits there, and a
spilled one sheds resident keys to fit it too.
With the idle or absolute timeout on, the token also carries the session's
start and last recorded activity (claims ``st`` and ``la``, beside ``iat`` and
``exp``), so a cookie served without the server is held to both.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import VALID_KEY_CHARS

from ...conf import SettingsCache, conf
from ...cookies import log_rejected, set_cookie_size
from ...exceptions import CookieTooLarge, ExpiredToken, MalformedToken, TokenError
from ...serialization import writes_json
from ...timeouts import ACTIVE_CLAIM, START_CLAIM, now, timeouts
from ...tokens import TokenCodec

__all__ = ["INLINE", "SPILLED", "SPILLED_PARTIAL", "HybridSettings", "Parsed", "hybrid_settings"]

logger = logging.getLogger("hybrid_sessions")

#: The keys ``request.user`` needs: never moved out of the cookie for size
#: while anything else can go instead.
AUTH_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)
#: Length of a session key (about 165 bits).
SID_LENGTH = 32
_SID = re.compile(f"[{VALID_KEY_CHARS}]{{{SID_LENGTH}}}")
#: Keys accepted as a bare cookie value (our own, and Django's engines' after a
#: switch): a server key, looked up like the ``db`` engine's.
BARE_KEY = re.compile(f"[{VALID_KEY_CHARS}]{{8,40}}")
#: No cookie value we issue is longer; longer values are refused before any decoding.
MAX_COOKIE_CHARS = 8192
#: Inline is tried only while the serialised data is at most this many times
#: the inline budget, which bounds what a request inflates and parses.
INLINE_RAW_FACTOR = 8
#: Payload flags: inline; spilled with every default cookie key in ``d`` (an
#: absent one is absent from the session); spilled with only some of them.
INLINE, SPILLED, SPILLED_PARTIAL = 0, 1, 2


class HybridSettings:
    """The settings every request reads, read once and kept until a setting changes."""

    __slots__ = (
        "codec",
        "cookie_keys",
        "cookie_max",
        "cookie_name",
        "expire_at_close",
        "feed_mode",
        "guard_unsafe",
        "inline_max",
        "server_keys",
        "spill_engine",
        "window",
    )

    def __init__(self) -> None:
        self.cookie_name: str = settings.SESSION_COOKIE_NAME
        # Per cookie name, so a token of one site's cookie never loads as another's.
        self.codec = TokenCodec("hybrid_sessions.hybrid:" + self.cookie_name)
        self.server_keys = frozenset(conf.SERVER_KEYS)
        self.cookie_keys = tuple(k for k in conf.COOKIE_KEYS if k not in self.server_keys)
        self.cookie_max = conf.COOKIE_MAX_BYTES
        self.inline_max = conf.INLINE_MAX_BYTES
        self.window = float(conf.REVALIDATE_SECONDS)
        self.feed_mode = conf.FEED
        self.guard_unsafe = conf.GUARD_UNSAFE_REQUESTS
        self.spill_engine = conf.SPILL_ENGINE
        self.expire_at_close: bool = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE


#: The engine's hot settings, rebuilt whenever a setting changes.
hybrid_settings = SettingsCache(HybridSettings)


@dataclass(slots=True)
class Parsed:
    """A verified hybrid token."""

    sid: str
    version: int
    data: dict[str, Any]
    flag: int
    issued_at: int
    current_key: bool
    server_keys: bool
    #: The session's start and last recorded activity (``None``: a cookie issued
    #: while the timeouts were off).
    started_at: int | None = None
    active_at: int | None = None


def _to_claim(serializer: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Session data as the JSON the token carries, through ``SESSION_SERIALIZER``."""
    if writes_json(serializer):
        return data
    value: dict[str, Any] = json.loads(serializer().dumps(data))
    return value


def _from_claim(serializer: Any, data: dict[str, Any]) -> dict[str, Any]:
    if writes_json(serializer):
        return data
    value = serializer().loads(json.dumps(data).encode())
    return value if isinstance(value, dict) else {}


def parse(token: str, serializer: Any, *, verify_exp: bool = True) -> Parsed | None:
    """The token's contents, or ``None`` (logged) for anything we did not issue, or expired."""
    try:
        decoded = hybrid_settings().codec.decode(token, verify_exp=verify_exp)
    except TokenError as exc:
        _refused(exc)
        return None
    started, active = decoded.claims.get(START_CLAIM), decoded.claims.get(ACTIVE_CLAIM)
    if type(started) is not int or type(active) is not int:
        started = active = None
    elif verify_exp and (reason := timeouts().expired(started, active, now())):
        # As an expired cookie: nothing of it is served, in any process.
        log_rejected(ExpiredToken(f"The session timed out ({reason})."))
        return None
    payload = decoded.payload
    sid, version = payload.get("sid"), payload.get("v")
    data, flag = payload.get("d"), payload.get("s", INLINE)
    if not (
        isinstance(sid, str)
        and _SID.fullmatch(sid)
        and type(version) is int
        and version >= 1
        and isinstance(data, dict)
        and flag in (INLINE, SPILLED, SPILLED_PARTIAL)
    ):
        _refused(MalformedToken("The token's payload is not a session reference."))
        return None
    return Parsed(
        sid, version, _from_claim(serializer, data), flag, decoded.issued_at,
        decoded.current_key, payload.get("x") == 1, started, active,
    )


def _refused(exc: TokenError) -> None:
    """Log and signal a refused hybrid cookie; the sender is the hybrid engine's class."""
    from .engine import SessionStore

    log_rejected(exc, SessionStore)


class CookieWriter:
    """Builds the cookie for one version of a session, within the budget."""

    def __init__(
        self,
        serializer: Any,
        expires_at: datetime,
        max_age: int | None,
        claims: dict[str, int] | None = None,
        room: int | None = None,
    ) -> None:
        self.serializer = serializer
        self.expires_at = expires_at
        self.max_age = max_age
        self.site = hybrid_settings()
        self.claims = claims  # the session's times, with the timeouts on
        #: The longest value the browser's next request has room for (``None``: unknown).
        self.room = room
        #: Whether the last cookie built carried the whole session.
        self.inlined = False

    def _server_only(self, data: dict[str, Any]) -> bool:
        keys = self.site.server_keys
        return bool(keys) and not keys.isdisjoint(data)

    def inline(self, sid: str, version: int, data: dict[str, Any], blob: bytes) -> str | None:
        """The cookie carrying the whole session (but server keys), or ``None`` if too big.

        Too big: beyond the inline budget, the room in the next request, or the
        ``Set-Cookie`` budget.

        ``blob`` is ``data`` serialised. With the JSON serializer, ASCII-only
        JSON and no server keys, it is byte for byte the JSON the token would
        carry, so it is signed as it is rather than serialised again.
        """
        site = self.site
        if len(blob) > site.inline_max * INLINE_RAW_FACTOR:
            return None
        try:
            token = self._inline_token(sid, version, data, blob)
        except CookieTooLarge:  # claims beyond what a request may inflate
            return None
        if len(token) > site.inline_max or (self.room is not None and len(token) > self.room):
            return None
        size = set_cookie_size(site.cookie_name, token, max_age=self.max_age)
        return token if size <= site.cookie_max else None

    def _inline_token(self, sid: str, version: int, data: dict[str, Any], blob: bytes) -> str:
        site, codec = self.site, self.site.codec
        if self._server_only(data):
            cookie_data = {k: v for k, v in data.items() if k not in site.server_keys}
            token = codec.encode(
                {"sid": sid, "v": version, "d": _to_claim(self.serializer, cookie_data), "x": 1},
                expires_at=self.expires_at, claims=self.claims,
            )
        elif writes_json(self.serializer) and b"\\u" not in blob:
            # A session id is made of VALID_KEY_CHARS only: nothing to escape.
            payload = f'{{"sid":"{sid}","v":{int(version)},"d":{blob.decode("ascii")}}}'
            token = codec.encode_json(payload, expires_at=self.expires_at, claims=self.claims)
        else:
            token = codec.encode(
                {"sid": sid, "v": version, "d": _to_claim(self.serializer, data)},
                expires_at=self.expires_at, claims=self.claims,
            )
        return token

    def spilled(self, sid: str, version: int, data: dict[str, Any]) -> str:
        """The cookie holding the key and the cookie keys of ``data``.

        Whatever the session holds, the ``Set-Cookie`` stays within the cookie
        budget, and the value within the room in the next request: resident
        keys are dropped (extras first, then the auth keys) rather than exceed
        them; they are fetched when read. When the site's other cookies leave no
        room even for the bare reference, it is sent anyway (a warning is logged):
        there is nothing smaller that still names the session.
        """
        site = self.site
        resident = {k: data[k] for k in site.cookie_keys if k in data}
        extra = {"x": 1} if self._server_only(data) else {}
        candidates = [(resident, SPILLED)]
        auth_only = {k: v for k, v in resident.items() if k in AUTH_KEYS}
        if auth_only != resident:
            candidates.append((auth_only, SPILLED_PARTIAL))
        if auth_only:
            candidates.append(({}, SPILLED_PARTIAL))
        size = 0
        smallest: str | None = None  # the last within the cookie budget, not the room
        for keys, kind in candidates:
            try:
                token = site.codec.encode(
                    {"sid": sid, "v": version, "d": _to_claim(self.serializer, keys), "s": kind,
                     **extra},
                    expires_at=self.expires_at, claims=self.claims,
                )
            except CookieTooLarge:  # claims beyond what a request may inflate
                continue
            size = set_cookie_size(site.cookie_name, token, max_age=self.max_age)
            if size <= site.cookie_max:
                if self.room is None or len(token) <= self.room:
                    return token
                smallest = token
        if smallest is not None:
            logger.warning(
                "The site's other cookies and request headers leave no room for the session "
                "cookie within HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES (%d bytes left, %d "
                "needed): it is sent anyway, and front servers may refuse the next requests.",
                self.room, len(smallest),
            )
            return smallest
        raise CookieTooLarge(size, site.cookie_max, site.cookie_name)

    def build(self, sid: str, version: int, data: dict[str, Any], blob: bytes) -> str:
        token = self.inline(sid, version, data, blob)
        self.inlined = token is not None
        return token or self.spilled(sid, version, data)
