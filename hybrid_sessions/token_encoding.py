"""The pieces of a compact JWS/JWE token: strict base64url, bounded DEFLATE, header checks.

:mod:`hybrid_sessions.tokens` assembles them; nothing here knows keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib

from .exceptions import DisallowedAlgorithm, MalformedToken, TokenError, TokenTooLarge

#: No header this site emits is longer; a longer one is refused unparsed.
MAX_HEADER_CHARS = 256
#: The JWE algorithm pair of encrypted tokens: the derived key is the CEK.
JWE_ALG, JWE_ENC = "dir", "A256GCM"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")

__all__ = [
    "JWE_ALG", "JWE_ENC", "MAX_HEADER_CHARS", "b64decode", "b64encode", "b64len", "claim_name",
    "deflate", "header_error", "inflate",
]


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(segment: str) -> bytes:
    """Strict base64url: the alphabet only, no padding, a possible length."""
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise MalformedToken("A token segment is not base64url.")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("A token segment is not base64url.") from exc


def claim_name(name: str) -> bytes:
    """A claim name as it goes into the JSON verbatim: ASCII letters, none of the codec's own."""
    if not (name.isascii() and name.isalpha()) or name in ("iat", "exp", "d"):
        raise ValueError(f"{name!r} cannot be a claim name.")
    return name.encode("ascii")


def b64len(n: int) -> int:
    """Characters of unpadded base64 for ``n`` bytes."""
    return (4 * n + 2) // 3


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951, as ``"zip":"DEF"`` means in RFC 7516).

    A 4 KiB window, a small hash table and level 5: cookie payloads are small,
    the default 32 KiB window costs more to set up than it saves, and on session
    data level 5 compresses as well as 6 (within a byte) in less time.
    """
    deflater = zlib.compressobj(5, zlib.DEFLATED, -12, 6)
    return deflater.compress(data) + deflater.flush()


def inflate(data: bytes, limit: int) -> bytes:
    """Raw DEFLATE undone, never producing more than ``limit`` bytes."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise MalformedToken("The token's payload does not decompress.") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        if len(out) >= limit:
            raise TokenTooLarge(f"The token's payload inflates beyond {limit} bytes.")
        raise MalformedToken("The token's payload is truncated.")
    return out


def header_error(segment: str, *, expected: str | None) -> TokenError:
    """Why a header that is none of ours was refused (the slow path of hostile input)."""
    if len(segment) > MAX_HEADER_CHARS:
        return TokenTooLarge(f"The token's header is {len(segment)} characters long.")
    try:
        header = json.loads(b64decode(segment))
    except (MalformedToken, ValueError, RecursionError):
        return MalformedToken("The token's header is not base64url JSON.")
    if not isinstance(header, dict):
        return MalformedToken("The token's header is not a JSON object.")
    alg = header.get("alg")
    if alg != expected and alg != JWE_ALG:
        return DisallowedAlgorithm(f"The token's header names algorithm {str(alg)[:20]!r}.")
    return MalformedToken("The token's header is not one this site issues.")
