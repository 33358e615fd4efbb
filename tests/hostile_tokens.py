"""Tokens a hostile client could send, built against the running site's real keys.

Shared by the codec tests and the engine tests, which send each of them through
the full middleware stack.
"""

from __future__ import annotations

import base64
import hmac
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import override_settings

from hybrid_sessions import tokens
from hybrid_sessions.tokens import TokenCodec

B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def signed(header: dict[str, Any], body: bytes, purpose: str) -> str:
    """A token signed with this site's real key for ``purpose``, whatever it says."""
    signing_input = f"{b64(json.dumps(header, separators=(',', ':')).encode())}.{b64(body)}"
    key = tokens._site().keys_for(purpose)[0]
    return f"{signing_input}.{b64(hmac.digest(key, signing_input.encode(), 'sha256'))}"


def claims(payload: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps(
        {"iat": 1, "exp": int(in_an_hour().timestamp()), "d": payload, **extra}
    ).encode()


def hostile_tokens(purpose: str) -> dict[str, str]:
    """Every kind of hostile token for ``purpose``, built against the running site's keys."""
    codec = TokenCodec(purpose)
    good = codec.encode({"user": "42"}, expires_at=in_an_hour())
    header, body, signature = good.split(".")
    with override_settings(SECRET_KEY="someone-else-" + "k" * 50):
        foreign = codec.encode({"user": "1"}, expires_at=in_an_hour())
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    hs256 = {"alg": "HS256", "typ": "JWT"}
    none_header = b64(b'{"alg":"none","typ":"JWT"}')
    rs256_header = b64(b'{"alg":"RS256","typ":"JWT"}')
    # The last character of a 32-byte signature carries 4 bits and 2 unused ones:
    # a different character that decodes to the same bytes.
    last = B64_ALPHABET.index(signature[-1])
    non_canonical = signature[:-1] + B64_ALPHABET[last ^ 1]
    jwe_header = b64(b'{"alg":"dir","enc":"A256GCM"}')
    return {
        "garbage": "not a token at all",
        "empty": "",
        "truncated": good[: len(good) // 2],
        "truncated-signature": good[:-1],
        "bad-base64": f"{header}.{body[:5]}!{body[6:]}.{signature}",
        "bad-json": signed(hs256, b"{not json", purpose),
        "not-an-object": signed(hs256, b"[1, 2]", purpose),
        "no-payload-claim": signed(hs256, b'{"iat": 1}', purpose),
        "bool-exp": signed(
            {"alg": "HS256", "typ": "JWT"}, b'{"iat": 1, "exp": true, "d": {}}', purpose
        ),
        "wrong-signature": f"{header}.{body}.{flipped}",
        "non-canonical-signature": f"{header}.{body}.{non_canonical}",
        "swapped-body": f"{header}.{foreign.split('.')[1]}.{signature}",
        "wrong-key": foreign,
        "expired": codec.encode({"user": "42"}, expires_at=datetime.now(UTC) - timedelta(1)),
        "alg-none": f"{none_header}.{body}.",
        "alg-none-signed": f"{none_header}.{body}.{signature}",
        "alg-rs256": f"{rs256_header}.{body}.{signature}",
        "alg-hs512": signed({"alg": "HS512", "typ": "JWT"}, claims({"user": "42"}), purpose),
        "extra-header-kid": signed(
            {"alg": "HS256", "typ": "JWT", "kid": "../../etc"}, claims({}), purpose
        ),
        "oversized-header": f"{b64(json.dumps({'alg': 'HS256', 'x': 'y' * 600}).encode())}"
        f".{body}.{signature}",
        "oversized-token": f"{header}.{'A' * 20000}.{signature}",
        "bad-base64-header": f"eyJ!!!.{body}.{signature}",
        "bad-base64-encrypted": f"{jwe_header}..!!!!.AAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "four-segments": f"{good}.AAAA",
        "jwe-for-signed-site": f"{jwe_header}..AAAA.AAAA.AAAA",
        "non-ascii": f"{header}.{body}é.{signature}",
        "inflation-bomb": signed(
            {"alg": "HS256", "typ": "JWT", "zip": "DEF"}, inflation_bomb(), purpose
        ),
    }


def inflation_bomb(size: int = 1 << 20) -> bytes:
    """Raw DEFLATE of well-formed claims carrying ``size`` bytes of repetitive session data.

    About 2 KB: a cookie that once made every request inflate and parse a megabyte.
    """
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflater.compress(claims({"cart": "item," * (size // 5)})) + deflater.flush()


HOSTILE_NAMES = [
    "garbage",
    "empty",
    "truncated",
    "truncated-signature",
    "bad-base64",
    "bad-json",
    "not-an-object",
    "no-payload-claim",
    "bool-exp",
    "wrong-signature",
    "non-canonical-signature",
    "swapped-body",
    "wrong-key",
    "expired",
    "alg-none",
    "alg-none-signed",
    "alg-rs256",
    "alg-hs512",
    "extra-header-kid",
    "oversized-header",
    "oversized-token",
    "bad-base64-header",
    "bad-base64-encrypted",
    "four-segments",
    "jwe-for-signed-site",
    "non-ascii",
    "inflation-bomb",
]
