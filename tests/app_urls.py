"""Views of the app server that the multi-process tests drive (see ``tests.app_server``)."""

from __future__ import annotations

from dataclasses import asdict

from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from hybrid_sessions import api
from hybrid_sessions.backends.base import ServerSessionBase
from hybrid_sessions.feeds import Feed

#: The "3 attempts" rule of the replay test.
MAX_ATTEMPTS = 3


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "")


@csrf_exempt
def log_in(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse(status=403)
    login(request, user)
    return HttpResponse(user.get_username())


@csrf_exempt
def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("ok")


@csrf_exempt
def cycle(request: HttpRequest) -> HttpResponse:
    """A view that gives the session a new key, as login() and many apps do."""
    request.session.cycle_key()
    return whoami(request)


@csrf_exempt
def set_value(request: HttpRequest) -> HttpResponse:
    request.session["value"] = request.GET["value"]
    return HttpResponse("ok")


def get_value(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.session.get("value", ""))


@csrf_exempt
def attempt(request: HttpRequest) -> HttpResponse:
    """One try of something allowed three times per session, counted under ``?key=``."""
    key = request.GET.get("key", "attempts")
    used = int(request.session.get(key, 0))
    if used >= MAX_ATTEMPTS:
        return HttpResponse("refused", status=429)
    request.session[key] = used + 1
    return HttpResponse(str(used + 1))


@csrf_exempt
def change_user(request: HttpRequest) -> HttpResponse:
    """An unsafe request that changes the user without touching the session."""
    if not request.user.is_authenticated:
        return HttpResponse("anonymous", status=403)
    request.user.first_name = request.POST.get("first_name", "")
    request.user.save(update_fields=["first_name"])
    return HttpResponse("changed")


@csrf_exempt
def revoke_all(request: HttpRequest) -> HttpResponse:
    """An operator ending every session of the signed-in user (as the admin would)."""
    return HttpResponse(str(api.revoke_all_sessions(request.user)))


def feed(request: HttpRequest) -> JsonResponse:
    """This process's feed health."""
    assert isinstance(request.session, ServerSessionBase), "the hybrid engine's session"
    store = request.session.get_store()
    the_feed: Feed | None = store.feed()
    if the_feed is None:
        return JsonResponse({"feed": None})
    the_feed.ensure_running()
    the_feed.wait_until_up(5)
    return JsonResponse(
        {"feed": the_feed.name, "up": the_feed.since is not None, **asdict(the_feed.stats)}
    )


urlpatterns = [
    path("whoami/", whoami),
    path("login/", log_in),
    path("logout/", log_out),
    path("cycle/", cycle),
    path("set/", set_value),
    path("get/", get_value),
    path("attempt/", attempt),
    path("change-user/", change_user),
    path("revoke-all/", revoke_all),
    path("feed/", feed),
]
