"""A hybrid session's saves and the cookie sent back: the shared save path, then a new copy.

The save itself is :func:`~hybrid_sessions.backends.saving.save_flow`, as for
every server engine; what is the hybrid's own is the baseline a lost race
merges from (the cookie's copy or the record), the touch that needs no spilled
data, and the cookie built for the version written (:mod:`.cookie`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import UpdateError

from ... import metrics
from ...knowledge import GONE, knowledge
from ...signals import emit, key_rotated, session_inlined, session_spilled
from ...stores.base import digest
from ...stores.operations import Flow, Touch, call
from ..base import ServerSessionBase
from ..saving import Written, diff
from .access import PartialAccess
from .activity import CookieTimes
from .cookie import CookieWriter, Parsed, hybrid_settings, parse

#: What a save needs to know to write the record's metadata (user, expiry).
META_KEYS = frozenset({SESSION_KEY, "_session_expiry"})


class HybridSaving(CookieTimes, PartialAccess, ServerSessionBase):
    """The hybrid engine but its loading (:mod:`.engine`)."""

    _session_cache: dict[str, Any]
    _parsed: Parsed | None
    _base_token: str | None  # the cookie the data was served from
    _resident: dict[str, Any]
    _token: str | None  # the cookie to send, once built
    _reissue: bool
    _confirmed: bool
    _came_inline: bool | None
    header_room: int | None

    def _ended(self, record_key: str) -> dict[str, Any]:
        """The session no longer exists: serve nothing of it, in this request or later."""
        knowledge.learn(record_key, GONE)
        self._session_key = None
        self._version = None
        self._baseline = self._base_token = None
        self._reset_access()
        return {}

    # -- the server copy's baseline, for merging after a lost race ----------------------

    def _baseline_data(self) -> dict[str, Any] | None:
        if self._baseline is not None:
            return self._loads(self._baseline)
        if self._base_token is not None:
            parsed = parse(self._base_token, self.serializer, verify_exp=False)
            return None if parsed is None else parsed.data
        return None

    def _unchanged(self, blob: bytes) -> bool:
        if self._cleared or self._reseal:
            return False
        if self._baseline is not None:
            return blob == self._baseline
        if self.modified and not self._refresh:
            # Assigned to: almost always a change, and a write is right either way;
            # not worth verifying and parsing the cookie again to find out.
            return False
        baseline = self._baseline_data()
        return baseline is not None and self._dumps(baseline) == blob

    # -- saving: the shared path, then a new cookie ---------------------------------------

    def _writer(self, data: dict[str, Any]) -> CookieWriter:
        expiry = data.get("_session_expiry")
        at_close = hybrid_settings().expire_at_close if expiry is None else expiry == 0
        max_age = None if at_close else self.get_expiry_age(expiry=expiry)
        return CookieWriter(
            self.serializer, self.get_expiry_date(expiry=expiry), max_age, self._time_claims(),
            self.header_room,
        )

    def _adopt(self, written: Written) -> None:
        super()._adopt(written)
        assert self.session_key is not None
        writer = self._writer(written.data)
        self._token = writer.build(self.session_key, written.version, written.data, written.blob)
        self._saved_as(writer.inlined)
        self._base_token = None
        self._reissue = False
        self._confirmed = True
        self._reset_access()

    def _saved_as(self, inlined: bool) -> None:
        """A save built a cookie: inline or spilled, maybe not as the last one was."""
        came_inline, self._came_inline = self._came_inline, inlined
        if metrics.recorder is not None:
            storage = "inline" if inlined else "spilled"
            metrics.recorder.counter(metrics.HYBRID_SAVES, storage=storage)
        # Spilled: the last cookie was inline, or there was none. Inlined: it was spilled.
        signal = session_inlined if inlined else session_spilled
        changed = came_inline is False if inlined else came_inline is not False
        if changed and signal.receivers:
            emit(signal, type(self), session=self, size=len(self._token or ""))

    def _signed_anew(self) -> None:
        """A cookie verified with a fallback key (or in the other format) is re-issued."""
        if key_rotated.receivers:
            emit(key_rotated, type(self), session=self, reason="secret", previous_digest=None)

    def _touch_flow(self) -> Flow[None]:
        """Only the expiry moved (``SESSION_SAVE_EVERY_REQUEST``): no need for spilled data."""
        key = self.session_key
        assert key is not None
        assert self._version is not None
        data = self._session_cache
        if not (yield from call(Touch(digest(key), self._meta(data)))):
            self._ended(digest(key))
            raise UpdateError
        if self._confirmed:
            # Not for a copy served on the window's word alone: a fresh ``iat`` would
            # let a stale (replayed) version be served for another window, and so on.
            self._token = self._writer(data).spilled(key, self._version, data)
        return None

    def _only_touch(self) -> bool:
        return (
            self._pending
            and not (self._cleared or self._reseal)
            and self._known >= META_KEYS
            and not diff(self._resident, self._partial(), False)
        )

    def save(self, must_create: bool = False) -> None:
        if not must_create and self.session_key is not None and self._only_touch():
            return self._run(self._touch_flow())
        return super().save(must_create)

    async def asave(self, must_create: bool = False) -> None:
        if not must_create and self.session_key is not None:
            await self._apartial()
            if self._only_touch():
                return await self._arun(self._touch_flow())
        return await super().asave(must_create)

    def _on_retired(self, key: str, *, alive: bool) -> None:
        self._token = None

    # -- what the middleware sends ----------------------------------------------------------

    def cookie_value(self) -> str | None:
        """The cookie for this session's current version, if the response should carry one.

        A saved session whose data did not change (``SESSION_SAVE_EVERY_REQUEST``)
        gets a new cookie (a later ``exp``) if its version is confirmed, else the
        cookie it came with: never the bare key, and never a stale copy made fresh.
        """
        # ``_reissue`` without confirmation: a cookie signed with a fallback key,
        # re-signed once under the current key (documented: no round trip).
        if self._token is None and self._version is not None and (
            self._confirmed or self._reissue
        ):
            key = self.session_key
            if key is not None and not self._pending:
                data = self._session_cache
                self._token = self._writer(data).build(key, self._version, data, self._dumps(data))
        return self._token or self._base_token

    def needs_cookie(self) -> bool:
        """Whether the response must carry a new cookie though nothing was saved."""
        return self._reissue and self.session_key is not None and not self._unavailable
