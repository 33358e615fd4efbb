"""End to end: the benchmark app under gunicorn, driven over loopback.

For each case, gunicorn (2 sync workers) serves ``benchmarks.app`` with
Django's own ``SessionMiddleware`` and that one engine; a load generator then
sends, for a bounded time, ``GET /read/`` (read-only) or ``GET /write/``
(modify one key) requests carrying a session cookie of each size. The
no-session baseline serves the same views with no session middleware at all.

The load generator is ``wrk`` when installed (Debian: ``apt-get install wrk``),
else a bounded Python client. Each of its connections keeps its own session and
takes the cookie each response sets, as a browser would; concurrent writers
never share a session, so no engine pays for (or profits from) contention.

Rounds interleave the cases (A B A B ...): each round restarts each case's
server once. Results are requests per second and p50/p99 latency, medians over
rounds; ratios are per-round, paired in time.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from benchmarks.cases import NO_SESSION, Case
from benchmarks.environment import ROOT, case_environ
from benchmarks.inprocess import SIZES, summary

MODES = ("read", "write")
COOKIE_NAME = "sessionid"
#: One session per connection, one connection per generator thread.
CONNECTIONS = 2
WORKERS = 2
#: gunicorn's default ``limit_request_field_size``: a longer Cookie header gets a 400.
GUNICORN_HEADER_LIMIT = 8190


@dataclass
class Options:
    rounds: int = 2
    duration: float = 2.0
    warmup: float = 0.5
    sizes: tuple[int, ...] = SIZES
    modes: tuple[str, ...] = MODES
    generator: str = "auto"  # "wrk", "python" or "auto"
    max_requests: int = 200_000  # the Python client's bound per run
    log: Callable[[str], None] = print


# -- the server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(case: Case) -> Iterator[int]:
    """Run gunicorn for ``case`` on a free loopback port until the block ends."""
    port = _free_port()
    env = case_environ(case)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class",
                "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                "benchmarks.wsgi:application",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            _wait_ready(port, proc, log)
            yield port
        finally:
            _stop(proc)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, _headers = request(port, "/read/")
        except OSError:
            time.sleep(0.1)
            continue
        if status == 200:
            return
        break
    log.seek(0)
    tail = log.read()[-2000:].decode(errors="replace")
    raise RuntimeError(f"gunicorn did not come up: {tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started, and only it
            proc.wait(timeout=5)


def request(
    port: int, path: str, cookie: str | None = None
) -> tuple[int, dict[str, str]]:
    """One GET over loopback; the status and the response headers (lower-case names)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _set_cookie(headers: dict[str, str]) -> tuple[str | None, int]:
    """The session cookie a response sets, and the Set-Cookie header's length in bytes."""
    raw = headers.get("set-cookie")
    if not raw:
        return None, 0
    jar: SimpleCookie = SimpleCookie()
    jar.load(raw)
    morsel = jar.get(COOKIE_NAME)
    return (morsel.value if morsel else None), len(f"Set-Cookie: {raw}".encode())


@dataclass
class Seeded:
    cookies: list[str]
    keys: int
    set_cookie_bytes: int


def seed(port: int, size: int, count: int) -> Seeded:
    """``count`` fresh sessions of about ``size`` bytes, each checked to load back whole."""
    cookies, keys, header_bytes = [], 0, 0
    for _ in range(count):
        status, headers = request(port, f"/seed/?size={size}")
        cookie, header_bytes = _set_cookie(headers)
        if status != 200 or not cookie:
            raise RuntimeError(f"seeding a {size} B session failed (HTTP {status}, no cookie)")
        keys = int(headers.get("x-session-keys", "0"))
        status, headers = request(port, "/read/", cookie)
        if status == 400 and header_bytes > GUNICORN_HEADER_LIMIT:
            raise RuntimeError(
                f"the {header_bytes}-byte Set-Cookie is over gunicorn's {GUNICORN_HEADER_LIMIT}-"
                "byte request header limit (HTTP 400); browsers drop cookies over 4096 bytes"
            )
        if status != 200 or int(headers.get("x-session-keys", "-1")) != keys:
            raise RuntimeError(
                f"a freshly seeded {size} B session did not load back through the middleware "
                f"(HTTP {status}, {headers.get('x-session-keys')} of {keys} keys)"
            )
        cookies.append(cookie)
    return Seeded(cookies, keys, header_bytes)


# -- the load generators -----------------------------------------------------------------

_WRK_SCRIPT = """
local cookies = {%(cookies)s}
local path = "%(path)s"
local count = 0
local threads = {}

function setup(thread)
  count = count + 1
  thread:set("cookie", cookies[((count - 1) %% #cookies) + 1])
  thread:set("bad", 0)
  table.insert(threads, thread)
end

function request()
  if cookie ~= nil and cookie ~= "" then
    return wrk.format("GET", path, {["Cookie"] = "%(name)s=" .. cookie})
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
  local sc = headers["Set-Cookie"]
  if sc ~= nil then
    local value = sc:match("%(name)s=([^;]*)")
    if value ~= nil and value ~= "" and value ~= '""' then cookie = value end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"errors":%%d,"bad_status":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, bad))
end
"""


