"""Human names for the devices behind sessions, from their User-Agent (with ua-parser).

"Firefox 140 on Windows 10" says more to a person than 120 characters of
``Mozilla/5.0 (...)``; the raw string stays available as a tooltip.
"""

from __future__ import annotations

from functools import lru_cache

from django.utils.translation import gettext as _

__all__ = ["device_name"]

#: Distinct User-Agents whose names a process remembers (a page lists a handful).
CACHE_SIZE = 1024
#: Longest fallback shown for a User-Agent the parser does not recognise.
FALLBACK_LENGTH = 40


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


@lru_cache(maxsize=CACHE_SIZE)
def _parts(user_agent: str) -> tuple[str | None, str | None, str | None]:
    """Browser, operating system and device model, each ``None`` when not recognised."""
    import ua_parser

    result = ua_parser.parse(user_agent)
    browser = os = device = None
    if result.user_agent is not None and result.user_agent.family != "Other":
        ua = result.user_agent
        browser = f"{ua.family} {_version(ua.major, ua.minor)}".strip()
    if result.os is not None and result.os.family != "Other":
        os = f"{result.os.family} {_version(result.os.major, result.os.minor)}".strip()
    if result.device is not None and result.device.family not in ("Other", "Generic Smartphone"):
        device = result.device.family
    return browser, os, device


def device_name(user_agent: str | None) -> str:
    """A short, translatable name such as "Firefox 140.0 on Windows 10"."""
    if not user_agent:
        return _("Unknown device")
    browser, os, device = _parts(user_agent)
    if browser is None and os is None:
        # Not a browser the parser knows: its first product token says most.
        token = user_agent.split()[0]
        return token if len(token) <= FALLBACK_LENGTH else token[: FALLBACK_LENGTH - 1] + "…"
    if os is not None and device is not None and device not in os:
        os = f"{os} ({device})"
    if browser is None:
        return os or ""
    if os is None:
        return browser
    return _("%(browser)s on %(os)s") % {"browser": browser, "os": os}
