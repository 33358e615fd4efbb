"""A WSGI app for tests that need real app server processes (run under gunicorn).

The environment chooses the database (``HYBRID_SESSIONS_TEST_DB``, and
``HYBRID_SESSIONS_APP_DATABASE`` for the test database pytest created), the
hybrid engine's spill store (``HYBRID_SESSIONS_APP_SPILL``), any other settings
(``HYBRID_SESSIONS_APP_SETTINGS``, JSON) and how far ahead the process's clock
runs (``HYBRID_SESSIONS_APP_CLOCK_AHEAD``, seconds).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django.conf import settings

settings.DATABASES["default"]["NAME"] = os.environ["HYBRID_SESSIONS_APP_DATABASE"]
settings.SESSION_ENGINE = "hybrid_sessions.backends.hybrid"
settings.HYBRID_SESSIONS_SPILL_ENGINE = os.environ["HYBRID_SESSIONS_APP_SPILL"]
settings.ROOT_URLCONF = "tests.app_urls"
# A counter kept on the server only (the replay test compares it with one that is not).
settings.HYBRID_SESSIONS_SERVER_KEYS = ["server_attempts"]
settings.DEBUG = False
# Settings a test gives this process (a JSON object), and how far ahead its clock runs.
for name, value in json.loads(os.environ.get("HYBRID_SESSIONS_APP_SETTINGS", "{}")).items():
    setattr(settings, name, value)
CLOCK_AHEAD = float(os.environ.get("HYBRID_SESSIONS_APP_CLOCK_AHEAD", "0"))
if CLOCK_AHEAD:
    import time

    import time_machine

    #: Every clock of this process runs this far ahead: requests arrive "later".
    TRAVEL = time_machine.travel(time.time() + CLOCK_AHEAD, tick=True)
    TRAVEL.start()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
