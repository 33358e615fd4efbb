"""``manage.py hybrid_sessions_purge``: end sessions in bulk (``hybrid_sessions.maintenance``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import HybridSessionsError
from ...maintenance import parse_duration, purge
from ._arguments import user_from_argument


class Command(BaseCommand):
    help = (
        "End sessions through the session store: the expired ones (the default), those "
        "inactive for a while, one user's, or all. Criteria given together narrow each other."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--expired", action="store_true", help="Expired sessions (the default)."
        )
        parser.add_argument(
            "--inactive-for",
            metavar="DURATION",
            type=_duration,
            help="Sessions unused for this long, e.g. 30d, 12h, 1d12h, 2w.",
        )
        parser.add_argument(
            "--user", help="One user's sessions: a username, or else a primary key."
        )
        parser.add_argument(
            "--all", action="store_true", dest="everything",
            help="Every session: logs everyone out.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the sessions; end nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Sessions per page and per delete (1000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["everything"] and (
            options["expired"] or options["inactive_for"] or options["user"]
        ):
            raise CommandError("--all cannot be combined with --expired, --inactive-for or --user.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        user_id = None
        if options["user"]:
            user = user_from_argument(options["user"])
            user_id = user._meta.pk.value_to_string(user)
        dry_run = options["dry_run"]
        bar = _progress_bar(self.stderr._out, "Counting" if dry_run else "Purging")
        try:
            result = purge(
                expired=options["expired"],
                inactive_for=options["inactive_for"],
                user_id=user_id,
                everything=options["everything"],
                dry_run=dry_run,
                batch_size=options["batch_size"],
                progress=bar.update if bar is not None else None,
            )
        except (HybridSessionsError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        noun = "session" if result.matched == 1 else "sessions"
        if dry_run:
            self.stdout.write(f"Dry run: {result.matched} {noun} would be ended; nothing changed.")
        else:
            self.stdout.write(f"Ended {result.ended} of {result.matched} matching {noun}.")


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None


def _progress_bar(stream: Any, label: str) -> Any:
    """A tqdm bar when ``stream`` is a terminal; ``None`` (a summary line only) otherwise."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None or not isatty():
        return None
    from tqdm import tqdm

    return tqdm(desc=label, unit=" sessions", file=stream, dynamic_ncols=True)
