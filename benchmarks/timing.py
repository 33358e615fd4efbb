"""In-process timings with pyperf: each case's cycles in worker processes of their own.

Every benchmark is one case, size, cycle and level. pyperf spawns worker
processes for it, calibrates the loops, discards warm-ups and keeps the values
with their statistics; a worker configures Django for its one case, creates a
session of the size with realistic data, checks it loads back whole, then
times the cycle:

``engine`` level
    ``SessionStore(key)`` and read one key (*load*); also set one key and
    ``save()`` (*modify*), carrying the new key on as a browser carries a cookie.
``request`` level
    The same views as end to end, called through our ``SessionMiddleware``
    with a request that carries the cookie the previous response set.

Run on its own, with any pyperf option (``--help``)::

    python -m benchmarks.timing -o timings.json --cases hybrid --fast
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import pyperf

from benchmarks.cases import BY_NAME, CYCLES, LEVELS, Case, select
from benchmarks.payload import READ_KEY, WRITE_KEY, make_payload

#: Environment variables a worker needs from the harness (pyperf passes few by default).
INHERITED = ("PYTHONPATH", "HYBRID_SESSIONS_BENCH_DB_NAME", "HYBRID_SESSIONS_BENCH_REDIS",
             "HYBRID_SESSIONS_BENCH_SQLITE", "HYBRID_SESSIONS_BENCH_PG_HOST",
             "HYBRID_SESSIONS_BENCH_MARIADB_HOST")


def name(level: str, case: str, size: int, cycle: str) -> str:
    return f"{level}/{case}/{size}/{cycle}"


def parse_name(bench: str) -> tuple[str, str, int, str]:
    level, case, size, cycle = bench.split("/")
    return level, case, int(size), cycle


def plan(cases: list[Case], sizes: tuple[int, ...], only: str = "") -> Iterator[str]:
    """Every benchmark of the chosen cases, grouped so a comparison's two sides run close."""
    for level in LEVELS:
        for size in sizes:
            for cycle in CYCLES:
                for case in cases:
                    bench = name(level, case.name, size, cycle)
                    if case.engine and size in case.sizes and re.search(only, bench):
                        yield bench


# -- inside a worker: one case ----------------------------------------------------------


def setup_django(case: str) -> None:
    """Configure Django for ``case``; a worker process runs only one."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    os.environ["HYBRID_SESSIONS_BENCH_CASE"] = case
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    django.setup()


class Session:
    """One session of one size, as the engine or the middleware sees it from request to request."""

    def __init__(self, case: str, size: int) -> None:
        setup_django(case)
        from django.conf import settings

        self.store: Any = import_module(settings.SESSION_ENGINE).SessionStore
        self.payload = make_payload(size)
        session = self.store()
        session.update(self.payload)
        session.save()
        self.key: str = cookie_of(session)
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.check()

    def check(self) -> None:
        """Fail if the session no longer loads whole: the run would time an empty session."""
        loaded = self.store(self.key)
        missing = [k for k in self.payload if k not in loaded]
        if missing:
            raise RuntimeError(f"the session lost {len(missing)} of {len(self.payload)} keys: "
                               "the engine rejected its own cookie or lost the record")

    def engine(self, cycle: str) -> Callable[[int], float]:
        store = self.store

        def load(loops: int) -> float:
            key = self.key
            started = time.perf_counter()
            for _ in range(loops):
                store(key).get(READ_KEY)
            return time.perf_counter() - started

        def modify(loops: int) -> float:
            key = self.key
            started = time.perf_counter()
            for i in range(loops):
                session = store(key)
                session.get(READ_KEY)
                session[WRITE_KEY] = i
                session.save()
                key = cookie_of(session)
            elapsed = time.perf_counter() - started
            self.key = key
            return elapsed

        return load if cycle == "load" else modify

    def request(self, cycle: str) -> Callable[[int], float]:
        from django.core.handlers.wsgi import WSGIRequest

        from benchmarks import app
        from hybrid_sessions.middleware import SessionMiddleware

        middleware = SessionMiddleware(app.read if cycle == "load" else app.write)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO()}
        cookie_name = self.cookie_name

        def run(loops: int) -> float:
            cookie = self.key
            started = time.perf_counter()
            for _ in range(loops):
                response = middleware(
                    WSGIRequest({**environ, "HTTP_COOKIE": f"{cookie_name}={cookie}"})
                )
                morsel = response.cookies.get(cookie_name)  # type: ignore[union-attr]
                if morsel is not None and morsel.value:
                    cookie = morsel.value
            elapsed = time.perf_counter() - started
            self.key = cookie
            return elapsed

        return run


_SESSIONS: dict[tuple[str, int], Session] = {}


def cookie_of(session: Any) -> str:
    """What the session's cookie would hold: the hybrid's signed copy, else the key."""
    cookie_value = getattr(session, "cookie_value", None)
    value = cookie_value() if cookie_value is not None else None
    return str(value or session.session_key)


def time_it(loops: int, bench: str) -> float:
    """pyperf's time function: ``loops`` cycles of ``bench``, in seconds."""
    level, case, size, cycle = parse_name(bench)
    session = _SESSIONS.get((case, size))
    if session is None:
        session = _SESSIONS[case, size] = Session(case, size)
    elapsed = (session.engine if level == "engine" else session.request)(cycle)(loops)
    session.check()
    return elapsed


def profile(bench: str, loops: int, top: int = 6) -> list[dict[str, Any]]:
    """cProfile of ``loops`` cycles of ``bench`` after a warm-up: the most own time per cycle."""
    import cProfile
    import pstats

    time_it(max(3, loops // 10), bench)
    profiler = cProfile.Profile()
    profiler.runcall(time_it, loops, bench)
    rows = []
    for (file, line, func), (_cc, calls, own, _cum, _callers) in (
        pstats.Stats(profiler).stats.items()  # type: ignore[attr-defined]
    ):
        where = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", file)
        where = re.sub(r".*/(hybrid_sessions|benchmarks)/", r"\1/", where)
        text = re.sub(r" at 0x[0-9a-f]+", "", func) if file == "~" else f"{func} ({where}:{line})"
        rows.append({"function": text, "us": own / loops * 1e6, "calls": calls / loops})
    rows.sort(key=lambda r: -r["us"])
    return rows[:top]


# -- the manager ----------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    if argv[:1] == ["--profile"]:  # python -m benchmarks.timing --profile BENCH LOOPS
        print(json.dumps(profile(argv[1], int(argv[2]))))
        return
    def forward(cmd: list[str], args: Any) -> None:
        cmd.extend(["--cases", args.cases, "--sizes", args.sizes, "--only", args.only])

    runner = pyperf.Runner(program_args=("-m", "benchmarks.timing"), add_cmdline_args=forward)
    runner.argparser.add_argument("--cases", default="",
                                  help="comma-separated case names (default: the usual ones)")
    runner.argparser.add_argument("--sizes", default="100,2048,20480")
    runner.argparser.add_argument("--only", default="", help="a regex on benchmark names")
    args = runner.parse_args(argv)
    args.inherit_environ = [*(args.inherit_environ or ()), *INHERITED]
    cases = [BY_NAME[n] for n in args.cases.split(",")] if args.cases else select([])
    sizes = tuple(int(s) for s in args.sizes.split(","))
    for bench in plan(cases, sizes, args.only):
        runner.bench_time_func(bench, time_it, bench)


if __name__ == "__main__":
    main(sys.argv[1:])
