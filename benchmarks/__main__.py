"""``python -m benchmarks``: the whole run, then the docs page, charts and raw numbers.

Order: I/O counts (fast, and they show every engine works through the
middleware), the in-process rounds, profiles of any missed in-process target,
then the end-to-end rounds under gunicorn, and the same read request inside
Django's handler without HTTP. Writes ``docs/benchmarks.rst``,
``docs/_static/benchmarks-*.png`` and ``docs/_static/benchmarks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import cases, environment, report

QUICK = {"rounds": 3, "batch_ms": 10.0, "e2e_rounds": 1, "duration": 1.0, "handler_rounds": 2}
DEFAULT = {"rounds": 20, "batch_ms": 50.0, "e2e_rounds": 2, "duration": 2.0, "handler_rounds": 10}
#: End to end leaves MariaDB out by default: in process covers it, and the run stays short.
E2E_DEFAULT_SKIP = ("maria",)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (~3 minutes)")
    parser.add_argument("--rounds", type=int, help="in-process rounds (default 20; quick 3)")
    parser.add_argument("--batch-ms", type=float, help="in-process batch length (default 50)")
    parser.add_argument("--e2e-rounds", type=int, help="end-to-end rounds (default 2; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per end-to-end run (default 2)")
    parser.add_argument("--engines", default="",
                        help="comma-separated fragments of case names, e.g. 'db.pg,hybrid' "
                             "(the Django baselines they compare with come along)")
    parser.add_argument("--e2e-engines", default=None,
                        help="the same for end to end (default: every case but MariaDB's)")
    parser.add_argument("--sizes", default="100,2048,20480")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to leave out: iocounts, inprocess, endtoend, "
                             "handler")
    parser.add_argument("--docs", default=str(environment.ROOT / "docs"),
                        help="where benchmarks.rst and _static/ are written")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the page and charts from the saved JSON")
    return parser.parse_args(argv)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from benchmarks import endtoend, handler, inprocess, iocounts

    preset = QUICK if args.quick else DEFAULT
    rounds = args.rounds or int(preset["rounds"])
    batch_ms = args.batch_ms or preset["batch_ms"]
    e2e_rounds = args.e2e_rounds or int(preset["e2e_rounds"])
    duration = args.duration or preset["duration"]
    sizes = tuple(int(s) for s in args.sizes.split(","))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    started, load_before = time.monotonic(), _load()
    environment.setup()
    chosen = cases.select([p for p in args.engines.split(",") if p])
    available = environment.availability(chosen)
    for name, reason in available.items():
        if reason:
            log(f"{name}: {reason}")
    runnable = [c for c in chosen if not available[c.name]]
    environment.prepare_stores(runnable)

    results: dict[str, Any] = {
        "meta": {
            "started": report.now(),
            "command": " ".join(["python -m benchmarks", *map(shlex.quote, argv)]),
            "quick": args.quick,
            "machine": environment.machine(),
            "versions": environment.versions(),
            "availability": available,
        }
    }
    if "iocounts" not in skip:
        log(f"I/O counts ... ({time.monotonic() - started:.0f} s)")
        results["iocounts"] = iocounts.run(chosen, available, sizes)
    if "inprocess" not in skip:
        log(f"in process ... ({time.monotonic() - started:.0f} s)")
        results["inprocess"] = inprocess.run(
            chosen, available,
            inprocess.Options(rounds=rounds, batch_ms=batch_ms, sizes=sizes, log=log),
        )
        log(f"profiling missed targets ... ({time.monotonic() - started:.0f} s)")
        results["profiles"] = profile_missed(results)
    environment.close_connections()
    # The parts that run each case in its own process (gunicorn, the handler) share one choice.
    if args.e2e_engines is None:
        e2e = [c for c in chosen if not any(s in c.name for s in E2E_DEFAULT_SKIP)]
    else:
        e2e = cases.select([p for p in args.e2e_engines.split(",") if p], chosen)
    if "endtoend" not in skip:
        log(f"end to end ... ({time.monotonic() - started:.0f} s)")
        results["endtoend"] = endtoend.run(
            e2e, available,
            endtoend.Options(rounds=e2e_rounds, duration=duration, sizes=sizes,
                             generator=args.generator, log=log),
        )
    if "handler" not in skip:
        log(f"inside Django's handler ... ({time.monotonic() - started:.0f} s)")
        results["handler"] = handler.run(
            e2e, available, rounds=int(preset["handler_rounds"]), sizes=sizes, log=log,
        )
    results["meta"]["elapsed_s"] = time.monotonic() - started
    results["meta"]["load_average"] = {"before": load_before, "after": _load()}
    return results


def profile_missed(results: dict[str, Any]) -> dict[str, Any]:
    """cProfile of our side of every missed in-process target: where its time goes."""
    from benchmarks import inprocess

    profiles: dict[str, Any] = {}
    for verdict in report.evaluate(results):
        if verdict["status"] != "missed" or verdict["cycle"] not in inprocess.CYCLES:
            continue
        key = f"{verdict['case']}|{verdict['size']}|{verdict['cycle']}"
        if key in profiles:
            continue
        case = cases.BY_NAME[verdict["case"]]
        try:
            slot = inprocess.create_session(case, verdict["size"])
            n = 200 if verdict["cycle"] == "load" else 50
            profiles[key] = {"ours": inprocess.profile(case, slot, verdict["cycle"], n)}
        except Exception as exc:  # a profile is a bonus, not the result
            log(f"profiling {case.name} failed: {exc}")
    return profiles


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    docs = Path(args.docs)
    data_file = docs / "_static" / "benchmarks.json"
    if args.report_only:
        results = json.loads(data_file.read_text())
    else:
        results = measure(args, argv)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        data_file.write_text(json.dumps(results, indent=1, default=str) + "\n")
    page = report.write(results, docs)
    verdicts = report.evaluate(results)
    for v in verdicts:
        measured = f"{v['ratio']:.2f}" if "ratio" in v else "n/a"
        log(f"{v['status']:>12}  {measured:>5}  {v['target']}, {report.size_label(v['size'])}, "
            f"{v['cycle']}")
    log(f"wrote {page} and {data_file}"
        f" in {results['meta'].get('elapsed_s', 0):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
