"""The append-only event log (timeline): the source of the customer timeline and of the warehouse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantOwned


class Event(TenantOwned):
    """One thing that happened (事件), written only by services through `event_record`.

    Rows are never updated or deleted; the auto-increment id is the outbox cursor the warehouse loader
    advances, so loading is incremental and idempotent.
    """

    customer_id = models.BigIntegerField(null=True, blank=True)
    guide_id = models.BigIntegerField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "customer_id", "-occurred_at"], name="event_customer_time"),
            models.Index(fields=["tenant", "type", "occurred_at"], name="event_type_time"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A guard, not business logic: the log is append-only.
        if self.pk is not None:
            raise ValueError("events are append-only")
        super().save(*args, **kwargs)


class Segment(TenantOwned):
    """A saved customer segment (人群/客群): a rule tree (siyu.analytics.segments) and its refresh schedule.

    `cached_count` is the count in the owner's scope at `refreshed_at`; callers always get counts and members
    computed within their own scope. `next_refresh_at` is the due-time column the worker's sweep reads, so the
    schedule survives restarts.
    """

    class Schedule(models.TextChoices):
        MANUAL = "manual", _("Manual")
        HOURLY = "hourly", _("Hourly")
        DAILY = "daily", _("Daily")

    name = models.CharField(max_length=50)
    rule = models.JSONField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    cached_count = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    schedule = models.CharField(max_length=8, choices=Schedule.choices, default=Schedule.MANUAL)
    # Asia/Shanghai time of day of the daily refresh.
    daily_at = models.TimeField(null=True, blank=True)
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="segment_name_unique")]
        indexes = [
            models.Index(
                fields=["next_refresh_at"], condition=models.Q(next_refresh_at__isnull=False), name="segment_due"
            )
        ]

    def __str__(self) -> str:
        return self.name


class SegmentExport(TenantOwned):
    """A CSV export of a segment's members (人群导出), in the requester's scope, written by a background job.

    Personal data is masked unless an HQ admin asked for it unmasked; requesting and downloading are audited.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        # The file is deleted: older than SIYU_EXPORT_RETENTION_DAYS, or withdrawn by an erasure request (`error`
        # says which).
        EXPIRED = "expired", _("Expired")

    segment = models.ForeignKey(Segment, on_delete=models.SET_NULL, null=True, related_name="exports")
    rule = models.JSONField()  # the tree at request time: editing the segment later does not change the export
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    requested_ip = models.GenericIPAddressField(null=True, blank=True)
    reveal = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "requested_by", "-created_at"], name="segment_export_requester")]
