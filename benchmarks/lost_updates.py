"""Lost updates: two overlapping writers on one session, Django's engines and ours.

Each of two workers makes ``--requests`` requests on the same session; a request
opens the session, sets one key of its own (``a0``, ``a1``, ... or ``b0``, ...),
and saves. At the end every one of those keys should be in the session; the
benchmark counts the ones that are not. The workers are

``threads``
    two threads, each with its own database connection, running freely;
``lockstep``
    two threads that both load the session before either saves, every time:
    every save of the pair races, the worst case;
``processes``
    two separate processes (on separate cores), running freely.

Run it as ``python -m benchmarks.lost_updates`` (``--help`` for options). Each
database runs in a child process with ``benchmarks.settings`` and the
benchmarks' own stores: the database ``bench`` on PostgreSQL and MariaDB
(created if missing, migrated), a temporary SQLite file, and Redis database 8,
never a site's or a test suite's data.
Engines that keep sessions only in Redis run once, whatever the database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "benchmarks.settings"
#: The benchmark case whose settings (its database as the default one) each database runs with.
CASES = {"sqlite": "ours.db.sqlite", "postgres": "ours.db.pg", "mariadb": "ours.db.maria"}
DATABASES = ("sqlite", "postgres", "mariadb")
MODES = ("threads", "lockstep", "processes")
DATABASE_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB"}
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


def available(bench: Bench) -> bool:
    module, _, _ = bench.path.rpartition(".")
    return find_spec(module) is not None and find_spec(bench.path) is not None


# -- one worker's requests -------------------------------------------------------------


def request_loop(
    store: Any, key: str, prefix: str, count: int, barrier: threading.Barrier | None = None
) -> list[str]:
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


def worker(job: dict[str, Any]) -> None:
    """A worker process: set up Django, say ``ready``, wait for ``go``, run, report."""
    from django.conf import settings

    for name, value in job["settings"].items():
        setattr(settings, name, value)
    import django
    from django.db import connections

    django.setup()
    store = import_module(job["engine"]).SessionStore
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        errors = request_loop(store, job["key"], job["prefix"], job["count"])
    finally:
        connections.close_all()
    print(json.dumps({"errors": errors}), flush=True)


# -- one experiment ----------------------------------------------------------------------


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


def in_processes(bench: Bench, key: str, count: int) -> list[str]:
    overrides = {"SESSION_ENGINE": bench.path, **bench.settings}
    procs = []
    for prefix in ("a", "b"):
        job = {"engine": bench.path, "key": key, "prefix": prefix, "count": count,
               "settings": overrides}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "benchmarks.lost_updates", "--worker", json.dumps(job)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        ))
    errors: list[str] = []
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker process failed to start")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"a worker process exited with {proc.returncode}")
        errors.extend(json.loads(out.strip().splitlines()[-1])["errors"])
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
            errors = in_processes(bench, key, count)
        else:
            barrier = threading.Barrier(2) if mode == "lockstep" else None
            errors = in_threads([
                lambda: request_loop(store, key, "a", count, barrier),
                lambda: request_loop(store, key, "b", count, barrier),
            ])
        seconds = time.perf_counter() - started
        final = store(key).load()
        lost = sum(1 for p in "ab" for i in range(count) if final.get(f"{p}{i}") != i)
        store(key).delete()
    return Result(bench.label, store_label, mode, 2 * count, lost, len(errors), seconds)


# -- one database ------------------------------------------------------------------------


def run_database(database: str, count: int, modes: list[str], redis: bool) -> list[Result]:
    """Every engine on one database (and, with ``redis``, the Redis-only ones)."""
    import django
    from django.core.management import call_command

    from benchmarks.environment import create_database

    if database != "sqlite":
        create_database(database)
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    results = []
    for bench in BENCHES:
        if (bench.redis_only and not redis) or not available(bench):
            continue
        store_label = "Redis" if bench.redis_only else DATABASE_LABELS[database]
        if bench.path.endswith("cached_db"):
            store_label += " + Redis"
        for mode in modes:
            result = experiment(bench, store_label, mode, count)
            print(f"  {result.engine:42} {result.store:18} {result.mode:9} "
                  f"lost {result.lost:4}/{result.attempted} ({result.lost_percent:4.1f} %)",
                  file=sys.stderr, flush=True)
            results.append(result)
    return results


# -- the whole run ---------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    """The results as a reStructuredText table, ready for docs/concurrency.rst."""
    rows = [("Engine", "Store", "Workers", "Updates", "Lost", "Lost %", "Errors", "Seconds")]
    rows += [
        (r.engine, r.store, r.mode, str(r.attempted), str(r.lost), f"{r.lost_percent:.1f}",
         str(r.errors), f"{r.seconds:.1f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule])


DOCS_START, DOCS_END = ".. lost-updates-table-start", ".. lost-updates-table-end"


def write_docs(path: Path, rst: str) -> None:
    """Replace the table between the two marker comments of ``path``."""
    text = path.read_text()
    head, start, rest = text.partition(DOCS_START)
    _, end, tail = rest.partition(DOCS_END)
    if not start or not end:
        raise SystemExit(f"{path} has no {DOCS_START} / {DOCS_END} markers")
    path.write_text(f"{head}{start}\n\n{rst}\n\n{end}{tail}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lost_updates",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default=",".join(DATABASES),
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
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a worker process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    modes = [m for m in args.modes.split(",") if m]
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if args.database:
        found = run_database(args.database, args.requests, modes, args.redis)
        print(json.dumps([asdict(r) for r in found]), flush=True)
        return 0
    results: list[Result] = []
    databases = [d for d in args.databases.split(",") if d]
    with tempfile.TemporaryDirectory() as tmp:
        for n, database in enumerate(databases):
            print(f"{DATABASE_LABELS[database]}:", file=sys.stderr, flush=True)
            env = {"HYBRID_SESSIONS_BENCH_SQLITE": str(Path(tmp) / "lost_updates.sqlite3"),
                   **os.environ, "HYBRID_SESSIONS_BENCH_CASE": CASES[database]}
            command = [sys.executable, "-m", "benchmarks.lost_updates", "--database", database,
                       "--modes", ",".join(modes), "--requests", str(args.requests)]
            if n == 0:
                command.append("--redis")
            out = subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            results += [Result(**r) for r in json.loads(out.strip().splitlines()[-1])]
    order = {b.label: i for i, b in enumerate(BENCHES)}
    stores = ["SQLite", "PostgreSQL", "MariaDB", "Redis"]
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
