"""The relational store's hot statements, compiled once per connection.

The ORM rebuilds and recompiles a query on every call, which costs several
times the statement's own round trip for a primary-key lookup. These are built
once per connection from the model's metadata, in that connection's dialect.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.signals import setting_changed
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["RAW", "Statements", "as_bytes", "listening_connection", "statements_for"]


def as_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return bytes(value)


class Statements:
    """The hot statements in one connection's SQL dialect, built once per connection.

    The ORM rebuilds and recompiles a query on every call, which costs several
    times the statement's own round trip for a primary-key lookup; these are
    compiled once. Values pass through the fields' own adapters and results
    through the backend's own converters, exactly as the ORM would apply them,
    so types (``memoryview`` data, aware datetimes, UUID user keys) come out the
    same on every backend.
    """

    def __init__(self, connection: BaseDatabaseWrapper, model: Any) -> None:
        meta = model._meta
        qn = connection.ops.quote_name
        self.connection = connection
        self.fields = {name: meta.get_field(name) for name in (
            "key_digest", "data", "version", "user", "created_at", "last_activity",
            "expire_date", "ip_address", "user_agent",
        )}
        # Only the model's own table and column names are interpolated, quoted by
        # the backend; every value is a parameter.
        table = qn(meta.db_table)
        col = {name: qn(field.column) for name, field in self.fields.items()}
        live = f"{col['key_digest']} = %s AND {col['expire_date']} > %s"
        # A live record, with the times its idle and absolute timeouts are measured from.
        self.select = (
            f"SELECT {col['data']}, {col['version']}, {col['expire_date']}, "  # noqa: S608
            f"{col['user']}, {col['created_at']}, {col['last_activity']} FROM {table} WHERE {live}"
        )
        self.exists = f"SELECT 1 FROM {table} WHERE {live}"  # noqa: S608
        common = f"{col['expire_date']} = %s, {col['last_activity']} = %s"
        optional = {
            (ip, ua): common
            + (f", {col['ip_address']} = %s" if ip else "")
            + (f", {col['user_agent']} = %s" if ua else "")
            for ip in (False, True) for ua in (False, True)
        }
        self.touch = {
            k: f"UPDATE {table} SET {v} WHERE {live}"  # noqa: S608
            for k, v in optional.items()
        }
        self.cas = {
            k: (
                f"UPDATE {table} SET {col['data']} = %s, {col['version']} = %s, "  # noqa: S608
                f"{col['user']} = %s, {v} WHERE {live} AND {col['version']} = %s"
            )
            for k, v in optional.items()
        }
        # Removing returns what was removed (PostgreSQL, SQLite 3.35+, MariaDB
        # 10.5+); ``notify`` variants also publish on the feed (PostgreSQL).
        self.returning = connection.vendor in ("postgresql", "sqlite") or bool(
            getattr(connection, "mysql_is_mariadb", False)
        )
        self.notifies = connection.vendor == "postgresql"
        removed = (
            f"{col['data']}, {col['version']}, {col['expire_date']}, {col['user']}, "
            f"{col['created_at']}, {col['last_activity']}"
        )
        self.pop = f"DELETE FROM {table} WHERE {col['key_digest']} = %s RETURNING {removed}"  # noqa: S608
        self.pop_notify = (
            f"WITH d AS ({self.pop}, {col['key_digest']}) "  # noqa: S608
            f"SELECT {removed}, pg_notify(%s, {col['key_digest']} || ':0') FROM d"
        )
        self.cas_notify = {
            k: (
                f"WITH u AS ({v} RETURNING {col['key_digest']}, {col['version']}) "  # noqa: S608
                f"SELECT pg_notify(%s, {col['key_digest']} || ':' || {col['version']}) FROM u"
            )
            for k, v in self.cas.items()
        }
        self.delete_user = f"DELETE FROM {table} WHERE {col['user']} = %s"  # noqa: S608
        self._delete_in = f"DELETE FROM {table} WHERE {col['key_digest']} IN "  # noqa: S608
        self.keep = f" AND {col['key_digest']} <> %s"
        self.returning_digest = f" RETURNING {col['key_digest']}"
        self.notify_each = (
            "WITH d AS ({}) "  # noqa: S608
            f"SELECT {col['key_digest']}, pg_notify(%s, {col['key_digest']} || ':0') FROM d"
        )
        self.converters = [
            self._converters(self.fields[name])
            for name in ("data", "version", "expire_date", "user", "created_at", "last_activity")
        ]

    def delete_many(self, count: int) -> str:
        """``DELETE`` of ``count`` sessions by digest (add ``returning_digest`` to read them)."""
        return self._delete_in + "(" + ", ".join(["%s"] * count) + ")"

    def _converters(self, field: Any) -> tuple[Any, list[Any]]:
        column = field.get_col(field.model._meta.db_table)
        return column, [
            *self.connection.ops.get_db_converters(column),
            *column.get_db_converters(self.connection),
        ]

    def prep(self, name: str, value: Any) -> Any:
        return self.fields[name].get_db_prep_value(value, self.connection, prepared=False)

    def now(self, value: datetime) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    def row(self, row: Sequence[Any]) -> list[Any]:
        values = []
        connection = self.connection
        for value, (column, converters) in zip(row, self.converters, strict=True):
            for converter in converters:
                value = converter(value, column, connection)
            values.append(value)
        return values


class _Raw:
    """Rows the ORM has already converted."""

    @staticmethod
    def row(row: Sequence[Any]) -> list[Any]:
        return list(row)


RAW: Any = _Raw()


def listening_connection(alias: str) -> Any:
    """A connection of the feed's own to the database behind ``alias`` (autocommit)."""
    import psycopg

    params = dict(connections[alias].get_connection_params())
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return psycopg.connect(autocommit=True, **params)


_statements: weakref.WeakKeyDictionary[BaseDatabaseWrapper, Statements] = (
    weakref.WeakKeyDictionary()
)


def _forget_statements(**kwargs: Any) -> None:
    """Rebuild after any settings change: the converters depend on ``USE_TZ``, for one."""
    _statements.clear()


setting_changed.connect(_forget_statements, dispatch_uid="hybrid_sessions_statements")


def statements_for(connection: BaseDatabaseWrapper, model: Any) -> Statements:
    """The compiled statements of ``connection`` (built on first use)."""
    statements = _statements.get(connection)
    if statements is None:
        statements = _statements[connection] = Statements(connection, model)
    return statements
