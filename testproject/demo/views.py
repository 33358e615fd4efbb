"""The demo's pages: a page that reads and writes the session, and a password change."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.crypto import get_random_string

from hybrid_sessions import api
from hybrid_sessions.conf import conf
from hybrid_sessions.exceptions import CookieTooLarge, RevocationNotSupported

from .forms import KeyValueForm

#: Size of one "add data" click: more than a cookie can hold once signed and encoded.
BLOB_SIZE = 5 * 1024


def _session_bytes(request: HttpRequest) -> int:
    """Roughly what the session weighs once serialised."""
    return len(json.dumps(dict(request.session.items()), separators=(",", ":")))


def _server_side() -> bool:
    """Whether the engine keeps a server record (it can be listed and revoked)."""
    try:
        api.get_server_store()
    except RevocationNotSupported:
        return False
    return True


def _store_name(engine: str) -> str:
    return "Redis" if "cache" in engine.rsplit(".", 1)[-1] else "the database"


def _storage(cookie_bytes: int, session_bytes: int) -> dict[str, Any]:
    """What the engine keeps where, for the panel: the cookie, the server, or both."""
    engine = settings.SESSION_ENGINE
    if not _server_side():
        return {
            "server_side": False,
            "cookie": "the whole session, signed (a JWT); a change issues a new cookie",
            "server": "nothing: this session cannot be listed or ended before it expires",
        }
    if engine.endswith(".hybrid"):
        spill = _store_name(conf.SPILL_ENGINE)
        # An inline cookie carries the data itself (so it outweighs it); a spilled
        # one carries only a reference and the login keys.
        inline = cookie_bytes >= session_bytes
        return {
            "server_side": True,
            "cookie": (
                "the whole session, signed" if inline
                else "a reference to the server record, and the login keys"
            ),
            "server": (
                f"a record in {spill} (user, times) so the session can be listed and ended"
                if inline
                else f"the data, in {spill}: the session outgrew the cookie"
            ),
            "data_in": "the cookie" if inline else f"the server ({spill})",
        }
    store = _store_name(engine)
    return {
        "server_side": True,
        "cookie": "the session key only; it is never stored, only its SHA-256",
        "server": f"the data, in {store}, under the SHA-256 of the key",
        "data_in": f"the server ({store})",
    }


def _refuse_oversized(request: HttpRequest, before: dict[str, Any]) -> bool:
    """On a cookie-only engine, undo a change the cookie cannot hold; ``True`` if undone.

    The engine refuses such a save (``CookieTooLarge``) rather than send a cookie
    the browser would drop; the demo tries the save now, while it can still explain.
    """
    if _server_side():
        return False
    session = request.session
    try:
        session.save()
    except CookieTooLarge as exc:
        session.clear()
        session.update(before)
        messages.error(
            request,
            f"Not added: this engine keeps the whole session in the cookie, which would "
            f"grow to {exc.size:,} bytes, over the {exc.budget:,} bytes browsers accept. "
            "A cookie-only engine cannot hold this much; the hybrid engine would move "
            "the session to the server.",
        )
        return True
    return False


def _handle_post(request: HttpRequest) -> KeyValueForm | None:
    action = request.POST.get("action")
    session = request.session
    before = dict(session.items())
    if action == "set":
        form = KeyValueForm(request.POST)
        if not form.is_valid():
            return form
        session[form.cleaned_data["key"]] = form.cleaned_data["value"]
        if not _refuse_oversized(request, before):
            messages.success(request, f"Set {form.cleaned_data['key']!r}.")
    elif action == "blob":
        # SessionBase has keys() but no __iter__.
        number = sum(1 for key in session.keys() if key.startswith("blob_")) + 1  # noqa: SIM118
        session[f"blob_{number}"] = get_random_string(BLOB_SIZE)
        if not _refuse_oversized(request, before):
            messages.success(request, f"Added blob_{number} ({BLOB_SIZE} bytes).")
    elif action == "delete":
        key = request.POST.get("key", "")
        if not key.startswith("_") and session.pop(key, None) is not None:
            messages.success(request, f"Deleted {key!r}.")
    elif action == "clear":
        for key in [k for k in session.keys() if not k.startswith("_")]:  # noqa: SIM118
            del session[key]
        messages.success(request, "Cleared the demo data (you stay logged in).")
    return None


def home(request: HttpRequest) -> HttpResponse:
    """Let the visitor add and remove keys; count the visits of a session that exists."""
    form = KeyValueForm()
    if request.method == "POST":
        invalid = _handle_post(request)
        if invalid is None:
            return redirect("home")
        form = invalid
    elif any(True for _key in request.session.keys()):  # noqa: SIM118
        # Count visits of a session that exists. A visitor without one (or with a
        # forged, expired or revoked cookie) only reads: a plain GET creates no
        # session record, so crawlers and hostile cookies cost the server nothing.
        request.session["counter"] = request.session.get("counter", 0) + 1
    items: list[dict[str, Any]] = [
        {"key": key, "value": str(value), "size": len(str(value)), "own": not key.startswith("_")}
        for key, value in sorted(request.session.items())
    ]
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    session_bytes = _session_bytes(request)
    return render(
        request,
        "demo/home.html",
        {
            "form": form,
            "items": items,
            "engine": settings.SESSION_ENGINE,
            "engine_name": getattr(settings, "DEMO_SESSION_ENGINE", settings.SESSION_ENGINE),
            "storage": _storage(len(cookie), session_bytes),
            "digest": api.current_digest(request),
            "cookie_bytes": len(cookie),
            "session_bytes": session_bytes,
            "blob_size": BLOB_SIZE,
        },
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, then every other session of the user ended at once."""

    template_name = "demo/password_change.html"
    success_url = reverse_lazy("hybrid_sessions:session_list")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)  # keeps this session (update_session_auth_hash)
        try:
            count = api.revoke_other_sessions(self.request)
        except RevocationNotSupported:
            messages.warning(self.request, "Password changed; this engine cannot end sessions.")
        else:
            messages.success(self.request, f"Password changed; {count} other session(s) ended.")
        return response
