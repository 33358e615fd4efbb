"""The benchmark harness still runs: one tiny in-process round of the db engines on SQLite.

It runs ``python -m benchmarks.inprocess`` as a site's developer would, in its
own process with its own settings and a temporary SQLite file, so a change
that breaks the harness fails here rather than on the next full benchmark run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_inprocess_harness_measures_our_db_engine_against_djangos(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "HYBRID_SESSIONS_BENCH_SQLITE": str(tmp_path / "bench.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--engines", "db.sqlite",
         "--rounds", "1", "-n", "2", "--sizes", "100,2048", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads(out.read_text())
    rows = {(r["case"], r["size"], r["cycle"]): r for r in results["results"]}
    assert set(rows) == {
        (case, size, cycle)
        for case in ("django.db.sqlite", "ours.db.sqlite")
        for size in (100, 2048)
        for cycle in ("load", "modify")
    }
    for row in rows.values():
        assert row["status"] == "ok", row["message"]
        assert row["n"] == 2
        assert len(row["samples_us"]) == 1
        assert row["median"] > 0
    ratios = {(r["case"], r["baseline"], r["size"], r["cycle"]) for r in results["ratios"]}
    assert ("ours.db.sqlite", "django.db.sqlite", 2048, "modify") in ratios
    assert results["payload_bytes"]["2048"] > 1500


def test_handler_harness_measures_a_read_inside_djangos_handler(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HYBRID_SESSIONS_BENCH_SQLITE": str(tmp_path / "bench.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.handler", "--engines", "signed",
         "--rounds", "2", "-n", "5", "--sizes", "100,20480"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads(proc.stdout)
    rows = {(r["case"], r["size"]): r for r in results["results"]}
    for case in ("none", "django.signed", "ours.signed"):
        row = rows[case, 100]
        assert row["status"] == "ok", row.get("message")
        assert len(row["samples_us"]) == 2
        assert row["median"] > 0
    # 20 KB does not fit in a cookie: that size is reported, the others still measured.
    assert rows["ours.signed", 20480]["status"] == "unavailable"
    assert "20480 B" in rows["ours.signed", 20480]["message"]
    ratios = {(r["case"], r["size"]): r for r in results["ratios"]}
    assert 0 < ratios["ours.signed", 100]["median"] < 1  # a session costs something
