"""Argument parsing shared by the session commands (not a command: the name starts with ``_``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


def user_from_argument(value: str) -> Any:
    """The user named by ``value``: a username first, else a primary key."""
    model = get_user_model()
    try:
        return model._default_manager.get_by_natural_key(value)
    except model.DoesNotExist:
        pass
    try:
        return model._default_manager.get(pk=value)
    except (model.DoesNotExist, ValidationError, ValueError, TypeError):
        raise CommandError(f"No user with the username or primary key {value!r}.") from None
