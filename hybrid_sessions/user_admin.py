"""A user's sessions on their own admin page, and "log out everywhere" from there.

Add the mixin to the site's user admin, before Django's class::

    from django.contrib import admin
    from django.contrib.auth.admin import UserAdmin
    from django.contrib.auth.models import User
    from hybrid_sessions.user_admin import UserSessionsAdminMixin

    admin.site.unregister(User)

    @admin.register(User)
    class SiteUserAdmin(UserSessionsAdminMixin, UserAdmin):
        pass

Staff with ``view_session`` see a "Sessions" section listing the user's live
sessions; with ``delete_session`` they also get the "Log out everywhere" button,
which confirms and then ends the sessions through :mod:`hybrid_sessions.api`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from . import api
from .admin import session_rows
from .exceptions import RevocationNotSupported, SessionStoreUnavailable
from .stores.base import SessionFilter

__all__ = ["UserSessionsAdminMixin"]

#: Sessions shown on a user's page (most recently active first).
USER_PAGE_LIMIT = 50
FIELD = "hybrid_sessions_of_user"


class UserSessionsAdminMixin:
    """Adds the user's sessions and a "log out everywhere" button to a ``ModelAdmin``."""

    def _sessions_visible(self, request: HttpRequest, obj: Any) -> bool:
        return obj is not None and request.user.has_perm("hybrid_sessions.view_session")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if self._sessions_visible(request, obj):
            # On the request's own instance: the admin object is shared between threads.
            obj._hybrid_sessions_can_end = request.user.has_perm("hybrid_sessions.delete_session")
            fieldsets.append((_("Sessions"), {"fields": (FIELD,)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return (*fields, FIELD) if self._sessions_visible(request, obj) else fields

    @admin.display(description=_("Live sessions"))
    def hybrid_sessions_of_user(self, obj: Any) -> str:
        """The table itself; the ``delete_session`` check was made by ``get_fieldsets``."""
        can_end = getattr(obj, "_hybrid_sessions_can_end", False)
        context: dict[str, Any] = {"target": obj, "can_end": can_end}
        try:
            user_id = obj._meta.pk.value_to_string(obj)
            infos, more = api.get_server_store().list_sessions(
                None, USER_PAGE_LIMIT, filters=SessionFilter(user_ids=(user_id,)),
                recent_first=True,
            )
        except (RevocationNotSupported, SessionStoreUnavailable) as exc:
            context["error"] = str(exc)
        else:
            infos.sort(key=lambda info: info.last_activity, reverse=True)
            context.update(rows=session_rows(infos), more=more is not None)
            try:
                context["logout_url"] = reverse(
                    "admin:hybrid_sessions_session_logout_user", args=[user_id]
                ) + "?next=" + reverse(
                    f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]
                )
            except NoReverseMatch:
                context["logout_url"] = None
        return render_to_string("admin/hybrid_sessions/user_sessions.html", context)
