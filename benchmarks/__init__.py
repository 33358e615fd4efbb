"""The performance harness: our engines side by side with Django's, in one run.

``python -m benchmarks`` measures, interleaved and repeated, the in-process
load and load + modify + save cycles, end-to-end requests under gunicorn, and
the queries and Redis commands each request costs, then writes
``docs/benchmarks.rst`` and its charts. ``python -m benchmarks --help`` lists
the options; ``--quick`` is a smoke run of a minute or two.

Everything runs against dedicated stores (the ``bench`` databases on
PostgreSQL and MariaDB, Redis database 8, a temporary SQLite file), never a
site's or a test suite's data.
"""

from __future__ import annotations

SETTINGS_MODULE = "benchmarks.settings"


def setup_django() -> None:
    """Configure Django with the benchmark settings, whatever the environment says."""
    import os

    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    django.setup()
