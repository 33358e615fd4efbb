"""End to end: gunicorn (2 sync workers, loopback) serving ``benchmarks.app`` for one case,
driven by ``wrk`` or a bounded Python client whose connections each keep their own session.

Rounds interleave the cases (A B A B ...); a ratio is taken per round, then the median.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from benchmarks.cases import Case
from benchmarks.environment import ROOT, case_environ

MODES = ("read", "write")
COOKIE = "sessionid"
CONNECTIONS = 2
WORKERS = 2


@dataclass
class Options:
    rounds: int = 3
    duration: float = 2.0
    sizes: tuple[int, ...] = (2048,)
    generator: str = "auto"  # "wrk", "python" or "auto"
    max_requests: int = 100_000
    log: Callable[[str], None] = print


@contextlib.contextmanager
def serve(env: dict[str, str], workers: int = WORKERS) -> Iterator[int]:
    """gunicorn with ``env`` on a free loopback port until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
             f"127.0.0.1:{port}", "--log-level", "warning", "benchmarks.wsgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if request(port, "/read/")[0] == 200:
                        break
                time.sleep(0.1)
            else:
                log.seek(0)
                raise RuntimeError(f"gunicorn did not come up: {log.read()[-1500:]!r}")
            yield port
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group we started, and only it
                    proc.wait(timeout=5)


