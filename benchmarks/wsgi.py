"""WSGI entry point for gunicorn; ``HYBRID_SESSIONS_BENCH_CASE`` picks the engine."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

application = get_wsgi_application()
