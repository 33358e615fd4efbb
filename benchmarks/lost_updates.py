"""Lost updates: two overlapping writers on one session, Django's engines and ours.

Two workers each make ``--requests`` requests on one session, each setting a key of its
own; the keys missing at the end were lost. Workers: ``threads`` run freely, ``lockstep``
threads both load before either saves (every save races), ``processes`` run freely in
two processes. Each database runs in a child process on the benchmarks' own stores;
engines that keep sessions only in Redis run once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

from benchmarks.environment import ROOT, create_database

#: The benchmark case whose settings (its database as the default one) each database runs with.
CASES = {"sqlite": "ours.db.sqlite", "postgres": "ours.db.pg", "mariadb": "ours.db.maria"}
MODES = ("threads", "lockstep", "processes")
STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}
SPILLED = {"HYBRID_SESSIONS_INLINE_MAX_BYTES": 0}


@dataclass(frozen=True)
class Bench:
    """An engine as the benchmark runs it."""

    label: str
    path: str
    redis_only: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


BENCHES = [
    Bench("Django db", "django.contrib.sessions.backends.db"),
    Bench("Django cached_db", "django.contrib.sessions.backends.cached_db"),
    Bench("Django cache", "django.contrib.sessions.backends.cache", redis_only=True),
    Bench("hybrid_sessions db", "hybrid_sessions.backends.db"),
    Bench("hybrid_sessions cache", "hybrid_sessions.backends.cache", redis_only=True),
    Bench("hybrid_sessions hybrid, spilled to db", "hybrid_sessions.backends.hybrid",
          settings=SPILLED),
    Bench("hybrid_sessions hybrid, spilled to cache", "hybrid_sessions.backends.hybrid",
          redis_only=True,
          settings={**SPILLED, "HYBRID_SESSIONS_SPILL_ENGINE": "hybrid_sessions.backends.cache"}),
]


@dataclass
class Result:
    engine: str
    store: str
    mode: str
    attempted: int
    lost: int
    errors: int
    seconds: float

    @property
    def lost_percent(self) -> float:
        return 100.0 * self.lost / self.attempted if self.attempted else 0.0


def request_loop(store: Any, key: str, prefix: str, count: int,
                 barrier: threading.Barrier | None = None) -> list[str]:
    """``count`` requests that each set one own key; returns the errors saves raised."""
    errors: list[str] = []
    for i in range(count):
        session = store(key)
        session.keys()  # a request reads its session first
        if barrier is not None:
            barrier.wait()
        session[f"{prefix}{i}"] = i
        try:
            session.save()
        except Exception as exc:
            errors.append(repr(exc))
        if barrier is not None:
            barrier.wait()
    return errors


def in_threads(loops: list[Callable[[], list[str]]]) -> list[str]:
    from django.db import connections

    errors: list[str] = []

    def run(loop: Callable[[], list[str]]) -> None:
        try:
            errors.extend(loop())
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def in_processes(store: Any, key: str, count: int) -> list[str]:
    """Two forked processes, started together, each with its own connections."""
    from django.db import connections

    connections.close_all()  # not to be shared with the children
    context = multiprocessing.get_context("fork")
    go, reports = context.Event(), context.Queue()

    def work(prefix: str) -> None:
        go.wait()
        try:
            reports.put(request_loop(store, key, prefix, count))
        except Exception as exc:
            reports.put([repr(exc)])
        finally:
            connections.close_all()

    procs = [context.Process(target=work, args=(prefix,)) for prefix in "ab"]
    for proc in procs:
        proc.start()
    go.set()
    errors = [error for _ in procs for error in reports.get(timeout=600)]
    for proc in procs:
        proc.join(60)
    return errors


def experiment(bench: Bench, store_label: str, mode: str, count: int) -> Result:
    from django.test import override_settings

    with override_settings(SESSION_ENGINE=bench.path, **bench.settings):
        store = import_module(bench.path).SessionStore
        session = store()
        session["seed"] = "s"
        session.save()
        key = session.session_key
        started = time.perf_counter()
        if mode == "processes":
            errors = in_processes(store, key, count)
        else:
            barrier = threading.Barrier(2) if mode == "lockstep" else None
            errors = in_threads([partial(request_loop, store, key, p, count, barrier)
                                 for p in "ab"])
        seconds = time.perf_counter() - started
        final = store(key).load()
        lost = sum(1 for p in "ab" for i in range(count) if final.get(f"{p}{i}") != i)
        store(key).delete()
    return Result(bench.label, store_label, mode, 2 * count, lost, len(errors), seconds)


def run_database(database: str, count: int, modes: list[str], redis: bool) -> list[Result]:
    """Every engine on one database (and, with ``redis``, the Redis-only ones)."""
    import django
    from django.core.management import call_command

    if database != "sqlite":
        create_database(database)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    results = []
    for bench in BENCHES:
        if bench.redis_only and not redis:
            continue
        store_label = STORES["redis" if bench.redis_only else database]
        if bench.path.endswith("cached_db"):
            store_label += " + Redis"
        for mode in modes:
            r = experiment(bench, store_label, mode, count)
            print(f"  {r.engine:42} {r.store:18} {r.mode:9} "
                  f"lost {r.lost:4}/{r.attempted} ({r.lost_percent:4.1f} %)",
                  file=sys.stderr, flush=True)
            results.append(r)
    return results


def table(results: list[Result]) -> str:
    """The results as a reStructuredText table, ready for docs/concurrency.rst."""
    rows = [("Engine", "Store", "Workers", "Updates", "Lost", "Lost %", "Errors", "Seconds")]
    rows += [(r.engine, r.store, r.mode, str(r.attempted), str(r.lost), f"{r.lost_percent:.1f}",
              str(r.errors), f"{r.seconds:.1f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([rule, lines[0], rule, *lines[1:], rule])


DOCS_START, DOCS_END = ".. lost-updates-table-start", ".. lost-updates-table-end"


def write_docs(path: Path, rst: str) -> None:
    """Replace the table between the two marker comments of ``path``."""
    head, start, rest = path.read_text().partition(DOCS_START)
    _, end, tail = rest.partition(DOCS_END)
    if not start or not end:
        raise SystemExit(f"{path} has no {DOCS_START} / {DOCS_END} markers")
    path.write_text(f"{head}{start}\n\n{rst}\n\n{end}{tail}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lost_updates",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default=",".join(CASES),
                        help="comma-separated, of: sqlite, postgres, mariadb (default: all)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, of: threads, lockstep, processes (default: all)")
    parser.add_argument("--requests", type=int, default=200, help="requests per worker (200)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--docs", type=Path,
                        help="also write the table into this page, between its markers "
                             "(docs/concurrency.rst)")
    parser.add_argument("--database", help=argparse.SUPPRESS)  # a child: one database
    parser.add_argument("--redis", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    modes = [m for m in args.modes.split(",") if m]
    if args.database:
        found = run_database(args.database, args.requests, modes, args.redis)
        print(json.dumps([asdict(r) for r in found]), flush=True)
        return 0
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, database in enumerate(d for d in args.databases.split(",") if d):
            print(f"{STORES[database]}:", file=sys.stderr, flush=True)
            env = {"HYBRID_SESSIONS_BENCH_SQLITE": str(Path(tmp) / "lost_updates.sqlite3"),
                   **os.environ, "HYBRID_SESSIONS_BENCH_CASE": CASES[database]}
            command = [sys.executable, "-m", "benchmarks.lost_updates", "--database", database,
                       "--modes", ",".join(modes), "--requests", str(args.requests)]
            out = subprocess.run(command + ["--redis"] * (n == 0), cwd=ROOT, env=env,
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            results += [Result(**r) for r in json.loads(out.strip().splitlines()[-1])]
    order = {b.label: i for i, b in enumerate(BENCHES)}
    stores = list(STORES.values())
    results.sort(key=lambda r: (order[r.engine], stores.index(r.store.split()[0]),
                                MODES.index(r.mode)))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    if args.docs:
        write_docs(args.docs, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
