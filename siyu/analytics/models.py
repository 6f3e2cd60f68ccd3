"""The append-only event log (timeline): the source of the customer timeline and of the warehouse."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

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
