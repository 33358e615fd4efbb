"""The results page from a run's JSON: the targets table first, then the detail."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from benchmarks import charts
from benchmarks.cases import BASELINES, OPTIONS, TARGETS, Target, label, size_label

LEVEL_LABELS = {"engine": "SessionStore", "request": "middleware"}


def timing_row(results: dict[str, Any], level: str, case: str, size: int,
               cycle: str) -> dict[str, Any] | None:
    for row in (results.get("timing") or {}).get("results", []):
        if (row["level"], row["case"], row["size"], row["cycle"]) == (level, case, size, cycle):
            return dict(row)
    return None


def ratio(results: dict[str, Any], level: str, case: str, baseline: str, size: int,
          cycle: str) -> tuple[float, list[float]] | None:
    """The median of the per-round ratios of ours over the baseline, and those ratios."""
    ours = timing_row(results, level, case, size, cycle)
    base = timing_row(results, level, baseline, size, cycle)
    if not ours or not base:
        return None
    pairs = [o / b for o, b in zip(ours.get("rounds_us", []), base.get("rounds_us", []),
                                   strict=False)]
    return (statistics.median(pairs) if pairs else ours["median_us"] / base["median_us"]), pairs


def endtoend_row(results: dict[str, Any], case: str, size: int, mode: str) -> dict[str, Any]:
    rows = (results.get("endtoend") or {}).get("results", [])
    return next((r for r in rows if (r["case"], r["size"], r["mode"]) == (case, size, mode)), {})


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its ratio per level; *noisy* when rounds fall on both sides of it."""
    out = []
    for target in TARGETS:
        v: dict[str, Any] = {"target": target, "engine": None, "request": None, "rounds": []}
        if target.endtoend:
            ours = endtoend_row(results, target.case, target.size, "read")
            none = endtoend_row(results, "none", target.size, "read")
            v["request"] = ours.get("vs_none")
            v["rounds"] = [o["rps"] / n["rps"] for o, n in
                           zip(ours.get("runs", []), none.get("runs", []), strict=False)]
        else:
            for level in ("engine", "request"):
                found = ratio(results, level, target.case, target.baseline, target.size,
                              target.cycle)
                if found:
                    v[level] = found[0]
                    v["rounds"] += found[1]
        measured = [r for r in (v["engine"], v["request"]) if r is not None]
        v["status"] = ("not measured" if not measured
                       else "met" if all(target.met(r) for r in measured) else "missed")
        v["noisy"] = len({target.met(r) for r in v["rounds"]}) > 1
        out.append(v)
    return out


def met_text(v: dict[str, Any]) -> str:
    text = {"met": "yes", "missed": "no", "not measured": "not measured"}[v["status"]]
    return f"{text} (noisy)" if v["noisy"] else text


def measured_text(v: dict[str, Any]) -> str:
    return " · ".join(f"{v[k]:.2f}" if v[k] is not None else "n/a"
                      for k in (("request",) if v["target"].endtoend else ("engine", "request")))


# -- reStructuredText -----------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]], widths: str = "auto") -> str:
    """A reStructuredText list-table."""
    out = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        out += ["   * - " + (row[0] or "\\"), *("     - " + (c or "\\") for c in row[1:])]
    return "\n".join(out) + "\n"


def image(name: str, alt: str) -> str:
    """A chart at the column's width; Sphinx links it to the full-size image."""
    return f".. image:: _static/{name}\n   :width: 100%\n   :alt: {alt}\n"


def _us(row: dict[str, Any] | None) -> str:
    if not row:
        return "n/a"
    return f"{row['median_us']:.1f} ±{row['stdev_us']:.1f}"


def targets_section(results: dict[str, Any]) -> list[str]:
    found = verdicts(results)
    rows = [[v["target"].text, v["target"].limit_text,
             *(f"{v[k]:.2f}" if v[k] is not None else "—" for k in ("engine", "request")),
             met_text(v)] for v in found]
    parts = [table("Targets of the latest run: ours / Django's", ["Target", "Limit", "Engine",
                                                                  "Request", "Met"], rows,
                   "48 11 12 12 17")]
    parts.append(
        "*Engine* is the ratio of times of ``SessionStore`` alone; *request* the same "
        "through our ``SessionMiddleware``, a request carrying the cookie the previous "
        "response set. A target is met when both are within its limit; *noisy* when the "
        "run's rounds, compared one by one, fall on both sides of the limit. The end-to-end "
        "target is requests per second under gunicorn over the same app's with no session "
        "middleware.\n")
    return parts


