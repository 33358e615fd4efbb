"""Django app configuration: registers the system checks and the per-user session limit."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class HybridSessionsConfig(AppConfig):
    name = "hybrid_sessions"
    verbose_name = _("Sessions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .checks import check_settings
        from .limits import enforce_session_limit

        checks.register(check_settings, checks.Tags.security)
        user_logged_in.connect(enforce_session_limit, dispatch_uid="hybrid_sessions_max_per_user")
