"""The "your sessions" page: a signed-in user lists their sessions and ends them.

Include it with ``path("account/sessions/", include("hybrid_sessions.urls"))``.
The page extends the site's layout, ``HYBRID_SESSIONS_BASE_TEMPLATE`` (default
``base.html``), or else the package's minimal ``hybrid_sessions/base.html``.
Every change is a POST protected by CSRF, whatever the site's middleware, and
is confirmed with a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from . import api
from .conf import conf
from .devices import device_name
from .exceptions import RevocationNotSupported

__all__ = ["revoke_other_sessions", "revoke_session", "session_list"]


FALLBACK_BASE_TEMPLATE = "hybrid_sessions/base.html"


def base_template() -> object:
    """The template the page extends: the site's, or the package's minimal one."""
    try:
        return select_template([conf.BASE_TEMPLATE, FALLBACK_BASE_TEMPLATE])
    except TemplateDoesNotExist:
        return FALLBACK_BASE_TEMPLATE


@require_GET
@never_cache
@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The user's live sessions: this device first and marked, then by last activity."""
    context: dict[str, object] = {"base_template": base_template()}
    try:
        sessions = api.list_sessions(request.user)
    except RevocationNotSupported:
        context["supported"] = False
        return render(request, "hybrid_sessions/session_list.html", context)
    current = api.current_digest(request)
    rows = [
        {"info": info, "is_current": info.digest == current, "device": device_name(info.user_agent)}
        for info in sessions
    ]
    rows.sort(key=lambda row: not row["is_current"])  # stable: the rest keep their order
    context.update(
        supported=True,
        sessions=rows,
        other_count=sum(not row["is_current"] for row in rows),
    )
    return render(request, "hybrid_sessions/session_list.html", context)


@require_POST
@csrf_protect
@login_required
def revoke_session(request: HttpRequest) -> HttpResponseRedirect:
    """End one session, named by its digest; ending the current one logs out."""
    digest = request.POST.get("digest", "")
    try:
        is_current = digest == api.current_digest(request)
        revoked = api.revoke_session(request.user, digest)
    except RevocationNotSupported:
        return redirect("hybrid_sessions:session_list")
    if revoked and is_current:
        logout(request)
        messages.success(request, _("You were signed out of this device."), fail_silently=True)
        return redirect("hybrid_sessions:session_list")
    if revoked:
        messages.success(request, _("The session was ended."), fail_silently=True)
    else:
        messages.error(
            request, _("That session no longer exists or is not yours."), fail_silently=True
        )
    return redirect("hybrid_sessions:session_list")


@require_POST
@csrf_protect
@login_required
def revoke_other_sessions(request: HttpRequest) -> HttpResponseRedirect:
    """End every session of the user but this one."""
    try:
        count = api.revoke_other_sessions(request)
    except RevocationNotSupported:
        return redirect("hybrid_sessions:session_list")
    messages.success(
        request,
        ngettext("%d other session was ended.", "%d other sessions were ended.", count) % count,
        fail_silently=True,
    )
    return redirect("hybrid_sessions:session_list")
