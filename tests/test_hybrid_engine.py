"""The hybrid engine through the full middleware stack, against the real spill stores.

What it promises: the server holds every session and the cookie carries a
signed copy while it is small, only the key and the cookie keys when large;
``request.user`` and other cookie keys never cost a round trip; the
``Set-Cookie`` never exceeds its budget; every session can be revoked; a late
write never brings a session back; hostile cookies are empty sessions; a Redis
outage is a clear failure, never a silent logout. Round trips are counted on
the real servers' clients: SQL statements on the session table, Redis
commands sent. What a stale or stolen cookie can do is in ``test_hybrid_trust``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import Morsel
from importlib import import_module
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import logout
from django.contrib.auth.models import User
from django.contrib.auth.views import LoginView
from django.core.signing import TimestampSigner
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path
from django.utils import timezone
from redis import Redis

from hybrid_sessions import api
from hybrid_sessions import knowledge as knowledge_module
from hybrid_sessions.backends.hybrid import SessionStore, engine, record_digest
from hybrid_sessions.backends.hybrid.cookie import INLINE, parse
from hybrid_sessions.checks import check_settings
from hybrid_sessions.conf import conf
from hybrid_sessions.exceptions import SessionStoreUnavailable
from hybrid_sessions.knowledge import knowledge
from hybrid_sessions.stores.base import ServerStore, SessionMeta, StoredSession
from hybrid_sessions.tokens import TokenCodec

HYBRID = "hybrid_sessions.backends.hybrid"
REDIS_SPILL = "hybrid_sessions.backends.cache"
COOKIE = django_settings.SESSION_COOKIE_NAME
#: Big enough to spill under the default inline budget (random hex barely compresses).
SPILL_CHARS = 6000


# -- views, driven through SessionMiddleware and AuthenticationMiddleware --------------------------


def get_key(request: HttpRequest) -> JsonResponse:
    """One key, as most views read a session."""
    return JsonResponse({"value": request.session.get(request.GET["key"])})


def set_keys(request: HttpRequest) -> HttpResponse:
    """Write without reading first."""
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def count_keys(request: HttpRequest) -> HttpResponse:
    """Read everything, then write."""
    request.session["count"] = len(list(request.session.keys()))
    return HttpResponse("ok")


def pop_key(request: HttpRequest) -> HttpResponse:
    request.session.pop(request.GET["key"], None)
    return HttpResponse("ok")


def fill(request: HttpRequest) -> HttpResponse:
    """Store ``n`` random characters under ``key``; answer their SHA-256."""
    value = secrets.token_hex(int(request.GET["n"]) // 2)
    request.session[request.GET["key"]] = value
    return HttpResponse(hashlib.sha256(value.encode()).hexdigest())


def read_all(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session.items()))


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


def blob_then_user(request: HttpRequest) -> JsonResponse:
    """Read a spilled key, then who the user is."""
    blob = request.session.get("blob")
    user = request.user.get_username() if request.user.is_authenticated else ""
    return JsonResponse({"blob": blob is not None, "user": user})


def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("ok")


def attempt(request: HttpRequest) -> HttpResponse:
    """One try of something allowed three times per session."""
    used = int(request.session.get("attempts", 0))
    if used >= 3:
        return HttpResponse("refused", status=429)
    request.session["attempts"] = used + 1
    return HttpResponse(str(used + 1))


def cycle(request: HttpRequest) -> HttpResponse:
    """A new key for the session, as ``login()`` and many apps do."""
    request.session.cycle_key()
    return whoami(request)


urlpatterns = [
    path("attempt/", attempt),
    path("cycle/", cycle),
    path("change/", whoami),
    path("get/", get_key),
    path("set/", set_keys),
    path("count/", count_keys),
    path("pop/", pop_key),
    path("fill/", fill),
    path("read/", read_all),
    path("whoami/", whoami),
    path("blob-then-user/", blob_then_user),
    path("logout/", log_out),
    path("login/", LoginView.as_view(next_page="/whoami/")),
]


# -- counting round trips on the real servers ------------------------------------------------------


@dataclass
class IO:
    reads: int = 0
    writes: int = 0
    commands: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.reads + self.writes


@contextmanager
def sql_round_trips() -> Iterator[IO]:
    """Statements on the session table (savepoints of the test's transaction excluded)."""
    io = IO()
    with CaptureQueriesContext(connection) as queries:
        yield io
    for query in queries.captured_queries:
        sql = query["sql"]
        if "hybrid_sessions_session" not in sql:
            continue
        io.commands.append(sql.split()[0].upper())
        if sql.lstrip().upper().startswith("SELECT"):
            io.reads += 1
        else:
            io.writes += 1


REDIS_READS = {"EXISTS", "HMGET", "HGET", "HGETALL"}


@contextmanager
def redis_round_trips() -> Iterator[IO]:
    """Commands the Redis client sends (each a round trip; the store uses no pipelines here)."""
    io = IO()
    send = Redis.execute_command

    def counting(client: Any, *args: Any, **options: Any) -> Any:
        name = str(args[0]).upper()
        io.commands.append(name)
        if name in REDIS_READS:
            io.reads += 1
        else:
            io.writes += 1
        return send(client, *args, **options)

    with mock.patch.object(Redis, "execute_command", counting):
        yield io


@dataclass
class Spill:
    """One spill store under test, and how to look at it directly."""

    name: str

    @property
    def store(self) -> ServerStore:
        """The spill engine's own store, bypassing the hybrid engine (another process)."""
        inner: ServerStore = import_module(conf.SPILL_ENGINE).SessionStore.get_store()
        return inner

    def io(self) -> Any:
        return sql_round_trips() if self.name == "db" else redis_round_trips()

    def record(self, cookie_value: str) -> StoredSession | None:
        key = record_digest(cookie_value)
        assert key is not None
        return self.store.get(key)

    def records(self) -> int:
        if self.name == "db":
            from hybrid_sessions.models import Session

            return Session.objects.count()
        from tests.redis_keys import run_keys

        return len(run_keys("*hs:s:*"))


def _warm_redis_scripts(store: ServerStore) -> None:
    """Load the store's Lua scripts, so a first EVALSHA is not counted twice."""
    meta = SessionMeta(expires_at=timezone.now() + timedelta(minutes=1))
    store.create("0" * 64, None, meta)
    store.compare_and_set("0" * 64, 1, None, meta)
    store.touch("0" * 64, meta)
    store.delete("0" * 64)


def _use_spill(name: str, settings: Any) -> Spill:
    settings.SESSION_ENGINE = HYBRID
    settings.ROOT_URLCONF = __name__
    if name == "cache":
        settings.HYBRID_SESSIONS_SPILL_ENGINE = REDIS_SPILL
    current = Spill(name)
    if current.name == "cache":
        _warm_redis_scripts(current.store)
    return current


@pytest.fixture(params=["db", pytest.param("cache", marks=pytest.mark.redis)])
def spill(request: pytest.FixtureRequest, db: None, settings: Any) -> Spill:
    """The hybrid engine as SESSION_ENGINE, over each spill store in turn."""
    return _use_spill(request.param, settings)


@pytest.fixture
def redis_spill(db: None, settings: Any) -> Spill:
    """The hybrid engine spilling to Redis (tests using it carry the ``redis`` mark)."""
    return _use_spill("cache", settings)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


def cookie(client: Client) -> str:
    return str(client.cookies[COOKIE].value)


def set_cookie(response: Any) -> Morsel[str] | None:
    morsel: Morsel[str] | None = response.cookies.get(COOKIE)
    return morsel


def spilled_client(alice: User | None = None) -> Client:
    """A client whose session holds more than the cookie can carry."""
    client = Client()
    if alice is not None:
        client.force_login(alice)
    client.get(f"/fill/?key=blob&n={SPILL_CHARS}")
    return client


@contextmanager
def later(seconds: float) -> Iterator[None]:
    """Move the clock of trust decisions forward."""
    moved = time.time() + seconds
    with (
        mock.patch.object(knowledge_module, "now", return_value=moved),
        mock.patch.object(engine, "now", return_value=moved),
    ):
        yield


def value_of(session: SessionStore) -> str:
    """The cookie value a response would carry for ``session``."""
    value = session.cookie_value()
    assert value is not None
    return value


def test_deleting_by_an_expired_cookie_removes_its_record(spill: Spill) -> None:
    session = SessionStore()
    session["a"] = 1
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    expired = value_of(session)
    # Redis drops an expired key by itself; a database keeps the row until removed.
    assert spill.records() == (1 if spill.name == "db" else 0)
    assert SessionStore(expired).load() == {}  # never served
    SessionStore().delete(expired)
    assert spill.records() == 0


# -- the I/O budget --------------------------------------------------------------------------------


def test_creating_a_session_costs_one_write(spill: Spill) -> None:
    client = Client()
    with spill.io() as io:
        client.get("/set/?a=1")
    assert (io.reads, io.writes) == (0, 1), io.commands
    record = spill.record(cookie(client))
    assert record is not None
    assert SessionStore()._loads(record.data) == {"a": "1"}  # the server holds every session


def test_a_read_only_request_on_an_inline_session_costs_nothing(spill: Spill) -> None:
    client = Client()
    client.get("/set/?a=1")
    with spill.io() as io:
        response = client.get("/get/?key=a")
    assert response.json() == {"value": "1"}
    assert io.total == 0, io.commands
    assert set_cookie(response) is None


def test_modifying_an_inline_session_costs_one_write_and_no_read(spill: Spill) -> None:
    client = Client()
    client.get("/set/?a=1")
    with spill.io() as io:
        client.get("/set/?b=2")
    assert (io.reads, io.writes) == (0, 1), io.commands
    record = spill.record(cookie(client))
    assert record is not None
    assert record.version == 2
    assert SessionStore()._loads(record.data) == {"a": "1", "b": "2"}
    assert client.get("/read/").json() == {"a": "1", "b": "2"}


def test_a_spilled_session_answers_request_user_without_a_round_trip(
    spill: Spill, alice: User
) -> None:
    client = spilled_client(alice)
    record = spill.record(cookie(client))
    assert record is not None
    assert record.data is not None
    with spill.io() as io:
        response = client.get("/whoami/")
        absent = client.get("/get/?key=_session_expiry")
    assert response.content == b"alice"
    assert absent.json() == {"value": None}
    assert io.total == 0, io.commands
    assert set_cookie(response) is None


def test_an_anonymous_spilled_session_knows_it_has_no_user_without_a_round_trip(
    spill: Spill,
) -> None:
    client = spilled_client()
    with spill.io() as io:
        assert client.get("/whoami/").content == b""
    assert io.total == 0, io.commands


def test_reading_a_spilled_key_costs_one_read(spill: Spill, alice: User) -> None:
    client = spilled_client(alice)
    with spill.io() as io:
        response = client.get("/get/?key=blob")
    assert len(response.json()["value"]) == SPILL_CHARS
    assert (io.reads, io.writes) == (1, 0), io.commands


@pytest.mark.parametrize("view", ["/set/?c=3", "/count/"], ids=["blind", "read-then-write"])
def test_modifying_a_spilled_session_costs_one_read_and_one_write(
    spill: Spill, alice: User, view: str
) -> None:
    client = spilled_client(alice)
    with spill.io() as io:
        client.get(view)
    assert (io.reads, io.writes) == (1, 1), io.commands


@pytest.mark.parametrize("anonymous_session", [False, True], ids=["no-cookie", "cookie"])
def test_logging_in_costs_a_create_a_save_and_the_old_records_delete(
    spill: Spill, alice: User, anonymous_session: bool
) -> None:
    client = Client()
    if anonymous_session:
        client.get("/set/?a=1")
    with spill.io() as io:
        response = client.post("/login/", {"username": "alice", "password": "pw"})
    assert response.status_code == 302
    assert (io.reads, io.writes) == (0, 3 if anonymous_session else 2), io.commands
    assert client.get("/whoami/").content == b"alice"
    assert spill.records() == 1


def test_after_the_window_one_check_per_process_and_the_cookie_is_not_resent(
    spill: Spill,
) -> None:
    client = Client()
    client.get("/set/?a=1")
    with later(61):
        with spill.io() as first:
            response = client.get("/get/?key=a")
        with spill.io() as second:
            again = client.get("/get/?key=a")
    assert (first.reads, first.writes) == (1, 0), first.commands
    assert second.total == 0, second.commands
    assert response.json() == again.json() == {"value": "1"}
    assert set_cookie(response) is None
    assert set_cookie(again) is None


# -- inline -> spilled -> inline -------------------------------------------------------------------


def test_inline_spilled_inline_keeps_the_data_and_the_key(spill: Spill) -> None:
    client = Client()
    client.get("/set/?a=1")
    inline_cookie = cookie(client)
    record = spill.record(inline_cookie)
    assert record is not None

    digest_of_blob = client.get(f"/fill/?key=blob&n={SPILL_CHARS}").content.decode()
    spilled_cookie = cookie(client)
    record = spill.record(spilled_cookie)
    assert record is not None
    assert record.data is not None
    assert len(spilled_cookie) < len(inline_cookie) + 200  # a reference, not the data
    data = client.get("/read/").json()
    assert data["a"] == "1"
    assert hashlib.sha256(data["blob"].encode()).hexdigest() == digest_of_blob

    client.get("/pop/?key=blob")
    record = spill.record(cookie(client))
    assert record is not None
    assert SessionStore()._loads(record.data) == {"a": "1"}  # removed in the same write
    parsed = parse(cookie(client), SessionStore().serializer)
    assert parsed is not None
    assert (parsed.flag, parsed.data) == (INLINE, {"a": "1"})  # back in the cookie
    with spill.io() as io:
        assert client.get("/read/").json() == {"a": "1"}
    assert io.total == 0, io.commands
    assert record_digest(cookie(client)) == record_digest(inline_cookie)  # one session


# -- the cookie budget -----------------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [False, True], ids=["signed", "encrypted"])
def test_a_1_mb_session_keeps_the_set_cookie_under_budget(
    spill: Spill, settings: Any, encrypt: bool
) -> None:
    settings.HYBRID_SESSIONS_ENCRYPT = encrypt
    client = Client()
    response = client.get("/fill/?key=blob&n=1000000")
    morsel = set_cookie(response)
    assert morsel is not None
    assert len(morsel.OutputString().encode()) <= 4096
    value = client.get("/get/?key=blob").json()["value"]
    assert len(value) == 1_000_000
    assert hashlib.sha256(value.encode()).hexdigest() == response.content.decode()


def test_huge_cookie_keys_move_to_the_server_but_the_user_stays_in_the_cookie(
    spill: Spill, alice: User, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_COOKIE_KEYS = ["cart"]
    client = Client()
    client.force_login(alice)
    response = client.get("/fill/?key=cart&n=10000")
    morsel = set_cookie(response)
    assert morsel is not None
    assert len(morsel.OutputString().encode()) <= 4096
    with spill.io() as io:
        assert client.get("/whoami/").content == b"alice"
    assert io.total == 0, io.commands
    assert len(client.get("/get/?key=cart").json()["value"]) == 10000


def test_even_huge_auth_keys_fit_the_budget_and_are_fetched_when_read(spill: Spill) -> None:
    session = SessionStore()
    session["_auth_user_hash"] = secrets.token_hex(3000)  # no cookie could hold it
    session.save()
    assert len(value_of(session)) < 1000
    again = SessionStore(value_of(session))
    with spill.io() as io:
        assert again["_auth_user_hash"] == session["_auth_user_hash"]
    assert io.reads == 1


def test_the_budget_counts_the_cookie_attributes(spill: Spill, settings: Any) -> None:
    settings.SESSION_COOKIE_DOMAIN = "a-rather-long-subdomain-name.example.com"
    settings.SESSION_COOKIE_SECURE = True
    settings.HYBRID_SESSIONS_INLINE_MAX_BYTES = 4096
    settings.HYBRID_SESSIONS_COOKIE_MAX_BYTES = 2048
    client = Client()
    response = client.get("/fill/?key=blob&n=2600")
    morsel = set_cookie(response)
    assert morsel is not None
    assert len(morsel.OutputString().encode()) <= 2048


# -- revocation ------------------------------------------------------------------------------------


def revoke_elsewhere(spill: Spill, client: Client) -> None:
    """End the session behind the engine's back: no process is told (no feed)."""
    key = record_digest(cookie(client))
    assert key is not None
    spill.store.delete(key)


def test_with_revalidate_seconds_0_a_revoked_session_is_empty_on_the_next_request(
    spill: Spill, alice: User, settings: Any
) -> None:
    settings.HYBRID_SESSIONS_REVALIDATE_SECONDS = 0
    client = Client()
    client.force_login(alice)
    client.get("/set/?a=1")
    assert client.get("/whoami/").content == b"alice"
    revoke_elsewhere(spill, client)
    response = client.get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    morsel = set_cookie(response)
    assert morsel is not None
    assert morsel["max-age"] == 0
    assert client.get("/whoami/").content == b""
    assert spill.records() == 0


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_with_the_default_window_a_revoked_session_ends_within_it(
    spill: Spill, alice: User, spilled: bool
) -> None:
    client = spilled_client(alice) if spilled else Client()
    if not spilled:
        client.force_login(alice)  # the test client's cookie is the bare key...
        client.get("/whoami/")  # ...which the first response turns into a token
    revoke_elsewhere(spill, client)
    # Inside the window the cookie is trusted: the documented price of 0 round trips.
    assert client.get("/whoami/").content == b"alice"
    with later(61):
        assert client.get("/whoami/").content == b""
        assert client.get("/read/").json() == {}
    assert spill.records() == 0


def test_an_unknown_bare_key_is_an_empty_session_and_leaves_no_record(spill: Spill) -> None:
    client = Client()
    client.cookies[COOKIE] = "a" * 32
    response = client.get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    assert spill.records() == 0


def test_once_the_server_reports_a_session_gone_not_even_its_cookie_keys_are_served(
    spill: Spill, alice: User
) -> None:
    client = spilled_client(alice)
    revoke_elsewhere(spill, client)
    response = client.get("/blob-then-user/")  # inside the window: the fetch finds it gone
    assert response.json() == {"blob": False, "user": ""}
    morsel = set_cookie(response)
    assert morsel is not None
    assert morsel["max-age"] == 0
    assert spill.records() == 0


def test_a_session_revoked_in_this_process_ends_at_once(spill: Spill, alice: User) -> None:
    client = Client()
    client.force_login(alice)
    key = record_digest(cookie(client))
    assert key is not None
    assert api.revoke_session(alice, key) is True
    assert client.get("/whoami/").content == b""


def test_a_logged_out_cookie_replayed_loads_as_empty(spill: Spill, alice: User) -> None:
    client = spilled_client(alice)
    stolen = cookie(client)
    client.get("/logout/")
    thief = Client()
    thief.cookies[COOKIE] = stolen
    assert thief.get("/whoami/").content == b""  # this process saw the logout
    knowledge.forget_all()  # another process, which did not
    with later(61):
        assert thief.get("/whoami/").content == b""
        assert thief.get("/get/?key=blob").json() == {"value": None}


@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_a_late_write_never_resurrects_a_logged_out_session(
    spill: Spill, alice: User, spilled: bool
) -> None:
    client = spilled_client(alice) if spilled else Client()
    if not spilled:
        client.force_login(alice)
    late = Client()
    late.cookies[COOKIE] = cookie(client)
    client.get("/logout/")
    knowledge.forget_all()  # the late request runs in a process that did not see it
    response = late.get("/set/?x=1")
    # Either the write finds the record gone (SessionInterrupted), or the
    # cookie was checked first and the write started a new, empty session.
    assert response.status_code in (200, 400)
    assert late.get("/whoami/").content == b""
    assert spill.records() == (1 if response.status_code == 200 else 0)
    if response.status_code == 200:
        assert late.get("/read/").json() == {"x": "1"}


# -- stale cookies from overlapping requests -------------------------------------------------------


def test_two_requests_on_one_spilled_cookie_both_keep_their_changes(spill: Spill) -> None:
    first = spilled_client()
    second = Client()
    second.cookies[COOKIE] = cookie(first)
    first.get("/set/?x=1")
    second.get("/set/?y=2")
    data = second.get("/read/").json()
    assert (data["x"], data["y"], len(data["blob"])) == ("1", "2", SPILL_CHARS)


def test_a_stale_inline_cookie_merges_onto_data_another_request_spilled(spill: Spill) -> None:
    first = Client()
    first.get("/set/?a=1")
    second = Client()
    second.cookies[COOKIE] = cookie(first)
    first.get(f"/fill/?key=blob&n={SPILL_CHARS}")
    second.get("/set/?y=2")
    data = second.get("/read/").json()
    assert (data["a"], data["y"], len(data["blob"])) == ("1", "2", SPILL_CHARS)
    record = spill.record(cookie(second))
    assert record is not None
    assert record.data is not None


def test_a_stale_spilled_cookie_after_the_data_went_inline_serves_only_its_own_keys(
    spill: Spill, alice: User
) -> None:
    first = spilled_client(alice)
    second = Client()
    second.cookies[COOKIE] = cookie(first)
    first.get("/pop/?key=blob")
    response = second.get("/get/?key=blob")
    assert response.status_code == 200
    assert response.json() == {"value": None}  # removed by the newer write
    assert second.get("/whoami/").content == b"alice"
    record = spill.record(cookie(first))
    assert record is not None
    assert "blob" not in SessionStore()._loads(record.data)


# -- hostile cookies -------------------------------------------------------------------------------


def _codec() -> TokenCodec:
    return TokenCodec("hybrid_sessions.hybrid:" + COOKIE)


def _valid_token() -> str:
    session = SessionStore()
    session["a"] = "1"
    session.save()
    return value_of(session)


def _hostile_cookies() -> dict[str, Callable[[], str]]:
    future = timezone.now() + timedelta(days=1)
    sid = "a" * 32
    return {
        "garbage": lambda: "not a token at all",
        "eight-chars": lambda: "1234567.",
        "oversized": lambda: "x" * 20000,
        "non-ascii": lambda: "é" * 40,
        "alg-none": lambda: "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJkIjp7fX0.",
        "truncated": lambda: _valid_token()[:-5],
        "bad-signature": lambda: _valid_token()[:-2] + "AA",
        "other-purpose": lambda: TokenCodec("hybrid_sessions.signed_cookies:" + COOKIE).encode(
            {"sid": sid, "v": 1, "d": {"_auth_user_id": "1"}}, expires_at=future
        ),
        "expired": lambda: _codec().encode(
            {"sid": sid, "v": 1, "d": {}}, expires_at=timezone.now() - timedelta(seconds=5)
        ),
        "bad-payload": lambda: _codec().encode(
            {"sid": "short", "v": 1, "d": {}}, expires_at=future
        ),
        "bool-version": lambda: _codec().encode(
            {"sid": sid, "v": True, "d": {}}, expires_at=future
        ),
        "django-signed": lambda: TimestampSigner(salt="x").sign("payload"),
    }


HOSTILE = _hostile_cookies()


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_cookie_is_an_empty_session_and_leaves_no_record(
    spill: Spill, alice: User, kind: str
) -> None:
    value = HOSTILE[kind]()
    before = spill.records()
    client = Client()
    client.cookies[COOKIE] = value
    response = client.get("/read/")
    assert response.status_code == 200
    assert response.json() == {}
    assert client.get("/whoami/").content == b""
    assert spill.records() == before


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_cookie_is_logged_as_a_suspicious_session_without_the_token(
    spill: Spill, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = HOSTILE[kind]()
    client = Client()
    client.cookies[COOKIE] = value
    with caplog.at_level(logging.INFO, logger="django.security.SuspiciousSession"):
        client.get("/read/")
    (record,) = [r for r in caplog.records if r.name == "django.security.SuspiciousSession"]
    assert record.levelno == (logging.INFO if kind == "expired" else logging.WARNING)
    assert "Session cookie rejected" in record.getMessage()
    assert value not in record.getMessage()


def test_a_write_under_a_hostile_cookie_starts_a_new_session(spill: Spill) -> None:
    forged = _codec().encode(
        {"sid": "b" * 32, "v": 1, "d": {}}, expires_at=timezone.now() - timedelta(seconds=5)
    )
    client = Client()
    client.cookies[COOKIE] = forged
    client.get("/set/?a=1")
    assert cookie(client) != forged
    assert record_digest(cookie(client)) != record_digest(forged)
    assert client.get("/read/").json() == {"a": "1"}
    assert spill.records() == 1


def test_a_cookie_signed_with_a_fallback_key_is_reissued(spill: Spill, settings: Any) -> None:
    client = Client()
    client.get("/set/?a=1")
    old = cookie(client)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-" + "y" * 40
    response = client.get("/get/?key=a")
    assert response.json() == {"value": "1"}
    morsel = set_cookie(response)
    assert morsel is not None
    assert morsel.value != old
    settings.SECRET_KEY_FALLBACKS = []
    assert client.get("/get/?key=a").json() == {"value": "1"}


# -- the Redis spill store down --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def caches_setting() -> dict[str, dict[str, Any]]:
    value: Any = django_settings.CACHES
    return dict(value)


@contextmanager
def redis_down(**extra: Any) -> Iterator[None]:
    """The session cache alias points at a port where nothing listens."""
    down: dict[str, Any] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        "KEY_PREFIX": caches_setting()["default"]["KEY_PREFIX"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.3, "SOCKET_TIMEOUT": 0.3},
    }
    caches = {**caches_setting(), "down": down}
    with override_settings(CACHES=caches, SESSION_CACHE_ALIAS="down", **extra):
        yield


@pytest.mark.redis
def test_with_redis_down_inline_sessions_keep_working_for_reads(
    redis_spill: Spill, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    client.force_login(alice)
    client.get("/set/?a=1")
    with redis_down():
        # Inside the window the cookie is served: no round trip to fail.
        response = client.get("/get/?key=a")
        assert response.json() == {"value": "1"}
        assert set_cookie(response) is None
        knowledge.forget_all()  # a process that has not seen this session yet
        with caplog.at_level(logging.ERROR, logger="hybrid_sessions"):
            assert client.get("/whoami/").content == b"alice"
        # A write cannot check that the session is alive: it fails, loudly.
        with pytest.raises(SessionStoreUnavailable):
            client.get("/set/?b=2")
        # Past the window nothing vouches for the cookie: a clear failure, never
        # a session that may have ended served again.
        with later(61), pytest.raises(SessionStoreUnavailable):
            client.get("/whoami/")
    assert client.get("/read/").json()["a"] == "1"  # nothing lost, nobody logged out


@pytest.mark.redis
def test_with_redis_down_a_spilled_session_fails_clearly_never_a_silent_logout(
    redis_spill: Spill, alice: User
) -> None:
    client = spilled_client(alice)
    with redis_down():
        response = client.get("/whoami/")
        assert response.content == b"alice"
        assert set_cookie(response) is None
        with pytest.raises(SessionStoreUnavailable):
            client.get("/get/?key=blob")
        with pytest.raises(SessionStoreUnavailable):
            client.get("/set/?c=1")
    assert len(client.get("/get/?key=blob").json()["value"]) == SPILL_CHARS


@pytest.mark.redis
def test_with_redis_down_and_on_store_error_empty_spilled_keys_read_as_absent(
    redis_spill: Spill, alice: User
) -> None:
    client = spilled_client(alice)
    with redis_down(HYBRID_SESSIONS_ON_STORE_ERROR="empty"):
        response = client.get("/get/?key=blob")
        assert response.json() == {"value": None}
        assert set_cookie(response) is None
        assert client.get("/whoami/").content == b"alice"
        with pytest.raises(SessionStoreUnavailable):
            client.get("/count/")
    assert len(client.get("/get/?key=blob").json()["value"]) == SPILL_CHARS


# -- native async ----------------------------------------------------------------------------------


def test_async_access_follows_the_same_budget(spill: Spill, alice: User) -> None:
    client = spilled_client(alice)
    key = cookie(client)

    async def resident() -> Any:
        return await SessionStore(key).aget("_auth_user_id")

    async def spilled_then_write() -> str | None:
        session = SessionStore(key)
        value = await session.aget("blob")
        await session.aset("z", 1)
        await session.asave()
        assert len(value) == SPILL_CHARS
        return session.cookie_value()

    with spill.io() as io:
        assert async_to_sync(resident)() == str(alice.pk)
    assert io.total == 0, io.commands
    with spill.io() as io:
        new_key = async_to_sync(spilled_then_write)()
    assert (io.reads, io.writes) == (1, 1), io.commands
    assert new_key is not None
    assert SessionStore(new_key)["z"] == 1


# -- system checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        (
            {"HYBRID_SESSIONS_INLINE_MAX_BYTES": 5000, "HYBRID_SESSIONS_COOKIE_MAX_BYTES": 4096},
            "hybrid_sessions.E005",
        ),
        (
            {"HYBRID_SESSIONS_SPILL_ENGINE": REDIS_SPILL, "SESSION_CACHE_ALIAS": "local"},
            "hybrid_sessions.W008",
        ),
    ],
)
def test_the_checks_cover_the_hybrid_engine(overrides: dict[str, Any], check_id: str) -> None:
    with override_settings(SESSION_ENGINE=HYBRID, **overrides):
        assert check_id in [message.id for message in check_settings()]


@pytest.mark.parametrize("spill_engine", ["hybrid_sessions.backends.db", REDIS_SPILL])
def test_the_default_hybrid_settings_pass_the_checks(spill_engine: str) -> None:
    with override_settings(SESSION_ENGINE=HYBRID, HYBRID_SESSIONS_SPILL_ENGINE=spill_engine):
        assert check_settings() == []
