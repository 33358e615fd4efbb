"""Metrics: counters, histograms and gauges for whatever exporter a site runs.

The package depends on no metrics library. A site registers one
:class:`Recorder` (in an ``AppConfig.ready()``, say), an object with three
methods that a Prometheus or OpenTelemetry adapter implements in a few lines
(docs/signals.rst has one for ``prometheus_client``)::

    from hybrid_sessions import metrics

    metrics.register(MyRecorder())

With none registered, every place that measures does one ``is None`` check
and nothing else: no label is built, no clock read, no lock taken.

Names and labels are the constants below; docs/signals.rst says what each
counts. A recorder is called from request threads, the event loop's thread and
the feeds' listener threads: it must be thread-safe (prometheus_client's and
OpenTelemetry's instruments are).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = [
    "COOKIE_BYTES",
    "FEED_FAILURES",
    "FEED_LAG",
    "FEED_MESSAGES",
    "FEED_UP",
    "HYBRID_SAVES",
    "MERGES",
    "NAMES",
    "REVOCATIONS",
    "SAVE_CONFLICTS",
    "SESSIONS_CREATED",
    "STORE_OPERATIONS",
    "TOKENS_REFUSED",
    "TRUST_DECISIONS",
    "Recorder",
    "engine_label",
    "recorder",
    "register",
    "unregister",
]

#: Histogram, bytes of each session ``Set-Cookie`` the middleware sends; ``engine``.
COOKIE_BYTES = "hybrid_sessions_cookie_bytes"
#: Counter, hybrid saves by where the data went; ``storage``: ``inline`` or ``spilled``.
HYBRID_SAVES = "hybrid_sessions_hybrid_saves"
#: Histogram, store operations the session engine made for one request; ``engine``.
STORE_OPERATIONS = "hybrid_sessions_store_operations_per_request"
#: Counter, compare-and-set races a save lost (each one a merge and a retry).
SAVE_CONFLICTS = "hybrid_sessions_save_conflicts"
#: Counter, saves written after merging onto newer data.
MERGES = "hybrid_sessions_merges"
#: Counter, hybrid cookie loads by the trust decision; ``decision``:
#: ``trust`` (served from the cookie), ``ask`` (revalidated with the server), ``gone``.
TRUST_DECISIONS = "hybrid_sessions_trust_decisions"
#: Counter, sessions ended on the server; ``path`` (see ``signals.PATHS``).
REVOCATIONS = "hybrid_sessions_revocations"
#: Counter, session records created; ``engine``.
SESSIONS_CREATED = "hybrid_sessions_sessions_created"
#: Counter, refused session cookies; ``reason``: the ``TokenError`` class name.
TOKENS_REFUSED = "hybrid_sessions_tokens_refused"
#: Counter, feed messages handled; ``feed``, ``kind``: ``version``, ``end``, ``malformed``.
FEED_MESSAGES = "hybrid_sessions_feed_messages"
#: Histogram, seconds from the start of an end this process made until its
#: own feed carried it back; ``feed``.
FEED_LAG = "hybrid_sessions_feed_lag_seconds"
#: Gauge, 1 while a feed is subscribed (refreshed at least every second), 0 once lost; ``feed``.
FEED_UP = "hybrid_sessions_feed_up"
#: Counter, lost feed connections; ``feed``.
FEED_FAILURES = "hybrid_sessions_feed_failures"

#: Every metric: its kind, its labels and what it measures (an exporter's help text).
NAMES: dict[str, tuple[str, tuple[str, ...], str]] = {
    COOKIE_BYTES: (
        "histogram", ("engine",), "Bytes of each session Set-Cookie the middleware sends."
    ),
    HYBRID_SAVES: ("counter", ("storage",), "Hybrid saves, by where the data went."),
    STORE_OPERATIONS: (
        "histogram", ("engine",), "Store operations the session engine made for one request."
    ),
    SAVE_CONFLICTS: ("counter", (), "Compare-and-set races a session save lost."),
    MERGES: ("counter", (), "Session saves written after merging onto newer data."),
    TRUST_DECISIONS: (
        "counter", ("decision",), "Hybrid cookie loads, by whether the server was asked."
    ),
    REVOCATIONS: ("counter", ("path",), "Sessions ended on the server, by who ended them."),
    SESSIONS_CREATED: ("counter", ("engine",), "Session records created."),
    TOKENS_REFUSED: ("counter", ("reason",), "Session cookies refused, by reason."),
    FEED_MESSAGES: ("counter", ("feed", "kind"), "Feed messages handled."),
    FEED_LAG: (
        "histogram", ("feed",), "Seconds from an end this process made to its own feed's echo."
    ),
    FEED_UP: ("gauge", ("feed",), "1 while the feed is subscribed, 0 once lost."),
    FEED_FAILURES: ("counter", ("feed",), "Feed connections lost."),
}


class Recorder(Protocol):
    """What a site registers: label values are strings, names are from :data:`NAMES`."""

    def counter(self, name: str, value: float = 1, **labels: str) -> None:
        """Add ``value`` to a counter."""

    def histogram(self, name: str, value: float, **labels: str) -> None:
        """Observe ``value``."""

    def gauge(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge to ``value``."""


