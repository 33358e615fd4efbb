"""Metrics through the documented prometheus_client recorder, against the real stores.

Every figure is read back from a fresh ``prometheus_client`` registry, as a
scrape would see it, and compared with what the request demonstrably did.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from prometheus_client import CollectorRegistry

from hybrid_sessions import api, metrics
from hybrid_sessions.backends.hybrid import SessionStore as HybridStore
from hybrid_sessions.backends.hybrid import record_digest
from hybrid_sessions.feeds import Feed, stop_all
from tests.engines import ENGINES, Engine
from tests.prometheus_recorder import PrometheusRecorder
from tests.waiting import eventually

COOKIE = django_settings.SESSION_COOKIE_NAME
SERVER_ENGINES = [e for e in ENGINES if e.server_side]
HYBRID_ENGINES = [e for e in ENGINES if e.path.endswith("hybrid")]


class Scrape:
    """What the registry would expose."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def total(self, name: str, **labels: str) -> float:
        return self.value(name + "_total", **labels)

    def observations(self, name: str, **labels: str) -> tuple[float, float]:
        """``(count, sum)`` of a histogram."""
        return self.value(name + "_count", **labels), self.value(name + "_sum", **labels)

    def at_most(self, name: str, bound: str, **labels: str) -> float:
        """Observations of a histogram at most ``bound``."""
        return self.value(name + "_bucket", le=bound, **labels)


@pytest.fixture
def scrape() -> Iterator[Scrape]:
    registry = CollectorRegistry()
    metrics.register(PrometheusRecorder(registry))
    try:
        yield Scrape(registry)
    finally:
        metrics.unregister()


def _engine(request: pytest.FixtureRequest, db: None) -> Iterator[Engine]:
    eng: Engine = request.param
    with override_settings(SESSION_ENGINE=eng.path, **eng.settings):
        yield eng


def _engines(engines: list[Engine]) -> Any:
    params = [pytest.param(e, marks=[pytest.mark.redis] if e.needs_redis else []) for e in engines]
    return pytest.fixture(params=params, ids=[e.name for e in engines])(_engine)


server_engine = _engines(SERVER_ENGINES)
hybrid_engine = _engines(HYBRID_ENGINES)


def label(engine: Engine) -> str:
    return engine.path.rsplit(".", 1)[1]


# -- the cookie ------------------------------------------------------------------------------------


def test_cookie_bytes_are_the_set_cookie_the_browser_receives(
    engine: Engine, scrape: Scrape
) -> None:
    client = Client()
    sent = [
        client.get("/write/", {"a": "1"}).cookies[COOKIE].OutputString(),
        client.get("/write/", {"b": "x" * 500}).cookies[COOKIE].OutputString(),
    ]
    assert COOKIE not in client.get("/read/").cookies  # nothing changed, nothing sent
    count, total = scrape.observations(metrics.COOKIE_BYTES, engine=label(engine))
    assert count == 2
    assert total == sum(len(value.encode()) for value in sent)


def test_a_deleted_cookie_is_not_measured(server_engine: Engine, scrape: Scrape) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    client.get("/flush/")
    assert scrape.observations(metrics.COOKIE_BYTES, engine=label(server_engine))[0] == 1


def test_the_spill_ratio_counts_inline_and_spilled_saves(
    hybrid_engine: Engine, scrape: Scrape
) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    client.get("/write/", {"b": "2"})
    client.get("/write/", {"blob": secrets.token_hex(3000)})
    assert scrape.total(metrics.HYBRID_SAVES, storage="inline") == 2
    assert scrape.total(metrics.HYBRID_SAVES, storage="spilled") == 1


# -- round trips -----------------------------------------------------------------------------------


def test_store_operations_per_request_follow_the_hybrid_round_trip_table(
    hybrid_engine: Engine, scrape: Scrape
) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})  # creating: 1 write
    client.get("/read/")  # read-only, inline, current: 0
    client.get("/read/")
    client.get("/write/", {"a": "2"})  # modifying inline: 1 write
    count, total = scrape.observations(metrics.STORE_OPERATIONS, engine="hybrid")
    assert (count, total) == (4, 2)
    assert scrape.at_most(metrics.STORE_OPERATIONS, "0.0", engine="hybrid") == 2


def test_store_operations_of_a_server_engine_include_the_read(db: None, scrape: Scrape) -> None:
    with override_settings(SESSION_ENGINE="hybrid_sessions.backends.db"):
        client = Client()
        client.get("/write/", {"a": "1"})  # create
        client.get("/read/")  # read
        client.get("/write/", {"a": "2"})  # read, then compare-and-set
        client.get("/flush/")  # read, then delete
        client.get("/untouched/")  # nothing
    assert scrape.observations(metrics.STORE_OPERATIONS, engine="db") == (5, 5)


# -- saves that race -------------------------------------------------------------------------------


def test_a_lost_race_is_a_conflict_and_a_merge(server_engine: Engine, scrape: Scrape) -> None:
    store = server_engine.store
    original = store()
    original["a"] = 1
    original.save()
    first, second = store(original.session_key), store(original.session_key)
    assert first["a"] == second["a"] == 1
    first["b"] = 2
    second["c"] = 3
    first.save()
    assert scrape.total(metrics.SAVE_CONFLICTS) == 0
    second.save()
    assert scrape.total(metrics.SAVE_CONFLICTS) == 1
    assert scrape.total(metrics.MERGES) == 1


