"""Decode and engine costs: pyjwt's default path, our codec, Django's signing and engine.

Timed with pyperf: ``python -m benchmarks.signed_cookies --fast``. Instructions of one case,
which do not wander with the machine's load: run it under callgrind with N calls and with
none and divide the difference by N (``--only SIZE CASE N``; SIZE 0 is ~100 B, 1 ~2 KB)::

    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python -m benchmarks.signed_cookies --only 1 "engine load: hybrid_sessions" 300
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import jwt  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.sessions.backends import signed_cookies as django_engine  # noqa: E402
from django.core import signing  # noqa: E402

from hybrid_sessions.backends import signed_cookies as our_engine  # noqa: E402

SALT = "django.contrib.sessions.backends.signed_cookies"


def payloads() -> dict[str, dict[str, Any]]:
    """A logged-in user's session (~100 B of JSON) and a ~2 KB one of varied text."""
    small = {
        "_auth_user_id": "42",
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    }
    large = {f"item{i}": f"{i * 7919:x}-{i * 104729:o}-value-{i}" for i in range(70)}
    return {"~100 B": small, "~2 KB": large}


def cycle(store: type[Any], token: str) -> Callable[[], None]:
    """What a request that changes its session costs the engine: load, modify, save."""

    def run() -> None:
        session = store(token)
        session["counter"] = session.get("counter", 0) + 1
        session.save()

    return run


def load(store: type[Any], token: str) -> Callable[[], object]:
    """What a request that only reads its session costs the engine."""
    return lambda: store(token).get("_auth_user_id")


def cases(data: dict[str, Any], *, quiet: bool = False) -> dict[str, Callable[[], object]]:
    key = settings.SECRET_KEY
    expires = datetime.now(UTC) + timedelta(days=1)
    pyjwt_token = jwt.encode({"iat": 1, "exp": int(expires.timestamp()), "d": data}, key, "HS256")
    codec = our_engine.codec()
    ours = codec.encode(data, expires_at=expires)
    theirs = signing.dumps(data, compress=True, salt=SALT, serializer=signing.JSONSerializer)
    if not quiet:
        lengths = f"ours {len(ours)}, Django {len(theirs)}, plain pyjwt {len(pyjwt_token)}"
        print(f"  token length: {lengths}")
    return {
        "decode: pyjwt jwt.decode()": lambda: jwt.decode(pyjwt_token, key, algorithms=["HS256"]),
        "decode: TokenCodec.decode()": lambda: codec.decode(ours),
        "decode: django.core.signing.loads()": lambda: signing.loads(theirs, salt=SALT),
        "engine load: hybrid_sessions": load(our_engine.SessionStore, ours),
        "engine load: Django signed_cookies": load(django_engine.SessionStore, theirs),
        "load+modify+save: hybrid_sessions": cycle(our_engine.SessionStore, ours),
        "load+modify+save: Django signed_cookies": cycle(django_engine.SessionStore, theirs),
    }


def only(size_index: int, name: str, number: int) -> None:
    """Run one case ``number`` times and print nothing (for instruction counting)."""
    func = cases(list(payloads().values())[size_index], quiet=True)[name]
    for _ in range(number):
        func()


def main() -> None:
    if sys.argv[1:2] == ["--only"]:
        only(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    import pyperf

    runner = pyperf.Runner(program_args=("-m", "benchmarks.signed_cookies"))
    for label, data in payloads().items():
        for name, func in cases(data, quiet=True).items():
            runner.bench_func(f"{label} {name}", func)


if __name__ == "__main__":
    main()
