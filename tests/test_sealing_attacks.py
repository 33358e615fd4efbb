"""``HYBRID_SESSIONS_ENCRYPT_SERVER_DATA`` under attack: every way data reaches a store.

Each test names a path by which a session's data could reach a store, or stay
there, readable; each runs on every server-side engine against the real
database and Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.sealing import is_sealed
from tests.engines import ENGINES, Engine, saved_digest
from tests.test_sealing import COOKIE, MARKER, OFF, ON, dump, stored_data

SERVER_ENGINES = [e for e in ENGINES if e.server_side]


@pytest.fixture(params=SERVER_ENGINES, ids=[e.name for e in SERVER_ENGINES])
def engine(request: pytest.FixtureRequest, db: Any) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **ON, **eng.settings):
        yield eng


def plain_session(engine: Engine, **data: Any) -> Client:
    """A client whose session was written while the option was off."""
    client = Client()
    with override_settings(**OFF):
        client.get("/write/", data)
    assert MARKER.encode() in dump(engine), "written in the clear while off"
    return client


# -- a plain record left from before the option was on ------------------------------------


def test_save_every_request_seals_a_plain_record_it_would_only_touch(engine: Engine) -> None:
    client = plain_session(engine, colour=MARKER)
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True, HYBRID_SESSIONS_REVALIDATE_SECONDS=0):
        assert client.get("/read/").json() == {"colour": MARKER}
    assert MARKER.encode() not in dump(engine)
    assert client.get("/read/").json() == {"colour": MARKER}


def test_a_plain_record_read_while_the_option_is_on_is_sealed(engine: Engine) -> None:
    client = plain_session(engine, colour=MARKER)
    with override_settings(HYBRID_SESSIONS_REVALIDATE_SECONDS=0):
        assert client.get("/read/").json() == {"colour": MARKER}
    assert MARKER.encode() not in dump(engine)
    assert client.get("/read/").json() == {"colour": MARKER}


def test_a_session_loaded_plain_and_saved_after_the_option_went_on_is_sealed(
    engine: Engine,
) -> None:
    with override_settings(**OFF):
        session = engine.store()
        session["colour"] = MARKER
        session.save()
        first, second = engine.store(session.session_key), engine.store(session.session_key)
        first.load()
        second.load()
    first["a"], second["b"] = 1, 2
    first.save()  # with the option on, over the plain record
    second.save()  # loses the race to a sealed record, merges onto it
    assert MARKER.encode() not in dump(engine)
    assert dict(engine.store(session.session_key).items()) == {"colour": MARKER, "a": 1, "b": 2}


def test_a_session_loaded_sealed_and_saved_after_the_option_went_off_merges(
    engine: Engine,
) -> None:
    session = engine.store()
    session["colour"] = MARKER
    session.save()
    first, second = engine.store(session.session_key), engine.store(session.session_key)
    first.load()
    second.load()
    with override_settings(**OFF):
        first["a"], second["b"] = 1, 2
        first.save()
        second.save()
        assert dict(engine.store(session.session_key).items()) == {
            "colour": MARKER, "a": 1, "b": 2,
        }


# -- the locked merge after a losing streak (the database store) --------------------------

LOCKING = [e for e in SERVER_ENGINES if not e.needs_redis]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("eng", LOCKING, ids=[e.name for e in LOCKING])
def test_the_locked_merge_after_a_losing_streak_writes_sealed(
    monkeypatch: pytest.MonkeyPatch, eng: Engine
) -> None:
    from hybrid_sessions.stores.database import DatabaseStore

    with override_settings(
        SESSION_ENGINE=eng.path, HYBRID_SESSIONS_INLINE_MAX_BYTES=0, **ON, **eng.settings
    ):
        session = eng.store()
        session["seed"] = MARKER
        session.save()
        compare_and_set = DatabaseStore.compare_and_set
        intrusions: list[int] = []
        intruding: list[bool] = []

        def always_beaten(self: DatabaseStore, digest: str, version: int, *args: Any) -> Any:
            # Another request of the same session saves just before each of ours.
            if not intruding:
                intruding.append(True)
                intruder = eng.store(session.session_key)
                intruder[f"intruder{len(intrusions)}"] = MARKER
                intruder.save()
                intruding.clear()
                intrusions.append(1)
            return compare_and_set(self, digest, version, *args)

        mine = eng.store(session.session_key)
        mine["mine"] = MARKER
        monkeypatch.setattr(DatabaseStore, "compare_and_set", always_beaten)
        mine.save()
        monkeypatch.undo()
        assert len(intrusions) == 3, "three lost races, then the locked merge"
        assert MARKER.encode() not in dump(eng)
        assert is_sealed(stored_data(eng, saved_digest(mine)))
        assert dict(eng.store(session.session_key).items()) == {
            "seed": MARKER, "intruder0": MARKER, "intruder1": MARKER, "intruder2": MARKER,
            "mine": MARKER,
        }


# -- an undecryptable record -------------------------------------------------------------


def test_after_an_undecryptable_record_the_session_saves_and_reads_again(
    engine: Engine,
) -> None:
    from hybrid_sessions.stores.base import SessionMeta

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
        response = client.get("/write/", {"size": "L"})
        assert response.status_code == 200
        assert client.get("/read/").json() == {"size": "L"}
    assert is_sealed(stored_data(engine, record))


# -- the hybrid: a token or a bare key ---------------------------------------------------


HYBRIDS = [e for e in SERVER_ENGINES if e.path.endswith(".hybrid")]


@pytest.mark.parametrize("given", ["token", "bare key"])
@pytest.mark.parametrize("engine", HYBRIDS, ids=[e.name for e in HYBRIDS], indirect=True)
def test_the_hybrid_reads_sealed_data_given_its_token_or_its_bare_key(
    engine: Engine, given: str
) -> None:
    client = Client()
    client.get("/write/", {"colour": MARKER, "big": "x" * 6000})
    token = client.cookies[COOKIE].value
    session = engine.store(token)
    key = session.session_key
    assert key is not None
    again = engine.store(token if given == "token" else key)
    assert isinstance(again, ServerSessionBase)
    assert again["colour"] == MARKER
    again["more"] = MARKER
    again.save()
    assert MARKER.encode() not in dump(engine)
    assert engine.store(key)["more"] == MARKER


def test_an_async_load_and_save_seal_a_plain_record_too(engine: Engine) -> None:
    from asgiref.sync import async_to_sync

    with override_settings(**OFF):
        session = engine.store()
        session["colour"] = MARKER
        session.save()
    again = engine.store(session.session_key)
    assert isinstance(again, ServerSessionBase)
    assert async_to_sync(again.aget)("colour") == MARKER
    async_to_sync(again.asave)()
    assert MARKER.encode() not in dump(engine)
    assert engine.store(session.session_key)["colour"] == MARKER
