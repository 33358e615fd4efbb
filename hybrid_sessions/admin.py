"""The session admin, over the store of whichever engine ``SESSION_ENGINE`` names.

Sessions in Redis are not rows, so the list and detail pages are admin views
of their own over the store's paged listing (``ServerStore.list_sessions``),
registered on the ``Session`` model for its place in the admin and its
permissions: ``view_session`` to look, ``delete_session`` to end sessions.
Sessions are never added or edited by hand, and they are ended only through
:mod:`hybrid_sessions.api`, which goes through the store: the one path that
tells every process (the hybrid engine's liveness cache included) a session
ended. Pages are cursors, not numbers: no store can count or jump cheaply.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import api, inventory, sealing
from .devices import device_name
from .exceptions import RevocationNotSupported, SessionStoreUnavailable
from .models import Session
from .signals import revocation_path
from .stores.base import SessionInfo

__all__ = ["SessionAdmin", "session_rows"]

#: Sessions per page of the list.
PAGE_SIZE = 100
#: Users a search may match; a search is narrowed rather than listing thousands.
SEARCH_USER_LIMIT = 100


def _users_by_id(user_ids: set[str]) -> dict[str, Any]:
    """Users by their id as sessions store it, in one query."""
    model = get_user_model()
    pks = set()
    for user_id in user_ids:
        try:
            pks.add(model._meta.pk.to_python(user_id))  # type: ignore[union-attr, unused-ignore]
        except ValidationError:
            continue
    return {str(pk): user for pk, user in model._default_manager.in_bulk(pks).items()}


def session_rows(infos: list[SessionInfo], current: str | None = None) -> list[dict[str, Any]]:
    """What a list of sessions shows: the stored facts, plus names for people to read."""
    users = _users_by_id({info.user_id for info in infos if info.user_id is not None})
    return [
        {
            "info": info,
            "user": users.get(info.user_id) if info.user_id is not None else None,
            "state": inventory.state(info),
            "state_label": inventory.STATES[inventory.state(info)],
            "storage": inventory.storage(info),
            "storage_label": inventory.STORAGES[inventory.storage(info)],
            "size": info.size if info.data_on_server else None,
            "device": device_name(info.user_agent),
            "is_current": info.digest == current,
        }
        for info in infos
    ]


def _shown(value: Any) -> str:
    """A session value as a person reads it: text as is, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=repr, ensure_ascii=False)


