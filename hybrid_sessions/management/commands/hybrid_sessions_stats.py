"""``manage.py hybrid_sessions_stats [--top N] [--json]``: figures about the sessions."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import HybridSessionsError
from ...statistics import SessionStats, collect


class Command(BaseCommand):
    help = (
        "Sessions by state and by where their data lives, data size percentiles, the share "
        "kept in the cookie, and the users with the most sessions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--top", type=int, default=10, help="Users listed (10).")
        parser.add_argument("--json", action="store_true", help="One JSON object, for machines.")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Sessions read per page (1000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["top"] < 0 or options["batch_size"] < 1:
            raise CommandError("--top must be at least 0 and --batch-size at least 1.")
        try:
            stats = collect(top=options["top"], batch_size=options["batch_size"])
        except HybridSessionsError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(stats.as_dict(), indent=2))
        else:
            self.stdout.write("\n".join(_text(stats)))


def _text(stats: SessionStats) -> list[str]:
    storages = list(stats.by_storage)
    lines = [f"Engine: {stats.engine}", f"Sessions: {stats.total}", ""]
    lines.append("state".ljust(12) + "".join(s.rjust(10) for s in [*storages, "total"]))
    for state, row in stats.by_state_and_storage.items():
        cells = [*(row[s] for s in storages), stats.by_state[state]]
        lines.append(state.ljust(12) + "".join(str(c).rjust(10) for c in cells))
    lines.append(
        "total".ljust(12)
        + "".join(str(c).rjust(10) for c in [*stats.by_storage.values(), stats.total])
    )
    lines.append("")
    lines.append(
        f"Kept in the cookie: {stats.cookie_share:.1%}; data on the server: "
        f"{stats.server_share:.1%}"
    )
    if stats.size_percentiles:
        figures = ", ".join(f"{k} {v} B" for k, v in stats.size_percentiles.items())
        lines.append(f"Data on the server: {figures}, max {stats.size_max} B, "
                     f"total {stats.size_total} B")
    if stats.top_users:
        lines += ["", "Users with the most live sessions:"]
        for entry in stats.top_users:
            name = entry["username"] or f"#{entry['user_id']} (no such user)"
            lines.append(f"  {entry['sessions']:>6}  {name}")
    return lines
