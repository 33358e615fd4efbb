"""Session engines, one module each, each exposing ``SessionStore`` for ``SESSION_ENGINE``."""
