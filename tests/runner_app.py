"""A site's own test suite, run by Django's test runner in a subprocess.

``test_hybrid_allauth_patterns`` runs it the way a site (or a third-party app
such as django-allauth) runs its tests on PostgreSQL with the hybrid engine.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.test import TestCase
from django.urls import path

from hybrid_sessions.backends.hybrid import SessionStore


def bump(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


urlpatterns = [path("bump/", bump)]


class Requests(TestCase):
    def test_a_counter_goes_up(self) -> None:
        assert self.client.get("/bump/").content == b"1"
        assert self.client.get("/bump/").content == b"2"  # a cookie: the feed starts
        feed = SessionStore.get_store().feed()
        if feed is not None:  # as by the end of any longer suite
            assert feed.wait_until_up(10)
