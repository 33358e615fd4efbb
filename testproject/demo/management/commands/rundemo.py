"""``manage.py rundemo [addrport] [runserver options]``: a ready demo in one command.

Applies the migrations, creates the superuser ``demo`` (password ``demo``) if
missing, then runs the development server with the same arguments as
``runserver`` (default ``127.0.0.1:8000``).
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.core.management import call_command

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


class Command(RunserverCommand):
    help = "Migrate, create the demo/demo superuser if missing, and run the development server."

    def handle(self, *args: Any, **options: Any) -> None:
        # The autoreloader runs this command again in a child process (RUN_MAIN);
        # the database is ready by then.
        if os.environ.get("RUN_MAIN") != "true":
            created = prepare_database()
            note = "created" if created else "already there"
            self.stdout.write(f"Database ready; demo superuser {note}.")
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
