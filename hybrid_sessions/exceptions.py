"""The exceptions hybrid_sessions raises, as one small tree.

Everything derives from :class:`HybridSessionsError`, so a site can catch the
whole family at once; token failures derive from :class:`TokenError` so the
cookie engines can turn any of them into an empty session.
"""

from __future__ import annotations


class HybridSessionsError(Exception):
    """Base class of every error raised by hybrid_sessions."""


class SessionStoreUnavailable(HybridSessionsError):
    """The server-side store (database or Redis) could not be reached in time."""


class RevocationNotSupported(HybridSessionsError):
    """The active session engine keeps no server-side records to list or revoke.

    Sessions that live only in a signed cookie end when the cookie expires; a
    server cannot end them early.
    """


class CookieTooLarge(HybridSessionsError):
    """A session would not fit in the cookie budget; browsers would drop it silently.

    With ``uncompressed`` set, the cookie might have fitted once compressed, but
    its data, before compression, exceeds the limit on what any request is made
    to inflate and parse (``size`` and ``budget`` then count those bytes).
    """

    def __init__(
        self, size: int, budget: int, cookie_name: str, *, uncompressed: bool = False
    ) -> None:
        self.size = size
        self.budget = budget
        self.cookie_name = cookie_name
        self.uncompressed = uncompressed
        if uncompressed:
            what = (
                f"The session cookie {cookie_name!r} would carry {size} bytes of data "
                f"before compression, over the limit of {budget} bytes (8 times "
                "HYBRID_SESSIONS_COOKIE_MAX_BYTES): every request would inflate and parse it."
            )
        else:
            what = (
                f"The session cookie {cookie_name!r} would be {size} bytes (name, value and "
                f"attributes), over the budget of {budget} bytes: browsers drop such cookies "
                "without a word."
            )
        super().__init__(
            f"{what} Store less in the session, or use "
            "SESSION_ENGINE = 'hybrid_sessions.backends.hybrid', which moves large "
            "sessions to the server."
        )


class TokenError(HybridSessionsError):
    """A session cookie's token could not be accepted."""


class MalformedToken(TokenError):
    """The token is not a well-formed token of ours (garbage, truncated, bad base64 or JSON)."""


class TokenTooLarge(MalformedToken):
    """The token, or one of its parts, is larger than any token this site issues."""


class DisallowedAlgorithm(TokenError):
    """The token's header names an algorithm this site does not accept (``none`` included)."""


class InvalidSignature(TokenError):
    """The signature matches none of the site's keys: forged, or signed with a removed key."""


class ExpiredToken(TokenError):
    """The token's ``exp`` claim is in the past."""


class DecryptionFailed(TokenError):
    """The encrypted payload could not be decrypted with any of the site's keys."""
