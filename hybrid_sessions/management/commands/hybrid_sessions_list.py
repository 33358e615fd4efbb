"""``manage.py hybrid_sessions_list --user <username|pk>``: a user's live sessions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import api
from ...exceptions import RevocationNotSupported
from ._arguments import user_from_argument

COLUMNS = ("digest", "created", "last activity", "expires", "size", "ip address", "user agent")


class Command(BaseCommand):
    help = "List the live sessions of one user, most recently active first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", required=True, help="The user's username, or else primary key."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_from_argument(options["user"])
        try:
            sessions = api.list_sessions(user)
        except RevocationNotSupported as exc:
            raise CommandError(str(exc)) from exc
        if not sessions:
            self.stdout.write(f"{user.get_username()!r} has no live sessions.")
            return
        self.stdout.write("\t".join(COLUMNS))
        for info in sessions:
            row = (
                info.digest,
                info.created_at.isoformat(timespec="seconds"),
                info.last_activity.isoformat(timespec="seconds"),
                info.expires_at.isoformat(timespec="seconds"),
                str(info.size),
                info.ip_address or "-",
                info.user_agent or "-",
            )
            self.stdout.write("\t".join(row))