def _query(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else "?"


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """List, inspect and end sessions; nothing else."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name=f"{prefix}_changelist"),
            path(
                "user/<str:user_id>/logout/",
                wrap(self.logout_user_view),
                name=f"{prefix}_logout_user",
            ),
            path("<str:object_id>/change/", wrap(self.detail_view), name=f"{prefix}_change"),
            path("<str:object_id>/delete/", wrap(self.revoke_view), name=f"{prefix}_delete"),
            path("add/", wrap(self.add_view), name=f"{prefix}_add"),
            path("<str:object_id>/", wrap(self.redirect_to_detail)),
        ]

    # -- helpers ------------------------------------------------------------------------

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "has_delete_permission": self.has_delete_permission(request),
            **extra,
        }

    def _url(self, name: str, *args: Any) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}",
            args=args,
        )

    def _require(self, request: HttpRequest, delete: bool = False) -> None:
        allowed = (
            self.has_delete_permission(request)
            if delete
            else self.has_view_or_change_permission(request)
        )
        if not allowed:
            raise PermissionDenied

    def _unsupported(self, request: HttpRequest, exc: Exception) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/hybrid_sessions/session/unsupported.html",
            self._context(request, _("Sessions"), error=str(exc)),
        )

    def _search(self, query: str) -> tuple[str, ...]:
        model = get_user_model()
        field = model.USERNAME_FIELD
        users = model._default_manager.filter(**{f"{field}__icontains": query})
        pks = users.order_by(field).values_list("pk", flat=True)[:SEARCH_USER_LIMIT]
        return tuple(str(pk) for pk in pks)

    # -- the list -----------------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._require(request)
        if request.method == "POST":
            return self._run_action(request)
        state = request.GET.get("state") or None
        storage = request.GET.get("storage") or None
        query = request.GET.get("q", "").strip()
        cursor = request.GET.get("cursor") or None
        user_ids = self._search(query) if query else None
        filters = inventory.filter_for(
            state if state in inventory.STATES else None,
            storage if storage in inventory.STORAGES else None,
            user_ids=user_ids,
        )
        try:
            store = api.get_server_store()
            try:
                infos, next_cursor = store.list_sessions(
                    cursor, PAGE_SIZE, filters=filters, recent_first=True
                )
            except ValueError:  # a cursor edited by hand: start again
                cursor = None
                infos, next_cursor = store.list_sessions(
                    None, PAGE_SIZE, filters=filters, recent_first=True
                )
        except (RevocationNotSupported, SessionStoreUnavailable) as exc:
            return self._unsupported(request, exc)
        params = {k: v for k, v in (("state", state), ("storage", storage), ("q", query)) if v}
        context = self._context(
            request,
            _("Sessions"),
            rows=session_rows(infos, api.current_digest(request)),
            query=query,
            params=params,
            first_page=_query(params) if cursor else None,
            next_page=_query({**params, "cursor": next_cursor}) if next_cursor else None,
            state_choices=self._choices(params, "state", inventory.STATES),
            storage_choices=self._choices(params, "storage", inventory.STORAGES),
            search_limited=user_ids is not None and len(user_ids) == SEARCH_USER_LIMIT,
            **(extra_context or {}),
        )
        return TemplateResponse(request, "admin/hybrid_sessions/session/list.html", context)

    @staticmethod
    def _choices(
        params: dict[str, str], name: str, labels: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The filter links of the sidebar: "All", then one per value, the chosen one marked."""
        chosen = params.get(name)
        rest = {k: v for k, v in params.items() if k != name}
        return [
            {"label": _("All"), "query": _query(rest), "selected": chosen not in labels},
            *(
                {
                    "label": label,
                    "query": _query({**rest, name: value}),
                    "selected": chosen == value,
                }
                for value, label in labels.items()
            ),
        ]

    @revocation_path("admin")
    def _run_action(self, request: HttpRequest) -> HttpResponseRedirect:
        self._require(request, delete=True)
        action = request.POST.get("action", "")
        selected = request.POST.getlist("_selected_action")
        back = request.get_full_path()
        if not selected:
            self.message_user(
                request,
                _("Items must be selected in order to perform actions on them."),
                messages.WARNING,
            )
            return HttpResponseRedirect(back)
        if action == "revoke_sessions":
            count = api.end_sessions(selected)
            message = ngettext("Revoked %d session.", "Revoked %d sessions.", count) % count
        elif action == "logout_users":
            store = api.get_server_store()
            user_ids = {
                info.user_id
                for info in filter(None, map(store.describe, selected[:PAGE_SIZE]))
                if info.user_id is not None
            }
            count = sum(store.delete_user(user_id) for user_id in sorted(user_ids))
            names = ", ".join(sorted(str(u) for u in _users_by_id(user_ids).values()))
            message = ngettext(
                "Logged out everywhere: %(users)s (%(count)d session ended).",
                "Logged out everywhere: %(users)s (%(count)d sessions ended).",
                count,
            ) % {"users": names or "—", "count": count}
        else:
            self.message_user(request, _("No action selected."), messages.WARNING)
            return HttpResponseRedirect(back)
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(back)

    # -- one session --------------------------------------------------------------------

    def redirect_to_detail(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        return redirect(self._url("change", object_id))

    def _describe(self, request: HttpRequest, object_id: str) -> SessionInfo | None:
        if not api._DIGEST.fullmatch(object_id):
            return None
        info = api.get_server_store().describe(object_id)
        if info is None:
            self.message_user(
                request, _("That session no longer exists: it ended or expired."), messages.INFO
            )
        return info

    def detail_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        self._require(request)
        if request.method != "GET":
            raise PermissionDenied  # read-only: nothing is ever edited here
        try:
            info = self._describe(request, object_id)
            if info is None:
                return redirect(self._url("changelist"))
            stored = api.get_server_store().get(object_id)
        except (RevocationNotSupported, SessionStoreUnavailable) as exc:
            return self._unsupported(request, exc)
        items: list[tuple[str, Any, bool]] = []
        error = None
        encrypted = stored is not None and sealing.is_sealed(stored.data)
        if stored is not None and stored.data is not None and not encrypted:
            try:
                items = [
                    (key, value if masked else _shown(value), masked)
                    for key, value, masked in inventory.masked_items(
                        inventory.decode_data(stored.data) or {}
                    )
                ]
            except Exception as exc:  # any undecodable record is shown as such
                error = str(exc)
        (row,) = session_rows([info], api.current_digest(request))
        context = self._context(
            request,
            _("Session %(digest)s…") % {"digest": info.digest[:12]},
            row=row,
            items=items,
            decode_error=error,
            encrypted=encrypted,
            live=stored is not None,
            logout_url=self._url("logout_user", info.user_id) if info.user_id else None,
        )
        return TemplateResponse(request, "admin/hybrid_sessions/session/detail.html", context)

    @revocation_path("admin")
    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then end one session."""
        self._require(request, delete=True)
        try:
            info = self._describe(request, object_id)
            if info is None:
                return redirect(self._url("changelist"))
            if request.method == "POST":
                api.end_sessions([info.digest])
                self.message_user(request, _("The session was revoked."), messages.SUCCESS)
                return redirect(self._url("changelist"))
        except (RevocationNotSupported, SessionStoreUnavailable) as exc:
            return self._unsupported(request, exc)
        (row,) = session_rows([info])
        context = self._context(request, _("Revoke a session"), row=row)
        return TemplateResponse(request, "admin/hybrid_sessions/session/revoke.html", context)

    @revocation_path("admin")
    def logout_user_view(self, request: HttpRequest, user_id: str) -> HttpResponse:
        """Confirm, then end every session of one user ("log out everywhere")."""
        self._require(request, delete=True)
        model = get_user_model()
        try:
            user = model._default_manager.get(pk=user_id)
        except (model.DoesNotExist, ValidationError, ValueError):
            raise Http404(_("No such user.")) from None
        next_url = request.POST.get("next") or request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(
            next_url, {request.get_host()}, request.is_secure()
        ):
            next_url = self._url("changelist")
        try:
            if request.method == "POST":
                count = api.revoke_all_sessions(user)
                self.message_user(
                    request,
                    ngettext(
                        "Logged %(user)s out everywhere: %(count)d session ended.",
                        "Logged %(user)s out everywhere: %(count)d sessions ended.",
                        count,
                    )
                    % {"user": user, "count": count},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(next_url)
            sessions = api.list_sessions(user)
        except (RevocationNotSupported, SessionStoreUnavailable) as exc:
            return self._unsupported(request, exc)
        context = self._context(
            request,
            _("Log %(user)s out everywhere") % {"user": user},
            target=user,
            count=len(sessions),
            next_url=next_url,
        )
        return TemplateResponse(request, "admin/hybrid_sessions/session/logout_user.html", context)
