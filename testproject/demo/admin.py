"""The demo's admin: Django's user admin, with each user's sessions on their page."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from hybrid_sessions.user_admin import UserSessionsAdminMixin

admin.site.unregister(User)


@admin.register(User)
class DemoUserAdmin(UserSessionsAdminMixin, UserAdmin):  # type: ignore[type-arg]
    pass
