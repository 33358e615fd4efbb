"""In-process cycles: what one request's session work costs, without HTTP.

Two cycles, on sessions created beforehand with realistic data of each size:

``load``
    ``SessionStore(key)`` and read one key: what a request that only reads does.
``modify``
    The same, then set one key and ``save()``: what a request that writes does.
    Cookie engines carry the new cookie into the next iteration, as a browser would.

Interleaved rounds: in every round each case runs one batch of ``n``
iterations (``n`` calibrated once per case so a batch lasts about
``--batch-ms``), in the order A B A B ..., so slow drift of the machine hits
all cases alike. Each batch gives one per-operation time; a case's result is
the median over rounds with its interquartile range, and a ratio against a
Django baseline is the median of the per-round ratios (paired in time).

Run on its own: ``python -m benchmarks.inprocess --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import import_module
from typing import Any

from benchmarks import cases as case_registry
from benchmarks import environment
from benchmarks.cases import Case
from benchmarks.payload import READ_KEY, WRITE_KEY, make_payload, serialised_size

SIZES = (100, 2048, 20480)
CYCLES = ("load", "modify")


# -- statistics -----------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """Median and quartiles (inclusive method; a single value is its own quartiles)."""
    if not values:
        return {}
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


# -- running one case -------------------------------------------------------------


@contextlib.contextmanager
def active(case: Case) -> Iterator[None]:
    """Make ``case`` the session engine: its database alias and its settings."""
    from django.test import override_settings

    from benchmarks.routing import CaseRouter

    previous = CaseRouter.alias
    CaseRouter.activate(case.alias)
    try:
        with override_settings(**case.session_settings()):
            yield
    finally:
        CaseRouter.alias = previous


def store_class(case: Case) -> Any:
    if case.engine is None:
        raise ValueError(f"{case.name} has no session engine")
    return import_module(case.engine).SessionStore


@dataclass
class Slot:
    """One pre-created session of one case and size, and where its cookie is now."""

    key: str
    payload_keys: frozenset[str]
    counter: int = 0
    cookie_bytes: int = 0


def create_session(case: Case, size: int) -> Slot:
    """Save a new session holding about ``size`` bytes and check it reads back."""
    payload = make_payload(size)
    with active(case):
        store = store_class(case)
        session = store()
        session.update(payload)
        session.save()
        key = session.session_key
        if not key:
            raise RuntimeError("save() gave no session key")
        slot = Slot(key=key, payload_keys=frozenset(payload), cookie_bytes=len(key))
        check_session(case, slot)
    return slot


def check_session(case: Case, slot: Slot) -> None:
    """Fail loudly if the session no longer loads whole (a rejected cookie, a lost record)."""
    with active(case):
        loaded = dict(store_class(case)(slot.key).items())
    missing = slot.payload_keys - set(loaded)
    if missing:
        raise RuntimeError(
            f"the session did not load back ({len(missing)} of {len(slot.payload_keys)} "
            "keys missing): the engine rejected its own cookie or lost the record"
        )


def _load_ops(store: Any, slot: Slot, n: int) -> None:
    key = slot.key
    for _ in range(n):
        store(key)[READ_KEY]


def _modify_ops(store: Any, slot: Slot, n: int) -> None:
    key, counter = slot.key, slot.counter
    for _ in range(n):
        counter += 1
        session = store(key)
        session.get(READ_KEY)
        session[WRITE_KEY] = counter
        session.save()
        key = session.session_key
    slot.key, slot.counter = key, counter


OPS: dict[str, Callable[[Any, Slot, int], None]] = {"load": _load_ops, "modify": _modify_ops}


def time_batch(case: Case, slot: Slot, cycle: str, n: int) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds per operation, over ``n`` operations.

    The CPU time leaves out the database and Redis servers' own work, and other
    processes' time slices: on a busy machine it is the steadier of the two.
    """
    with active(case):
        store = store_class(case)
        ops = OPS[cycle]
        cpu, start = time.process_time(), time.perf_counter()
        ops(store, slot, n)
        wall = time.perf_counter() - start
        return wall / n, (time.process_time() - cpu) / n


