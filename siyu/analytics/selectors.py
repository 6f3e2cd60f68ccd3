"""Reads of the event log, scoped by tenant."""

from __future__ import annotations

from django.db.models import QuerySet

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event
from siyu.core.scopes import Actor


def timeline_for_customer(*, actor: Actor, customer_id: int, types: list[str] | None = None) -> QuerySet[Event]:
    """The customer's events, newest first. The caller must have authorised access to the customer."""
    qs = Event.objects.filter(tenant_id=actor.tenant_id, customer_id=customer_id)
    if types:
        qs = qs.filter(type__in=[t for t in types if t in EVENT_TYPES])
    return qs.order_by("-occurred_at", "-id")
