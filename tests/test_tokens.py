"""The token codec: what it emits, what it accepts, and that it refuses everything else."""

from __future__ import annotations

import json
import random
import secrets
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.http import HttpResponse
from django.test import override_settings

from hybrid_sessions import tokens
from hybrid_sessions.cookies import set_cookie_size
from hybrid_sessions.exceptions import (
    CookieTooLarge,
    DecryptionFailed,
    DisallowedAlgorithm,
    ExpiredToken,
    InvalidSignature,
    MalformedToken,
    TokenError,
    TokenTooLarge,
)
from hybrid_sessions.token_encoding import deflate
from hybrid_sessions.tokens import Decoded, TokenCodec
from tests.hostile_tokens import (
    HOSTILE_NAMES,
    b64,
    claims,
    hostile_tokens,
    in_an_hour,
    inflation_bomb,
    signed,
    unb64,
)

PURPOSE = "tests.tokens:sessionid"
OLD_KEY = "old-secret-" + "o" * 50
NEW_KEY = "new-secret-" + "n" * 50


@pytest.fixture
def codec() -> TokenCodec:
    return TokenCodec(PURPOSE)


# -- what a token is -------------------------------------------------------------------


def test_a_token_round_trips_its_payload_with_issue_and_expiry_times(codec: TokenCodec) -> None:
    expires = in_an_hour()
    before = int(datetime.now(UTC).timestamp())
    decoded = codec.decode(codec.encode({"user": "42", "é": ["ü", 1]}, expires_at=expires))
    assert decoded == Decoded(
        payload={"user": "42", "é": ["ü", 1]},
        issued_at=decoded.issued_at,
        expires_at=int(expires.timestamp()),
        current_key=True,
    )
    assert before <= decoded.issued_at <= before + 2


def test_a_signed_token_is_a_standard_hs256_jwt_that_pyjwt_verifies(codec: TokenCodec) -> None:
    token = codec.encode({"user": "42"}, expires_at=in_an_hour())
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    key = tokens._site().keys_for(PURPOSE)[0]
    assert jwt.decode(token, key, algorithms=["HS256"])["d"] == {"user": "42"}


def test_session_keys_cannot_collide_with_registered_claims(codec: TokenCodec) -> None:
    payload = {"exp": "not a date", "iat": None, "d": 1}
    decoded = codec.decode(codec.encode(payload, expires_at=in_an_hour()))
    assert decoded.payload == payload


#: What ``json.loads`` makes of ``"\\ud800"``: text a view may put in a session,
#: with no UTF-8 form.
LONE_SURROGATE = "x\ud800y"


@pytest.mark.parametrize(
    "payload",
    [{"name": LONE_SURROGATE}, {"name": LONE_SURROGATE, "cart": ["the same item"] * 100}],
    ids=["plain", "compressed"],
)
@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
def test_text_with_a_lone_surrogate_round_trips(
    codec: TokenCodec, payload: dict[str, Any], encrypt: bool
) -> None:
    with override_settings(HYBRID_SESSIONS_ENCRYPT=encrypt):
        token = codec.encode(payload, expires_at=in_an_hour())
        assert codec.decode(token).payload == payload


def test_without_an_expiry_a_token_has_no_exp_claim(codec: TokenCodec) -> None:
    decoded = codec.decode(codec.encode({}, expires_at=None))
    assert decoded.expires_at is None


def test_a_token_past_its_expiry_is_refused(codec: TokenCodec) -> None:
    token = codec.encode({"a": 1}, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ExpiredToken):
        codec.decode(token)


