"""I/O per request through our ``SessionMiddleware`` and the app's views (test client):
SQL statements, Redis round trips as redis-py sends them and commands as the server runs
them (via ``MONITOR``, Lua's included), for *new* (no cookie), *read* and *write* requests.
Each number is the minimum of a few repetitions; run per case by ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator
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

    @contextlib.contextmanager
    def commands(self) -> Iterator[list[int]]:
        """Count the commands run in the block, into the list it yields."""
        token, counted = uuid.uuid4().hex, [0]
        self._client.echo(f"start-{token}")
        try:
            yield counted
        finally:
            self._client.echo(f"end-{token}")
        started = False
        while True:
            command = self._lines.get(timeout=10)
            text = str(command.get("command", ""))
            if text == f"ECHO end-{token}":
                return
            if text == f"ECHO start-{token}":
                started = True
            elif started and command.get("db") == self.db:
                counted[0] += 1


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
            with (CaptureQueriesContext(connection) as queries,
                  monitor.commands() if monitor else contextlib.nullcontext([0]) as commands,
                  round_trips() as trips):  # innermost: the monitor's own ECHOs not counted
                response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered HTTP {response.status_code}")
            if kind != "new" and response.get("X-Session-Keys") in (None, "0"):
                raise RuntimeError("the session did not load back through the middleware")
            morsel = response.cookies.get(settings.SESSION_COOKIE_NAME)
            if morsel is not None and morsel.value:
                cookie = {"value_bytes": len(morsel.value),
                          "header_bytes": len(morsel.output().encode())}
            counts = {"queries": len(queries.captured_queries), "round_trips": trips[0],
                      "commands": commands[0]}
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
