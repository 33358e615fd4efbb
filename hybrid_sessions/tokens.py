"""The cookie token codec: signed (JWS) or encrypted (JWE) JWTs bound to one purpose.

This is the only module that knows pyjwt, and with ``hybrid_sessions.sealing``
the only one that uses ``cryptography``. A token is a
compact JWT whose claims are ``iat``, ``exp`` (when the caller gives an expiry)
and ``d``, the caller's payload, kept apart so that no session key can collide
with a registered claim.

Signed tokens (the default) are JWS with the one HMAC algorithm the site pins
(``HYBRID_SESSIONS_JWT_ALGORITHM``); the header is never trusted to choose it.
Encrypted tokens (``HYBRID_SESSIONS_ENCRYPT``) are JWE with direct AES-256-GCM,
never compressed (RFC 8725 §3.6). Signed payloads of at least
``COMPRESS_MIN_BYTES`` are compressed with raw DEFLATE, flagged by
``"zip":"DEF"`` in the header, when that makes the token shorter; smaller ones
are sent as they are. Either kind verifies, whatever its size.

Keys are derived with HKDF from ``SECRET_KEY`` and, for verification only, from
each of ``SECRET_KEY_FALLBACKS``; the derivation includes the purpose and the
algorithm, so a token minted for one cookie or engine does not verify for
another, and a key never serves two algorithms. Derived keys are cached with
the rest of the configuration until a setting changes.

Why decoding does not call ``jwt.decode()``: pyjwt's default path re-validates
the key on every call (``HMACAlgorithm.prepare_key`` tries to parse it as PEM,
SSH, DER public key, X.509 certificate and JWK), parses and validates the
header, merges option dicts and runs the generic claim checks. Here the
algorithm objects are built once, keys are prepared once per secret, the header
must equal one of the few headers this site emits (a byte comparison that
rejects ``none``, asymmetric algorithms, ``kid``/``jku``/``crit`` tricks and
oversized headers before any work), and the signature is compared in constant
time against the canonical encoding. Verification is not weakened: the
signature and expiry are always checked, against the pinned algorithm only.

Claims are JSON through :mod:`hybrid_sessions.serialization` (orjson where it
means what ``json`` means). Their uncompressed size is capped at
``CLAIMS_FACTOR`` times the cookie budget: a larger payload is refused when a
token is made (:class:`~hybrid_sessions.exceptions.CookieTooLarge`), and a
compressed body is never inflated beyond it when one is read, so a token that
deflates well cannot make every request inflate and parse megabytes.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from os import urandom
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import HMACAlgorithm

from .conf import SettingsCache, conf
from .exceptions import (
    CookieTooLarge,
    DecryptionFailed,
    ExpiredToken,
    InvalidSignature,
    MalformedToken,
    TokenError,
    TokenTooLarge,
)
from .serialization import dumps_utf8, loads
from .token_encoding import (
    JWE_ALG,
    JWE_ENC,
    b64decode,
    b64encode,
    b64len,
    claim_name,
    deflate,
    header_error,
    inflate,
)

__all__ = ["CodecSettings", "Decoded", "TokenCodec"]

security_logger = logging.getLogger("django.security.SuspiciousSession")

#: The HMAC algorithms a site may pin; asymmetric ones make no sense for a
#: secret shared by the site with itself.
HMAC_ALGORITHMS: dict[str, HMACAlgorithm] = {
    "HS256": HMACAlgorithm(HMACAlgorithm.SHA256),
    "HS384": HMACAlgorithm(HMACAlgorithm.SHA384),
    "HS512": HMACAlgorithm(HMACAlgorithm.SHA512),
}
#: Tokens longer than this are refused before any work (the cookie budget is
#: far smaller; twice it leaves room for a budget lowered after issuing).
MIN_TOKEN_LIMIT = 8192
#: Claims are at most this many times the cookie budget, uncompressed: no token
#: is made of more, and no compressed body is inflated beyond it (32 KiB for the
#: default budget).
CLAIMS_FACTOR = 8
#: Claims shorter than this are signed uncompressed: DEFLATE would save about a
#: tenth of the token (the times, a session key and the signature do not
#: compress) for a fixed cost on the save and on every read that inflates. A
#: signed-in user's session is above it, and saves a fifth (docs/performance.rst).
COMPRESS_MIN_BYTES = 200
GCM_IV_BYTES = 12
GCM_TAG_BYTES = 16



def _header_segment(header: dict[str, str]) -> str:
    return b64encode(json.dumps(header, separators=(",", ":")).encode())


#: Per algorithm: the header segment of plain and of compressed signed tokens.
_SIGNED_HEADERS: dict[str, tuple[str, str]] = {
    alg: (
        _header_segment({"alg": alg, "typ": "JWT"}),
        _header_segment({"alg": alg, "typ": "JWT", "zip": "DEF"}),
    )
    for alg in HMAC_ALGORITHMS
}
_ENCRYPTED_HEADER = _header_segment({"alg": JWE_ALG, "enc": JWE_ENC})
_ENCRYPTED_AAD = _ENCRYPTED_HEADER.encode("ascii")


# -- the site's configuration, computed once -----------------------------------------


def _derive(secret: str | bytes, info: str, length: int) -> bytes:
    """HKDF-SHA256 of a Django secret, for one use (``info``)."""
    ikm = secret.encode() if isinstance(secret, str) else secret
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"hybrid_sessions.tokens", info=info.encode()
    ).derive(ikm)


class CodecSettings:
    """What the codec needs from settings, read once and kept until a setting changes.

    Reading ``django.conf.settings`` costs a few microseconds per missing
    setting, which would be most of a decode; the ``setting_changed`` signal
    (sent by ``override_settings``) discards this object.
    """

    __slots__ = (
        "alg",
        "ciphers",
        "claims_limit",
        "cookie_budget",
        "digest",
        "encrypt",
        "headers",
        "secrets",
        "signer",
        "signing_keys",
        "token_limit",
    )

    def __init__(self) -> None:
        alg = conf.JWT_ALGORITHM
        self.alg = alg if alg in HMAC_ALGORITHMS else None
        self.signer = HMAC_ALGORITHMS.get(alg)
        self.headers = _SIGNED_HEADERS.get(alg)
        # The name hashlib knows the algorithm's hash by, for the one-shot hmac.digest().
        self.digest = self.signer.hash_alg().name if self.signer else ""
        self.encrypt = conf.ENCRYPT
        self.cookie_budget = conf.COOKIE_MAX_BYTES
        self.token_limit = max(MIN_TOKEN_LIMIT, 2 * self.cookie_budget)
        self.claims_limit = CLAIMS_FACTOR * self.cookie_budget
        self.secrets: tuple[str | bytes, ...] = (
            settings.SECRET_KEY,
            *settings.SECRET_KEY_FALLBACKS,
        )
        self.signing_keys: dict[str, tuple[bytes, ...]] = {}
        self.ciphers: dict[str, tuple[AESGCM, ...]] = {}

    def keys_for(self, purpose: str) -> tuple[bytes, ...]:
        """One prepared HMAC key per secret, current first, as long as the hash output."""
        keys = self.signing_keys.get(purpose)
        if keys is None:
            assert self.signer is not None  # only called once a header of ours matched
            assert self.alg is not None
            signer, length = self.signer, self.signer.hash_alg().digest_size
            info = f"sign:{self.alg}:{purpose}"
            keys = tuple(signer.prepare_key(_derive(s, info, length)) for s in self.secrets)
            self.signing_keys[purpose] = keys
        return keys

    def ciphers_for(self, purpose: str) -> tuple[AESGCM, ...]:
        """One AES-256-GCM cipher per secret, current first."""
        ciphers = self.ciphers.get(purpose)
        if ciphers is None:
            info = f"encrypt:{JWE_ENC}:{purpose}"
            ciphers = tuple(AESGCM(_derive(s, info, 32)) for s in self.secrets)
            self.ciphers[purpose] = ciphers
        return ciphers


#: The codec's configuration, rebuilt whenever a setting changes.
_site = SettingsCache(CodecSettings)


# -- the codec ----------------------------------------------------------------------


@dataclass
class Decoded:
    """A verified token's contents."""

    payload: dict[str, Any]
    issued_at: int
    expires_at: int | None
    #: False when the token should be re-issued: it was verified with a key from
    #: ``SECRET_KEY_FALLBACKS``, or is in the other format (signed while the site
    #: now encrypts, or the reverse).
    current_key: bool
    #: Every claim of the token (``iat``, ``exp``, ``d`` and any the caller added);
    #: the fields above are read from it.
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class TokenCodec:
    """Signs (and, with ``HYBRID_SESSIONS_ENCRYPT``, encrypts) a JSON payload for one purpose.

    Settings are read at use time (and cached until ``setting_changed``), so
    ``override_settings`` applies at once.
    """

    __slots__ = ("purpose",)

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose

    def __repr__(self) -> str:
        return f"TokenCodec({self.purpose!r})"

    # -- encoding ---------------------------------------------------------------

    def encode(
        self,
        payload: dict[str, Any],
        *,
        expires_at: datetime | None,
        claims: Mapping[str, int] | None = None,
    ) -> str:
        """A token carrying ``payload``, issued now, valid until ``expires_at`` (if given).

        ``payload`` must be JSON-serialisable (``TypeError`` or ``ValueError``
        otherwise, as ``json.dumps`` raises). Non-ASCII text travels as UTF-8,
        shorter than ``\\u`` escapes. ``claims`` are extra integer claims beside
        ``iat`` and ``exp`` (names of ASCII letters), read back from
        :attr:`Decoded.claims`.
        """
        return self.encode_json(dumps_utf8(payload), expires_at=expires_at, claims=claims)

    def encode_json(
        self,
        payload: str | bytes,
        *,
        expires_at: datetime | None,
        claims: Mapping[str, int] | None = None,
    ) -> str:
        """:meth:`encode` of a payload the caller has already serialised to a JSON object.

        Lets a caller that needs the JSON anyway (to store it, or to measure it)
        serialise its data once. ``payload`` must be one JSON object (text, or
        UTF-8 bytes): it is the signed claim ``d`` verbatim, and a token that
        does not decode to an object is refused by :meth:`decode`.

        Raises :class:`~hybrid_sessions.exceptions.CookieTooLarge` (with
        ``uncompressed`` set, ``cookie_name`` the codec's purpose) when the
        claims exceed ``CLAIMS_FACTOR`` times the cookie budget, however well
        they would compress.
        """
        if isinstance(payload, str):
            # A lone surrogate (``json.loads`` makes one of "\ud800") has no UTF-8
            # form. Outside strings JSON is ASCII, so it can only sit inside one,
            # where the \u escape that ``json.dumps`` would write is what
            # backslashreplace writes.
            payload = payload.encode("utf-8", "backslashreplace")
        exp = b"" if expires_at is None else b',"exp":%d' % int(expires_at.timestamp())
        if claims:
            exp += b"".join(b',"%s":%d' % (claim_name(k), int(v)) for k, v in claims.items())
        raw = b'{"iat":%d%s,"d":%s}' % (int(time.time()), exp, payload)
        site = _site()
        if len(raw) > site.claims_limit:
            raise CookieTooLarge(len(raw), site.claims_limit, self.purpose, uncompressed=True)
        if site.encrypt:
            return self._encrypt(site, raw)
        return self._sign(site, raw)

    def _sign(self, site: CodecSettings, raw: bytes) -> str:
        if site.signer is None or site.headers is None:
            raise ImproperlyConfigured(
                f"HYBRID_SESSIONS_JWT_ALGORITHM {conf.JWT_ALGORITHM!r} is not one of "
                f"{', '.join(HMAC_ALGORITHMS)}."
            )
        plain_header, zip_header = site.headers
        header, body = plain_header, raw
        if len(raw) >= COMPRESS_MIN_BYTES:
            compressed = deflate(raw)
            # The zip flag costs header bytes: compress only when the whole token shrinks.
            if b64len(len(compressed)) + len(zip_header) < b64len(len(raw)) + len(plain_header):
                header, body = zip_header, compressed
        signing_input = f"{header}.{b64encode(body)}"
        key = site.keys_for(self.purpose)[0]
        signature = hmac.digest(key, signing_input.encode("ascii"), site.digest)
        return f"{signing_input}.{b64encode(signature)}"

    def _encrypt(self, site: CodecSettings, raw: bytes) -> str:
        iv = urandom(GCM_IV_BYTES)
        sealed = site.ciphers_for(self.purpose)[0].encrypt(iv, raw, _ENCRYPTED_AAD)
        ciphertext, tag = sealed[:-GCM_TAG_BYTES], sealed[-GCM_TAG_BYTES:]
        return f"{_ENCRYPTED_HEADER}..{b64encode(iv)}.{b64encode(ciphertext)}.{b64encode(tag)}"

    # -- decoding ---------------------------------------------------------------

    def decode(self, token: str, *, verify_exp: bool = True) -> Decoded:
        """Verify ``token`` and return its contents.

        Raises a :class:`~hybrid_sessions.exceptions.TokenError` subclass on any
        failure, and nothing else. ``verify_exp=False`` accepts an expired token
        (the signature is still checked): only for cleaning up what it names,
        never for serving it.
        """
        try:
            return self._decode(token, verify_exp)
        except TokenError:
            raise
        except Exception as exc:  # the contract: only TokenError escapes
            raise MalformedToken(f"Unreadable token ({type(exc).__name__}).") from exc

    def _decode(self, token: str, verify_exp: bool = True) -> Decoded:
        if not isinstance(token, str):
            raise MalformedToken("A token is a string.")
        site = _site()
        if len(token) > site.token_limit:
            raise TokenTooLarge(f"The token is {len(token)} characters long.")
        parts = token.split(".")
        if len(parts) == 3:
            header = parts[0]
            if site.headers is None or header not in site.headers:
                raise header_error(header, expected=site.alg)
            data, current = self._verify(site, parts)
            if header == site.headers[1]:
                data = inflate(data, site.claims_limit)
            elif len(data) > site.claims_limit:
                raise TokenTooLarge(f"The token's claims are {len(data)} bytes long.")
            return _claims(data, current=current and not site.encrypt, verify_exp=verify_exp)
        if len(parts) == 5:
            if parts[0] != _ENCRYPTED_HEADER:
                raise header_error(parts[0], expected=site.alg)
            data, current = self._decrypt(site, parts)
            if len(data) > site.claims_limit:
                raise TokenTooLarge(f"The token's claims are {len(data)} bytes long.")
            return _claims(data, current=current and site.encrypt, verify_exp=verify_exp)
        raise MalformedToken(f"A token has 3 or 5 segments, not {len(parts)}.")

    def _verify(self, site: CodecSettings, parts: list[str]) -> tuple[bytes, bool]:
        """The verified payload bytes, and whether the current key verified them."""
        header, body, signature = parts
        try:
            signing_input = f"{header}.{body}".encode("ascii")
            given = signature.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedToken("A token is ASCII.") from None
        digest = site.digest
        for index, key in enumerate(site.keys_for(self.purpose)):
            # Comparing encodings also refuses a non-canonical base64 of a right signature.
            expected = base64.urlsafe_b64encode(hmac.digest(key, signing_input, digest))
            if hmac.compare_digest(expected.rstrip(b"="), given):
                # The body is exactly what this site encoded: no need to re-validate it.
                return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), index == 0
        raise InvalidSignature("The token's signature matches none of the site's keys.")

    def _decrypt(self, site: CodecSettings, parts: list[str]) -> tuple[bytes, bool]:
        """The decrypted payload bytes, and whether the current key decrypted them."""
        _, encrypted_key, iv_part, ciphertext_part, tag_part = parts
        if encrypted_key:
            raise MalformedToken("A direct-encryption token has no encrypted key.")
        iv, ciphertext, tag = b64decode(iv_part), b64decode(ciphertext_part), b64decode(tag_part)
        if len(iv) != GCM_IV_BYTES or len(tag) != GCM_TAG_BYTES:
            raise MalformedToken("The token's IV or tag has the wrong length.")
        sealed = ciphertext + tag
        for index, cipher in enumerate(site.ciphers_for(self.purpose)):
            try:
                return cipher.decrypt(iv, sealed, _ENCRYPTED_AAD), index == 0
            except InvalidTag:
                continue
        raise DecryptionFailed("The token decrypts with none of the site's keys.")


def _claims(data: bytes, *, current: bool, verify_exp: bool = True) -> Decoded:
    try:
        claims = loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedToken("The token's claims are not JSON.") from exc
    if not isinstance(claims, dict):
        raise MalformedToken("The token's claims are not a JSON object.")
    payload, issued_at, expires_at = claims.get("d"), claims.get("iat"), claims.get("exp")
    # ``type() is int``: a bool is an int, but not a timestamp.
    if not isinstance(payload, dict) or type(issued_at) is not int:
        raise MalformedToken("The token's claims lack a payload or an issue time.")
    if expires_at is not None:
        if type(expires_at) is not int:
            raise MalformedToken("The token's exp claim is not a NumericDate.")
        if verify_exp and expires_at <= time.time():
            raise ExpiredToken("The token has expired.")
    return Decoded(payload, issued_at, expires_at, current, claims)
