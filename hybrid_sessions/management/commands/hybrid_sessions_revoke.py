"""``manage.py hybrid_sessions_revoke --user <username|pk>``: end every session of a user."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import api
from ...exceptions import RevocationNotSupported
from ...signals import revocation_path
from ._arguments import user_from_argument


class Command(BaseCommand):
    help = "Revoke every session of one user, on the server store of SESSION_ENGINE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", required=True, help="The user's username, or else primary key."
        )

    @revocation_path("command")
    def handle(self, *args: Any, **options: Any) -> None:
        user = user_from_argument(options["user"])
        try:
            count = api.revoke_all_sessions(user)
        except RevocationNotSupported as exc:
            raise CommandError(str(exc)) from exc
        noun = "session" if count == 1 else "sessions"
        self.stdout.write(f"Revoked {count} {noun} of {user.get_username()!r}.")
