"""The benchmarks' site: the least a view does with a session (none for the baseline).

``X-Session-Keys`` tells the harness the session really loaded, not an empty one.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import path

from benchmarks.payload import READ_KEY, WRITE_KEY, make_payload

MAX_SEED_BYTES = 100_000


def _answer(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"ok", content_type="text/plain")
    session = getattr(request, "session", None)
    if session is not None:
        response["X-Session-Keys"] = str(len(session.keys()))
    return response


def read(request: HttpRequest) -> HttpResponse:
    """Read one key, as a page that shows the user's language does."""
    session = getattr(request, "session", None)
    if session is not None:
        session.get(READ_KEY)
    return _answer(request)


def write(request: HttpRequest) -> HttpResponse:
    """Read one key and change another, as a page that counts visits does."""
    session = getattr(request, "session", None)
    if session is not None:
        session.get(READ_KEY)
        session[WRITE_KEY] = int(session.get(WRITE_KEY, 0)) + 1
    return _answer(request)


def seed(request: HttpRequest) -> HttpResponse:
    """Start a session holding about ``?size=`` bytes of realistic data."""
    try:
        size = int(request.GET.get("size", "100"))
    except ValueError:
        return HttpResponseBadRequest(b"size must be an integer")
    if not 0 < size <= MAX_SEED_BYTES:
        return HttpResponseBadRequest(b"size out of range")
    session = getattr(request, "session", None)
    if session is not None:
        session.update(make_payload(size))
    return _answer(request)


urlpatterns = [
    path("read/", read),
    path("write/", write),
    path("seed/", seed),
]
