"""Sphinx configuration for the hybrid_sessions documentation."""

from __future__ import annotations

project = "hybrid_sessions"
author = "the hybrid_sessions authors"
copyright = "2026, the hybrid_sessions authors"
extensions: list[str] = []
exclude_patterns = ["_build", "_static"]
html_theme = "alabaster"
html_static_path: list[str] = []
