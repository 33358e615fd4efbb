"""Each configuration mistake is reported by its own check id."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from hybrid_sessions.checks import check_settings


def _ids(**overrides: Any) -> list[str | None]:
    with override_settings(**overrides):
        return [message.id for message in check_settings()]


def test_the_default_settings_pass() -> None:
    assert _ids() == []


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"HYBRID_SESSIONS_JWT_ALGORITHM": "none"}, "hybrid_sessions.E001"),
        ({"HYBRID_SESSIONS_MAX_PER_USER": 0}, "hybrid_sessions.E014"),
        ({"HYBRID_SESSIONS_MAX_PER_USER": -3}, "hybrid_sessions.E014"),
        ({"HYBRID_SESSIONS_MAX_PER_USER": "5"}, "hybrid_sessions.E014"),
        ({"HYBRID_SESSIONS_MAX_PER_USER": True}, "hybrid_sessions.E014"),
        ({"HYBRID_SESSIONS_ADMIN_MASKED_KEYS": "token|("}, "hybrid_sessions.E015"),
        ({"HYBRID_SESSIONS_ADMIN_MASKED_KEYS": 42}, "hybrid_sessions.E015"),
        ({"HYBRID_SESSIONS_JWT_ALGORITHM": "RS256"}, "hybrid_sessions.E001"),
        ({"HYBRID_SESSIONS_COOKIE_MAX_BYTES": "lots"}, "hybrid_sessions.E002"),
        ({"HYBRID_SESSIONS_COOKIE_MAX_BYTES": 100}, "hybrid_sessions.E002"),
        ({"HYBRID_SESSIONS_COOKIE_MAX_BYTES": 511}, "hybrid_sessions.E002"),
        ({"HYBRID_SESSIONS_COOKIE_MAX_BYTES": 8192}, "hybrid_sessions.W003"),
        ({"HYBRID_SESSIONS_INLINE_MAX_BYTES": -1}, "hybrid_sessions.E004"),
        (
            {"HYBRID_SESSIONS_INLINE_MAX_BYTES": 4000, "HYBRID_SESSIONS_COOKIE_MAX_BYTES": 3000},
            "hybrid_sessions.E005",
        ),
        ({"HYBRID_SESSIONS_SPILL_ENGINE": "django.contrib.sessions.backends.db"},
         "hybrid_sessions.E006"),
        (
            {"SESSION_ENGINE": "hybrid_sessions.backends.cache", "SESSION_CACHE_ALIAS": "nope"},
            "hybrid_sessions.E007",
        ),
        (
            {
                "SESSION_ENGINE": "hybrid_sessions.backends.cache",
                "SESSION_CACHE_ALIAS": "files",
                "CACHES": {
                    "files": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                              "LOCATION": "/tmp/x"}
                },
            },
            "hybrid_sessions.E016",
        ),
        (
            {"SESSION_ENGINE": "hybrid_sessions.backends.cache", "SESSION_CACHE_ALIAS": "local"},
            "hybrid_sessions.W008",
        ),
        (
            {
                "SESSION_ENGINE": "hybrid_sessions.backends.hybrid",
                "HYBRID_SESSIONS_SPILL_ENGINE": "hybrid_sessions.backends.cache",
                "SESSION_CACHE_ALIAS": "local",
            },
            "hybrid_sessions.W008",
        ),
        ({"HYBRID_SESSIONS_ON_STORE_ERROR": "ignore"}, "hybrid_sessions.E009"),
        ({"HYBRID_SESSIONS_REVALIDATE_SECONDS": -5}, "hybrid_sessions.E010"),
        ({"HYBRID_SESSIONS_CLEAR_EXPIRED_BATCH_SIZE": 0}, "hybrid_sessions.E011"),
        ({"HYBRID_SESSIONS_SAVE_MAX_RETRIES": 0}, "hybrid_sessions.E012"),
        (
            {
                "SESSION_ENGINE": "hybrid_sessions.backends.hybrid",
                "MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"],
            },
            "hybrid_sessions.W018",
        ),
        (
            {"SESSION_ENGINE": "hybrid_sessions.backends.hybrid", "HYBRID_SESSIONS_FEED": "all"},
            "hybrid_sessions.E019",
        ),
        (
            {
                "SESSION_ENGINE": "hybrid_sessions.backends.hybrid",
                "HYBRID_SESSIONS_SERVER_KEYS": "attempts",
            },
            "hybrid_sessions.E017",
        ),
        (
            {
                "SESSION_ENGINE": "hybrid_sessions.backends.hybrid",
                "HYBRID_SESSIONS_SERVER_KEYS": ["_auth_user_id"],
            },
            "hybrid_sessions.E017",
        ),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": 1023}, "hybrid_sessions.E024"),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": 0}, "hybrid_sessions.E024"),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": -4096}, "hybrid_sessions.E024"),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": "4096"}, "hybrid_sessions.E024"),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": 4096.0}, "hybrid_sessions.E024"),
        ({"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": True}, "hybrid_sessions.E024"),
    ],
)
def test_a_bad_setting_is_reported_by_its_id(overrides: dict[str, Any], check_id: str) -> None:
    assert check_id in _ids(**overrides)


def test_each_check_id_names_one_problem() -> None:
    """Ids are unique per problem: the docs list each once."""
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "checks.rst").read_text()
    ids = [line.strip("`") for line in docs.splitlines() if line.startswith("``hybrid_sessions.")]
    assert len(ids) == len(set(ids))


def test_the_hybrid_with_its_middleware_passes() -> None:
    assert _ids(SESSION_ENGINE="hybrid_sessions.backends.hybrid") == []


def test_a_redis_store_on_django_redis_passes() -> None:
    assert _ids(SESSION_ENGINE="hybrid_sessions.backends.cache") == []


def test_the_checks_run_with_manage_py_check() -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(HYBRID_SESSIONS_JWT_ALGORITHM="none"), pytest.raises(SystemCheckError):
        call_command("check")


@pytest.mark.parametrize(
    "overrides",
    [
        {"HYBRID_SESSIONS_MAX_PER_USER": None},
        {"HYBRID_SESSIONS_MAX_PER_USER": 1},
        {"HYBRID_SESSIONS_MAX_PER_USER": 5},
        {"HYBRID_SESSIONS_ADMIN_MASKED_KEYS": None},
        {"HYBRID_SESSIONS_ADMIN_MASKED_KEYS": r"token|^card_"},
        {"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": None},
        {"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": 1024},
        {"HYBRID_SESSIONS_REQUEST_HEADERS_MAX_BYTES": 8190},
    ],
)
def test_good_limits_and_mask_patterns_pass(overrides: dict[str, Any]) -> None:
    assert _ids(**overrides) == []
