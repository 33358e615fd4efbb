"""Sends every model to the active case's database alias.

Django's ``db`` engine and ours both ask the router for each statement, so
switching the alias between batches switches the database both use, at the
same (small) cost for both.
"""

from __future__ import annotations

from typing import Any


class CaseRouter:
    """Route reads, writes and migrations to :attr:`alias` (the settings' case until set)."""

    alias: str | None = None

    @classmethod
    def activate(cls, alias: str) -> None:
        cls.alias = alias

    def _alias(self) -> str:
        if CaseRouter.alias is None:
            from benchmarks.settings import CASE

            CaseRouter.alias = CASE.alias
        return CaseRouter.alias

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self._alias()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self._alias()

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return True