def request(port: int, path: str, cookie: str | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str]]:
    """One GET over loopback: the status and the response headers (lower-case names)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def set_cookie(headers: dict[str, str]) -> str | None:
    """The session cookie a response set, if any."""
    jar: SimpleCookie = SimpleCookie()
    jar.load(headers.get("set-cookie", ""))
    morsel = jar.get(COOKIE)
    return morsel.value if morsel and morsel.value else None


def latency(ms: list[float], digits: int) -> dict[str, float | None]:
    """Median, 99th percentile (nearest rank) and maximum of ``ms``, rounded."""
    ordered = sorted(ms)
    if not ordered:
        return dict.fromkeys(("p50_ms", "p99_ms", "max_ms"))
    return {"p50_ms": round(statistics.median(ordered), digits),
            "p99_ms": round(ordered[round(0.99 * (len(ordered) - 1))], digits),
            "max_ms": round(ordered[-1], digits)}


def seed(port: int, size: int) -> str:
    """A fresh session of about ``size`` bytes, checked to load back whole."""
    status, headers = request(port, f"/seed/?size={size}")
    cookie = set_cookie(headers)
    if status != 200 or not cookie:
        raise RuntimeError(f"seeding a {size} B session failed (HTTP {status})")
    keys = headers.get("x-session-keys")
    status, headers = request(port, "/read/", cookie)
    if status != 200 or headers.get("x-session-keys") != keys:
        raise RuntimeError(f"a seeded {size} B session did not load back (HTTP {status})")
    return cookie


_WRK_LUA = """
local cookies = {%(cookies)s}
local n, threads = 0, {}
function setup(thread)
  n = n + 1
  thread:set("cookie", cookies[((n - 1) %% #cookies) + 1])
  thread:set("bad", 0)
  table.insert(threads, thread)
end
function request()
  if cookie ~= "" then return wrk.format("GET", nil, {Cookie = "%(name)s=" .. cookie}) end
  return wrk.format("GET")
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
  local value = (headers["Set-Cookie"] or ""):match("%(name)s=([^;]*)")
  if value ~= nil and value ~= "" and value ~= '""' then cookie = value end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("bad") end
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%%d,"seconds":%%f,"p50_us":%%d,"p99_us":%%d,' ..
    '"errors":%%d}\\n', summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout + bad))
end
"""


def run_wrk(port: int, path: str, cookies: list[str], duration: float) -> dict[str, Any]:
    """``wrk``, one connection per thread, each thread keeping its own session cookie."""
    lua = _WRK_LUA % {"cookies": ", ".join(json.dumps(c) for c in cookies) or '""',
                      "name": COOKIE}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        out = subprocess.run(
            ["wrk", f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s",
             "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=duration + 60, check=False).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out[-500:]}")
    return dict(json.loads(line.removeprefix("BENCHJSON ")))


def run_python(port: int, path: str, cookies: list[str], duration: float,
               max_requests: int) -> dict[str, Any]:
    """A bounded Python client of the same shape as ``wrk`` (threads, cookies), slower."""
    deadline = time.monotonic() + duration
    latencies: list[float] = []
    errors = [0]

    def worker(cookie: str | None) -> None:
        while time.monotonic() < deadline and len(latencies) < max_requests:
            started = time.perf_counter()
            try:
                status, headers = request(port, path, cookie)
            except OSError:
                errors[0] += 1
                continue
            latencies.append(time.perf_counter() - started)
            errors[0] += status != 200
            cookie = set_cookie(headers) or cookie

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(cookies[i] if cookies else None,))
               for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not latencies:
        raise RuntimeError("the Python client completed no request")
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"requests": len(latencies), "seconds": time.monotonic() - started,
            "p50_us": round(cuts[49] * 1e6), "p99_us": round(cuts[98] * 1e6),
            "errors": errors[0]}


def measure(port: int, case: Case, size: int, mode: str, generator: str,
            opts: Options) -> dict[str, Any]:
    """One run of one mode against a served case, with fresh sessions."""
    cookies = [seed(port, size) for _ in range(CONNECTIONS)] if case.engine else []
    if generator == "wrk":
        result = run_wrk(port, f"/{mode}/", cookies, opts.duration)
    else:
        result = run_python(port, f"/{mode}/", cookies, opts.duration, opts.max_requests)
    return {**result, "rps": result["requests"] / result["seconds"]}


def run(cases: list[Case], availability: dict[str, str | None], opts: Options) -> dict[str, Any]:
    """Every case, size and mode over ``opts.rounds`` interleaved rounds."""
    generator = opts.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    failed: dict[tuple[str, int, str], str] = {}
    opts.log(f"end to end: {len(cases)} cases, {opts.rounds} rounds, {generator}, "
             f"{opts.duration:g} s per run")
    for round_no in range(opts.rounds):
        for case in cases:
            todo = [(case.name, size, mode) for size in opts.sizes for mode in MODES
                    if not availability.get(case.name) and (case.name, size, mode) not in failed]
            if not todo:
                continue
            try:
                with serve(case_environ(case)) as port:
                    # Warm both workers (imports, connections) before anything is measured.
                    run_python(port, "/read/", [], min(0.5, opts.duration), 1000)
                    for key in todo:
                        try:
                            result = measure(port, case, key[1], key[2], generator, opts)
                            runs.setdefault(key, []).append(result)
                        except Exception as exc:
                            failed[key] = f"{type(exc).__name__}: {exc}"[:300]
            except Exception as exc:
                failed.update(dict.fromkeys(todo, f"{type(exc).__name__}: {exc}"[:300]))
        opts.log(f"  end to end: round {round_no + 1} of {opts.rounds} done")
    results = []
    for case in cases:
        for size in opts.sizes:
            for mode in MODES:
                key = (case.name, size, mode)
                row: dict[str, Any] = {"case": case.name, "size": size, "mode": mode}
                message = availability.get(case.name) or failed.get(key)
                mine = runs.get(key)
                if message or not mine:
                    row.update(status="unavailable", message=message or "no result")
                    results.append(row)
                    continue
                row.update(status="ok", runs=mine, errors=sum(r["errors"] for r in mine),
                           **{k: statistics.median(r[k] for r in mine)
                              for k in ("rps", "p50_us", "p99_us")})
                pairs = [r["rps"] / b["rps"]
                         for r, b in zip(mine, runs.get(("none", size, mode), []), strict=False)]
                if pairs and case.name != "none":
                    row["vs_none"] = statistics.median(pairs)
                results.append(row)
    return {"rounds": opts.rounds, "duration_s": opts.duration, "generator": generator,
            "connections": CONNECTIONS, "workers": WORKERS, "results": results}
