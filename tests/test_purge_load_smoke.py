"""The purge-under-load benchmark runs and reports, judged by shape, never by speed.

A tiny run (2,000 expired rows, two seconds of baseline) on PostgreSQL, the only
database the benchmark is written for: the purge ends exactly the expired rows,
the clients' and the live sessions stay, every window has its figures, and the
run's database is gone at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("HYBRID_SESSIONS_TEST_DB") != "postgres",
                       reason="the purge benchmark runs on PostgreSQL"),
]


def _run_databases() -> set[str]:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hybrid_sessions_purgeload_%'"
        ).fetchall()
    return {row[0] for row in rows}


def test_a_small_purge_under_load_reports_every_figure(tmp_path: Path) -> None:
    before = _run_databases()
    output = tmp_path / "purge_load.json"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.purge_load", "--rows", "2000", "--live", "50",
         "--duration", "2", "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(output.read_text())

    assert result["purge"]["matched"] == 2000
    assert result["purge"]["ended"] == 2000
    assert result["purge"]["peak_rss_mb"] > 0
    assert result["rows_left"] == result["rows_expected_left"] > 50
    for window in (result["before"], result["during"]):
        assert window["requests"] > 0
        assert window["errors"] == 0
        assert 0 < window["p50_ms"] <= window["p99_ms"] <= window["max_ms"]
    table = output.with_suffix(".rst").read_text()
    assert "Before the purge" in table
    assert "During the purge" in table
    assert "2,000 of 2,000" in table
    # Its own database is gone (another run on this server may hold one of its own).
    assert result["database"] not in _run_databases()
    assert result["database"] not in before
