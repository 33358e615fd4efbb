"""The "your sessions" page: a signed-in user lists their sessions and ends them.

Include it with ``path("account/sessions/", include("hybrid_sessions.urls"))``.
The page extends ``hybrid_sessions/base.html``; override that template to put
it inside the site's layout. Every change is a POST protected by CSRF, whatever
the site's middleware.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from . import api
from .exceptions import RevocationNotSupported

__all__ = ["revoke_other_sessions", "revoke_session", "session_list"]


@require_GET
@never_cache
@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The user's live sessions, the current one marked."""
    try:
        sessions = api.list_sessions(request.user)
    except RevocationNotSupported:
        return render(request, "hybrid_sessions/session_list.html", {"supported": False})
    current = api.current_digest(request)
    rows = [{"info": info, "is_current": info.digest == current} for info in sessions]
    return render(
        request,
        "hybrid_sessions/session_list.html",
        {
            "supported": True,
            "sessions": rows,
            "other_count": sum(not row["is_current"] for row in rows),
        },
    )


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
