"""URLs of the "your sessions" page; include them under a path of the site's choice."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "hybrid_sessions"

urlpatterns = [
    path("", views.session_list, name="session_list"),
    path("revoke/", views.revoke_session, name="revoke"),
    path("revoke-others/", views.revoke_other_sessions, name="revoke_others"),
]
