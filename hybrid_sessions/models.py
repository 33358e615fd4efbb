"""The database table behind ``backends.db`` (and the hybrid engine's db spill store)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .conf import USER_AGENT_MAX_LENGTH


class Session(models.Model):
    """One session. The key itself is never stored: only its SHA-256 digest.

    ``data`` is ``NULL`` for a hybrid session whose data lives in its cookie; the
    row then exists only so the session can be listed and revoked.
    """

    key_digest = models.CharField(_("key digest"), max_length=64, primary_key=True)
    data = models.BinaryField(_("data"), null=True, blank=True)
    version = models.PositiveBigIntegerField(_("version"), default=1)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_constraint=False,
        related_name="hybrid_sessions",
        verbose_name=_("user"),
    )
    created_at = models.DateTimeField(_("created"))
    last_activity = models.DateTimeField(_("last activity"))
    expire_date = models.DateTimeField(_("expires"), db_index=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(
        _("user agent"), max_length=USER_AGENT_MAX_LENGTH, blank=True, default=""
    )

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        db_table = "hybrid_sessions_session"

    def __str__(self) -> str:
        return f"{self.key_digest[:12]}…"

    @property
    def size(self) -> int:
        """Bytes of stored data (0 when the data lives in the cookie)."""
        return len(self.data) if self.data is not None else 0
