"""Purging many expired sessions while the site serves: time, memory, cost to requests.

``python -m benchmarks.purge_load [--rows 1000000] [--duration 20]``

A PostgreSQL database of this run's own gets ``--rows`` expired sessions and
``--live`` live ones, copied in with ``COPY``. A gunicorn server on 127.0.0.1
serves the benchmarks' site on the ``db`` engine; a few client threads each
start a session, then load, change and save it in a loop. Their latencies are
taken for ``--duration`` seconds before the purge (the baseline), then for as
long as ``manage.py hybrid_sessions_purge --expired`` runs in a process of its
own, whose wall time and peak resident memory (``wait4``) are recorded.

The database is created and dropped here; nothing else is touched. Every step
has a deadline, so the run stops by itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.cases import BY_NAME
from benchmarks.endtoend import latency, request, serve, set_cookie
from benchmarks.environment import ROOT, case_environ
from benchmarks.payload import make_payload
from benchmarks.report import table as list_table

RESULTS = ROOT / "docs" / "_static" / "purge_load.json"
#: Longest the purge may take before the run gives up on it.
PURGE_TIMEOUT = 1800.0
#: Seconds of load before the baseline window, not counted (connections, caches).
WARMUP = 2.0
#: Longest one request may take before it counts as an error.
REQUEST_TIMEOUT = 10.0


def _connect(database: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database,
                           autocommit=autocommit)


def _admin(sql: str) -> None:
    """One statement on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    with _connect("postgres", autocommit=True) as conn:
        conn.execute(sql)


def environ(database: str) -> dict[str, str]:
    """The benchmarks' settings on the ``db`` engine over PostgreSQL, in ``database``."""
    return {**case_environ(BY_NAME["ours.db.pg"]), "HYBRID_SESSIONS_BENCH_DB_NAME": database}


def fill(database: str, expired: int, live: int) -> float:
    """Copy in ``expired`` sessions that ended in the last 30 days and ``live`` ones; seconds."""
    started = time.monotonic()
    data = json.dumps(make_payload(100), separators=(",", ":")).encode()
    now = datetime.now(UTC)
    run = uuid.uuid4().hex
    columns = ("key_digest, data, version, user_id, created_at, last_activity, expire_date, "
               "ip_address, user_agent")
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    with _connect(database) as conn:
        with conn.cursor() as cur, cur.copy(
            f"COPY hybrid_sessions_session ({columns}) FROM STDIN"
        ) as copy:
            for i in range(expired + live):
                ends = (now - timedelta(seconds=1 + i % (30 * 86400)) if i < expired
                        else now + timedelta(days=14))
                copy.write_row((
                    hashlib.sha256(f"{run}:{i}".encode()).hexdigest(), data, 1, None,
                    ends - timedelta(days=14), ends - timedelta(days=14), ends,
                    "127.0.0.1", agent,
                ))
        conn.execute("ANALYZE hybrid_sessions_session")
    return time.monotonic() - started


def _count(database: str) -> int:
    with _connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM hybrid_sessions_session").fetchone()
    return int(row[0]) if row else 0


class Load:
    """Client threads, each loading, changing and saving its own session in a loop."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.stop = threading.Event()
        #: ``(started, seconds, ok)`` of every request, on the monotonic clock.
        self.samples: list[tuple[float, float, bool]] = []
        #: The sessions the clients started (each is one more row that must stay).
        self.cookies: set[str] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def _client(self) -> None:
        cookie: str | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status, headers = request(self.port, "/write/" if cookie else "/seed/?size=2048",
                                          cookie, REQUEST_TIMEOUT)
                issued, ok = set_cookie(headers), status == 200
                if issued and issued != cookie:
                    cookie = issued
                    with self._lock:
                        self.cookies.add(issued)
            except OSError:
                ok = False
            with self._lock:
                self.samples.append((started, time.monotonic() - started, ok))

    def window(self, start: float, end: float) -> dict[str, Any]:
        """Figures of the requests started in ``[start, end)``."""
        with self._lock:
            chosen = [(s, ok) for t, s, ok in self.samples if start <= t < end]
        ms = [1000 * s for s, ok in chosen if ok]
        return {
            "seconds": round(end - start, 1),
            "requests": len(ms),
            "errors": len(chosen) - len(ms),
            "requests_per_second": round(len(ms) / (end - start), 1) if end > start else None,
            **latency(ms, 1),
        }


def run_purge(env: dict[str, str]) -> dict[str, Any]:
    """``hybrid_sessions_purge --expired`` in a process of its own: time, peak RSS, output."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        child = subprocess.Popen(
            # The system checks would reach every database the settings name (Django 6.1
            # checks them all), the other servers' included: the purge needs none of them.
            [sys.executable, "-m", "django", "hybrid_sessions_purge", "--expired",
             "--skip-checks"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        deadline = started + PURGE_TIMEOUT
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    if child.returncode != 0:
        raise SystemExit(f"the purge failed ({child.returncode}): {text[-2000:]}")
    match = re.search(r"Ended (\d+) of (\d+)", text)
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "ended": int(match.group(1)) if match else None,
        "matched": int(match.group(2)) if match else None,
        "output": text.splitlines()[-1] if text else "",
    }


