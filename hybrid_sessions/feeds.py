"""The feed: every process hears of new versions and ends of sessions within a second.

A store that has one publishes on every write in the write's own round trip:
Redis ``PUBLISH`` inside the write script, PostgreSQL ``pg_notify()`` in the
write's statement (delivered when it commits). A message is
``"<digest>:<version>"``, version ``0`` for an end.

Each process listens in one daemon thread per feed, started on first use and
again after a fork (gunicorn's pre-fork workers inherit no threads), and feeds
:data:`~hybrid_sessions.knowledge.knowledge`. ``Feed.since`` is when the
current subscription was confirmed, ``None`` while it is down: a cookie issued
before it is not vouched for (see :func:`hybrid_sessions.knowledge.decide`).
The thread reconnects by itself, with a pause that doubles up to 5 seconds, and
logs each loss and recovery on the ``hybrid_sessions`` logger.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .knowledge import GONE, knowledge, now

__all__ = [
    "SUBSCRIBED", "Feed", "FeedStats", "in_test_environment", "message", "postgres_listener",
    "redis_listener", "stop_all",
]

logger = logging.getLogger("hybrid_sessions")

#: How long a listener waits for a message before checking it should stop.
POLL_SECONDS = 1.0
#: Longest pause between reconnection attempts.
MAX_BACKOFF = 5.0

#: What a store publishes: a SHA-256 digest and a version (ASCII digits, bounded).
MESSAGE = re.compile(r"[0-9a-f]{64}:[0-9]{1,18}")
#: Yielded by a listener when a subscription is confirmed (again, after a reconnection).
SUBSCRIBED = "\0subscribed"
#: A listener: connects, yields :data:`SUBSCRIBED` once subscribed, then each
#: message's text (``None`` on every idle poll); raises when the link fails.
Listener = Callable[[], Iterator[str | None]]


def message(digest: str, version: int) -> str:
    """The text a store publishes for a write (or, with version 0, an end)."""
    return f"{digest}:{version}"


@dataclass(slots=True)
class FeedStats:
    """Counters an operator (or a metrics exporter) can read."""

    messages: int = 0
    malformed: int = 0
    connects: int = 0
    failures: int = 0
    last_error: str = ""
    handled_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)


class Feed:
    """One channel's listener thread in this process, and its health."""

    def __init__(self, name: str, listener: Listener) -> None:
        self.name = name
        self.listener = listener
        self.since: float | None = None
        self.stats = FeedStats()
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reported_up = 0.0
        self._running = False  # a thread of this process is in _loop
        _feeds.add(self)

    def ensure_running(self) -> None:
        """Start the thread in this process if it is not running (cheap when it is)."""
        if self._running:
            return  # every request asks: no system call, no lock (a fork resets it)
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            # After a fork the parent's thread does not exist here, and what it
            # heard stops at the fork: nothing is vouched for until we subscribe.
            self.since = None
            self.stats = FeedStats()
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._loop, name=f"hybrid_sessions feed {self.name}", daemon=True
            )
            self._running = True
            try:
                self._thread.start()
            except BaseException:
                self._running = False
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (tests; a process that ends stops it anyway)."""
        thread = self._thread
        self._stop.set()
        self._running = False
        self.since = None
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        self._thread = None
        self._pid = 0

    def wait_until_up(self, timeout: float = 10.0) -> bool:
        """Block until subscribed (tests and start-up checks)."""
        deadline = time.monotonic() + timeout
        while self.since is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.since is not None

    def handle(self, text: str) -> None:
        """Learn from one message."""
        started = time.perf_counter()
        if not MESSAGE.fullmatch(text):
            # Anyone who can publish on the channel can send anything: what is not
            # exactly what a store sends is dropped, and never takes the link down.
            self.stats.malformed += 1
            if metrics.recorder is not None:
                metrics.recorder.counter(metrics.FEED_MESSAGES, feed=self.name, kind="malformed")
            return
        digest, _, version = text.partition(":")
        # Heard, not confirmed: a message can make cookies ask or end, never trusted.
        knowledge.learn(digest, int(version) or GONE, confirmed=False)
        self.stats.messages += 1
        self.stats.handled_seconds += time.perf_counter() - started
        if metrics.recorder is not None:
            self._measure(text, int(version) == GONE)

    def _measure(self, text: str, end: bool) -> None:
        recorder = metrics.recorder
        if recorder is None:
            return
        recorder.counter(metrics.FEED_MESSAGES, feed=self.name, kind="end" if end else "version")
        if end:
            metrics.echo.heard(self.name, text, time.monotonic())

    def _report_up(self) -> None:
        """Refresh the ``up`` gauge, at most once per poll interval."""
        recorder = metrics.recorder
        at = time.monotonic()
        if recorder is not None and at - self._reported_up >= POLL_SECONDS:
            self._reported_up = at
            recorder.gauge(metrics.FEED_UP, 1, feed=self.name)

    def _report_down(self) -> None:
        self._reported_up = 0.0
        recorder = metrics.recorder
        if recorder is not None:
            recorder.gauge(metrics.FEED_UP, 0, feed=self.name)

    def _loop(self) -> None:
        try:
            self._listen()
        finally:
            # However the thread ends, it no longer vouches for anything; the next
            # request's ensure_running() starts another.
            if self._thread is threading.current_thread():
                self._running = False
            self.since = None
            self._report_down()

    def _listen(self) -> None:
        backoff = 0.1
        stop = self._stop
        while not stop.is_set():
            try:
                for text in self.listener():
                    if stop.is_set():
                        break
                    if self.since is not None and metrics.recorder is not None:
                        self._report_up()
                    if text is None:
                        continue
                    if text == SUBSCRIBED:
                        # Whatever was published before this moment may have been
                        # missed: nothing issued earlier is vouched for.
                        self.since = now()
                        self.stats.connects += 1
                        backoff = 0.1
                        self._report_up()
                        if self.stats.failures:
                            logger.warning("Session feed %s is back", self.name)
                        continue
                    self.handle(text)
            except Exception as exc:  # any failure of the link: reconnect
                self.stats.failures += 1
                if metrics.recorder is not None:
                    metrics.recorder.counter(metrics.FEED_FAILURES, feed=self.name)
                    self._report_down()
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.since is not None or self.stats.failures == 1:
                    logger.error(
                        "Session feed %s lost (%s); cookies are trusted only within "
                        "HYBRID_SESSIONS_REVALIDATE_SECONDS until it is back", self.name, exc,
                    )
            self.since = None
            stop.wait(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)


#: Every feed of this process, for :func:`stop_all`.
_feeds: weakref.WeakSet[Feed] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for feed in list(_feeds):
        # ensure_running() may have been holding the lock in another thread; and the
        # listening thread is not here, so nothing it heard vouches for this process.
        feed._lock = threading.Lock()
        feed._running = False
        feed.since = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def stop_all() -> None:
    """Stop every feed of this process (before dropping a test database, say)."""
    for feed in list(_feeds):
        feed.stop()


def in_test_environment() -> bool:
    """Whether Django's test environment is set up in this process (its runner, pytest-django).

    The runner drops the test database at the end, which PostgreSQL refuses
    while a ``LISTEN`` connection is open to it; a test process knows of its
    own writes without a feed.
    """
    from django.test.utils import _TestState

    return hasattr(_TestState, "saved_data")


def redis_listener(client: Callable[[], Any], channel: str) -> Listener:
    """Subscribe to ``channel`` on a connection of its own from ``client()``'s pool.

    The connection is read with ``can_read``/``read_response`` rather than through
    redis-py's ``PubSub``, whose per-message work under the GIL cost a writing
    process about 100 µs per save while it heard its own message (about 55 µs
    this way, mostly the thread's wake-up). The pool's connection class brings
    the site's address, TLS and credentials. An idle poll sends ``PING``: a
    link that stops answering is dropped and reconnected, as the PostgreSQL
    listener's ``SELECT 1`` does.
    """

    def listen() -> Iterator[str | None]:
        connection = client().connection_pool.make_connection()
        push = str(getattr(connection, "protocol", 2)) == "3"  # RESP3: messages are pushes
        try:
            connection.connect()
            connection.send_command("SUBSCRIBE", channel)
            waiting_for_pong = False
            while True:
                if not connection.can_read(timeout=POLL_SECONDS):
                    if waiting_for_pong:
                        raise TimeoutError("the Redis server did not answer PING")
                    connection.send_command("PING")
                    waiting_for_pong = True
                    yield None
                    continue
                reply = (connection.read_response(push_request=True) if push
                         else connection.read_response())
                # RESP2 answers PING with ["pong", ""] while subscribed, RESP3 with "PONG".
                kind = _text(reply[0] if isinstance(reply, list) and reply else reply).lower()
                if kind == "message" and len(reply) == 3:
                    yield _text(reply[2])
                elif kind == "subscribe":
                    yield SUBSCRIBED
                elif kind == "pong":
                    waiting_for_pong = False
        finally:
            connection.disconnect()

    return listen


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def postgres_listener(connect: Callable[[], Any], channel: str) -> Listener:
    """``LISTEN`` on ``channel`` on a connection of its own from ``connect()``."""

    def listen() -> Iterator[str | None]:
        connection = connect()
        try:
            connection.execute(f'LISTEN "{channel}"')
            yield SUBSCRIBED
            while True:
                for notify in connection.notifies(timeout=POLL_SECONDS):
                    yield notify.payload
                # Idle: make sure the link is alive, so a dead server is noticed.
                connection.execute("SELECT 1")
                yield None
        finally:
            connection.close()

    return listen
