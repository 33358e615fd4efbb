"""I/O per request: SQL statements and Redis round trips and commands, per engine.

Each request goes through our ``SessionMiddleware`` and the benchmark
app's views (``django.test.Client``, no network), in three kinds:

``new``
    No cookie; the view stores a session of the given size (a first visit, a login).
``read``
    The session's cookie; the view reads one key.
``write``
    The session's cookie; the view reads one key and changes another.

Counted per request: SQL statements (``CaptureQueriesContext``; ``BEGIN`` and
``COMMIT`` among them), Redis round trips as the client sends them, and Redis
commands as the server ran them, those a Lua script runs included (seen through
``MONITOR``, kept to the benchmarks' own database). Each number is the minimum
over a few repetitions. Each case runs in a child process of its own:
``python -m benchmarks.iocounts --sizes 100,2048`` with ``HYBRID_SESSIONS_BENCH_CASE`` set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

KINDS = ("new", "read", "write")
REPETITIONS = 3


@contextlib.contextmanager
def round_trips() -> Iterator[list[int]]:
    """Count what redis-py sends: one packed command (or pipeline) is one round trip."""
    from redis.connection import AbstractConnection

    counter = [0]
    original = AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counter[0] += 1
        original(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


class Monitor:
    """Commands the server runs on the benchmarks' database, between two ``ECHO`` markers."""

    def __init__(self) -> None:
        import redis

        from benchmarks import settings

        self._client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        self.db = int(self._client.connection_pool.connection_kwargs.get("db", 0))
        self._monitor = self._client.monitor().__enter__()
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                self._lines.put(self._monitor.next_command())

    def count(self, action: Callable[[], Any]) -> tuple[Any, int]:
        token = uuid.uuid4().hex
        self._client.echo(f"start-{token}")
        try:
            result = action()
        finally:
            self._client.echo(f"end-{token}")
        counted, started = 0, False
        while True:
            command = self._lines.get(timeout=10)
            text = str(command.get("command", ""))
            if text == f"ECHO start-{token}":
                started = True
            elif text == f"ECHO end-{token}":
                return result, counted
            elif started and command.get("db") == self.db:
                counted += 1


def count_case(size: int, monitor: Monitor | None) -> dict[str, Any]:
    """Minimum I/O per kind of request over a few repetitions, and the cookie's size."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    best: dict[str, dict[str, int]] = {}
    cookie: dict[str, int] = {}
    for _ in range(REPETITIONS):
        client = Client()
        for kind in KINDS:
            path = f"/seed/?size={size}" if kind == "new" else f"/{kind}/"
            trips = [0]

            def send(path: str = path, client: Client = client, trips: list[int] = trips) -> Any:
                with round_trips() as counter:
                    response = client.get(path)
                trips[0] = counter[0]
                return response

            with CaptureQueriesContext(connection) as queries:
                response, commands = monitor.count(send) if monitor else (send(), 0)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered HTTP {response.status_code}")
            if kind != "new" and response.get("X-Session-Keys") in (None, "0"):
                raise RuntimeError("the session did not load back through the middleware")
            morsel = response.cookies.get(settings.SESSION_COOKIE_NAME)
            if morsel is not None and morsel.value:
                cookie = {"value_bytes": len(morsel.value),
                          "header_bytes": len(morsel.output().encode())}
            counts = {"queries": len(queries.captured_queries), "round_trips": trips[0],
                      "commands": commands}
            previous = best.get(kind, counts)
            best[kind] = {k: min(v, previous[k]) for k, v in counts.items()}
    return {"counts": best, "cookie": cookie}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.iocounts", description=__doc__)
    parser.add_argument("--sizes", default="100,2048,20480")
    args = parser.parse_args(argv)
    import django

    from benchmarks import settings

    django.setup()
    monitor = Monitor() if settings.CASE.redis else None
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        row: dict[str, Any] = {"case": settings.CASE.name, "size": size}
        try:
            row.update(status="ok", **count_case(size, monitor))
        except Exception as exc:  # reported in the results: a cookie engine refuses 20 KB
            row.update(status="error", message=f"{type(exc).__name__}: {exc}"[:300])
        results.append(row)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
