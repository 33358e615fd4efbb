"""The results page (reStructuredText), its charts (PNG) and the targets verdicts.

Everything here reads the JSON a run wrote, so the page can be rebuilt
without measuring again: ``python -m benchmarks --report-only``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.cases import BY_NAME

SIZE_LABELS = {100: "100 B", 2048: "2 KB", 20480: "20 KB"}
CYCLE_LABELS = {"load": "load", "modify": "load + modify + save"}


def size_label(size: int | None) -> str:
    if size is None:
        return "-"
    return SIZE_LABELS.get(size, f"{size} B")


def label(name: str) -> str:
    case = BY_NAME.get(name)
    if case is None:
        return name
    return f"{case.label} (ours)" if case.ours else case.label


# -- targets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One goal of the issue, as a ratio measured in the same run."""

    text: str
    case: str
    baseline: str
    sizes: tuple[int, ...]
    cycles: tuple[str, ...]
    limit: float
    at_least: bool = False  # rps ratios must be high; time ratios low
    endtoend: bool = False
    inline: bool = False  # the hybrid session must be in its cookie for this target


_HYB = "ours.hybrid.cache"

TARGETS: list[Target] = [
    Target("signed_cookies (ours) vs Django's signed_cookies", "ours.signed", "django.signed",
           (100, 2048), ("load", "modify"), 1.0),
    Target("hybrid, inline, load-only vs Django's signed_cookies", _HYB, "django.signed",
           (100, 2048), ("load",), 1.1, inline=True),
    Target("hybrid, inline, load + modify + save vs Django's cache (django-redis)", _HYB,
           "django.cache", (100, 2048), ("modify",), 0.6, inline=True),
    Target("hybrid, spilled 20 KB, load + modify + save vs Django's cache (django-redis)",
           _HYB, "django.cache", (20480,), ("modify",), 1.0),
    Target("our cache vs Django's cache (both django-redis)", "ours.cache", "django.cache",
           (100, 2048, 20480), ("load", "modify"), 1.0),
    Target("our db vs Django's db on SQLite", "ours.db.sqlite", "django.db.sqlite",
           (100, 2048, 20480), ("load", "modify"), 1.0),
    Target("our db vs Django's db on PostgreSQL", "ours.db.pg", "django.db.pg",
           (100, 2048, 20480), ("load", "modify"), 1.0),
    Target("our db vs Django's db on MariaDB", "ours.db.maria", "django.db.maria",
           (100, 2048, 20480), ("load", "modify"), 1.0),
    Target("end to end, hybrid inline at 2 KB, read-only, vs the no-session baseline "
           "(requests per second)", _HYB, "none", (2048,), ("read",), 0.85, at_least=True,
           endtoend=True, inline=True),
]


