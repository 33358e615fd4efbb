"""The test matrix: each Python/Django pair on SQLite, PostgreSQL and MariaDB; lint; docs.

``nox`` runs everything. ``nox -s tests`` only the tests; choose databases with
``HYBRID_SESSIONS_TEST_DATABASES=sqlite,postgres`` (default: all three). Outside CI a
database server that is not running is skipped with a message; with ``CI=true`` it
fails the run, and so does a missing Python interpreter.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import nox

os.environ.setdefault("PYENV_VERSION", "3.11.7:3.12.1:3.13.0")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
nox.options.sessions = ["tests", "lint", "docs"]
nox.options.error_on_missing_interpreters = IN_CI
nox.options.reuse_existing_virtualenvs = True

#: Names the test databases: one developer's runs never share another's.
SUFFIX = os.environ.get("HYBRID_SESSIONS_TEST_SUFFIX", "_nox")
MATRIX = [("3.11", "5.2"), ("3.12", "6.0"), ("3.13", "6.1")]
SERVERS = {"postgres": ("127.0.0.1", 5432), "mariadb": ("127.0.0.1", 3306)}
DATABASES = [
    db.strip()
    for db in os.environ.get("HYBRID_SESSIONS_TEST_DATABASES", "sqlite,postgres,mariadb").split(",")
    if db.strip()
]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 2):
            return True
    except OSError:
        return False


def _mysqlclient_buildable() -> bool:
    """Whether pip can build mysqlclient here: it needs pkg-config and the client library."""
    pkg_config = shutil.which("pkg-config")
    return pkg_config is not None and any(
        subprocess.run([pkg_config, "--exists", name], check=False).returncode == 0
        for name in ("mysqlclient", "mariadb", "libmariadb")
    )


def _unavailable(session: nox.Session, message: str) -> None:
    if IN_CI:
        session.error(message + " (CI=true: a missing server is a failure)")
    session.warn(message + "; skipping it")


@nox.session
@nox.parametrize("python,django", MATRIX, ids=[f"py{p}-django{d}" for p, d in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    """The whole test suite on one Python/Django pair, once per database."""
    session.install("-e", ".[test]", f"django~={django}.0")
    databases = list(DATABASES)
    if "mariadb" in databases:
        hint = "MariaDB is not tested: mysqlclient needs libmariadb-dev and pkg-config to build "
        hint += "(Debian: apt-get install libmariadb-dev pkg-config)"
        if not _mysqlclient_buildable():
            databases.remove("mariadb")
            _unavailable(session, hint)
        else:
            try:
                session.install("mysqlclient>=2.2", silent=True)
            except nox.command.CommandFailed:
                databases.remove("mariadb")
                _unavailable(session, hint)
    for db in databases:
        if db in SERVERS and not _reachable(*SERVERS[db]):
            _unavailable(session, f"{db} is not reachable on {SERVERS[db][0]}:{SERVERS[db][1]}")
            continue
        session.log(f"--- {db} ---")
        session.run(
            "pytest", *session.posargs,
            env={"HYBRID_SESSIONS_TEST_DB": db, "HYBRID_SESSIONS_TEST_SUFFIX": SUFFIX},
        )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, and mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".[lint]", "django~=5.2.0")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The Sphinx docs build without warnings, every cross-reference resolved (nitpicky)."""
    session.install("-e", ".[docs]", "django~=5.2.0")
    session.run("sphinx-build", "-n", "-W", "-q", "-b", "html", "docs", "docs/_build/html")
