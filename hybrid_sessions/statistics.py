"""Figures about the sessions of a store, for ``manage.py hybrid_sessions_stats``.

One pass over the store's paged listing: counts by state and by where the data
lives, percentiles of the data kept on the server, the share of sessions kept
in the cookie, and the users with the most sessions. Memory grows with the
number of sessions only by one integer each (the sizes, for the percentiles)
and one counter entry per user.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import api, inventory
from .stores.base import SessionFilter

__all__ = ["PERCENTILES", "SessionStats", "collect"]

PERCENTILES = (50, 90, 99)


@dataclass
class SessionStats:
    """The figures; ``as_dict()`` is what ``--json`` prints."""

    engine: str
    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    by_storage: dict[str, int] = field(default_factory=dict)
    by_state_and_storage: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Bytes of data kept on the server, over the sessions that keep any.
    size_percentiles: dict[str, int] = field(default_factory=dict)
    size_max: int = 0
    size_total: int = 0
    #: Fractions of all sessions (0 to 1): data in the cookie, data spilled to the server.
    cookie_share: float = 0.0
    server_share: float = 0.0
    top_users: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(ordered: array[int], pct: int) -> int:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return int(ordered[rank - 1])


def _usernames(user_ids: list[str]) -> dict[str, str]:
    model = get_user_model()
    pks = {}
    for user_id in user_ids:
        try:
            pks[model._meta.pk.to_python(user_id)] = user_id  # type: ignore[union-attr, unused-ignore]
        except ValidationError:
            continue
    users = model._default_manager.in_bulk(list(pks))
    return {pks[pk]: user.get_username() for pk, user in users.items()}


def collect(top: int = 10, batch_size: int = 1000) -> SessionStats:
    """Walk every session of the active engine's store (expired ones it still keeps too)."""
    from django.conf import settings

    store = api.get_server_store()
    stats = SessionStats(engine=settings.SESSION_ENGINE)
    states: Counter[str] = Counter()
    storages: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    users: Counter[str] = Counter()
    sizes: array[int] = array("q")
    now = timezone.now()
    for page in inventory.iter_sessions(store, SessionFilter(expired=None), batch_size):
        for info in page:
            state, storage = inventory.state(info, now), inventory.storage(info)
            states[state] += 1
            storages[storage] += 1
            pairs[state, storage] += 1
            if info.data_on_server:
                sizes.append(info.size)
            if info.user_id is not None and state != "expired":
                users[info.user_id] += 1
    stats.total = sum(states.values())
    stats.by_state = {name: states[name] for name in inventory.STATES}
    stats.by_storage = {name: storages[name] for name in inventory.STORAGES}
    stats.by_state_and_storage = {
        state: {storage: pairs[state, storage] for storage in inventory.STORAGES}
        for state in inventory.STATES
    }
    if sizes:
        ordered = array("q", sorted(sizes))
        stats.size_percentiles = {f"p{p}": _percentile(ordered, p) for p in PERCENTILES}
        stats.size_max = int(ordered[-1])
        stats.size_total = int(sum(ordered))
    if stats.total:
        stats.cookie_share = storages["cookie"] / stats.total
        stats.server_share = storages["server"] / stats.total
    leaders = users.most_common(top)
    names = _usernames([user_id for user_id, _count in leaders])
    stats.top_users = [
        {"user_id": user_id, "username": names.get(user_id), "sessions": count}
        for user_id, count in leaders
    ]
    return stats