def misses_section(results: dict[str, Any]) -> list[str]:
    missed = [v for v in verdicts(results) if v["status"] == "missed" or v["noisy"]]
    if not missed:
        return []
    parts = ["Missed and noisy targets\n------------------------\n",
             "What this run shows about each miss: whether the noise covers the limit, the "
             "server I/O of each side, and where ours spends its time per cycle (µs of own "
             "time under cProfile, which inflates it; SessionStore, then middleware). "
             ":doc:`performance` gives the reasons that hold on any machine.\n"]
    for v in missed:
        parts.append(f"{v['target'].text}\n" + "".join(
            f"    * {line}\n" for line in why(results, v)))
    return parts


def why(results: dict[str, Any], v: dict[str, Any]) -> list[str]:
    target: Target = v["target"]
    notes = []
    if v["noisy"]:
        notes.append(f"Noisy: the per-round ratios ({', '.join(f'{r:.2f}' for r in v['rounds'])})"
                     " fall on both sides of the limit")
    kind = {"load": "read", "modify": "write"}.get(target.cycle, target.cycle)
    ours, base = io_cell(results, target.case, target.size, kind), \
        io_cell(results, target.baseline, target.size, kind)
    if target.baseline != "none":
        notes.append(f"Server I/O per {kind} request: ours {ours}; "
                     f"{label(target.baseline)} {base}")
    elif ours != "none":
        notes.append(f"Server I/O per {kind} request: {ours}")
    for level in ("engine", "request"):
        rows = (results.get("profiles") or {}).get(
            f"{level}/{target.case}/{target.size}/{target.cycle}")
        if rows:
            top = ", ".join(f"``{short_function(r['function'])}`` {r['us']:.0f}"
                            for r in rows[:4])
            notes.append(f"{LEVEL_LABELS[level]}: {top}")
    if target.endtoend:
        notes += [f"{label(name)} reaches {row['vs_none']:.2f} of the no-session rate in the "
                  "same run" for name in ("django.signed", "ours.signed")
                  if "vs_none" in (row := endtoend_row(results, name, target.size, "read"))]
    return notes or ["No profile was taken in this run"]


def short_function(text: str) -> str:
    """``socket.sendall`` for a built-in's long name, ``module.py:function`` for Python's."""
    if match := re.fullmatch(r"<method '(\w+)' of '(?:\w+\.)*_?(\w+)' objects>", text):
        return f"{match[2]}.{match[1]}"
    if match := re.fullmatch(r"<built-in method (?:\w+\.)*?_?([\w.]+)>", text):
        return match[1]
    if match := re.fullmatch(r"(\S+) \((?:.*/)?([^/:]+):\d+\)", text):
        return f"{match[2]}:{match[1]}"
    return text


def io_cell(results: dict[str, Any], case: str, size: int, kind: str) -> str:
    row = next((r for r in results.get("iocounts", []) if (r["case"], r["size"]) == (case, size)),
               None)
    if row is None or row["status"] != "ok":
        return "n/a"
    c = row["counts"][kind]
    parts = [f"{c['queries']} SQL"] if c["queries"] else []
    if c["round_trips"]:
        parts.append(f"{c['round_trips']} trip{'s' * (c['round_trips'] > 1)}, "
                     f"{c['commands']} cmd")
    return ", ".join(parts) or "none"


