"""A session's user link never makes a login fail.

Some test suites swap ``AUTH_USER_MODEL`` at run time, to a model whose primary
key (here a UUID) does not fit the session table's user column, which the
migration made for the user model of the time. The login then succeeds, the
session is kept without its user link, and a warning says why.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Self

import pytest
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.test import Client, override_settings

from hybrid_sessions import api
from hybrid_sessions.models import Session
from tests.engines import ENGINES, Engine


class UUIDUser(AbstractBaseUser):
    """A user model with a UUID key; its table is made with the test database."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    username = models.CharField(max_length=50, unique=True)

    objects: ClassVar[BaseUserManager[Self]] = BaseUserManager()
    USERNAME_FIELD = "username"

    class Meta:
        app_label = "sessions_tests"  # an installed app without migrations: syncdb makes it


DATABASE_ENGINES = [e for e in ENGINES if e.server_side and not e.needs_redis]


@pytest.mark.parametrize("engine", DATABASE_ENGINES, ids=[e.name for e in DATABASE_ENGINES])
def test_a_user_whose_id_does_not_fit_the_column_still_logs_in(
    db: Any, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(
        AUTH_USER_MODEL="sessions_tests.UUIDUser", SESSION_ENGINE=engine.path, **engine.settings
    ):
        user = UUIDUser.objects.create(username="uuid-user")
        user.set_password("pw")
        user.save()
        client = Client()

        assert client.login(username="uuid-user", password="pw")

        assert client.get("/whoami/").content.decode() == "uuid-user"
        assert client.get("/write/", {"colour": "teal"}).status_code == 200
        assert client.get("/read/").json()["colour"] == "teal"
        (row,) = Session.objects.all()
        assert row.user_id is None
        assert api.list_sessions(user) == []  # there is no link to list by
        assert "does not fit the session table's user column" in caplog.text
        assert str(user.pk) in caplog.text
