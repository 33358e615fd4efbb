"""The whole session in the cookie, as a signed (or encrypted) JWT.

A drop-in replacement for ``django.contrib.sessions.backends.signed_cookies``::

    SESSION_ENGINE = "hybrid_sessions.backends.signed_cookies"

As in Django's engine, the session key *is* the token. Unlike it, the token's
``exp`` follows ``set_expiry()``, the algorithm is pinned, the token is bound to
the cookie's name, keys rotate through ``SECRET_KEY_FALLBACKS`` (a token signed
with a fallback key is re-signed with the current one on the way out), and a
session too large for browsers raises :class:`~hybrid_sessions.exceptions.CookieTooLarge`
instead of being dropped silently by the browser. With the idle or absolute
timeout on, the token carries the session's start (claim ``st``) and its
``iat`` is the last recorded activity; an expired one reads as empty. The
payload is JSON, written and read with orjson where that means what ``json`` means
(:mod:`hybrid_sessions.serialization`); ``SESSION_SERIALIZER`` does not apply.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone

from .. import metrics
from ..cookies import cookie_budget, log_rejected, set_cookie_size
from ..exceptions import CookieTooLarge, ExpiredToken, MalformedToken, TokenError
from ..signals import emit, key_rotated, session_created
from ..timeouts import START_CLAIM, timeouts
from ..timeouts import now as clock
from ..tokens import TokenCodec

PURPOSE_PREFIX = "hybrid_sessions.signed_cookies:"


_codecs: dict[str, TokenCodec] = {}


def codec(name: str | None = None) -> TokenCodec:
    """The codec for the session cookie: its purpose is the cookie's name."""
    if name is None:
        name = settings.SESSION_COOKIE_NAME
    found = _codecs.get(name)
    if found is None:
        found = _codecs[name] = TokenCodec(PURPOSE_PREFIX + name)
    return found


