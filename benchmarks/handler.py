"""Inside Django's request handler: a read request's CPU time, without HTTP.

The end-to-end figures mix the engine's cost with the HTTP server's and the load
generator's, both on the same cores. This part runs the same ``GET /read/`` of
``benchmarks.app`` through Django's ``WSGIHandler`` in process (middleware,
URL resolution, view, response), with each case's settings exactly as under
gunicorn, and measures this process's CPU time per request. It shows what share
of a whole Django request the session work takes, which is what bounds the
end-to-end ratio to the no-session baseline.

Each case runs in its own child process (its settings are fixed at start, as
gunicorn's are), kept alive across rounds; rounds interleave the cases
(A B A B ...). Run on its own: ``python -m benchmarks.handler --help``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.cases import NO_SESSION, Case
from benchmarks.endtoend import COOKIE_NAME
from benchmarks.environment import ROOT, case_environ
from benchmarks.inprocess import SIZES, summary

#: Requests per batch and size: long enough to swamp the clock's resolution.
REQUESTS = 300


# -- the child: one case's settings, Django's handler, a cookie per size ------------------------


def _environ(path: str, query: str = "", cookie: str | None = None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
    }
    if cookie:
        environ["HTTP_COOKIE"] = f"{COOKIE_NAME}={cookie}"
    return environ


def _client(app: Callable[..., Any]) -> Callable[..., tuple[str, dict[str, str]]]:
    def call(path: str, query: str = "", cookie: str | None = None) -> tuple[str, dict[str, str]]:
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
            seen["status"], seen["headers"] = status, headers

        body = app(_environ(path, query, cookie), start_response)
        b"".join(body)
        if hasattr(body, "close"):
            body.close()
        headers: dict[str, str] = {}
        for name, raw in seen["headers"]:
            value = raw.strip()  # Django writes a Set-Cookie value with a leading space
            if name.lower() == "set-cookie" and value.startswith(f"{COOKIE_NAME}="):
                headers["cookie"] = value.split(";", 1)[0].split("=", 1)[1]
            else:
                headers[name.lower()] = value
        return seen["status"], headers

    return call


def child(sizes: list[int], requests: int) -> None:
    """Serve ``run`` lines on stdin: one batch per size, its µs per request as JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    from django.core.wsgi import get_wsgi_application

    from benchmarks.settings import CASE

    call = _client(get_wsgi_application())
    cookies: dict[int, str | None] = {}
    errors: dict[int, str] = {}
    for size in sizes:
        cookies[size] = None
        if CASE.engine is None:
            continue
        try:
            status, headers = call("/seed/", f"size={size}")
        except Exception as exc:  # a cookie engine refuses what does not fit
            errors[size] = f"seeding a {size} B session failed: {type(exc).__name__}: {exc}"
            continue
        cookie, keys = headers.get("cookie"), headers.get("x-session-keys")
        if not status.startswith("200") or not cookie:
            errors[size] = f"seeding a {size} B session failed ({status})"
            continue
        status, headers = call("/read/", cookie=cookie)
        if headers.get("x-session-keys") != keys or "cookie" in headers:
            raise SystemExit(f"the {size} B session did not load back, or was saved on a read")
        cookies[size] = cookie
    measured = [size for size in sizes if size not in errors]
    for size in measured:  # warm up
        for _ in range(50):
            call("/read/", cookie=cookies[size])
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        out: dict[str, float | str] = {str(size): message for size, message in errors.items()}
        for size in measured:
            cookie = cookies[size]
            started = time.process_time()
            for _ in range(requests):
                call("/read/", cookie=cookie)
            out[str(size)] = (time.process_time() - started) / requests * 1e6
        print(json.dumps(out), flush=True)


# -- the parent: interleaved rounds over the cases ----------------------------------------------


def _spawn(case: Case, sizes: list[int], requests: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.handler", "--child",
         "--sizes", ",".join(map(str, sizes)), "-n", str(requests)],
        cwd=ROOT, env=case_environ(case), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def run(
    cases: list[Case],
    availability: dict[str, str | None],
    rounds: int = 10,
    sizes: tuple[int, ...] = SIZES,
    requests: int = REQUESTS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """µs of CPU per read request for each case and size, and each over the baseline's."""
    started = time.monotonic()
    everything = [NO_SESSION, *cases]
    samples: dict[tuple[str, int], list[float]] = {}
    status: dict[str, str] = {}
    children: dict[str, subprocess.Popen[str]] = {}
    try:
        for case in everything:
            reason = availability.get(case.name)
            if reason:
                status[case.name] = reason
                continue
            proc = children[case.name] = _spawn(case, list(sizes), requests)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                children.pop(case.name)
                proc.kill()
                _out, err = proc.communicate(timeout=30)
                status[case.name] = (err.strip().splitlines() or ["did not start"])[-1][:300]
        log(f"handler: {len(children)} cases, {rounds} rounds of {requests} requests per size")
        for round_no in range(rounds):
            for name, proc in children.items():
                assert proc.stdin is not None
                assert proc.stdout is not None
                proc.stdin.write("run\n")
                proc.stdin.flush()
                for size, us in json.loads(proc.stdout.readline()).items():
                    if isinstance(us, str):
                        status[f"{name}|{size}"] = us
                    else:
                        samples.setdefault((name, int(size)), []).append(us)
            log(f"  round {round_no + 1}/{rounds} done ({time.monotonic() - started:.0f} s)")
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    results = []
    for case in everything:
        for size in sizes:
            values = samples.get((case.name, size), [])
            row: dict[str, Any] = {"case": case.name, "size": size, "mode": "read"}
            if values:
                row.update(status="ok", samples_us=values, **summary(values))
            else:
                message = status.get(f"{case.name}|{size}") or status.get(case.name)
                row.update(status="unavailable", message=message or "no result")
            results.append(row)
    ratios = []
    for case in cases:
        for size in sizes:
            ours, base = samples.get((case.name, size)), samples.get((NO_SESSION.name, size))
            if ours and base:
                # Like requests per second: the baseline's time over ours (below 1 is slower).
                pairs = [b / o for o, b in zip(ours, base, strict=False) if o]
                ratios.append({"case": case.name, "baseline": NO_SESSION.name, "size": size,
                               "mode": "read", **summary(pairs)})
    return {
        "rounds": rounds, "requests": requests, "sizes": list(sizes),
        "results": results, "ratios": ratios,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handler", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("-n", type=int, default=REQUESTS, help="requests per batch and size")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--engines", default="", help="comma-separated name fragments")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        child(sizes, args.n)
        return 0
    from benchmarks import cases as case_registry
    from benchmarks import environment

    environment.setup()
    chosen = case_registry.select([p for p in args.engines.split(",") if p])
    available = environment.availability(chosen)
    runnable = [c for c in chosen if not available[c.name]]
    environment.prepare_stores(runnable)
    environment.close_connections()
    result = run(chosen, available, args.rounds, tuple(sizes), args.n,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

