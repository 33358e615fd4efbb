"""The benchmark harness runs and reports, judged by shape, never by speed.

``python -m benchmarks --quick`` runs as a developer would run it, in its own
processes, on the signed-cookie engines (no server needed but the harness's own
gunicorn), with tiny counts; the numbers it produces must be there and be
positive, whatever the machine's load. Which engine is faster is for the
benchmarks to say, not for the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import cases, report

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = os.environ.get("HYBRID_SESSIONS_TEST_SUFFIX", "")
REDIS = os.environ.get("HYBRID_SESSIONS_TEST_REDIS", "redis://127.0.0.1:6379/1")

pytestmark = pytest.mark.slow


def _environ(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HYBRID_SESSIONS_BENCH_SQLITE": str(tmp_path / "bench.sqlite3"),
        "HYBRID_SESSIONS_BENCH_DB_NAME": f"bench{SUFFIX}",
        "HYBRID_SESSIONS_BENCH_REDIS": REDIS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _run(tmp_path: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=_environ(tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One quick run of the signed-cookie cases, its page written into a copy of the docs."""
    tmp = tmp_path_factory.mktemp("bench")
    docs = tmp / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("_build"))
    # What the pages include from beside the docs.
    (tmp / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "prometheus_recorder.py", tmp / "tests")
    _run(tmp, "benchmarks", "--quick", "--cases", "signed", "--sizes", "100",
         "--generator", "python", "--docs", str(docs))
    return docs, json.loads((docs / "_static" / "benchmarks.json").read_text())


def test_every_in_process_cycle_is_timed_at_both_levels(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    _docs, results = quick_run
    rows = {(r["level"], r["case"], r["size"], r["cycle"]): r
            for r in results["timing"]["results"]}
    assert set(rows) == {
        (level, case, 100, cycle)
        for level in cases.LEVELS
        for case in ("django.signed", "ours.signed")
        for cycle in cases.CYCLES
    }
    for row in rows.values():
        assert row["median_us"] > 0
        assert row["mean_us"] > 0
        assert row["stdev_us"] >= 0
        assert row["values"] >= 1


def test_io_is_counted_per_kind_of_request(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _docs, results = quick_run
    by_case = {r["case"]: r for r in results["iocounts"]}
    assert set(by_case) == {"django.signed", "ours.signed"}
    for row in by_case.values():
        assert row["status"] == "ok", row.get("message")
        assert set(row["counts"]) == {"new", "read", "write"}
        # A cookie engine has no server store: no query and no Redis command, ever.
        assert all(n == 0 for counts in row["counts"].values() for n in counts.values())
        assert row["cookie"]["header_bytes"] > row["cookie"]["value_bytes"] > 0


def test_end_to_end_measures_each_case_and_the_no_session_baseline(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    _docs, results = quick_run
    ee = results["endtoend"]
    assert ee["generator"] == "python"
    rows = {(r["case"], r["mode"]): r for r in ee["results"]}
    assert set(rows) == {(c, m) for c in ("none", "django.signed", "ours.signed")
                         for m in ("read", "write")}
    for (case, _mode), row in rows.items():
        assert row["status"] == "ok", row.get("message")
        assert row["rps"] > 0
        assert row["errors"] == 0
        assert ("vs_none" in row) == (case != "none")


def test_the_page_opens_with_every_target_and_builds_without_warnings(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    docs, _results = quick_run
    page = (docs / "benchmarks.rst").read_text()
    table = page.split(".. list-table::")[1]
    for target in cases.TARGETS:
        assert target.text in table
        assert target.limit_text in table
    # Only the signed-cookie targets at 100 B were measured in this run.
    assert table.count("not measured") == sum(
        (t.case, t.size) != ("ours.signed", 100) for t in cases.TARGETS)
    assert "--quick" in page
    for chart in ("targets", "time-100", "endtoend"):
        assert (docs / "_static" / f"benchmarks-{chart}.png").read_bytes()[:4] == b"\x89PNG"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(docs),
         str(docs / "_build")], capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stderr[-3000:]


def test_the_page_is_rebuilt_from_the_saved_numbers(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    docs, _results = quick_run
    written = (docs / "benchmarks.rst").read_text()
    _run(tmp_path, "benchmarks", "--report-only", "--docs", str(docs))
    assert (docs / "benchmarks.rst").read_text() == written


def _timing(ours: float, django: float) -> list[dict[str, Any]]:
    return [
        {"level": level, "case": case.name, "size": size, "cycle": cycle,
         "median_us": ours if case.ours else django, "stdev_us": 0.0}
        for level in cases.LEVELS for case in cases.CASES for size in case.sizes
        for cycle in cases.CYCLES
    ]


@pytest.mark.parametrize(("ours", "django", "met"), [(40.0, 100.0, True), (90.0, 100.0, False)])
def test_a_target_is_met_when_both_levels_are_within_its_limit(
    ours: float, django: float, met: bool,
) -> None:
    results = {"timing": {"results": _timing(ours, django)}}
    for verdict in report.verdicts(results):
        target = verdict["target"]
        if target.endtoend:
            assert verdict["status"] == "not measured"
            continue
        assert verdict["engine"] == verdict["request"] == pytest.approx(ours / django)
        expected = met or target.met(ours / django)
        assert verdict["status"] == ("met" if expected else "missed")


def test_lost_updates_are_counted_for_every_engine(tmp_path: Path) -> None:
    out = tmp_path / "lost.json"
    _run(tmp_path, "benchmarks.lost_updates", "--databases", "sqlite", "--modes", "threads",
         "--requests", "3", "--json", str(out))
    rows = json.loads(out.read_text())
    assert {r["engine"] for r in rows} >= {"Django db", "hybrid_sessions db"}
    for row in rows:
        assert row["attempted"] == 6
        assert 0 <= row["lost"] <= row["attempted"]