# -- trust decisions (revalidations) ---------------------------------------------------------------


def test_revalidations_are_the_loads_that_asked_the_server(
    hybrid_engine: Engine, scrape: Scrape, settings: Any
) -> None:
    client = Client()
    client.get("/write/", {"a": "1"})
    settings.HYBRID_SESSIONS_REVALIDATE_SECONDS = 0
    client.get("/read/")
    client.get("/read/")
    assert scrape.total(metrics.TRUST_DECISIONS, decision="ask") == 2
    assert scrape.total(metrics.TRUST_DECISIONS, decision="trust") == 0
    settings.HYBRID_SESSIONS_REVALIDATE_SECONDS = 60
    client.get("/read/")
    assert scrape.total(metrics.TRUST_DECISIONS, decision="trust") == 1
    api.end_sessions([record_digest(client.cookies[COOKIE].value) or ""])
    client.get("/read/")
    assert scrape.total(metrics.TRUST_DECISIONS, decision="gone") == 1


# -- sessions created, ended, refused --------------------------------------------------------------


def test_sessions_created_are_counted_by_engine(engine: Engine, scrape: Scrape) -> None:
    for _ in range(3):
        client = Client()
        client.get("/write/", {"a": "1"})
        client.get("/write/", {"a": "2"})
    assert scrape.total(metrics.SESSIONS_CREATED, engine=label(engine)) == 3


def test_revocations_are_counted_by_path(server_engine: Engine, scrape: Scrape) -> None:
    alice = User.objects.create_user("alice")
    browsers = [Client() for _ in range(3)]
    for browser in browsers:
        browser.force_login(alice)
    browsers[0].get("/flush/")
    assert api.revoke_all_sessions(alice) == 2
    assert scrape.total(metrics.REVOCATIONS, path="logout") == 1
    assert scrape.total(metrics.REVOCATIONS, path="api") == 2


def test_refused_cookies_are_counted_by_reason(scrape: Scrape) -> None:
    for path in ("hybrid_sessions.backends.hybrid", "hybrid_sessions.backends.signed_cookies"):
        with override_settings(SESSION_ENGINE=path):
            client = Client()
            client.cookies[COOKIE] = "x" * 20 + "." + "y" * 20
            client.get("/read/")
    assert scrape.total(metrics.TOKENS_REFUSED, reason="MalformedToken") == 2


# -- the feed --------------------------------------------------------------------------------------


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "postgres"])
def live_feed(
    request: pytest.FixtureRequest, transactional_db: None, settings: Any
) -> Feed:
    """The hybrid engine with its feed up (PostgreSQL's only when the tests run on it)."""
    settings.SESSION_ENGINE = "hybrid_sessions.backends.hybrid"
    if request.param == "postgres":
        if connection.vendor != "postgresql":
            pytest.skip("the PostgreSQL feed needs HYBRID_SESSIONS_TEST_DB=postgres")
    else:
        settings.HYBRID_SESSIONS_SPILL_ENGINE = "hybrid_sessions.backends.cache"
    stop_all()  # the only listener of the process: one with another HYBRID_SESSIONS_FEED
    feed = HybridStore.get_store().feed()  # would share its channel and its name
    assert feed is not None
    feed.ensure_running()
    assert feed.wait_until_up()
    return feed


def test_the_feed_reports_its_health_messages_and_the_lag_of_ends(
    live_feed: Feed, scrape: Scrape
) -> None:
    name = live_feed.name
    assert eventually(lambda: scrape.value(metrics.FEED_UP, feed=name) == 1, within=5.0)
    client = Client()
    client.get("/write/", {"a": "1"})  # a creation is news to nobody: not published
    client.get("/write/", {"a": "2"})
    assert eventually(
        lambda: scrape.total(metrics.FEED_MESSAGES, feed=name, kind="version") == 1, within=5.0
    )
    assert api.end_sessions([record_digest(client.cookies[COOKIE].value) or ""]) == 1
    assert eventually(
        lambda: scrape.total(metrics.FEED_MESSAGES, feed=name, kind="end") == 1, within=5.0
    )
    assert eventually(lambda: scrape.observations(metrics.FEED_LAG, feed=name)[0] == 1, within=5.0)
    _, lag = scrape.observations(metrics.FEED_LAG, feed=name)
    assert 0 < lag < 5
    live_feed.stop()
    assert scrape.value(metrics.FEED_UP, feed=name) == 0


# -- no recorder -----------------------------------------------------------------------------------


def test_without_a_recorder_nothing_is_recorded(engine: Engine) -> None:
    registry = CollectorRegistry()
    metrics.register(PrometheusRecorder(registry))
    metrics.unregister()
    assert metrics.recorder is None
    client = Client()
    client.get("/write/", {"a": "1"})
    client.get("/read/")
    client.get("/flush/")
    names = {sample.name for family in registry.collect() for sample in family.samples}
    values = [
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]
    assert names  # the instruments exist...
    assert not any(values)  # ...and none of them moved