class SessionStore(SessionBase):
    """Client-side session engine: nothing is stored on the server."""

    #: When the session started (claim ``st``), kept by every token of it.
    _started_at: int | None = None

    if TYPE_CHECKING:  # Django's private API, absent from django-stubs

        def _get_session(self, no_load: bool = False) -> dict[str, Any]: ...

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        if session_key and self.session_key is None:
            # Shorter than any key (Django's rule): refused before the codec sees it.
            log_rejected(MalformedToken("The cookie is too short to be a token."), type(self))

    def load(self) -> dict[str, Any]:
        """Verify the token; anything not ours, expired or tampered loads as empty."""
        token = self.session_key
        if token is None:
            return {}
        try:
            decoded = codec().decode(token)
        except TokenError as exc:
            log_rejected(exc, type(self))
            # Forget the token: the middleware then deletes the cookie.
            self._session_key = None
            return {}
        payload = decoded.payload
        if (
            "_session_expiry" not in payload
            and time.time() - decoded.issued_at > self.get_session_cookie_age()
        ):
            # As Django's engine does: lowering SESSION_COOKIE_AGE also ends the
            # cookies already issued under the default policy.
            expired = ExpiredToken("The token is older than the session cookie age.")
            log_rejected(expired, type(self))
            self._session_key = None
            return {}
        if not decoded.current_key:
            # Verified with a fallback key (or in the other format): re-sign on the way out.
            self.modified = True
            if key_rotated.receivers:
                emit(key_rotated, type(self), session=self, reason="secret", previous_digest=None)
        if timeouts().on and not self._within_timeouts(decoded.claims, decoded.issued_at):
            self._session_key = None
            return {}
        return payload

    def _within_timeouts(self, claims: dict[str, Any], issued_at: int) -> bool:
        """Hold the token to the idle and absolute timeouts; keep its start for the next one.

        Every save re-issues the token, so ``iat`` is the last recorded activity. A
        token issued while the timeouts were off has no start: ``iat`` stands in.
        """
        started = claims.get(START_CLAIM)
        self._started_at = started if type(started) is int else issued_at
        limits, at = timeouts(), clock()
        reason = limits.expired(self._started_at, issued_at, at)
        if reason is not None:
            log_rejected(ExpiredToken(f"The session timed out ({reason})."))
            return False
        if limits.refresh_due(issued_at, at):
            self.modified = True  # re-issued by the response: activity recorded
        return True

    async def aload(self) -> dict[str, Any]:
        return self.load()

    def is_empty(self) -> bool:
        if settings.SESSION_SAVE_EVERY_REQUEST and self.session_key is not None:
            # The middleware saves whatever is not empty, and a token not read yet
            # looks like a session: a forged one would be answered with a new
            # cookie on every request instead of being deleted.
            self._get_session()
        return super().is_empty()

    def create(self) -> None:
        """A new session is only a flag: the cookie is written by the response."""
        self.modified = True

    async def acreate(self) -> None:
        self.create()

    def save(self, must_create: bool = False) -> None:
        """Make the token for the current data and expiry; it becomes the session key.

        Raises :class:`~hybrid_sessions.exceptions.CookieTooLarge` when the cookie
        would exceed ``HYBRID_SESSIONS_COOKIE_MAX_BYTES``, or its data, before
        compression, eight times that: no request is made to inflate more.
        """
        data = self._get_session()
        expiry = data.get("_session_expiry")
        max_age: int | None
        if expiry is None:
            # The default policy (most sessions): no date arithmetic through Django's
            # helpers, but the age from the hook they use, which a subclass may override.
            age = self.get_session_cookie_age()
            expires_at = datetime.now(UTC) + timedelta(seconds=age)
            max_age = None if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else age
        else:
            now = timezone.now()
            expires_at = self.get_expiry_date(modification=now, expiry=expiry)
            max_age = None if expiry == 0 else self.get_expiry_age(modification=now, expiry=expiry)
        name = settings.SESSION_COOKIE_NAME
        claims = None
        if timeouts().on:
            if self._started_at is None:
                self._started_at = int(clock())
            claims = {START_CLAIM: self._started_at}
        try:
            token = codec(name).encode(data, expires_at=expires_at, claims=claims)
        except CookieTooLarge as exc:  # named by the codec's purpose: name the cookie
            raise CookieTooLarge(exc.size, exc.budget, name, uncompressed=True) from None
        size = set_cookie_size(name, token, max_age=max_age)
        budget = cookie_budget()
        if size > budget:
            raise CookieTooLarge(size, budget, name)
        created = not self.session_key
        self._session_key = token
        self.modified = True
        if created and session_created.receivers:
            emit(session_created, type(self), session=self)
        if created and metrics.recorder is not None:
            engine = metrics.engine_label(type(self))
            metrics.recorder.counter(metrics.SESSIONS_CREATED, engine=engine)

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create=must_create)

    def exists(self, session_key: str | None = None) -> bool:
        """There is no shared store to ask: like Django's cookie engine, always False."""
        return False

    async def aexists(self, session_key: str | None = None) -> bool:
        return self.exists(session_key)

    def delete(self, session_key: str | None = None) -> None:
        """Empty the session; the middleware then deletes the cookie."""
        self._started_at = None  # what follows is a new session
        self._session_key = ""
        self._session_cache: dict[str, Any] = {}
        self.modified = True

    async def adelete(self, session_key: str | None = None) -> None:
        self.delete(session_key)

    def cycle_key(self) -> None:
        """A new token for the same data (an issued token cannot be revoked before ``exp``)."""
        rotated = bool(self.session_key)
        self.save()
        if rotated and key_rotated.receivers:
            emit(key_rotated, type(self), session=self, reason="cycle", previous_digest=None)

    async def acycle_key(self) -> None:
        self.cycle_key()

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to clear: expired cookies are refused on load."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Nothing to clear: expired cookies are refused on load."""