def test_an_expired_token_can_be_read_for_clean_up_but_never_unsigned(codec: TokenCodec) -> None:
    token = codec.encode({"a": 1}, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert codec.decode(token, verify_exp=False).payload == {"a": 1}
    header, claims, signature = token.split(".")
    forged = f"{header}.{claims}.{signature[:-2]}AA"
    with pytest.raises(InvalidSignature):
        codec.decode(forged, verify_exp=False)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_the_pinned_algorithm_can_be_raised_and_the_old_one_is_then_refused(alg: str) -> None:
    codec = TokenCodec(PURPOSE)
    hs256 = codec.encode({"a": 1}, expires_at=in_an_hour())
    with override_settings(HYBRID_SESSIONS_JWT_ALGORITHM=alg):
        token = codec.encode({"a": 1}, expires_at=in_an_hour())
        assert jwt.get_unverified_header(token)["alg"] == alg
        assert codec.decode(token).payload == {"a": 1}
        with pytest.raises(DisallowedAlgorithm):
            codec.decode(hs256)
    with pytest.raises(DisallowedAlgorithm):
        codec.decode(token)


def test_a_token_minted_for_another_purpose_does_not_verify(codec: TokenCodec) -> None:
    other = TokenCodec("hybrid_sessions.hybrid:sessionid").encode({"a": 1}, expires_at=None)
    with pytest.raises(InvalidSignature):
        codec.decode(other)


# -- compression -----------------------------------------------------------------------


def test_a_compressible_signed_payload_is_deflated_and_flagged(codec: TokenCodec) -> None:
    payload = {"cart": ["the same item"] * 100}
    token = codec.encode(payload, expires_at=in_an_hour())
    assert jwt.get_unverified_header(token)["zip"] == "DEF"
    uncompressed = len(b64(claims(payload)))
    assert len(token) < uncompressed / 4
    assert codec.decode(token).payload == payload


def test_a_payload_that_does_not_shrink_is_not_compressed(codec: TokenCodec) -> None:
    token = codec.encode({"n": secrets.token_urlsafe(24)}, expires_at=in_an_hour())
    assert "zip" not in jwt.get_unverified_header(token)


def test_claims_under_the_threshold_are_sent_uncompressed_though_they_would_shrink(
    codec: TokenCodec,
) -> None:
    payload = payload_of_claims_size(tokens.COMPRESS_MIN_BYTES - 1)
    assert len(deflate(claims(payload))) < len(claims(payload)) / 3
    token = codec.encode(payload, expires_at=None)
    assert "zip" not in jwt.get_unverified_header(token)
    assert len(unb64(token.split(".")[1])) == tokens.COMPRESS_MIN_BYTES - 1
    assert codec.decode(token).payload == payload


def test_claims_from_the_threshold_on_are_compressed_when_that_shortens_the_token(
    codec: TokenCodec,
) -> None:
    payload = payload_of_claims_size(tokens.COMPRESS_MIN_BYTES)
    token = codec.encode(payload, expires_at=None)
    assert jwt.get_unverified_header(token)["zip"] == "DEF"
    assert codec.decode(token).payload == payload


@pytest.mark.parametrize("size", [40, 200])
def test_a_small_compressed_token_issued_before_the_threshold_still_verifies(
    codec: TokenCodec, size: int
) -> None:
    payload = {"lang": "en", "note": "x" * size}
    body = deflate(claims(payload))
    token = signed({"alg": "HS256", "typ": "JWT", "zip": "DEF"}, body, PURPOSE)
    assert len(body) < tokens.COMPRESS_MIN_BYTES
    assert codec.decode(token).payload == payload


# -- bounded decode cost: claims are at most 8 times the cookie budget ---------------------


def claims_overhead(expires_at: datetime | None = None) -> int:
    """Bytes the codec adds around the payload's JSON (``iat``, ``exp``, ``d``)."""
    now = int(time.time())
    exp = "" if expires_at is None else f',"exp":{int(expires_at.timestamp())}'
    return len(f'{{"iat":{now}{exp},"d":}}')


def payload_of_claims_size(size: int) -> dict[str, str]:
    """A repetitive payload whose claims (without ``exp``) are exactly ``size`` bytes."""
    padding = size - claims_overhead() - len('{"cart":""}')
    return {"cart": "item," * (padding // 5) + "x" * (padding % 5)}


def test_a_megabyte_of_repetitive_data_is_no_longer_made_into_a_token(codec: TokenCodec) -> None:
    payload = {"cart": "item," * 200_000}
    # Compressed, it would make a cookie well within the 4096-byte budget...
    assert len(b64(zlib.compress(claims(payload), 9)[2:-4])) < 3000
    # ...that every request would inflate and parse: refused when made.
    with pytest.raises(CookieTooLarge) as caught:
        codec.encode(payload, expires_at=in_an_hour())
    assert caught.value.uncompressed
    assert caught.value.size > 1_000_000
    assert caught.value.budget == 8 * 4096
    assert "before compression" in str(caught.value)


def test_claims_up_to_exactly_eight_times_the_budget_make_a_token_and_beyond_do_not(
    codec: TokenCodec,
) -> None:
    at_limit = payload_of_claims_size(8 * 4096)
    token = codec.encode(at_limit, expires_at=None)
    assert jwt.get_unverified_header(token)["zip"] == "DEF"
    assert codec.decode(token).payload == at_limit
    with pytest.raises(CookieTooLarge):
        codec.encode(payload_of_claims_size(8 * 4096 + 1), expires_at=None)


def test_the_limit_follows_the_cookie_budget(codec: TokenCodec) -> None:
    payload = payload_of_claims_size(8 * 1024 + 1)
    token = codec.encode(payload, expires_at=None)
    with override_settings(HYBRID_SESSIONS_COOKIE_MAX_BYTES=1024):
        with pytest.raises(CookieTooLarge):
            codec.encode(payload, expires_at=None)
        # A token issued under a larger budget is not inflated beyond the new limit.
        with pytest.raises(TokenTooLarge, match="inflates beyond 8192 bytes"):
            codec.decode(token)
        assert codec.decode(codec.encode(payload_of_claims_size(8 * 1024), expires_at=None))


def test_a_hand_signed_megabyte_body_is_refused_without_inflating_past_the_limit(
    codec: TokenCodec,
) -> None:
    bomb = inflation_bomb(1 << 20)
    token = signed({"alg": "HS256", "typ": "JWT", "zip": "DEF"}, bomb, PURPOSE)
    assert len(token) < 4096  # a cookie any browser sends, within the size we accept
    with pytest.raises(TokenTooLarge, match="inflates beyond 32768 bytes"):
        codec.decode(token)


@pytest.mark.parametrize(("size", "accepted"), [(8 * 4096, True), (8 * 4096 + 1, False)])
def test_a_hand_signed_body_is_inflated_up_to_exactly_the_limit(
    codec: TokenCodec, size: int, accepted: bool
) -> None:
    head, tail = b'{"iat":1,"d":{"cart":"', b'"}}'
    text = "x" * (size - len(head) - len(tail))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(head + text.encode() + tail) + deflater.flush()
    token = signed({"alg": "HS256", "typ": "JWT", "zip": "DEF"}, body, PURPOSE)
    if accepted:
        assert codec.decode(token).payload == {"cart": text}
    else:
        with pytest.raises(TokenTooLarge):
            codec.decode(token)


def test_a_validly_signed_body_that_is_not_deflate_is_refused(codec: TokenCodec) -> None:
    token = signed({"alg": "HS256", "typ": "JWT", "zip": "DEF"}, b"not deflate", PURPOSE)
    with pytest.raises(MalformedToken):
        codec.decode(token)


# -- key rotation ----------------------------------------------------------------------


def test_a_token_signed_with_a_fallback_key_loads_and_asks_to_be_re_signed() -> None:
    codec = TokenCodec(PURPOSE)
    with override_settings(SECRET_KEY=OLD_KEY):
        token = codec.encode({"a": 1}, expires_at=in_an_hour())
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        decoded = codec.decode(token)
        assert (decoded.payload, decoded.current_key) == ({"a": 1}, False)
        assert codec.decode(codec.encode(decoded.payload, expires_at=None)).current_key is True


def test_a_token_signed_with_a_removed_key_is_refused() -> None:
    codec = TokenCodec(PURPOSE)
    with override_settings(SECRET_KEY=OLD_KEY):
        token = codec.encode({"a": 1}, expires_at=in_an_hour())
    with (
        override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]),
        pytest.raises(InvalidSignature),
    ):
        codec.decode(token)


# -- encryption ------------------------------------------------------------------------

encrypting = override_settings(HYBRID_SESSIONS_ENCRYPT=True)


@encrypting
def test_an_encrypted_token_is_a_dir_a256gcm_jwe_whose_payload_cannot_be_read(
    codec: TokenCodec,
) -> None:
    token = codec.encode({"secret": "the-plaintext"}, expires_at=in_an_hour())
    header, encrypted_key, iv, ciphertext, tag = token.split(".")
    assert json.loads(unb64(header)) == {"alg": "dir", "enc": "A256GCM"}
    assert encrypted_key == ""
    assert (len(unb64(iv)), len(unb64(tag))) == (12, 16)
    assert b"the-plaintext" not in unb64(ciphertext)
    assert "the-plaintext" not in token
    assert codec.decode(token).payload == {"secret": "the-plaintext"}


@encrypting
def test_encrypted_tokens_are_never_compressed(codec: TokenCodec) -> None:
    payload = {"cart": ["the same item"] * 100}
    token = codec.encode(payload, expires_at=in_an_hour())
    assert "zip" not in json.loads(unb64(token.split(".")[0]))
    # GCM ciphertext is as long as its plaintext: here, all of the repetitive JSON.
    assert len(unb64(token.split(".")[3])) > len(json.dumps(payload, separators=(",", ":")))


@encrypting
def test_the_same_payload_encrypts_differently_each_time(codec: TokenCodec) -> None:
    assert codec.encode({"a": 1}, expires_at=None) != codec.encode({"a": 1}, expires_at=None)


@encrypting
@pytest.mark.parametrize("segment", [0, 2, 3, 4])
def test_a_tampered_encrypted_token_is_refused(codec: TokenCodec, segment: int) -> None:
    parts = codec.encode({"a": 1}, expires_at=in_an_hour()).split(".")
    raw = bytearray(unb64(parts[segment]))
    raw[0] ^= 1
    parts[segment] = b64(bytes(raw))
    with pytest.raises(TokenError):
        codec.decode(".".join(parts))


@encrypting
def test_an_encrypted_token_from_a_fallback_key_loads_and_one_from_a_removed_key_does_not() -> None:
    codec = TokenCodec(PURPOSE)
    with override_settings(SECRET_KEY=OLD_KEY):
        token = codec.encode({"a": 1}, expires_at=in_an_hour())
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        decoded = codec.decode(token)
        assert (decoded.payload, decoded.current_key) == ({"a": 1}, False)
    with override_settings(SECRET_KEY=NEW_KEY), pytest.raises(DecryptionFailed):
        codec.decode(token)


@encrypting
def test_an_encrypted_token_for_another_purpose_does_not_decrypt(codec: TokenCodec) -> None:
    other = TokenCodec("hybrid_sessions.hybrid:sessionid").encode({"a": 1}, expires_at=None)
    with pytest.raises(DecryptionFailed):
        codec.decode(other)


def test_turning_encryption_on_or_off_keeps_sessions_and_re_issues_them(codec: TokenCodec) -> None:
    plain = codec.encode({"a": 1}, expires_at=in_an_hour())
    with encrypting:
        sealed = codec.encode({"b": 2}, expires_at=in_an_hour())
        assert (codec.decode(plain).payload, codec.decode(plain).current_key) == ({"a": 1}, False)
        assert codec.decode(sealed).current_key is True
    assert (codec.decode(sealed).payload, codec.decode(sealed).current_key) == ({"b": 2}, False)


# -- hostile input ---------------------------------------------------------------------


def test_crafted_tokens_are_signed_exactly_as_the_site_signs(codec: TokenCodec) -> None:
    """The control for the crafted hostile tokens below: only their content is wrong."""
    token = signed({"alg": "HS256", "typ": "JWT"}, claims({"a": 1}), PURPOSE)
    assert codec.decode(token).payload == {"a": 1}


def test_the_hostile_catalogue_is_complete() -> None:
    assert sorted(HOSTILE_NAMES) == sorted(hostile_tokens(PURPOSE))


def test_a_non_canonical_signature_decodes_to_the_right_bytes_yet_is_refused(
    codec: TokenCodec,
) -> None:
    token = hostile_tokens(PURPOSE)["non-canonical-signature"]
    signature = token.split(".")[2]
    good = codec.encode({"user": "42"}, expires_at=in_an_hour())
    assert signature != good.split(".")[2]
    assert unb64(signature) == unb64(good.split(".")[2])
    with pytest.raises(InvalidSignature):
        codec.decode(token)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_hostile_token_is_refused_with_a_token_error(codec: TokenCodec, name: str) -> None:
    with pytest.raises(TokenError):
        codec.decode(hostile_tokens(PURPOSE)[name])


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("alg-none", DisallowedAlgorithm),
        ("alg-rs256", DisallowedAlgorithm),
        ("alg-hs512", DisallowedAlgorithm),
        ("oversized-header", TokenTooLarge),
        ("oversized-token", TokenTooLarge),
        ("wrong-key", InvalidSignature),
        ("non-canonical-signature", InvalidSignature),
        ("expired", ExpiredToken),
        ("bad-json", MalformedToken),
        ("not-an-object", MalformedToken),
        ("no-payload-claim", MalformedToken),
        ("bool-exp", MalformedToken),
        ("truncated-signature", InvalidSignature),
        ("swapped-body", InvalidSignature),
    ],
)
def test_hostile_tokens_are_refused_for_the_right_reason(
    codec: TokenCodec, name: str, error: type[TokenError]
) -> None:
    with pytest.raises(error):
        codec.decode(hostile_tokens(PURPOSE)[name])


