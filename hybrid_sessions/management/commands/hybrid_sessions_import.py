"""``manage.py hybrid_sessions_import --from db|cache|cached_db``: keep everyone logged in.

Copies the sessions of one of Django's engines into the store of the active
``SESSION_ENGINE`` (see :mod:`hybrid_sessions.migration`). Resumable: a second
run skips the sessions the first one copied.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import HybridSessionsError
from ...migration import SOURCES, count_sessions, import_sessions


class Command(BaseCommand):
    help = (
        "Copy the sessions of Django's db, cache or cached_db engine into the store of "
        "SESSION_ENGINE, keeping their keys (hashed), data, user and expiry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, choices=SOURCES,
            help="The Django engine the sessions were stored with.",
        )
        parser.add_argument(
            "--batch-size", type=int, default=500,
            help="Sessions read and written per batch (default 500).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be imported; write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source, dry_run = options["source"], options["dry_run"]
        bar = None
        try:
            if self.stdout.isatty():
                from tqdm import tqdm

                bar = tqdm(total=count_sessions(source), unit="session", file=sys.stderr)
            result = import_sessions(
                source,
                batch_size=options["batch_size"],
                dry_run=dry_run,
                progress=bar.update if bar is not None else None,
            )
        except HybridSessionsError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{verb} {result.imported} session(s) from Django's {source} engine; "
            f"{result.existing} already there, {result.empty} empty or undecodable skipped."
        )