def timing_section(results: dict[str, Any], images: list[str]) -> list[str]:
    timed = results["timing"]["results"]
    parts = [
        "In process\n----------\n",
        f"Timed with pyperf in {results['timing'].get('rounds', 1)} rounds, each running every "
        "benchmark once (options ``" + results["timing"]["pyperf"] + "``): worker "
        "processes, loops calibrated, warm-ups discarded. Each worker sets Django up for one "
        "engine, creates a session of the size with realistic data (a cart, recently viewed "
        "items, messages, a form draft) and checks it loads back whole. *load* opens the "
        "session and reads one key; *modify* also sets one key and saves. Times are medians "
        "in µs with the standard deviation over all values; a ratio is the median over rounds "
        "of the per-round ratios, so that the two sides are compared at the same time.\n",
    ]
    parts += [image(n, f"Time per cycle of each engine, {size_label(int(n[16:-4]))} sessions")
              for n in images if n.startswith("benchmarks-time-")]
    names = list(dict.fromkeys(r["case"] for r in timed))
    for size in sorted({r["size"] for r in timed}):
        rows = [[label(n), *(_us(timing_row(results, lv, n, size, cy))
                             for cy in ("load", "modify") for lv in ("engine", "request"))]
                for n in names if any(r["case"] == n and r["size"] == size for r in timed)]
        parts.append(table(f"{size_label(size)} session, µs (median ±stdev)",
                           ["Engine", "load, SessionStore", "load, middleware",
                            "modify, SessionStore", "modify, middleware"], rows,
                           "28 18 18 18 18"))
    sizes = sorted({r["size"] for r in timed})
    parts.append(table("Ours / Django's (SessionStore · middleware)",
                       ["Comparison", "Size", "load", "modify"],
                       comparisons(results, [(c, b) for c, bs in BASELINES.items() for b in bs],
                                   sizes), "52 12 18 18"))
    rows = comparisons(results, list(OPTIONS.items()), sizes)
    if rows:
        parts.append(table("What an option costs: ours / ours by default (SessionStore · "
                           "middleware)", ["Comparison", "Size", "load", "modify"], rows,
                           "52 12 18 18"))
    return parts


def comparisons(results: dict[str, Any], pairs: list[tuple[str, str]],
                sizes: list[int]) -> list[list[str]]:
    """A row per pair and size measured: the load and modify ratios at both levels."""
    rows = []
    for case, base in pairs:
        for size in sizes:
            cells = [" · ".join(f"{f[0]:.2f}" for lv in ("engine", "request")
                                if (f := ratio(results, lv, case, base, size, cycle)))
                     or "n/a" for cycle in ("load", "modify")]
            if cells != ["n/a", "n/a"]:
                rows.append([f"{label(case)} vs {label(base)}", size_label(size), *cells])
    return rows


def endtoend_section(results: dict[str, Any], images: list[str]) -> list[str]:
    ee = results["endtoend"]
    rows = []
    for r in ee["results"]:
        if r["status"] != "ok":
            rows.append([label(r["case"]), r["mode"], "not measured: " + r["message"], "", ""])
            continue
        rows.append([label(r["case"]), r["mode"], f"{r['rps']:,.0f}",
                     f"{r['p50_us'] / 1000:.1f} / {r['p99_us'] / 1000:.1f}",
                     f"{r['vs_none']:.2f}" if "vs_none" in r else "1"])
    sizes = sorted({r["size"] for r in ee["results"]})
    return [
        "End to end\n----------\n",
        f"gunicorn with {ee['workers']} sync workers on 127.0.0.1, one engine at a time behind "
        f"our ``SessionMiddleware``; {ee['generator']} with {ee['connections']} "
        f"connections, each keeping its own session of "
        f"{', '.join(size_label(s) for s in sizes)}; {ee['duration_s']:g} s per run, "
        f"{ee['rounds']} interleaved rounds, medians over rounds. *read* reads one key, "
        "*write* also changes one. Load generator and server share the machine's cores.\n",
        *(image(n, "End-to-end requests per second") for n in images if "endtoend" in n),
        table("Requests per second", ["Engine", "Request", "req/s", "p50 / p99 ms",
                                      "vs no session"], rows, "34 12 18 18 18"),
    ]


def iocounts_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for r in results["iocounts"]:
        name = f"{label(r['case'])}, {size_label(r['size'])}"
        if r["status"] != "ok":
            rows.append([name, "fails: " + r["message"][:200], "", "", ""])
            continue
        rows.append([name, *(io_cell(results, r["case"], r["size"], k)
                             for k in ("new", "read", "write")),
                     str(r.get("cookie", {}).get("header_bytes", "n/a"))])
    return [
        "I/O per request\n---------------\n",
        "Through Django's test client and the same views: *new* stores a session with no cookie "
        "sent, *read* reads one key, *write* changes one. SQL statements include "
        "``BEGIN``/``COMMIT``; *trips* are Redis round trips as the client sent them, *cmd* the "
        "commands the server ran (those of a Lua script included). *Cookie* is the length in "
        "bytes of the ``Set-Cookie`` header after the last write.\n",
        table("Server I/O per request", ["Engine, session size", "new", "read", "write",
                                         "Cookie"], rows, "34 18 18 18 12"),
    ]


