"""Sphinx configuration for the hybrid_sessions documentation.

The API reference is generated from the docstrings, so Django is set up with a
minimal configuration first. The build needs no network: references to
Django's and Python's own classes are left as plain names (no intersphinx).
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

settings.configure(
    SECRET_KEY="docs-build-only-" + "x" * 40,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.admin",
        "hybrid_sessions",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
django.setup()

project = "hybrid_sessions"
author = "the hybrid_sessions authors"
copyright = "2026, the hybrid_sessions authors"
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build", "_static"]
html_theme = "furo"
html_title = "hybrid_sessions"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"show-inheritance": False}

nitpicky = True
# Names from outside this package (Django, the standard library) have no target
# without intersphinx, which an offline build cannot fetch; they stay plain text.
# ``User`` and ``HttpRequest`` are names the API's annotations import for typing only.
nitpick_ignore_regex = [
    (r"py:class", r"(django|datetime|collections|enum)\..*"),
    # Type variables and aliases of the annotations.
    (r"py:class", r".*\.(R|T|Listener|Build|Flow)"),
    (r"py:class", r"(R|T|Listener|Build|Flow)"),
    (r"py:obj", r".*\.(R|T)"),
    (r"py:class", r"(User|HttpRequest)"),
]
