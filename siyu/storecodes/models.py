"""Store codes (门店活码): the brand's settings of the LBS store locator.

Stores' coordinates and opening hours live on `core.Store` (the org tree owns stores); this context owns how
shoppers are routed to them: the search radius, the time zone the hours are read in, the brand IP's fallback
code, and the unguessable token of the public landing page.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantOwned

DEFAULT_RADIUS_M = 5_000
MAX_RADIUS_M = 50_000  # beyond a city's reach "the nearest store" is no longer a store a shopper walks into


class StoreCodeSettings(TenantOwned):
    """One brand's store-locator settings (门店活码设置); created on first use with the defaults."""

    radius_m = models.PositiveIntegerField(default=DEFAULT_RADIUS_M)
    # Empty: the server's TIME_ZONE. Opening hours are wall-clock times of the brand's stores.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # A channel live code (channels.LiveCode, usually the brand IP's) shown when no open store is near. An id,
    # not a foreign key: the code belongs to the channels context, which validates it when the setting is saved
    # and may delete it later (the landing page then shows no code rather than failing).
    fallback_live_code_id = models.BigIntegerField(null=True, blank=True)
    # /s/<public_token>/ — the landing page printed on posters; unguessable so brands cannot be enumerated.
    public_token = models.CharField(max_length=32, unique=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="storecode_settings_tenant_unique")]

    def __str__(self) -> str:
        return f"store codes of tenant {self.tenant_id}"


class StoreImport(TenantOwned):
    """A CSV import of stores' coordinates and hours (门店导入), run by a background job (tasks.store_import_run).

    `rows` holds the file's rows as read (`[line, code, latitude, longitude, hours, temporarily_closed]`, None
    for a column the file does not have) until the job has run; the job applies them in batches with the
    requester's scope as it is then, keeping `processed` current for the console's progress bar. Bad rows are
    skipped and listed in `problems` (`[line, column, message]`, the first MAX_PROBLEMS); good rows are saved.
    """

    MAX_PROBLEMS = 1000

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    file_name = models.CharField(max_length=200, blank=True, default="")
    columns = models.JSONField(default=list, blank=True)  # the optional columns the file has, in IMPORT_COLUMNS
    rows = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "requested_by", "-created_at"], name="store_import_requester")]

    def __str__(self) -> str:
        return f"store import {self.id} ({self.status})"

    @property
    def imported(self) -> int:
        """Rows saved: the stores they changed plus those already as the file says."""
        return self.updated + self.unchanged

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