def calibrate(case: Case, slot: Slot, cycle: str, batch_seconds: float, max_n: int) -> int:
    """Iterations per batch so that one batch lasts about ``batch_seconds``."""
    time_batch(case, slot, cycle, 3)  # warm connections and caches
    per_op, _cpu = time_batch(case, slot, cycle, 5)
    return max(3, min(max_n, round(batch_seconds / max(per_op, 1e-7))))


def profile(case: Case, slot: Slot, cycle: str, n: int, top: int = 12) -> list[dict[str, Any]]:
    """Where the time of ``n`` operations goes: the functions with the most own time."""
    profiler = cProfile.Profile()
    with active(case):
        store = store_class(case)
        profiler.enable()
        OPS[cycle](store, slot, n)
        profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in (
        stats.stats.items()  # type: ignore[attr-defined]
    ):
        where = re.sub(r" at 0x[0-9a-f]+", "", name) if filename == "~" else (
            f"{_short(filename)}:{line}({name})"
        )
        rows.append(
            {
                "function": where,
                "calls_per_op": ncalls / n,
                "own_us_per_op": tottime / n * 1e6,
                "cumulative_us_per_op": cumtime / n * 1e6,
            }
        )
    rows.sort(key=lambda r: r["own_us_per_op"], reverse=True)
    return rows[:top]


def _short(filename: str) -> str:
    """A profile's file name without the interpreter's or the checkout's prefix."""
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", f"{environment.ROOT.as_posix()}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    match = re.search(r"/lib/python3\.\d+/(.*)", path)
    return match.group(1) if match else path


# -- a whole run --------------------------------------------------------------------


@dataclass
class Measurement:
    """All batches of one case, size and cycle."""

    case: str
    size: int
    cycle: str
    status: str = "ok"
    message: str = ""
    n: int = 0
    samples_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {**summary(self.samples_us), "cpu": summary(self.cpu_us)}


@dataclass
class Options:
    rounds: int = 20
    batch_ms: float = 50.0
    max_n: int = 5000
    fixed_n: int | None = None
    sizes: tuple[int, ...] = SIZES
    cycles: tuple[str, ...] = CYCLES
    log: Callable[[str], None] = print