def lost_updates_section(results: dict[str, Any]) -> list[str]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for r in results["lost_updates"]:
        cell = f"{r['lost']} of {r['attempted']}" + (f", {r['errors']} errors" if r["errors"]
                                                    else "")
        found.setdefault((r["engine"].replace("hybrid_sessions ", ""), r["store"]), {})[
            r["mode"]] = cell
    modes = ("threads", "lockstep", "processes")
    rows = [[engine, store, *(cells.get(m, "n/a") for m in modes)]
            for (engine, store), cells in found.items()]
    return [
        "Lost updates\n------------\n",
        "Two workers make requests on one session, each request setting a key of its own; a "
        "cell counts the keys missing at the end (``python -m benchmarks.lost_updates``; "
        ":doc:`concurrency` explains the workers).\n",
        table("Updates lost", ["Engine", "Store", *modes], rows, "34 18 16 16 16"),
    ]


def render(results: dict[str, Any], images: list[str]) -> str:
    meta = results["meta"]
    load = meta.get("load_average", [[0, 0, 0], [0, 0, 0]])
    parts = [
        ".. This page is written by ``python -m benchmarks`` (benchmarks/report.py).\n",
        "Benchmarks\n==========\n",
        "Our engines side by side with Django's, measured in one run of ``python -m "
        f"benchmarks`` on {meta['started']}, which took {meta['elapsed_s'] / 60:.1f} minutes. "
        "Ratios below 1 mean ours takes less time.\n",
    ]
    if meta.get("quick"):
        parts.append(".. warning:: A ``--quick`` smoke run: these numbers show the harness "
                     "works, not how the engines compare.\n")
    parts += targets_section(results)
    parts.append(
        f".. note:: The machine has {meta['machine']['CPUs']} CPUs, shared with other work "
        f"during the run: its load average was {load[0][0]:.2f} before and {load[1][0]:.2f} "
        "after. Rounds that interleave the engines, in process and end to end, share that "
        "noise out between both sides of a comparison, but do not remove it: *noisy* marks "
        "the verdicts it could have decided.\n")
    parts += [image(n, "Ratios to Django's engines against each target's limit")
              for n in images if "targets" in n]
    parts += misses_section(results)
    if results.get("timing"):
        parts += timing_section(results, images)
    if results.get("endtoend"):
        parts += endtoend_section(results, images)
    if results.get("iocounts"):
        parts += iocounts_section(results)
    if results.get("lost_updates"):
        parts += lost_updates_section(results)
    facts = {**meta["machine"], **meta["versions"]}
    parts += [
        "The run\n-------\n",
        f"``{meta['command']}``\n",
        "\n".join(f":{k}: {v}" for k, v in facts.items()) + "\n",
        "How to run\n----------\n",
        "With PostgreSQL and Redis on 127.0.0.1 (``wrk`` is optional: without it a bounded "
        "Python client drives the server)::\n\n"
        "   pip install -e '.[bench]'\n"
        "   python -m benchmarks          # about 15 minutes on 2 cores\n"
        "   python -m benchmarks --quick  # a smoke run\n\n"
        "``python -m benchmarks.timing`` runs the pyperf part alone and takes any pyperf "
        "option (``--rigorous``, ``--affinity``, ``-o``).\n",
        "It writes this page, the charts in ``docs/_static/`` and the numbers in "
        "``docs/_static/benchmarks.json``. It uses its own stores: the database "
        "``hybrid_sessions_bench`` on PostgreSQL (created if missing, its session tables "
        "emptied) and the keys prefixed ``hybrid_sessions_bench`` in Redis database 8; "
        "``--help`` lists the options.\n",
    ]
    return "\n".join(parts)


def write(results: dict[str, Any], docs: Path) -> Path:
    """Write the charts and ``benchmarks.rst`` into ``docs``; the page's path."""
    images = charts.draw(results, docs / "_static", verdicts(results))
    page = docs / "benchmarks.rst"
    page.write_text(render(results, images))
    return page
