"""Writes to the event log. Other contexts call `event_record` from their own services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event
from siyu.core.errors import ValidationFailed


def _check(type: str, properties: dict[str, Any]) -> None:
    event_type = EVENT_TYPES.get(type)
    if event_type is None:
        raise ValidationFailed(f"unknown event type {type!r}", field="type")
    missing = [key for key in event_type.required if key not in properties]
    if missing:
        raise ValidationFailed(f"event {type} lacks {', '.join(missing)}", field="properties")


def event_build(
    *,
    tenant_id: int,
    type: str,
    customer_id: int | None = None,
    guide_id: int | None = None,
    actor_id: int | None = None,
    occurred_at: dt.datetime | None = None,
    properties: dict[str, Any] | None = None,
) -> Event:
    """A validated, unsaved event: for bulk loaders that append many at once via `event_bulk_record`."""
    props = properties or {}
    _check(type, props)
    return Event(
        tenant_id=tenant_id,
        customer_id=customer_id,
        guide_id=guide_id,
        actor_id=actor_id,
        type=type,
        occurred_at=occurred_at or timezone.now(),
        properties=props,
    )


def event_record(
    *,
    tenant_id: int,
    type: str,
    customer_id: int | None = None,
    guide_id: int | None = None,
    actor_id: int | None = None,
    occurred_at: dt.datetime | None = None,
    properties: dict[str, Any] | None = None,
) -> Event:
    event = event_build(
        tenant_id=tenant_id,
        type=type,
        customer_id=customer_id,
        guide_id=guide_id,
        actor_id=actor_id,
        occurred_at=occurred_at,
        properties=properties,
    )
    event.save()
    return event


def event_bulk_record(*, events: Iterable[Event], batch_size: int = 5000) -> int:
    rows = list(events)
    Event.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)
