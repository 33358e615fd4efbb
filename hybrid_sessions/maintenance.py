"""Purging sessions in bulk: expired, inactive, one user's, or all of them.

``manage.py hybrid_sessions_purge`` is a thin face over :func:`purge`, which a
site can also call from a task queue. Sessions are found a page at a time
through the store's listing and ended through the store (``delete_many``), the
same path the admin and the API take, so memory stays flat on any number of
sessions and every process learns that the sessions ended.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from . import api, inventory
from .signals import revocation_path
from .stores.base import SessionFilter

__all__ = ["PurgeResult", "parse_duration", "purge"]

_DURATION = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1d12h``, ``2w``, ``90m``, ``45s`` as a ``timedelta``."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (w, d, h, m, s), e.g. 30d or 12h."
        )
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if not total:
        raise ValueError(f"{text!r} is a duration of zero.")
    return total


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge found and, unless it was a dry run, ended."""

    matched: int
    ended: int
    dry_run: bool


@revocation_path("purge")
def purge(
    *,
    expired: bool = False,
    inactive_for: timedelta | None = None,
    user_id: str | None = None,
    everything: bool = False,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> PurgeResult:
    """End the sessions the criteria select; with none, the expired ones.

    The criteria narrow each other: ``expired`` and ``inactive_for`` and
    ``user_id`` select the sessions that meet all that are given; ``everything``
    selects every session and excludes the others. ``dry_run`` counts and ends
    nothing. ``progress`` is called with the number of sessions of each batch.
    """
    if everything and (expired or inactive_for or user_id):
        raise ValueError("Purging everything cannot be combined with other criteria.")
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    store = api.get_server_store()
    only_expired = expired or not (everything or inactive_for or user_id)
    filters = SessionFilter(
        expired=True if only_expired else None,
        user_ids=(user_id,) if user_id is not None else None,
        inactive_before=timezone.now() - inactive_for if inactive_for else None,
    )
    matched = ended = 0
    for page in inventory.iter_sessions(store, filters, batch_size):
        matched += len(page)
        if not dry_run:
            ended += store.delete_many([info.digest for info in page])
        if progress is not None:
            progress(len(page))
    if only_expired and not dry_run and not (inactive_for or user_id):
        # Redis expires sessions itself; this prunes what is left of their index entries.
        store.clear_expired()
    return PurgeResult(matched=matched, ended=ended, dry_run=dry_run)
