"""``manage.py rundemo [addrport] [runserver options]``: a ready demo in one command.

Applies the migrations, creates the superuser ``demo`` (password ``demo``) if
missing, then runs the development server with the same arguments as
``runserver`` (default ``127.0.0.1:8000``). ``DEMO_SESSION_ENGINE`` picks the
session engine; an unknown value stops here, before anything is served.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.core.management import call_command
from django.core.management.base import CommandParser, DjangoHelpFormatter

from ... import engines

USERNAME = "demo"
PASSWORD = "demo"


def prepare_database() -> bool:
    """Migrate, and create the demo superuser; ``True`` if the user was created."""
    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model()._default_manager
    if users.filter(username=USERNAME).exists():
        return False
    users.create_superuser(USERNAME, "demo@example.com", PASSWORD)
    return True


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's help layout, with the epilog's lines kept as written."""


class Command(RunserverCommand):
    help = "Migrate, create the demo/demo superuser if missing, and run the development server."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault(
            "epilog",
            "The environment variable DEMO_SESSION_ENGINE chooses the session engine:\n"
            + engines.help_text(),
        )
        return super().create_parser(prog_name, subcommand, **kwargs)

    def handle(self, *args: Any, **options: Any) -> None:
        # The autoreloader runs this command again in a child process (RUN_MAIN);
        # the database is ready by then.
        if os.environ.get("RUN_MAIN") != "true":
            self.check()  # an unknown DEMO_SESSION_ENGINE stops here (demo.E001)
            created = prepare_database()
            note = "created" if created else "already there"
            self.stdout.write(f"Database ready; demo superuser {note}.")
            self.stdout.write(
                f"Session engine: {settings.DEMO_SESSION_ENGINE} ({settings.SESSION_ENGINE})."
            )
        super().handle(*args, **options)

    def on_bind(self, server_port: int) -> None:
        super().on_bind(server_port)
        host = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        if host == "0":
            host = "127.0.0.1"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nDemo site: {self.protocol}://{host}:{server_port}/\n"
                f"Log in as {USERNAME} / {PASSWORD} (a superuser: the admin is at /admin/).\n"
            )
        )