#: The registered recorder, or ``None``: what every measuring place checks first.
recorder: Recorder | None = None


def register(new: Recorder) -> None:
    """Send the package's metrics to ``new`` (replacing any recorder registered before)."""
    global recorder
    recorder = new


def unregister() -> None:
    """Stop recording: the measuring places go back to one ``is None`` check."""
    global recorder
    recorder = None
    echo.clear()


_ENGINE_PREFIX = "hybrid_sessions.backends."
_engine_labels: dict[type, str] = {}


def engine_label(engine: type) -> str:
    """A session engine class's ``engine`` label: ``db``, ``cache``, ``signed_cookies``,
    ``hybrid``, or the module of an engine from elsewhere."""
    label = _engine_labels.get(engine)
    if label is None:
        module = engine.__module__
        if module.startswith(_ENGINE_PREFIX):
            module = module.removeprefix(_ENGINE_PREFIX).split(".")[0]
        label = _engine_labels[engine] = module
    return label


# -- store operations per request ----------------------------------------------------------

_operations: ContextVar[list[int] | None] = ContextVar(
    "hybrid_sessions_store_operations", default=None
)


@contextmanager
def counting_operations() -> Iterator[list[int]]:
    """Count the store operations made inside the block (the middleware wraps each request)."""
    counter = [0]
    token = _operations.set(counter)
    try:
        yield counter
    finally:
        _operations.reset(token)


def store_operation() -> None:
    """One store operation (called only while a recorder is registered)."""
    counter = _operations.get()
    if counter is not None:
        counter[0] += 1


# -- feed lag: an end this process made, heard back on its own feed --------------------------


class Echo:
    """Pairs an end this process published with the same message heard on its feed.

    Either can come first (the listener thread may hear the message before the
    store call has returned), so each side waits for the other in a bounded
    table; messages of other processes' ends simply age out.
    """

    SIZE = 1024

    def __init__(self) -> None:
        self._sent: OrderedDict[str, float] = OrderedDict()
        self._heard: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
            self._heard.clear()

    def sent(self, feed: str, messages: Iterable[str], started: float) -> None:
        """Ends published on ``feed`` by a store call that started at ``started`` (monotonic)."""
        lags = []
        with self._lock:
            for text in messages:
                heard_at = self._heard.pop(text, None)
                if heard_at is None:
                    self._remember(self._sent, text, started)
                else:
                    lags.append(heard_at - started)
        self._observe(feed, lags)

    def heard(self, feed: str, text: str, at: float) -> None:
        """An end heard on ``feed`` at ``at`` (monotonic)."""
        with self._lock:
            started = self._sent.pop(text, None)
            if started is None:
                self._remember(self._heard, text, at)
                return
        self._observe(feed, [at - started])

    def _remember(self, table: OrderedDict[str, float], text: str, at: float) -> None:
        table[text] = at
        if len(table) > self.SIZE:
            table.popitem(last=False)

    @staticmethod
    def _observe(feed: str, lags: list[float]) -> None:
        current = recorder
        if current is not None:
            for lag in lags:
                current.histogram(FEED_LAG, max(lag, 0.0), feed=feed)


#: The process's pairing of published and heard ends.
echo = Echo()