def run(cases: list[Case], availability: dict[str, str | None], opts: Options) -> dict[str, Any]:
    """Every available case at every size and cycle, interleaved over ``opts.rounds``."""
    started = time.monotonic()
    measurements: dict[tuple[str, int, str], Measurement] = {}
    slots: dict[tuple[str, int], Slot] = {}
    cookie_bytes: dict[str, dict[str, int]] = {}
    for case in cases:
        for size in opts.sizes:
            for cycle in opts.cycles:
                m = Measurement(case.name, size, cycle)
                measurements[case.name, size, cycle] = m
                reason = availability.get(case.name)
                if reason:
                    m.status, m.message = "unavailable", reason
            if availability.get(case.name):
                continue
            try:
                slot = create_session(case, size)
            except Exception as exc:
                for cycle in opts.cycles:
                    _fail(measurements[case.name, size, cycle], "creating the session", exc)
                continue
            slots[case.name, size] = slot
            cookie_bytes.setdefault(case.name, {})[str(size)] = slot.cookie_bytes

    runnable = [m for m in measurements.values() if m.status == "ok"]
    for m in runnable:
        slot = slots[m.case, m.size]
        try:
            m.n = opts.fixed_n or calibrate(
                case_registry.BY_NAME[m.case], slot, m.cycle, opts.batch_ms / 1000, opts.max_n
            )
        except Exception as exc:
            _fail(m, "calibrating", exc)
    opts.log(
        f"in-process: {sum(m.status == 'ok' for m in measurements.values())} series, "
        f"{opts.rounds} rounds of ~{opts.batch_ms:.0f} ms batches"
    )

    # Long-lived objects out of the collector's way: a batch then pays only for
    # the garbage it makes itself, as a request would.
    gc.collect()
    gc.freeze()
    order = [
        (case, size, cycle)
        for size in opts.sizes
        for cycle in opts.cycles
        for case in cases
    ]
    for round_no in range(opts.rounds):
        for case, size, cycle in order:
            m = measurements[case.name, size, cycle]
            if m.status != "ok":
                continue
            try:
                wall, cpu = time_batch(case, slots[case.name, size], cycle, m.n)
            except Exception as exc:
                _fail(m, f"round {round_no + 1}", exc)
            else:
                m.samples_us.append(round(wall * 1e6, 1))
                m.cpu_us.append(round(cpu * 1e6, 1))
        opts.log(f"  round {round_no + 1}/{opts.rounds} done ({time.monotonic() - started:.0f} s)")

    gc.unfreeze()
    for (name, size), slot in slots.items():
        try:
            check_session(case_registry.BY_NAME[name], slot)
        except Exception as exc:
            for cycle in opts.cycles:
                _fail(measurements[name, size, cycle], "checking the session after the run", exc)

    payload_bytes = {str(s): serialised_size(make_payload(s)) for s in opts.sizes}
    results = [
        {**asdict(m), **m.stats()} for m in measurements.values()
    ]
    return {
        "rounds": opts.rounds,
        "batch_ms": opts.batch_ms,
        "sizes": list(opts.sizes),
        "cycles": list(opts.cycles),
        "payload_bytes": payload_bytes,
        "cookie_bytes": cookie_bytes,
        "results": results,
        "ratios": ratios(cases, measurements),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def _fail(m: Measurement, stage: str, exc: BaseException) -> None:
    m.status = "error"
    m.message = f"{stage}: {type(exc).__name__}: {exc}"[:500]
    m.samples_us.clear()
    m.cpu_us.clear()


def ratios(
    cases: list[Case], measurements: dict[tuple[str, int, str], Measurement]
) -> list[dict[str, Any]]:
    """Ours over each baseline, per round (paired in time), then median and quartiles."""
    out = []
    for case in cases:
        for baseline in case.baselines:
            for (name, size, cycle), m in measurements.items():
                if name != case.name:
                    continue
                b = measurements.get((baseline, size, cycle))
                if b is None:
                    continue
                if m.status != "ok" or b.status != "ok":
                    continue
                pairs = [x / y for x, y in zip(m.samples_us, b.samples_us, strict=False) if y]
                out.append(
                    {"case": case.name, "baseline": baseline, "size": size, "cycle": cycle,
                     **summary(pairs)}
                )
    return out


# -- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inprocess", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch-ms", type=float, default=50.0)
    parser.add_argument("-n", type=int, default=None, help="fixed iterations per batch")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--cycles", default=",".join(CYCLES))
    parser.add_argument("--engines", default="", help="comma-separated name fragments")
    parser.add_argument("--json", default="-", help="where to write the results ('-': stdout)")
    args = parser.parse_args(argv)

    from benchmarks import environment

    environment.setup()
    chosen = case_registry.select([p for p in args.engines.split(",") if p])
    available = environment.availability(chosen)
    environment.prepare_stores(c for c in chosen if not available[c.name])
    opts = Options(
        rounds=args.rounds,
        batch_ms=args.batch_ms,
        fixed_n=args.n,
        sizes=tuple(int(s) for s in args.sizes.split(",")),
        cycles=tuple(args.cycles.split(",")),
        log=lambda line: print(line, file=sys.stderr),
    )
    result = run(chosen, available, opts)
    environment.close_connections()
    text = json.dumps(result, indent=1)
    if args.json == "-":
        print(text)
    else:
        with open(args.json, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
