"""I/O per request: SQL statements and Redis commands, per engine and kind of request.

Each request goes through Django's own ``SessionMiddleware`` and the benchmark
app's views (``django.test.Client``, no network), for three kinds of request:

``new``
    No cookie; the view stores a session of the given size (a first visit, a login).
``read``
    The session's cookie; the view reads one key.
``write``
    The session's cookie; the view reads one key and changes another.

Counted per request: SQL statements (``CaptureQueriesContext``; Django logs
``BEGIN`` and ``COMMIT`` among them), Redis round trips as the client sends
them, and Redis commands as the server ran them, including those a Lua script
runs. The server's count comes from ``MONITOR``, kept to the benchmark's own
Redis database, because ``INFO commandstats`` totals every client of a shared
server. Each number is the minimum over a few repetitions.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.cases import Case
from benchmarks.inprocess import SIZES, active

KINDS = ("new", "read", "write")
REPETITIONS = 3


@contextlib.contextmanager
def _count_round_trips() -> Iterator[dict[str, int]]:
    try:
        from redis.connection import AbstractConnection
    except ImportError:
        yield {"round_trips": 0}
        return
    counter = {"round_trips": 0}
    original = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counter["round_trips"] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


class RedisCommands:
    """Commands the server runs on the benchmark's database, seen through ``MONITOR``.

    ``ECHO`` markers sent on that database before and after the measured code
    delimit its commands in the monitor stream.
    """

    def __init__(self) -> None:
        self.available = False
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._monitor: Any = None
        with contextlib.suppress(Exception):
            import redis
            from django.conf import settings

            self._marker = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            self.db = int(self._marker.connection_pool.connection_kwargs.get("db", 0))
            self._monitor = self._marker.monitor().__enter__()
            threading.Thread(target=self._read, daemon=True).start()
            self.available = True

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                self._lines.put(self._monitor.next_command())

    def close(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.connection.disconnect()

    def count(self, action: Callable[[], Any]) -> tuple[Any, int]:
        """Run ``action``; its result and how many commands it made the server run."""
        if not self.available:
            return action(), 0
        token = uuid.uuid4().hex
        self._marker.echo(f"start-{token}")
        try:
            result = action()
        finally:
            self._marker.echo(f"end-{token}")
        counted, started = 0, False
        while True:
            line = self._lines.get(timeout=10)
            command = str(line.get("command", ""))
            if command == f"ECHO start-{token}":
                started = True
            elif command == f"ECHO end-{token}":
                return result, counted
            elif started and line.get("db") == self.db:
                counted += 1


def measure_request(
    client: Any, path: str, alias: str, redis: RedisCommands
) -> tuple[Any, dict[str, int]]:
    """Issue one request and count its I/O."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    trips: dict[str, int] = {}

    def send() -> Any:
        with _count_round_trips() as counter:
            response = client.get(path)
        trips.update(counter)
        return response

    with CaptureQueriesContext(connections[alias]) as queries:
        response, commands = redis.count(send)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered HTTP {response.status_code}")
    return response, {
        "queries": len(queries.captured_queries),
        "redis_round_trips": trips["round_trips"],
        "redis_commands": commands,
    }


def _set_cookie(response: Any) -> tuple[int, int]:
    """The session cookie's value length and whole ``Set-Cookie`` header length (bytes)."""
    from django.conf import settings

    morsel = response.cookies.get(settings.SESSION_COOKIE_NAME)
    if morsel is None:
        return 0, 0
    return len(morsel.value), len(morsel.output().encode())


def count_case(case: Case, size: int, redis: RedisCommands) -> dict[str, Any]:
    """Minimum I/O per request kind over a few repetitions, and the cookie sizes."""
    from django.test import Client

    best: dict[str, dict[str, int]] = {}
    cookie: dict[str, int] = {}
    with active(case):
        for _ in range(REPETITIONS):
            client = Client()
            for kind in KINDS:
                path = f"/seed/?size={size}" if kind == "new" else f"/{kind}/"
                response, counts = measure_request(client, path, case.alias, redis)
                if kind != "new" and response.get("X-Session-Keys") in (None, "0"):
                    raise RuntimeError("the session did not load back through the middleware")
                if kind in ("new", "write"):
                    value, header = _set_cookie(response)
                    if value:
                        cookie[f"{kind}_value"], cookie[f"{kind}_header"] = value, header
                previous = best.get(kind)
                best[kind] = counts if previous is None else {
                    k: min(v, previous[k]) for k, v in counts.items()
                }
    return {"counts": best, "cookie": cookie}


def run(
    cases: list[Case], availability: dict[str, str | None], sizes: tuple[int, ...] = SIZES
) -> dict[str, Any]:
    """I/O counts for every available case and size."""
    # A request that fails is reported in the results; Django need not print it too.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    redis = RedisCommands()
    results = []
    for case in cases:
        for size in sizes:
            entry: dict[str, Any] = {"case": case.name, "size": size}
            reason = availability.get(case.name)
            if reason:
                entry.update(status="unavailable", message=reason)
            else:
                try:
                    entry.update(status="ok", message="", **count_case(case, size, redis))
                except Exception as exc:
                    entry.update(status="error", message=f"{type(exc).__name__}: {exc}"[:500])
            results.append(entry)
    redis.close()
    return {"kinds": list(KINDS), "repetitions": REPETITIONS, "results": results}
