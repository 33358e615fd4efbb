"""``HYBRID_SESSIONS_ENCRYPT_SERVER_DATA``: what a server store keeps tells nothing of the data.

Each test runs on every server-side engine (``db``, ``cache``, the hybrid over
each store), against the real database and Redis. "A dump" is every byte this
run left in the store: every column of every row, every field of every Redis key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.urls import reverse

from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.models import Session
from hybrid_sessions.sealing import MAGIC, Sealer, is_sealed
from hybrid_sessions.stores.base import SessionMeta
from tests.engines import ENGINES, Engine, saved_digest

SERVER_ENGINES = [e for e in ENGINES if e.server_side]
ON = {"HYBRID_SESSIONS_ENCRYPT_SERVER_DATA": True}
OFF = {"HYBRID_SESSIONS_ENCRYPT_SERVER_DATA": False}
#: Text that must appear nowhere at rest.
MARKER = "marker-of-private-data-5e0c"
KEY_MARKER = "key_of_private_data_91ab"
COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **ON, **eng.settings):
        yield eng


def dump(engine: Engine) -> bytes:
    """Every byte this run's sessions occupy in the engine's store."""
    if engine.needs_redis:
        from django_redis import get_redis_connection

        from tests.redis_keys import run_keys

        redis = get_redis_connection("default")
        parts: list[bytes] = []
        for key in run_keys():
            kind = redis.type(key)
            parts.append(key)
            if kind == b"hash":
                for field, value in redis.hgetall(key).items():
                    parts += [field, value]
            elif kind == b"string":
                parts.append(redis.get(key) or b"")
            elif kind == b"set":
                parts += list(redis.smembers(key))
            elif kind == b"zset":
                parts += list(redis.zrange(key, 0, -1))
        return b"\n".join(parts)
    rows = Session.objects.values_list()
    return b"\n".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        for row in rows
        for value in row
    )


def stored_data(engine: Engine, record: str) -> bytes:
    """The data bytes of one record, as the store keeps them."""
    store = engine.store.get_store()
    stored = store.get(record)
    assert stored is not None
    assert stored.data is not None
    return bytes(stored.data)


def saved(engine: Engine, **data: Any) -> ServerSessionBase:
    session = engine.store()
    assert isinstance(session, ServerSessionBase)
    session.update(data)
    session.save()
    return session


@pytest.mark.parametrize("size", [100, 20_000], ids=["small", "large"])
def test_the_store_keeps_none_of_the_plaintext(engine: Engine, size: int) -> None:
    session = saved(engine, **{KEY_MARKER: MARKER + "x" * size, "n": 42})
    raw = dump(engine)
    assert raw, "the session is stored"
    assert MARKER.encode() not in raw
    assert KEY_MARKER.encode() not in raw
    assert session.session_key is not None
    assert session.session_key.encode() not in raw, "only the key's digest is at rest"
    assert is_sealed(stored_data(engine, saved_digest(session)))


@pytest.mark.parametrize("size", [100, 20_000], ids=["small", "large"])
def test_the_holder_of_the_cookie_reads_the_session(engine: Engine, size: int) -> None:
    client = Client()
    value = MARKER + "y" * size
    assert client.get("/write/", {"colour": value}).status_code == 200
    assert client.get("/read/").json() == {"colour": value}
    assert MARKER.encode() not in dump(engine)


def test_code_given_the_session_key_reads_the_session(engine: Engine) -> None:
    session = saved(engine, colour=MARKER)
    again = engine.store(session.session_key)
    assert again[("colour")] == MARKER


def test_async_saves_and_loads_are_sealed_too(engine: Engine) -> None:
    session = engine.store()
    assert isinstance(session, ServerSessionBase)
    session["colour"] = MARKER
    async_to_sync(session.asave)()
    assert MARKER.encode() not in dump(engine)
    again = engine.store(session.session_key)
    assert async_to_sync(again.aload)() == {"colour": MARKER}


def test_a_dump_and_the_digest_do_not_decrypt(engine: Engine) -> None:
    session = saved(engine, colour=MARKER)
    record = saved_digest(session)
    sealed = stored_data(engine, record)
    body = sealed[len(MAGIC) :]
    nonce, ciphertext = body[:12], body[12:]
    # Every key an attacker could build from what is at rest: the digest, in each form.
    for material in (record.encode(), bytes.fromhex(record)):
        for info in (b"", b"hybrid_sessions: server data, AES-256-GCM"):
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(nonce, ciphertext, record.encode())
    assert Sealer("another-key-of-32-characters-xyz", record, enabled=True).open(sealed) == b""


def test_data_moved_to_another_record_does_not_open(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    victim = saved(engine, colour=MARKER)
    attacker = saved(engine, colour="mine")
    store = engine.store.get_store()
    target = saved_digest(attacker)
    current = store.get(target)
    assert current is not None
    meta = SessionMeta(expires_at=current.expires_at)
    assert store.compare_and_set(
        target, current.version, stored_data(engine, saved_digest(victim)), meta
    ).ok
    with caplog.at_level(logging.WARNING, "django.security.SuspiciousSession"):
        assert dict(engine.store(attacker.session_key).items()) == {}
    assert "could not be decrypted" in caplog.text


def test_a_tampered_record_reads_as_empty_and_the_response_is_normal(engine: Engine) -> None:
    client = Client()
    client.get("/write/", {"colour": MARKER})
    session = engine.store(client.cookies[COOKIE].value)
    store = engine.store.get_store()
    record = saved_digest(session)
    current = store.get(record)
    assert current is not None
    assert current.data is not None
    flipped = bytearray(current.data)
    flipped[-1] ^= 1
    meta = SessionMeta(expires_at=current.expires_at)
    assert store.compare_and_set(record, current.version, bytes(flipped), meta).ok
    with override_settings(HYBRID_SESSIONS_REVALIDATE_SECONDS=0):
        response = client.get("/read/")
    assert response.status_code == 200
    assert MARKER not in response.content.decode()


def test_turning_the_option_on_or_off_logs_no_one_out(engine: Engine) -> None:
    client = Client()
    with override_settings(**OFF):
        client.get("/write/", {"colour": "plain"})
        assert MARKER.encode() not in dump(engine)
        assert b"plain" in dump(engine), "written in the clear while off"
    assert client.get("/read/").json() == {"colour": "plain"}, "plain data reads with it on"
    client.get("/write/", {"colour": MARKER})
    assert MARKER.encode() not in dump(engine), "sealed at the next write"
    with override_settings(**OFF, HYBRID_SESSIONS_REVALIDATE_SECONDS=0):
        assert client.get("/read/").json() == {"colour": MARKER}, "sealed data reads with it off"
        client.get("/write/", {"colour": "clear-again"})
        assert b"clear-again" in dump(engine)
        assert client.get("/read/").json() == {"colour": "clear-again"}


def test_concurrent_saves_merge_sealed_data(engine: Engine) -> None:
    session = saved(engine, start=1)
    first, second = engine.store(session.session_key), engine.store(session.session_key)
    first["a"], second["b"] = MARKER, "two"
    first.save()
    second.save()
    assert dict(engine.store(session.session_key).items()) == {"start": 1, "a": MARKER, "b": "two"}
    assert MARKER.encode() not in dump(engine)


def test_a_new_key_carries_the_data_sealed_under_the_new_key(engine: Engine) -> None:
    session = saved(engine, colour=MARKER)
    old_key = session.session_key
    session.cycle_key()
    assert session.session_key != old_key
    assert not engine.store().exists(old_key)
    assert dict(engine.store(session.session_key).items()) == {"colour": MARKER}
    record = saved_digest(session)
    assert Sealer(str(old_key), record, enabled=True).open(stored_data(engine, record)) == b""
    assert MARKER.encode() not in dump(engine)


def test_a_login_keeps_the_session_and_seals_it(engine: Engine) -> None:
    User.objects.create_user("alice", password="pw")
    client = Client()
    client.get("/write/", {"colour": MARKER})
    assert client.login(username="alice", password="pw")
    assert client.get("/whoami/").content.decode() == "alice"
    assert client.get("/read/").json()["colour"] == MARKER
    assert MARKER.encode() not in dump(engine)


def test_the_admin_shows_size_and_metadata_not_data(engine: Engine) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "x")
    session = saved(engine, colour=MARKER, _auth_user_id=str(root.pk))
    admin = Client()
    admin.force_login(root)
    url = reverse("admin:hybrid_sessions_session_change", args=[saved_digest(session)])
    body = admin.get(url).content.decode()
    assert "Encrypted" in body
    assert MARKER not in body
    assert "root" in body, "the metadata (its user) is shown"


def test_an_import_from_djangos_engine_is_sealed(engine: Engine) -> None:
    from django.core.management import call_command

    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db"):
        from django.contrib.sessions.backends.db import SessionStore as DjangoStore

        old = DjangoStore()
        old["colour"] = MARKER
        old.save()
    call_command("hybrid_sessions_import", "--from", "db", verbosity=0)
    assert MARKER.encode() not in dump(engine)
    again = engine.store(old.session_key)
    assert again["colour"] == MARKER


@pytest.mark.parametrize(
    "engine_path",
    ["django.contrib.sessions.backends.db", "hybrid_sessions.backends.signed_cookies"],
)
def test_the_option_with_an_engine_it_does_not_apply_to_is_flagged(
    db: Any, engine_path: str
) -> None:
    with override_settings(SESSION_ENGINE=engine_path, **ON):
        assert "hybrid_sessions.W026" in {m.id for m in run_checks()}
    with override_settings(SESSION_ENGINE="hybrid_sessions.backends.hybrid", **ON):
        assert "hybrid_sessions.W026" not in {m.id for m in run_checks()}


def test_sealed_data_is_bound_to_its_record() -> None:
    """The record's digest is authenticated: the same key under another digest does not open."""
    key = "k" * 32
    sealed = Sealer(key, "a" * 64, enabled=True).seal(b'{"colour":"blue"}')
    assert Sealer(key, "a" * 64, enabled=True).open(sealed) == b'{"colour":"blue"}'
    assert Sealer(key, "b" * 64, enabled=True).open(sealed) == b""


def test_plain_data_passes_through_and_nothing_is_sealed_while_off() -> None:
    sealer = Sealer("k" * 32, "a" * 64, enabled=False)
    assert sealer.seal(b"{}") == b"{}"
    assert sealer.open(b"{}") == b"{}"
    assert sealer.open(None) is None
    assert not is_sealed(b"{}")
    assert not is_sealed(None)