def measure(rows: int, live: int, duration: float, clients: int, workers: int) -> dict[str, Any]:
    """One whole run in a database of its own, dropped at the end."""
    database = f"hybrid_sessions_purgeload_{uuid.uuid4().hex[:10]}"
    env = environ(database)
    _admin(f'CREATE DATABASE "{database}"')
    try:
        subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
                       cwd=ROOT, env=env, check=True, timeout=300)
        fill_seconds = fill(database, rows, live)
        print(f"{rows} expired and {live} live sessions copied in {fill_seconds:.1f} s",
              flush=True)
        load_average = os.getloadavg()
        with serve(env, workers) as port, Load(port, clients) as load:
            time.sleep(WARMUP)
            before_start = time.monotonic()
            time.sleep(duration)
            before_end = time.monotonic()
            purge = run_purge(env)
            during_end = time.monotonic()
        left = _count(database)
        return {
            "rows": rows,
            "live": live,
            "clients": clients,
            "gunicorn_workers": workers,
            "fill_seconds": round(fill_seconds, 1),
            "purge": purge,
            "before": load.window(before_start, before_end),
            "during": load.window(before_end, during_end),
            "rows_left": left,
            "rows_expected_left": live + len(load.cookies),
            "database": database,
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_at_start": [round(v, 2) for v in load_average],
                "python": platform.python_version(),
                "postgresql": _server_version(database),
            },
        }
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _server_version(database: str) -> str:
    with _connect(database) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def table(result: dict[str, Any]) -> str:
    """The figures as the reStructuredText the operations page includes."""
    before, during, purge = result["before"], result["during"], result["purge"]
    rows = [[label, *(str(w[key]) for w in (before, during))] for label, key in (
        ("p50 (ms)", "p50_ms"), ("p99 (ms)", "p99_ms"), ("max (ms)", "max_ms"),
        ("Requests per second", "requests_per_second"))]
    rows += [["Requests (errors)", *(f"{w['requests']:,} ({w['errors']:,})"
                                     for w in (before, during))],
             ["Window (s)", *(str(w["seconds"]) for w in (before, during))]]
    return list_table("", ["Live requests (load, change, save)", "Before the purge",
                           "During the purge"], rows) + (
        f"\nThe purge ended {purge['ended']:,} of {purge['matched']:,} expired sessions in "
        f"{purge['seconds']:g} s with at most {purge['peak_rss_mb']:g} MB resident; "
        f"{result['rows_left']:,} live sessions were left, as expected "
        f"({result['rows_expected_left']:,}). {result['clients']} client threads against "
        f"{result['gunicorn_workers']} gunicorn workers, on "
        f"{result['machine']['cpus']} CPUs shared with PostgreSQL and the purge "
        f"(load average {result['machine']['load_average_at_start'][0]:g} at the start), "
        f"PostgreSQL {result['machine']['postgresql']}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired sessions")
    parser.add_argument("--live", type=int, default=1000, help="live sessions left alone")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of load measured before the purge (20)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="JSON results; the table goes beside it as .rst")
    args = parser.parse_args()
    result = measure(args.rows, args.live, args.duration, args.clients, args.workers)
    for name in ("before", "during"):
        w = result[name]
        print(f"{name:6} p50 {w['p50_ms']} ms  p99 {w['p99_ms']} ms  max {w['max_ms']} ms  "
              f"{w['requests_per_second']} req/s  {w['requests']} requests, "
              f"{w['errors']} errors", flush=True)
    purge = result["purge"]
    print(f"purge  {purge['seconds']} s, peak RSS {purge['peak_rss_mb']} MB: {purge['output']}")
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".rst").write_text(table(result))


if __name__ == "__main__":
    main()
