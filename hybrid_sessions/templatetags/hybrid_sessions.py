"""Template filters of the session pages: ``{% load hybrid_sessions %}``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

register = template.Library()

#: Closer than this to now, a time reads "just now" rather than "0 minutes ago".
JUST_NOW = timedelta(minutes=1)


@register.filter
def ago(value: datetime | None) -> str:
    """"5 minutes ago", or "just now"."""
    if value is None:
        return ""
    if abs(timezone.now() - value) < JUST_NOW:
        return _("just now")
    return _("%(time)s ago") % {"time": timesince(value)}


@register.filter
def from_now(value: datetime | None) -> str:
    """"in 2 weeks", or "ended 5 minutes ago" for a time that has passed."""
    if value is None:
        return ""
    if value <= timezone.now():
        return _("ended %(time)s ago") % {"time": timesince(value)}
    return _("in %(time)s") % {"time": timeuntil(value)}
