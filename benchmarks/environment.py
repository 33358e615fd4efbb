"""The stores, the machine and the versions a run depends on; a case that cannot run is
reported with the reason while the others run."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import import_module, metadata
from pathlib import Path

from benchmarks.cases import Case

ROOT = Path(__file__).resolve().parent.parent


def case_environ(case: Case) -> dict[str, str]:
    """The environment of a child process that runs ``case`` with ``benchmarks.settings``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "HYBRID_SESSIONS_BENCH_CASE": case.name,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def run_child(args: list[str], case: Case | None = None, timeout: float = 600) -> str:
    """Run ``python ARGS`` from the repository root (as ``case``); its standard output."""
    env = case_environ(case) if case else {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"python {' '.join(args[:3])} failed: {done.stderr[-1500:]}")
    return done.stdout


def setup() -> None:
    """Configure Django in the harness's own process (the ``none`` case)."""
    if not os.environ.get("HYBRID_SESSIONS_BENCH_SQLITE"):
        fd, path = tempfile.mkstemp(prefix="hybrid_sessions_bench_", suffix=".sqlite3")
        os.close(fd)
        os.environ["HYBRID_SESSIONS_BENCH_SQLITE"] = path
    os.environ.pop("HYBRID_SESSIONS_BENCH_CASE", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    import django

    django.setup()


def create_database(server: str) -> None:
    """Create the benchmarks' database on ``server`` if missing (for Redis: reach it)."""
    from benchmarks import settings

    name = settings.DB_NAME
    if server == "postgres":
        import psycopg

        conf = settings.DATABASES["postgres"]
        with psycopg.connect(host=str(conf["HOST"]), user="postgres", dbname="postgres",
                             autocommit=True, connect_timeout=3) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    elif server == "mariadb":
        import MySQLdb  # type: ignore[import-untyped, unused-ignore]

        maria = MySQLdb.connect(host=str(settings.DATABASES["mariadb"]["HOST"]), user="root",
                                connect_timeout=3)
        try:
            maria.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        finally:
            maria.close()  # type: ignore[no-untyped-call, unused-ignore]
    elif server == "redis":
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()


def availability(cases: list[Case]) -> dict[str, str | None]:
    """For each case, ``None`` if it can run, else why not (server down, engine missing)."""
    servers: dict[str, str | None] = {}
    for server in sorted({s for c in cases for s in c.servers}):
        try:
            create_database(server)
            servers[server] = None
        except Exception as exc:
            servers[server] = f"{server} is not available ({type(exc).__name__}: {exc})"
    result: dict[str, str | None] = {}
    for case in cases:
        reason = next((servers[s] for s in case.servers if servers[s]), None)
        if reason is None and case.engine:
            try:
                import_module(case.engine).SessionStore  # noqa: B018
            except Exception as exc:
                reason = f"the engine does not import ({type(exc).__name__}: {exc})"
        result[case.name] = reason
    return result


def prepare_stores(cases: list[Case]) -> None:
    """Migrate the runnable cases' databases and remove the sessions earlier runs left."""
    from django.core.management import call_command
    from django.db import connections

    for alias in sorted({c.database for c in cases if c.database}):
        call_command("migrate", database=alias, verbosity=0, interactive=False)
        with connections[alias].cursor() as cursor:
            for table in ("django_session", "hybrid_sessions_session"):
                cursor.execute(f"DELETE FROM {table}")
    if any(c.redis for c in cases):
        clear_redis()
    connections.close_all()


def clear_redis() -> None:
    """Delete the benchmarks' own keys (their prefix), nothing else in the database."""
    from django_redis import get_redis_connection

    from benchmarks import settings

    client = get_redis_connection("default")
    for key in client.scan_iter(f"{settings.KEY_PREFIX}:*", count=1000):
        client.delete(key)


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (out.stdout or out.stderr).strip()


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next((f"{int(line.split()[1]) / 1024**2:.1f} GiB" for line in _read("/proc/meminfo")
                if line.startswith("MemTotal:")), "?")
    os_name = next((line.split("=", 1)[1].strip('"') for line in _read("/etc/os-release")
                    if line.startswith("PRETTY_NAME=")), platform.platform())
    return {"CPUs": str(os.cpu_count()), "CPU": cpu, "memory": mem, "OS": os_name,
            "kernel": platform.release()}


def _read(path: str) -> list[str]:
    with contextlib.suppress(OSError):
        return Path(path).read_text().splitlines()
    return []


def versions() -> dict[str, str]:
    """Every version the numbers depend on, servers included."""
    import django
    from django.db import connections

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    def server(alias: str, sql: str) -> str:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(sql)
                return str(cursor.fetchone()[0])
        except Exception:
            return "unavailable"

    redis_version = "unavailable"
    with contextlib.suppress(Exception):
        from django_redis import get_redis_connection

        redis_version = str(get_redis_connection("default").info("server")["redis_version"])
    commit = _run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD") or "unknown"
    if _run("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"):
        commit += " with local changes"
    wrk = shutil.which("wrk")
    found = {
        "hybrid_sessions": f"{dist('hybrid-sessions')} ({commit})",
        "Python": platform.python_version(),
        "Django": django.get_version(),
        **{name: dist(name) for name in ("PyJWT", "orjson", "redis", "hiredis", "django-redis",
                                         "psycopg", "gunicorn", "pyperf")},
        "PostgreSQL": server("postgres", "SHOW server_version").split(" ")[0],
        "Redis": redis_version,
        "wrk": (_run(wrk, "--version").splitlines() or ["?"])[0].split(" [")[0] if wrk else "none",
    }
    connections.close_all()
    return found