def run_wrk(port: int, path: str, cookies: list[str], duration: float) -> dict[str, Any]:
    """``wrk`` with one connection per thread, each thread keeping its own session cookie."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    lua = _WRK_SCRIPT % {
        "cookies": ", ".join(json.dumps(c) for c in cookies) or '""',
        "path": path,
        "name": COOKIE_NAME,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                wrk, f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s",
                "--timeout", "10s", "-s", script.name, f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True, text=True, timeout=duration + 60, check=False,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def run_python(
    port: int, path: str, cookies: list[str], duration: float, max_requests: int
) -> dict[str, Any]:
    """A bounded Python client: same shape as ``wrk`` (threads, cookies), slower itself."""
    deadline = time.monotonic() + duration
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS
    budget = max_requests // CONNECTIONS

    def worker(i: int) -> None:
        cookie = cookies[i % len(cookies)] if cookies else None
        while time.monotonic() < deadline and len(latencies[i]) < budget:
            start = time.perf_counter()
            try:
                status, headers = request(port, path, cookie)
            except OSError:
                errors[i] += 1
                continue
            latencies[i].append(time.perf_counter() - start)
            if status != 200:
                errors[i] += 1
            new, _size = _set_cookie(headers)
            if new:
                cookie = new

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lat in latencies for x in lat)
    if not flat:
        raise RuntimeError("the Python client completed no request")

    def pct(p: float) -> int:
        return round(flat[min(len(flat) - 1, int(p / 100 * len(flat)))] * 1e6)

    return {
        "requests": len(flat), "duration_us": round(elapsed * 1e6), "p50_us": pct(50),
        "p99_us": pct(99), "errors": 0, "bad_status": sum(errors), "rps": len(flat) / elapsed,
    }


def generator_name(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return choice


# -- a whole run ---------------------------------------------------------------------------


@dataclass
class Series:
    """All runs of one case, size and mode."""

    case: str
    size: int | None
    mode: str
    status: str = "ok"
    message: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def med(key: str) -> dict[str, float]:
            return summary([float(r[key]) for r in self.runs])

        out: dict[str, Any] = {
            "case": self.case, "size": self.size, "mode": self.mode, "status": self.status,
            "message": self.message, "runs": self.runs,
        }
        if self.runs:
            out["rps"] = med("rps")
            out["p50_us"] = med("p50_us")
            out["p99_us"] = med("p99_us")
            out["errors"] = sum(int(r["errors"]) + int(r["bad_status"]) for r in self.runs)
        return out


def run(cases: list[Case], availability: dict[str, str | None], opts: Options) -> dict[str, Any]:
    """Every case, size and mode, the cases interleaved over ``opts.rounds`` rounds."""
    started = time.monotonic()
    gen = generator_name(opts.generator)
    everything = [NO_SESSION, *cases]
    series: dict[tuple[str, int | None, str], Series] = {}
    for case in everything:
        for size in (None,) if case.engine is None else opts.sizes:
            for mode in opts.modes:
                s = series[case.name, size, mode] = Series(case.name, size, mode)
                reason = availability.get(case.name)
                if importlib.util.find_spec("gunicorn") is None:
                    reason = "gunicorn is not installed (pip install -e '.[bench]')"
                if reason:
                    s.status, s.message = "unavailable", reason
    set_cookie_bytes: dict[str, dict[str, int]] = {}

    def go(port: int, s: Series, cookies: list[str], duration: float) -> dict[str, Any]:
        path = f"/{s.mode}/"
        if gen == "wrk":
            return run_wrk(port, path, cookies, duration)
        return run_python(port, path, cookies, duration, opts.max_requests)

    opts.log(f"end to end: {len(everything)} cases, {opts.rounds} rounds, {gen}, "
             f"{opts.duration:g} s per run")
    for round_no in range(opts.rounds):
        for case in everything:
            todo = [s for (name, _size, _m), s in series.items()
                    if name == case.name and s.status == "ok"]
            if not todo:
                continue
            try:
                with serve(case) as port:
                    warmed = False
                    for s in todo:
                        try:
                            cookies: list[str] = []
                            if s.size is not None:
                                seeded = seed(port, s.size, CONNECTIONS)
                                cookies = seeded.cookies
                                set_cookie_bytes.setdefault(case.name, {})[str(s.size)] = (
                                    seeded.set_cookie_bytes
                                )
                            if not warmed:
                                go(port, s, cookies, opts.warmup)
                                warmed = True
                            result = go(port, s, cookies, opts.duration)
                            if result["errors"] or result["bad_status"]:
                                s.message = (f"{result['errors']} socket errors, "
                                             f"{result['bad_status']} non-200 responses")
                            s.runs.append(result)
                        except Exception as exc:
                            s.status, s.message = "error", f"{type(exc).__name__}: {exc}"[:500]
                            s.runs.clear()
            except Exception as exc:
                for s in todo:
                    s.status, s.message = "error", f"{type(exc).__name__}: {exc}"[:500]
                    s.runs.clear()
        opts.log(f"  round {round_no + 1}/{opts.rounds} done ({time.monotonic() - started:.0f} s)")

    return {
        "rounds": opts.rounds,
        "duration_s": opts.duration,
        "generator": gen,
        "connections": CONNECTIONS,
        "workers": WORKERS,
        "sizes": list(opts.sizes),
        "modes": list(opts.modes),
        "set_cookie_bytes": set_cookie_bytes,
        "results": [s.as_dict() for s in series.values()],
        "ratios": ratios(everything, series),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def ratios(
    cases: list[Case], series: dict[tuple[str, int | None, str], Series]
) -> list[dict[str, Any]]:
    """Requests per second of each case over the no-session baseline and over its baselines."""
    out = []
    for case in cases:
        if case.engine is None:
            continue
        for (name, size, mode), s in series.items():
            if name != case.name or s.status != "ok":
                continue
            against = [(NO_SESSION.name, None)] + [(b, size) for b in case.baselines]
            for baseline, bsize in against:
                b = series.get((baseline, bsize, mode))
                if b is None or b.status != "ok":
                    continue
                pairs = [
                    x["rps"] / y["rps"] for x, y in zip(s.runs, b.runs, strict=False) if y["rps"]
                ]
                out.append({"case": name, "baseline": baseline, "size": size, "mode": mode,
                            "metric": "rps", **summary(pairs)})
    return out
