"""Django app configuration: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class HybridSessionsConfig(AppConfig):
    name = "hybrid_sessions"
    verbose_name = _("Sessions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import check_settings

        checks.register(check_settings, checks.Tags.security)
