"""A worker process for the concurrency tests: a loop of requests on one session.

Run as ``python -m tests.session_worker JOB`` where ``JOB`` is JSON with
``engine``, ``key``, ``prefix``, ``count``, ``database`` (the test database
that pytest created) and ``settings`` (overrides). The worker sets up Django
with ``tests.settings`` pointed at that database, prints ``ready``, waits for a
line on stdin (so that every worker starts at the same moment), then, like
``count`` requests, opens the session, sets its own key ``<prefix><i>``, and
saves. It prints a JSON report: the errors its saves raised.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import import_module
from typing import Any


def run(job: dict[str, Any]) -> list[str]:
    """The request loop; returns the saves that failed, as ``repr`` of the error."""
    store = import_module(job["engine"]).SessionStore
    errors: list[str] = []
    for i in range(job["count"]):
        session = store(job["key"])
        session[f"{job['prefix']}{i}"] = i
        try:
            session.save()
        except Exception as exc:
            errors.append(repr(exc))
    return errors


def main() -> int:
    job = json.loads(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = job["database"]
    for name, value in job["settings"].items():
        setattr(settings, name, value)

    import django
    from django.db import connections

    django.setup()
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        errors = run(job)
    finally:
        connections.close_all()
    print(json.dumps({"errors": errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
