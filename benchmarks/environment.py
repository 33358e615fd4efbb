"""The stores, the machine and the versions: everything a run depends on.

A case whose server is down or whose engine does not import yet is reported as
"not available" with the reason; every other case still runs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.cases import Case

ROOT = Path(__file__).resolve().parent.parent


def ensure_sqlite_path() -> str:
    """A fresh temporary SQLite file for this run, shared with child processes."""
    path = os.environ.get("HYBRID_SESSIONS_BENCH_SQLITE")
    if path:
        return path
    fd, path = tempfile.mkstemp(prefix="hybrid_sessions_bench_", suffix=".sqlite3")
    os.close(fd)
    os.environ["HYBRID_SESSIONS_BENCH_SQLITE"] = path

    def _remove() -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)

    atexit.register(_remove)
    return path


def case_environ(case: Case) -> dict[str, str]:
    """The environment of a child process that runs ``case`` with ``benchmarks.settings``."""
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "HYBRID_SESSIONS_BENCH_CASE": case.name,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def setup() -> None:
    """Configure Django for the harness (call before importing models)."""
    ensure_sqlite_path()
    from benchmarks import setup_django

    setup_django()


# -- servers ------------------------------------------------------------------


def _check_postgres() -> str | None:
    from django.conf import settings

    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    conf: dict[str, Any] = settings.DATABASES["postgres"]
    try:
        with psycopg.connect(
            host=conf["HOST"], port=conf["PORT"], user=conf["USER"], dbname="postgres",
            autocommit=True, connect_timeout=3,
        ) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [conf["NAME"]])
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{conf["NAME"]}"')
    except Exception as exc:
        return f"PostgreSQL is not reachable ({exc})"
    return None


def _check_mariadb() -> str | None:
    from django.conf import settings

    try:
        import MySQLdb
    except ImportError as exc:
        return f"mysqlclient is not installed ({exc})"
    conf: dict[str, Any] = settings.DATABASES["mariadb"]
    try:
        with contextlib.closing(
            MySQLdb.connect(
                host=conf["HOST"], port=int(conf["PORT"]), user=conf["USER"],
                password=conf["PASSWORD"], connect_timeout=3,
            )
        ) as conn:
            conn.cursor().execute(
                f"CREATE DATABASE IF NOT EXISTS `{conf['NAME']}` CHARACTER SET utf8mb4"
            )
    except Exception as exc:
        return f"MariaDB is not reachable ({exc})"
    return None


def _check_redis() -> str | None:
    from django.conf import settings

    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis is not reachable ({exc})"
    return None


_CHECKS = {"postgres": _check_postgres, "mariadb": _check_mariadb, "redis": _check_redis}


def availability(cases: Iterable[Case]) -> dict[str, str | None]:
    """For each case, ``None`` if it can run, else why not (server down, engine missing)."""
    cases = list(cases)
    servers = {s: _CHECKS[s]() for s in sorted({s for c in cases for s in c.servers})}
    result: dict[str, str | None] = {}
    for case in cases:
        reason = next((servers[s] for s in case.servers if servers[s]), None)
        if reason is None:
            error = case.import_error()
            reason = f"not available: {error}" if error else None
        result[case.name] = reason
    return result


def prepare_stores(cases: Iterable[Case]) -> None:
    """Migrate the databases the runnable cases use and empty every session store."""
    from django.core.management import call_command
    from django.db import connections

    cases = list(cases)
    for alias in sorted({c.alias for c in cases if c.engine}):
        call_command("migrate", database=alias, verbosity=0, interactive=False)
        with connections[alias].cursor() as cursor:
            for table in ("django_session", "hybrid_sessions_session"):
                cursor.execute(f"DELETE FROM {table}")
    if any(c.redis for c in cases):
        from django.conf import settings
        from django_redis import get_redis_connection

        # Only the benchmark's own keys (its KEY_PREFIX): the database may be shared.
        redis = get_redis_connection("default")
        prefix = settings.CACHES["default"]["KEY_PREFIX"]
        batch: list[bytes] = []
        for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                redis.unlink(*batch)
                batch = []
        if batch:
            redis.unlink(*batch)


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


# -- what the report prints about the machine and the versions ------------------


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout or out.stderr).strip()


def machine() -> dict[str, Any]:
    """CPU count and model, memory, OS: what a reader needs to compare numbers."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "nproc": _run("nproc") or str(os.cpu_count()),
        "cpu": cpu_model or platform.processor(),
        "memory": f"{mem_gib:.1f} GiB",
        "os": os_name,
        "kernel": platform.release(),
    }


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _server_version(alias: str, sql: str) -> str:
    from django.db import connections

    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
    except Exception:  # the report says "unavailable" instead
        return "unavailable"
    return str(row[0]) if row else "unavailable"


def versions() -> dict[str, str]:
    """Every version the numbers depend on, servers included."""
    import django

    redis_version = "unavailable"
    with contextlib.suppress(Exception):
        from django_redis import get_redis_connection

        redis_version = str(get_redis_connection("default").info("server")["redis_version"])
    wrk = shutil.which("wrk")
    commit = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    if commit and _run("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"):
        commit += " (with local changes)"
    return {
        "hybrid_sessions": f"{_dist('hybrid-sessions')} at {commit or 'unknown commit'}",
        "Python": platform.python_version(),
        "Django": django.get_version(),
        "PyJWT": _dist("PyJWT"),
        "cryptography": _dist("cryptography"),
        "redis-py": _dist("redis"),
        "hiredis": _dist("hiredis"),
        "django-redis": _dist("django-redis"),
        "psycopg": _dist("psycopg"),
        "mysqlclient": _dist("mysqlclient"),
        "gunicorn": _dist("gunicorn"),
        "PostgreSQL": _server_version("postgres", "SHOW server_version"),
        "MariaDB": _server_version("mariadb", "SELECT VERSION()"),
        "SQLite": _server_version("default", "SELECT sqlite_version()"),
        "Redis": redis_version,
        "wrk": (_run(wrk, "--version").splitlines() or ["?"])[0].split(" [")[0] if wrk else "none",
    }
