"""Views the tests drive through the full middleware stack."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from hybrid_sessions.user_admin import UserSessionsAdminMixin


class SiteUserAdmin(UserSessionsAdminMixin, UserAdmin):  # type: ignore[type-arg]
    """Django's user admin with the user's sessions on their page, as a site would set it up."""


admin.site.unregister(User)
admin.site.register(User, SiteUserAdmin)


def read(request: HttpRequest) -> JsonResponse:
    """Return the whole session as JSON."""
    return JsonResponse(dict(request.session.items()))


def write(request: HttpRequest) -> JsonResponse:
    """Set every query parameter as a session key."""
    for key, value in request.GET.items():
        request.session[key] = value
    return JsonResponse(dict(request.session.items()))


def whoami(request: HttpRequest) -> HttpResponse:
    """The authenticated user's name, or an empty body."""
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


def flush(request: HttpRequest) -> HttpResponse:
    """End the session, as logout does."""
    request.session.flush()
    return HttpResponse("flushed")


def cycle(request: HttpRequest) -> JsonResponse:
    """Give the session a new key, as login does."""
    request.session.cycle_key()
    return JsonResponse(dict(request.session.items()))


def untouched(request: HttpRequest) -> HttpResponse:
    """A view that never looks at the session."""
    return HttpResponse("ok")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("read/", read),
    path("write/", write),
    path("whoami/", whoami),
    path("flush/", flush),
    path("cycle/", cycle),
    path("untouched/", untouched),
]
