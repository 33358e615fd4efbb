"""``python -m benchmarks``: I/O counts, pyperf timings, profiles of misses, end to end and
lost updates in one run, then the docs page, its charts and JSON. ``--quick``: a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import cases, endtoend, environment, report, timing

PARTS = ("iocounts", "timing", "endtoend", "lost_updates")
#: pyperf's options for each round: 2 worker processes of 3 values, loops calibrated.
PYPERF = "--processes 2 --values 3 --warmups 1"
QUICK_PYPERF = "--processes 1 --values 1 --warmups 0 --loops 2"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny counts")
    parser.add_argument("--cases", default="", help="comma-separated fragments of case names, "
                        "e.g. 'hybrid,signed' (the baselines they are compared with come along)")
    parser.add_argument("--sizes", default=",".join(map(str, cases.SIZES)))
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: "
                        + ", ".join(PARTS))
    parser.add_argument("--pyperf", help=f"options for pyperf (default '{PYPERF}')")
    parser.add_argument("--rounds", type=int,
                        help="rounds of the timings and of end to end (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per end-to-end run (default 2)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--docs", type=Path, default=environment.ROOT / "docs",
                        help="where benchmarks.rst and _static/ are written")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the page and charts from the saved JSON")
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    skip = set(args.skip.split(","))
    sizes = tuple(int(s) for s in args.sizes.split(","))
    rounds = args.rounds or (1 if args.quick else 3)
    environment.setup()
    chosen = cases.select([p for p in args.cases.split(",") if p])
    available = environment.availability(chosen)
    for name, reason in available.items():
        if reason:
            log(f"{name}: {reason}")
    runnable = [c for c in chosen if not available[c.name]]
    environment.prepare_stores(runnable)
    results: dict[str, Any] = {"meta": {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python -m benchmarks", shlex.join(argv)]).strip(),
        "quick": args.quick, "machine": environment.machine(),
        "versions": environment.versions(), "availability": available,
    }}
    if "iocounts" not in skip:
        log("I/O counts ...")
        results["iocounts"] = [row for case in runnable if case.engine
                               for row in io_counts(case, sizes)]
    broken = {r["case"] for r in results.get("iocounts", []) if r["status"] != "ok"
              and r["size"] in cases.BY_NAME[r["case"]].sizes}
    if "timing" not in skip:
        log(f"in process, with pyperf ... ({time.monotonic() - started:.0f} s)")
        pyperf_args = args.pyperf or (QUICK_PYPERF if args.quick else PYPERF)
        timed = [c.name for c in runnable if c.name not in broken]
        try:
            results["timing"] = time_cases(pyperf_args, timed, sizes, rounds)
        except Exception as exc:  # the other parts still run and are reported
            log(f"the timings failed: {exc}")
            results["timing"] = {"pyperf": pyperf_args, "results": [], "error": str(exc)[-800:]}
        results["profiles"] = profile_missed(results, args.quick)
    if "endtoend" not in skip:
        log(f"end to end ... ({time.monotonic() - started:.0f} s)")
        results["endtoend"] = endtoend.run(chosen, available, endtoend.Options(
            rounds=rounds,
            duration=args.duration or (0.3 if args.quick else 2.0),
            sizes=tuple(s for s in sizes if s == 2048) or sizes[:1],
            generator=args.generator, log=log))
    if "lost_updates" not in skip and not available.get("ours.db.pg", "not chosen"):
        log(f"lost updates ... ({time.monotonic() - started:.0f} s)")
        results["lost_updates"] = lost_updates(5 if args.quick else 100)
    if any(c.redis for c in runnable):
        environment.clear_redis()
    results["meta"]["elapsed_s"] = round(time.monotonic() - started)
    results["meta"]["load_average"] = [list(load_before), list(os.getloadavg())]
    return results


def io_counts(case: cases.Case, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """The I/O counts of one case, in a process of its own, or why they failed."""
    mine = [s for s in sizes if s in case.sizes] or list(case.sizes)
    try:
        return list(json.loads(environment.run_child(
            ["-m", "benchmarks.iocounts", "--sizes", ",".join(map(str, mine))],
            case).splitlines()[-1]))
    except Exception as exc:
        return [{"case": case.name, "size": s, "status": "error", "message": str(exc)[-300:]}
                for s in mine]


def time_cases(pyperf_args: str, names: list[str], sizes: tuple[int, ...],
               rounds: int) -> dict[str, Any]:
    """``benchmarks.timing`` in rounds (A B A B ...), so a busy spell hits both sides alike.

    pyperf's statistics are over all rounds' runs; each round's median is kept for the ratios.
    """
    import pyperf

    suite: pyperf.BenchmarkSuite | None = None
    per_round: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            out = Path(tmp) / f"round{n}.json"
            environment.run_child(
                ["-m", "benchmarks.timing", *shlex.split(pyperf_args), "--quiet", "-o",
                 str(out), "--cases", ",".join(names), "--sizes", ",".join(map(str, sizes))],
                timeout=3600)
            loaded = pyperf.BenchmarkSuite.load(str(out))
            for bench in loaded:
                per_round.setdefault(bench.get_name(), []).append(bench.median() * 1e6)
            if suite is None:
                suite = loaded
            else:
                suite.add_runs(loaded)
            log(f"  pyperf: round {n + 1} of {rounds} done")
    rows = [dict(zip(("level", "case", "size", "cycle"), timing.parse_name(b.get_name()),
                     strict=True),
                 median_us=b.median() * 1e6, mean_us=b.mean() * 1e6,
                 stdev_us=(b.stdev() if b.get_nvalue() > 1 else 0.0) * 1e6,
                 values=b.get_nvalue(), rounds_us=per_round[b.get_name()])
            for b in suite or ()]
    return {"pyperf": pyperf_args, "rounds": rounds, "results": rows}


def profile_missed(results: dict[str, Any], quick: bool) -> dict[str, Any]:
    """cProfile of our side of every missed in-process target, each in a fresh process."""
    profiles: dict[str, Any] = {}
    for verdict in report.verdicts(results):
        target = verdict["target"]
        for level in ("engine", "request"):
            if target.endtoend or verdict[level] is None or target.met(verdict[level]):
                continue
            bench = timing.name(level, target.case, target.size, target.cycle)
            if quick and profiles:
                return profiles
            try:
                profiles[bench] = json.loads(environment.run_child(
                    ["-m", "benchmarks.timing", "--profile", bench, "20" if quick else "300"]))
            except Exception as exc:  # a profile explains a miss; it is not the result
                log(f"profiling {bench} failed: {exc}")
    return profiles


def lost_updates(requests: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lost.json"
        environment.run_child(["-m", "benchmarks.lost_updates", "--databases", "postgres",
                               "--requests", str(requests), "--json", str(out)])
        return list(json.loads(out.read_text()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    data = args.docs / "_static" / "benchmarks.json"
    if args.report_only:
        results = json.loads(data.read_text())
    else:
        results = measure(args, argv)
        data.parent.mkdir(parents=True, exist_ok=True)
        data.write_text(json.dumps(results, indent=1) + "\n")
    page = report.write(results, args.docs)
    for v in report.verdicts(results):
        log(f"{report.met_text(v):>8}  {report.measured_text(v):>14}  {v['target'].text}")
    log(f"wrote {page} and {data} ({results['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