def test_a_non_string_token_is_a_token_error(codec: TokenCodec) -> None:
    with pytest.raises(MalformedToken):
        codec.decode(b"a.b.c")  # type: ignore[arg-type]


@pytest.mark.parametrize("encrypt", [False, True])
def test_random_mutations_of_a_valid_token_only_ever_raise_token_errors(encrypt: bool) -> None:
    rng = random.Random(20251127)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/!é"
    with override_settings(HYBRID_SESSIONS_ENCRYPT=encrypt):
        codec = TokenCodec(PURPOSE)
        token = codec.encode({"user": "42", "cart": list(range(30))}, expires_at=in_an_hour())
        for _ in range(300):
            chars = list(token)
            for _ in range(rng.randint(1, 3)):
                position = rng.randrange(len(chars))
                if rng.random() < 0.2:
                    del chars[position]
                else:
                    chars[position] = rng.choice(alphabet)
            mutated = "".join(chars)
            try:
                decoded = codec.decode(mutated)
            except TokenError:
                continue
            # Only a mutation that changed nothing may load.
            assert mutated == token
            assert decoded.payload["user"] == "42"


# -- cookie size -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cookie_settings",
    [
        {},
        {
            "SESSION_COOKIE_DOMAIN": ".example.com",
            "SESSION_COOKIE_SECURE": True,
            "SESSION_COOKIE_SAMESITE": "Strict",
            "SESSION_COOKIE_PATH": "/app/",
        },
        {"SESSION_COOKIE_HTTPONLY": False, "SESSION_COOKIE_SAMESITE": None},
    ],
)
@pytest.mark.parametrize("max_age", [None, 5, 1209600, -10])
def test_set_cookie_size_is_the_length_of_the_cookie_django_sets(
    cookie_settings: dict[str, Any], max_age: int | None
) -> None:
    from django.conf import settings
    from django.utils.http import http_date

    with override_settings(**cookie_settings):
        value = TokenCodec(PURPOSE).encode({"a": "b" * 100}, expires_at=None)
        response = HttpResponse()
        # Exactly as hybrid_sessions.middleware.SessionMiddleware calls it (Django's own
        # passes ``or None`` where this passes ``bool()``: set_cookie treats both alike).
        response.set_cookie(
            "sessionid",
            value,
            max_age=max_age,
            expires=None if max_age is None else http_date(1e9 + max_age),
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=bool(settings.SESSION_COOKIE_SECURE),
            httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        emitted = response.cookies["sessionid"].OutputString()
        assert set_cookie_size("sessionid", value, max_age=max_age) == len(emitted.encode())


def test_set_cookie_size_counts_a_value_that_needs_quoting() -> None:
    response = HttpResponse()
    response.set_cookie("sessionid", 'a "quoted"; value', max_age=60, path="/")
    response.cookies["sessionid"]["samesite"] = "Lax"
    response.cookies["sessionid"]["httponly"] = True
    emitted = response.cookies["sessionid"].OutputString()
    assert set_cookie_size("sessionid", 'a "quoted"; value', max_age=60) == len(emitted.encode())