def _find(rows: Iterable[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def io_counts(results: dict[str, Any], case: str, size: int) -> dict[str, dict[str, int]] | None:
    entry = _find(results.get("iocounts", {}).get("results", []), case=case, size=size)
    if entry is None or entry.get("status") != "ok":
        return None
    counts: dict[str, dict[str, int]] = entry["counts"]
    return counts


def is_inline(results: dict[str, Any], case: str, size: int) -> bool | None:
    """Whether a read of the hybrid session at ``size`` needed no server I/O at all."""
    counts = io_counts(results, case, size)
    if counts is None:
        return None
    read = counts["read"]
    return read["queries"] == 0 and read["redis_commands"] == 0 and read["redis_round_trips"] == 0


def _io_text(counts: dict[str, dict[str, int]] | None, kind: str) -> str:
    if counts is None:
        return "not counted"
    c = counts[kind]
    parts = []
    if c["queries"]:
        parts.append(f"{c['queries']} SQL statement{'s' * (c['queries'] != 1)}")
    if c["redis_round_trips"]:
        parts.append(f"{c['redis_commands']} Redis commands in {c['redis_round_trips']} "
                     f"round trip{'s' * (c['redis_round_trips'] != 1)}")
    return ", ".join(parts) or "no server I/O"


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of every target: the measured ratio, met or missed, and why."""
    verdicts = []
    for target in TARGETS:
        for size in target.sizes:
            for cycle in target.cycles:
                verdicts.append(_check(results, target, size, cycle))
    return verdicts


def _check(results: dict[str, Any], target: Target, size: int, cycle: str) -> dict[str, Any]:
    section = results.get("endtoend" if target.endtoend else "inprocess") or {}
    key = {"mode": cycle} if target.endtoend else {"cycle": cycle}
    row = _find(section.get("ratios", []), case=target.case, baseline=target.baseline,
                size=size, **key)
    verdict: dict[str, Any] = {
        "target": target.text, "size": size, "cycle": cycle, "limit": target.limit,
        "at_least": target.at_least, "case": target.case, "baseline": target.baseline,
    }
    if row is None or "median" not in row:
        verdict.update(status="not measured", why=_why_unmeasured(results, target, size, cycle))
        return verdict
    ratio = float(row["median"])
    met = ratio >= target.limit if target.at_least else ratio <= target.limit
    verdict.update(ratio=ratio, q1=row["q1"], q3=row["q3"], status="met" if met else "missed")
    notes = []
    if target.inline and is_inline(results, target.case, size) is False:
        notes.append("the session was not inline at this size (its reads did server I/O)")
    if not met:
        notes.extend(_why_missed(results, target, size, cycle, row))
    verdict["why"] = "; ".join(notes)
    return verdict


def _why_unmeasured(results: dict[str, Any], target: Target, size: int, cycle: str) -> str:
    section = results.get("endtoend" if target.endtoend else "inprocess") or {}
    key = "mode" if target.endtoend else "cycle"
    reasons = []
    for name in (target.case, target.baseline):
        row = _find(section.get("results", []), case=name,
                    size=None if name == "none" else size, **{key: cycle})
        if row is None:
            reasons.append(f"{label(name)} was not part of this run")
        elif row.get("status") != "ok":
            reasons.append(f"{label(name)}: {row.get('message', row.get('status'))}")
    return "; ".join(reasons) or "no result"


def _why_missed(
    results: dict[str, Any], target: Target, size: int, cycle: str, row: dict[str, Any]
) -> list[str]:
    notes = []
    lo, hi = float(row["q1"]), float(row["q3"])
    if lo <= target.limit <= hi:
        notes.append(
            f"within the spread: the interquartile range of the ratio ({lo:.2f}-{hi:.2f}) "
            "includes the limit"
        )
    if not target.endtoend:
        rows = results["inprocess"]["results"]
        ours = (_find(rows, case=target.case, size=size, cycle=cycle) or {}).get("cpu") or {}
        base = (_find(rows, case=target.baseline, size=size, cycle=cycle) or {}).get("cpu") or {}
        if "median" in ours and "median" in base:
            notes.append(f"client CPU per operation: ours {_num(ours['median'])} µs, "
                         f"{label(target.baseline)} {_num(base['median'])} µs")
    kind = {"load": "read", "modify": "write"}.get(cycle, cycle)
    ours_io = io_counts(results, target.case, size)
    base_io = None if target.baseline == "none" else io_counts(results, target.baseline, size)
    if ours_io is not None and (target.baseline == "none" or base_io is not None):
        base_text = "none" if target.baseline == "none" else _io_text(base_io, kind)
        notes.append(f"I/O per {kind} request: ours {_io_text(ours_io, kind)}; "
                     f"{label(target.baseline)} {base_text}")
    if target.endtoend:
        notes.extend(_handler_notes(results, target, size))
    profile = results.get("profiles", {}).get(f"{target.case}|{size}|{cycle}")
    if profile:
        top = ", ".join(
            f"{p['function']} {p['own_us_per_op']:.0f} µs" for p in profile["ours"][:4]
        )
        notes.append(f"most own time per operation (cProfile, ours): {top}")
    return notes


def _handler_notes(results: dict[str, Any], target: Target, size: int) -> list[str]:
    """What a read costs inside Django's handler: the session's share of a whole request."""
    section = results.get("handler") or {}
    rows = section.get("results", [])
    ours = _find(rows, case=target.case, size=size, status="ok")
    none = _find(rows, case="none", size=size, status="ok")
    if ours is None or none is None:
        return []
    text = (f"inside Django's request handler (no HTTP server or client) a read costs "
            f"{_num(ours['median'])} µs of CPU with ours, {_num(none['median'])} µs with no "
            f"session (ratio {none['median'] / ours['median']:.2f})")
    signed = _find(rows, case="django.signed", size=size, status="ok")
    if signed is not None:
        text += (f", {_num(signed['median'])} µs with Django's signed_cookies "
                 f"({none['median'] / signed['median']:.2f})")
    return [text + ": the cookie's verification and parsing, not I/O, is the difference"]


# -- tables -------------------------------------------------------------------------------


def _fmt_us(stats: dict[str, Any]) -> str:
    if "median" not in stats:
        return "n/a"
    return f"{_num(stats['median'])} ({_num(stats['q1'])}-{_num(stats['q3'])})"


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(row: dict[str, Any] | None) -> str:
    if row is None or "median" not in row:
        return "n/a"
    return f"{row['median']:.2f} ({row['q1']:.2f}-{row['q3']:.2f})"


def list_table(
    title: str, header: list[str] | None, rows: list[list[str]], widths: str = "auto"
) -> str:
    out = [f".. list-table:: {title}" if title else ".. list-table::",
           f"   :header-rows: {0 if header is None else 1}", f"   :widths: {widths}", ""]
    for line in [header, *rows] if header is not None else rows:
        out.append("   * - " + _cell(line[0]))
        out.extend("     - " + _cell(cell) for cell in line[1:])
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    text = str(text).replace("\n", " ").strip()
    return text or "\\"


def _status_text(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    if row.get("status") == "unavailable":
        return "not available"
    return "failed: " + str(row.get("message", ""))


def inprocess_table(results: dict[str, Any], size: int) -> str:
    ip = results["inprocess"]
    rows = []
    names = list(dict.fromkeys(r["case"] for r in ip["results"]))
    for name in names:
        cells = [label(name)]
        base_cells = []
        cpu = []
        for cycle in ip["cycles"]:
            row = _find(ip["results"], case=name, size=size, cycle=cycle)
            cells.append(_fmt_us(row) if row and row["status"] == "ok" else _status_text(row))
            cpu_stats = (row or {}).get("cpu") or {}
            cpu.append(_num(cpu_stats["median"]) if "median" in cpu_stats else "n/a")
        cells.append(" / ".join(cpu))
        for baseline in BY_NAME[name].baselines:
            for cycle in ip["cycles"]:
                ratio = _find(ip["ratios"], case=name, baseline=baseline, size=size, cycle=cycle)
                if ratio is not None:
                    base_cells.append(f"{cycle} {_ratio(ratio)} vs {label(baseline)}")
        cells.append("; ".join(base_cells) or "\\")
        rows.append(cells)
    header = ["engine", *(f"{CYCLE_LABELS[c]}, µs" for c in ip["cycles"]),
              "client CPU µs (" + " / ".join(ip["cycles"]) + ")", "ratio to Django (IQR)"]
    return list_table(f"In process, {size_label(size)} sessions (median and IQR)", header, rows)


def endtoend_table(results: dict[str, Any]) -> str:
    ee = results["endtoend"]
    rows = []
    for row in ee["results"]:
        name, size, mode = row["case"], row["size"], row["mode"]
        if row["status"] != "ok":
            rows.append([label(name), size_label(size), mode, _status_text(row), "", "", ""])
            continue
        vs_none = _find(ee["ratios"], case=name, baseline="none", size=size, mode=mode)
        vs_django = [
            f"{_ratio(r)} vs {label(r['baseline'])}" for r in ee["ratios"]
            if r["case"] == name and r["size"] == size and r["mode"] == mode
            and r["baseline"] != "none"
        ]
        rows.append([
            label(name), size_label(size), mode, _fmt_us(row["rps"]),
            f"{row['p50_us']['median'] / 1000:.1f} / {row['p99_us']['median'] / 1000:.1f}",
            _ratio(vs_none) if name != "none" else "1",
            "; ".join(vs_django) or "\\",
        ])
    header = ["engine", "size", "request", "requests/s (IQR)", "p50 / p99 ms",
              "vs no session", "vs Django"]
    return list_table("End to end (median over rounds)", header, rows)


def handler_table(results: dict[str, Any]) -> str:
    hd = results["handler"]
    rows = []
    for row in hd["results"]:
        name, size = row["case"], row["size"]
        if row["status"] != "ok":
            rows.append([label(name), size_label(size), _status_text(row), ""])
            continue
        vs_none = _find(hd["ratios"], case=name, size=size)
        rows.append([label(name), size_label(size), _fmt_us(row),
                     _ratio(vs_none) if name != "none" else "1"])
    header = ["engine", "size", "CPU µs per read request (IQR)", "vs no session (IQR)"]
    return list_table("Inside Django's request handler (median over rounds)", header, rows)


def cookie_table(results: dict[str, Any]) -> str:
    io = results.get("iocounts", {}).get("results", [])
    sizes = sorted({e["size"] for e in io})
    names = list(dict.fromkeys(e["case"] for e in io))
    rows = []
    for name in names:
        cells = [label(name)]
        for size in sizes:
            entry = _find(io, case=name, size=size)
            if entry is None or entry.get("status") != "ok":
                cells.append(_status_text(entry) if entry else "n/a")
                continue
            cookie = entry.get("cookie", {})
            value = cookie.get("write_value") or cookie.get("new_value") or 0
            header_bytes = cookie.get("write_header") or cookie.get("new_header") or 0
            cells.append(f"{value} / {header_bytes}")
        rows.append(cells)
    header = ["engine", *(f"{size_label(s)}: value / Set-Cookie bytes" for s in sizes)]
    return list_table("Cookie sizes after a write", header, rows)


def io_table(results: dict[str, Any]) -> str:
    io = results.get("iocounts", {})
    rows = []
    for entry in io.get("results", []):
        cells = [label(entry["case"]), size_label(entry["size"])]
        if entry.get("status") != "ok":
            rows.append([*cells, _status_text(entry), "", ""])
            continue
        for kind in io["kinds"]:
            c = entry["counts"][kind]
            cells.append(f"{c['queries']} / {c['redis_commands']} ({c['redis_round_trips']})")
        rows.append(cells)
    header = ["engine", "size", *(f"{k}: SQL / Redis (round trips)" for k in io.get("kinds", []))]
    return list_table("I/O per request", header, rows)


def targets_table(verdicts: list[dict[str, Any]]) -> str:
    rows = []
    for v in verdicts:
        limit = ("≥ " if v["at_least"] else "≤ ") + f"{v['limit']:g}"
        measured = (f"{v['ratio']:.2f} ({v['q1']:.2f}-{v['q3']:.2f})" if "ratio" in v else "n/a")
        rows.append([v["target"], size_label(v["size"]), CYCLE_LABELS.get(v["cycle"], v["cycle"]),
                     limit, measured, v["status"], v.get("why", "")])
    header = ["target", "size", "cycle", "limit", "measured (IQR)", "verdict", "why"]
    return list_table("Targets", header, rows, widths="20 6 10 6 12 8 38")


# -- charts --------------------------------------------------------------------------------


def charts(results: dict[str, Any], static: Path) -> list[str]:
    """Write the PNG charts; the names of the files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    static.mkdir(parents=True, exist_ok=True)
    written = []
    if results.get("inprocess"):
        ip = results["inprocess"]
        fig, axes = plt.subplots(
            len(ip["cycles"]), len(ip["sizes"]), figsize=(5 * len(ip["sizes"]), 9), squeeze=False
        )
        names = list(dict.fromkeys(r["case"] for r in ip["results"]))
        for i, cycle in enumerate(ip["cycles"]):
            for j, size in enumerate(ip["sizes"]):
                rows = [_find(ip["results"], case=n, size=size, cycle=cycle) for n in names]
                _bars(axes[i][j], names, rows, "median", log=True)
                axes[i][j].set_title(f"{CYCLE_LABELS[cycle]}, {size_label(size)}")
                axes[i][j].set_xlabel("µs per operation (log scale, lower is better)")
        fig.suptitle("In process: time per cycle (median, bars show the IQR)")
        fig.tight_layout()
        fig.savefig(static / "benchmarks-inprocess.png", dpi=80)
        plt.close(fig)
        written.append("benchmarks-inprocess.png")
    if results.get("endtoend"):
        ee = results["endtoend"]
        fig, axes = plt.subplots(
            len(ee["modes"]), len(ee["sizes"]), figsize=(5 * len(ee["sizes"]), 8), squeeze=False
        )
        names = list(dict.fromkeys(r["case"] for r in ee["results"] if r["case"] != "none"))
        for i, mode in enumerate(ee["modes"]):
            baseline = _find(ee["results"], case="none", mode=mode)
            for j, size in enumerate(ee["sizes"]):
                ax = axes[i][j]
                rows = [_find(ee["results"], case=n, size=size, mode=mode) for n in names]
                _bars(ax, names, [r and {**r, **r.get("rps", {})} for r in rows], "median")
                if baseline and baseline.get("rps"):
                    ax.axvline(baseline["rps"]["median"], color="black", linestyle="--",
                               label="no session")
                    ax.legend(loc="lower right", fontsize=7)
                ax.set_title(f"{mode}, {size_label(size)}")
                ax.set_xlabel("requests per second (higher is better)")
        fig.suptitle("End to end: gunicorn, 2 sync workers (median, bars show the IQR)")
        fig.tight_layout()
        fig.savefig(static / "benchmarks-endtoend.png", dpi=80)
        plt.close(fig)
        written.append("benchmarks-endtoend.png")
    return written


def _bars(ax: Any, names: list[str], rows: list[dict[str, Any] | None], key: str,
          log: bool = False) -> None:
    values: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    colors: list[str] = []
    for row in rows:
        ok = row is not None and row.get("status") == "ok" and key in row
        v = float(row[key]) if ok and row else 0.0
        values.append(v)
        lows.append(v - float(row["q1"]) if ok and row else 0.0)
        highs.append(float(row["q3"]) - v if ok and row else 0.0)
        colors.append("#2b7bba" if BY_NAME[names[len(colors)]].ours else "#bbbbbb")
    y = list(range(len(names)))
    ax.barh(y, values, xerr=[lows, highs], color=colors, capsize=2)
    ax.set_yticks(y, [label(n) for n in names], fontsize=7)
    ax.invert_yaxis()
    if log and any(values):
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    for yi, v in zip(y, values, strict=True):
        if v == 0:
            ax.text(0.01, yi, "n/a", va="center", fontsize=7, transform=ax.get_yaxis_transform())


# -- the page ------------------------------------------------------------------------------


def render(results: dict[str, Any], images: list[str]) -> str:
    meta = results["meta"]
    verdicts = evaluate(results)
    met = sum(v["status"] == "met" for v in verdicts)
    missed = [v for v in verdicts if v["status"] == "missed"]
    unmeasured = sum(v["status"] == "not measured" for v in verdicts)
    title = "Benchmarks"
    parts = [
        ".. This page is written by ``python -m benchmarks``; edit benchmarks/report.py instead.",
        "",
        title,
        "=" * len(title),
        "",
        "Our engines side by side with Django's, measured in one run on one machine, "
        "interleaved (A B A B ...) so that drift of the machine hits every engine alike. "
        "Times are medians over rounds with their interquartile range (IQR); a ratio is "
        "ours over Django's (below 1 is faster) or, end to end, requests per second over "
        "the baseline's (above 1 is faster), computed per round and then the median taken.",
        "",
    ]
    if meta.get("quick"):
        parts += [
            ".. warning::",
            "",
            "   These numbers come from a ``--quick`` smoke run (few, short rounds): they "
            "show the harness works, not how the engines compare.",
            "",
        ]
    load = meta.get("load_average", {})
    parts += [
        "Latest run",
        "----------",
        "",
        f"Run on {meta['started']} in {meta['elapsed_s']:.0f} s with::",
        "",
        f"   {meta['command']}",
        "",
        f"Targets: {met} met, {len(missed)} missed, {unmeasured} not measured "
        f"(of {len(verdicts)} checks). "
        f"Load average of the machine before / after the run: "
        f"{load.get('before', '?')} / {load.get('after', '?')} "
        "(anything well above 0 means other work shared the CPU and widened the spread).",
        "",
        list_table("Machine", None, [[k, str(v)] for k, v in meta["machine"].items()],
                   widths="20 80"),
        list_table("Versions", None, [[k, str(v)] for k, v in meta["versions"].items()],
                   widths="20 80"),
        "How to run",
        "----------",
        "",
        "With PostgreSQL, MariaDB and Redis running on 127.0.0.1 (as in CI)::",
        "",
        "   pip install -e '.[bench]'",
        "   pip install mysqlclient   # for MariaDB; builds against libmariadb-dev, pkg-config",
        "   apt-get install wrk       # optional: without it a bounded Python client is used",
        "   python -m benchmarks      # about 10 minutes on 2 cores; --quick: about 3",
        "",
        "It writes this page, the charts in ``docs/_static/`` and the raw numbers in "
        "``docs/_static/benchmarks.json``; ``python -m benchmarks --help`` lists the "
        "options (fewer engines, more rounds, report only). The benchmarks use their own "
        "stores: the ``bench`` database on PostgreSQL and MariaDB (created if missing), "
        "Redis database 8 (emptied) and a temporary SQLite file.",
        "",
        "Targets",
        "-------",
        "",
        "Ratios measured in the same run. Where a target is missed, the last column says "
        "what the run itself shows about why: whether the spread covers the limit, the I/O "
        "each side did per request, and where ours spends its time (cProfile). "
        "The reasons that hold whatever the machine (what each engine must do per "
        "request, JSON against pickle) are worked out in :doc:`performance`.",
        "",
        targets_table(verdicts),
    ]
    if results.get("inprocess"):
        ip = results["inprocess"]
        parts += [
            "In process",
            "----------",
            "",
            f"{ip['rounds']} rounds; in each, every engine ran one batch of about "
            f"{ip['batch_ms']:g} ms per size and cycle. *load* is ``SessionStore(key)`` and "
            "reading one key; *load + modify + save* also sets one key and saves (cookie "
            "engines then carry the new cookie on). Sessions hold realistic data "
            "(a cart, recently viewed items, messages, a form draft) of "
            + ", ".join(f"{v} B" for v in ip["payload_bytes"].values())
            + " serialised.",
            "",
        ]
        if "benchmarks-inprocess.png" in images:
            parts += [".. image:: _static/benchmarks-inprocess.png",
                      "   :alt: In-process time per cycle for each engine and size", ""]
        for size in ip["sizes"]:
            parts.append(inprocess_table(results, size))
    if results.get("endtoend"):
        ee = results["endtoend"]
        parts += [
            "End to end",
            "----------",
            "",
            f"gunicorn with {ee['workers']} sync workers serving ``benchmarks.app`` with "
            "Django's ``SessionMiddleware`` and one engine at a time; "
            f"{ee['generator']} with {ee['connections']} connections over loopback, each "
            f"keeping its own session, {ee['duration_s']:g} s per run, {ee['rounds']} "
            "rounds. *read* reads one key, *write* also changes one. The no-session "
            "baseline serves the same views with no session middleware.",
            "",
        ]
        if "benchmarks-endtoend.png" in images:
            parts += [".. image:: _static/benchmarks-endtoend.png",
                      "   :alt: End-to-end requests per second for each engine and size", ""]
        parts.append(endtoend_table(results))
    if results.get("handler"):
        hd = results["handler"]
        parts += [
            "Inside Django's request handler",
            "-------------------------------",
            "",
            "The end-to-end *read* request without the HTTP server and the load generator: "
            "``GET /read/`` through Django's ``WSGIHandler`` in process, with each case's "
            "settings as under gunicorn, measured as this process's CPU time per request "
            f"over batches of {hd['requests']} requests, {hd['rounds']} interleaved rounds. "
            "It shows the share of a whole Django request that the session takes. "
            "*vs no session* is the baseline's time over the engine's (below 1 is slower), "
            "as requests per second would be.",
            "",
            handler_table(results),
        ]
    if results.get("iocounts"):
        parts += [
            "I/O and cookies per request",
            "---------------------------",
            "",
            "Through Django's test client and the same views: *new* stores a session with no "
            "cookie sent, *read* reads one key, *write* changes one. SQL statements include "
            "``BEGIN``/``COMMIT``; Redis commands are as the server ran them (a Lua script's "
            "commands included), round trips as the client sent them.",
            "",
            io_table(results),
            cookie_table(results),
        ]
    return "\n".join(parts).rstrip() + "\n"


def write(results: dict[str, Any], docs: Path) -> Path:
    """Write the charts and ``benchmarks.rst`` into ``docs``; the page's path."""
    images = charts(results, docs / "_static")
    page = docs / "benchmarks.rst"
    page.write_text(render(results, images))
    return page


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
