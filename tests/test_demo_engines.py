"""The demo's ``DEMO_SESSION_ENGINE``: short names, dotted paths, and a clear stop otherwise."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "testproject"
if str(DEMO_DIR) not in sys.path:
    sys.path.append(str(DEMO_DIR))

from demo import engines  # noqa: E402

NAMES = {
    "hybrid": ("hybrid_sessions.backends.hybrid", {}),
    "hybrid-redis": (
        "hybrid_sessions.backends.hybrid",
        {"HYBRID_SESSIONS_SPILL_ENGINE": "hybrid_sessions.backends.cache"},
    ),
    "db": ("hybrid_sessions.backends.db", {}),
    "cache": ("hybrid_sessions.backends.cache", {}),
    "signed_cookies": ("hybrid_sessions.backends.signed_cookies", {}),
}
REDIS_NAMES = {"cache", "hybrid-redis"}


def demo_settings(monkeypatch: pytest.MonkeyPatch, value: str | None) -> dict[str, Any]:
    """The demo's settings module as it reads with ``DEMO_SESSION_ENGINE=value``."""
    if value is None:
        monkeypatch.delenv("DEMO_SESSION_ENGINE", raising=False)
    else:
        monkeypatch.setenv("DEMO_SESSION_ENGINE", value)
    return runpy.run_path(str(DEMO_DIR / "testproject" / "settings.py"))


def manage(*args: str, engine: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEMO_SESSION_ENGINE": engine,
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, str(DEMO_DIR / "manage.py"), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize("name", list(NAMES))
def test_each_short_name_chooses_its_engine(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path, extra = NAMES[name]

    settings = demo_settings(monkeypatch, name)

    assert settings["SESSION_ENGINE"] == path
    assert {k: settings[k] for k in extra} == extra
    assert "HYBRID_SESSIONS_SPILL_ENGINE" in settings or not extra
    redis = settings["CACHES"]["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert redis is (name in REDIS_NAMES)
    assert engines.problem(name) is None


def test_the_default_is_the_hybrid_engine_on_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = demo_settings(monkeypatch, None)
    assert settings["SESSION_ENGINE"] == "hybrid_sessions.backends.hybrid"
    assert "HYBRID_SESSIONS_SPILL_ENGINE" not in settings
    assert settings["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


@pytest.mark.parametrize(
    "path",
    ["hybrid_sessions.backends.cache", "django.contrib.sessions.backends.db",
     "django.contrib.sessions.backends.cached_db"],
)
def test_a_dotted_path_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    settings = demo_settings(monkeypatch, path)

    assert settings["SESSION_ENGINE"] == path
    assert engines.problem(path) is None
    redis = settings["CACHES"]["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert redis is ("cache" in path)


@pytest.mark.parametrize(
    "value", ["signed_cookie", "redis", "hybrid_sessions.backends.nope", "django.conf"]
)
def test_an_unknown_value_names_the_choices(value: str) -> None:
    message = engines.problem(value)

    assert message is not None
    assert repr(value) in message
    for name in NAMES:
        assert f"\n  {name} " in message


def test_manage_py_check_fails_on_an_unknown_engine(tmp_path: Path) -> None:
    result = manage("check", engine="signed_cookie", tmp_path=tmp_path)

    assert result.returncode == 1
    assert "(demo.E001) DEMO_SESSION_ENGINE='signed_cookie'" in result.stderr
    assert "signed_cookies  the whole session in a signed cookie" in result.stderr


def test_rundemo_stops_before_serving_on_an_unknown_engine(tmp_path: Path) -> None:
    result = manage("rundemo", "127.0.0.1:0", "--noreload", engine="nope", tmp_path=tmp_path)

    assert result.returncode == 1
    assert "demo.E001" in result.stderr
    assert "Demo site:" not in result.stdout
    assert not (tmp_path / "demo.sqlite3").exists()  # stopped before migrating


def test_manage_py_check_passes_on_a_short_name(tmp_path: Path) -> None:
    result = manage("check", engine="signed_cookies", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_rundemo_help_lists_the_choices(tmp_path: Path) -> None:
    result = manage("rundemo", "--help", engine="hybrid", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "DEMO_SESSION_ENGINE" in result.stdout
    for name in NAMES:
        assert f"\n  {name} " in result.stdout
