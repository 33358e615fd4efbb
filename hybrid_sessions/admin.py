"""A read-only admin for the session table: inspect, filter, and revoke.

Sessions are never added or edited by hand; an operator looks at them and
ends them. Listing the table does not read the session data: the size is
computed by the database, and the data is decoded only on a session's own page.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import Session

#: How much of a User-Agent the list shows; the detail page shows all of it.
USER_AGENT_PREVIEW = 60


class ActiveFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Active")), ("no", _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(expire_date__gt=now)
        if self.value() == "no":
            return queryset.filter(expire_date__lte=now)
        return None


class DataFilter(admin.SimpleListFilter):
    """Whether the data is on the server, or only in the cookie (hybrid engine)."""

    title = _("data on the server")
    parameter_name = "has_data"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No (kept in the cookie)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() == "yes":
            return queryset.filter(data__isnull=False)
        if self.value() == "no":
            return queryset.filter(data__isnull=True)
        return None


def decode_session_data(data: bytes | memoryview | None) -> dict[str, Any] | None:
    """The stored data as a dict, with the site's ``SESSION_SERIALIZER``; ``None`` if absent."""
    if data is None:
        return None
    serializer = import_string(settings.SESSION_SERIALIZER)()
    decoded = serializer.loads(bytes(data))
    if not isinstance(decoded, dict):
        raise ValueError(f"expected a dict, found {type(decoded).__name__}")
    return decoded


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "digest_prefix",
        "user",
        "created_at",
        "last_activity",
        "expire_date",
        "data_size",
        "ip_address",
        "user_agent_preview",
    )
    list_filter = (ActiveFilter, DataFilter)
    search_fields = (f"user__{get_user_model().USERNAME_FIELD}",)
    search_help_text = _("Search by the user's username.")
    list_select_related = ("user",)
    ordering = ("-last_activity",)
    show_full_result_count = False
    actions = ("revoke_sessions",)
    fields = (
        "key_digest",
        "user",
        "created_at",
        "last_activity",
        "expire_date",
        "version",
        "data_size",
        "ip_address",
        "user_agent",
        "decoded_data",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        annotated: QuerySet[Any] = queryset.defer("data").annotate(_data_size=Length("data"))
        return annotated

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # ``action_location`` exists from Django 6.1 on; 5.2 calls without it.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg, unused-ignore]
        actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("digest"), ordering="key_digest")
    def digest_prefix(self, obj: Session) -> str:
        return f"{obj.key_digest[:12]}…"

    @admin.display(description=_("size"), ordering="_data_size")
    def data_size(self, obj: Session) -> int:
        annotated = getattr(obj, "_data_size", None)
        return int(annotated) if annotated is not None else obj.size

    @admin.display(description=_("user agent"), ordering="user_agent")
    def user_agent_preview(self, obj: Session) -> str:
        if len(obj.user_agent) <= USER_AGENT_PREVIEW:
            return obj.user_agent
        return obj.user_agent[: USER_AGENT_PREVIEW - 1] + "…"

    @admin.display(description=_("data"))
    def decoded_data(self, obj: Session) -> str:
        try:
            decoded = decode_session_data(obj.data)
        except Exception as exc:  # any undecodable record is shown as such
            return format_html("<em>{}</em>", _("Could not be decoded: %s") % exc)
        if decoded is None:
            return format_html("<em>{}</em>", _("None on the server: kept in the cookie."))
        text = json.dumps(decoded, indent=2, sort_keys=True, default=repr, ensure_ascii=False)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)

    @admin.action(description=_("Revoke selected sessions"), permissions=["delete"])
    def revoke_sessions(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        digests = list(queryset.values_list("pk", flat=True))
        count, _deleted = Session.objects.using(queryset.db).filter(pk__in=digests).delete()
        self.message_user(
            request,
            ngettext("Revoked %d session.", "Revoked %d sessions.", count) % count,
            messages.SUCCESS,
        )
