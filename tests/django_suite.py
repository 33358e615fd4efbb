"""Puts Django's own ``tests/sessions_tests`` on ``sys.path``.

The contract suite (``SessionTestsMixin``) ships only in Django's source
distribution; it is fetched for the installed Django version at test time,
unpacked once into a cache folder, never copied into this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

CACHE = Path(
    os.environ.get("HYBRID_SESSIONS_DJANGO_TESTS_CACHE", Path.home() / ".cache" / "hybrid_sessions")
)


def ensure_django_tests() -> Path:
    """Return the folder holding ``sessions_tests`` for the installed Django, fetching it once."""
    version = django.__version__
    root = CACHE / f"django-{version}-tests"
    if (root / "sessions_tests" / "tests.py").exists():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"django=={version}", "--dest", tmp],
            check=True,
        )
        (sdist,) = Path(tmp).glob("[Dd]jango-*.tar.gz")
        partial = root.with_suffix(".partial")
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/tests/sessions_tests/" in m.name]
            for member in members:
                member.name = member.name.split("/tests/", 1)[1]
            tar.extractall(partial, members=members, filter="data")
        partial.rename(root)
    return root
