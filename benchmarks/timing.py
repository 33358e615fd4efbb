"""In-process timings under pyperf: one benchmark per level, case, size and cycle.

Each worker sets Django up for one case, seeds a session and checks it loads back whole.
Run alone with any pyperf option: ``python -m benchmarks.timing -o t.json --cases ours.signed``.
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


def cookie_of(session: Any) -> str:
    """What the session's cookie would hold: the hybrid's signed copy, else the key."""
    cookie_value = getattr(session, "cookie_value", None)
    return str((cookie_value() if cookie_value else None) or session.session_key)


class Session:
    """One session of one size in a worker, carried from cycle to cycle as a browser would."""

    def __init__(self, case: str, size: int) -> None:
        import django
        from django.conf import settings

        if not settings.configured:  # a worker process runs one case only
            os.environ["HYBRID_SESSIONS_BENCH_CASE"] = case
            os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
            django.setup()
        self.store: Any = import_module(settings.SESSION_ENGINE).SessionStore
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.payload = make_payload(size)
        session = self.store()
        session.update(self.payload)
        session.save()
        self.key: str = cookie_of(session)
        self.check()

    def check(self) -> None:
        """Fail if the session no longer loads whole: the run would time an empty session."""
        loaded = self.store(self.key)
        if any(k not in loaded for k in self.payload):
            raise RuntimeError("the session lost keys: the engine rejected its own cookie "
                               "or lost the record")

    def engine(self, cycle: str, loops: int) -> float:
        store, key = self.store, self.key
        started = time.perf_counter()
        for i in range(loops):
            session = store(key)
            session.get(READ_KEY)
            if cycle == "modify":
                session[WRITE_KEY] = i
                session.save()
                key = cookie_of(session)
        self.key = key
        return time.perf_counter() - started

    def request(self, cycle: str, loops: int) -> float:
        from django.core.handlers.wsgi import WSGIRequest

        from benchmarks import app
        from hybrid_sessions.middleware import SessionMiddleware

        middleware = SessionMiddleware(app.read if cycle == "load" else app.write)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO()}
        name, key = self.cookie_name, self.key
        started = time.perf_counter()
        for _ in range(loops):
            response = middleware(WSGIRequest({**environ, "HTTP_COOKIE": f"{name}={key}"}))
            morsel = response.cookies.get(name)  # type: ignore[union-attr]
            if morsel is not None and morsel.value:
                key = morsel.value
        self.key = key
        return time.perf_counter() - started


_SESSIONS: dict[tuple[str, int], Session] = {}


def time_it(loops: int, bench: str) -> float:
    """pyperf's time function: ``loops`` cycles of ``bench``, in seconds."""
    level, case, size, cycle = parse_name(bench)
    session = _SESSIONS.get((case, size))
    if session is None:
        session = _SESSIONS[case, size] = Session(case, size)
    run: Callable[[str, int], float] = session.engine if level == "engine" else session.request
    elapsed = run(cycle, loops)
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


def main(argv: list[str]) -> None:
    if argv[:1] == ["--profile"]:  # python -m benchmarks.timing --profile BENCH LOOPS
        print(json.dumps(profile(argv[1], int(argv[2]))))
        return

    def forward(cmd: list[str], args: Any) -> None:
        cmd.extend(["--cases", args.cases, "--sizes", args.sizes, "--only", args.only])

    runner = pyperf.Runner(program_args=("-m", "benchmarks.timing"), add_cmdline_args=forward)
    runner.argparser.add_argument("--cases", default="", help="comma-separated case names")
    runner.argparser.add_argument("--sizes", default="100,2048,20480")
    runner.argparser.add_argument("--only", default="", help="a regex on benchmark names")
    args = runner.parse_args(argv)
    args.copy_env = True  # the workers need the stores' HYBRID_SESSIONS_BENCH_* variables
    cases = [BY_NAME[n] for n in args.cases.split(",")] if args.cases else select([])
    for bench in plan(cases, tuple(int(s) for s in args.sizes.split(",")), args.only):
        runner.bench_time_func(bench, time_it, bench)


if __name__ == "__main__":
    main(sys.argv[1:])
