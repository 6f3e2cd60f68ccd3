"""Reads of the event log, scoped by tenant."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event, Segment, SegmentExport
from siyu.analytics.query import Scope, oltp_count, oltp_ids
from siyu.core.errors import NotFound
from siyu.core.scopes import Actor

if TYPE_CHECKING:
    from siyu.customers.selectors import CustomerCard


def timeline_for_customer(*, actor: Actor, customer_id: int, types: list[str] | None = None) -> QuerySet[Event]:
    """The customer's events, newest first. The caller must have authorised access to the customer."""
    qs = Event.objects.filter(tenant_id=actor.tenant_id, customer_id=customer_id)
    if types:
        qs = qs.filter(type__in=[t for t in types if t in EVENT_TYPES])
    return qs.order_by("-occurred_at", "-id")


def segment_list(*, actor: Actor) -> QuerySet[Segment]:
    """The brand's segments, newest first: every member of the brand may use them (counts stay in their scope)."""
    return Segment.objects.filter(tenant_id=actor.tenant_id).order_by("-created_at", "-id")


def access_segment(*, actor: Actor, segment_id: int) -> Segment:
    segment = segment_list(actor=actor).filter(id=segment_id).first()
    if segment is None:
        raise NotFound(f"segment {segment_id} not found", field="segment_id")
    return segment


def segment_ids(
    *, actor: Actor, rule: dict[str, Any], limit: int | None = None, offset: int = 0, now: dt.datetime | None = None
) -> list[int]:
    """Ids of the customers in the actor's scope matching a validated rule tree, in id order (OLTP)."""
    return oltp_ids(rule=rule, scope=Scope.of(actor), now=now or timezone.now(), limit=limit, offset=offset)


def segment_count(*, actor: Actor, rule: dict[str, Any], now: dt.datetime | None = None) -> int:
    """How many customers in the actor's scope match a validated rule tree (OLTP)."""
    return oltp_count(rule=rule, scope=Scope.of(actor), now=now or timezone.now())


def segment_members(*, actor: Actor, segment: Segment, limit: int, offset: int) -> tuple[int, list[CustomerCard]]:
    """(total, a page of masked customer cards) of the segment in the actor's scope."""
    from siyu.customers.models import Customer
    from siyu.customers.selectors import customer_card

    now = timezone.now()
    total = segment_count(actor=actor, rule=segment.rule, now=now)
    ids = segment_ids(actor=actor, rule=segment.rule, limit=limit, offset=offset, now=now)
    customers = Customer.objects.filter(tenant_id=actor.tenant_id, id__in=ids).select_related("owner_guide")
    by_id = {c.id: c for c in customers}
    return total, [customer_card(by_id[i]) for i in ids if i in by_id]


def segment_export_list(*, actor: Actor) -> QuerySet[SegmentExport]:
    """Exports the actor may follow: their own; HQ admins see every segment export of the brand. Newest first."""
    qs = SegmentExport.objects.filter(tenant_id=actor.tenant_id)
    if not actor.is_brand_wide:
        qs = qs.filter(requested_by_id=actor.user_id or 0)
    return qs.order_by("-created_at", "-id")


def segment_export_get(*, actor: Actor, export_id: int) -> SegmentExport:
    """One export (status, progress, total) for the progress bar; others' exports are not found."""
    export = segment_export_list(actor=actor).filter(id=export_id).first()
    if export is None:
        raise NotFound(f"export {export_id} not found", field="export_id")
    return export


def segment_export_path(export: SegmentExport) -> Path:
    """Where the export's file lives (MEDIA_ROOT/segment-exports/<tenant>/<id>.csv), whether written yet or not."""
    return Path(settings.MEDIA_ROOT) / "segment-exports" / str(export.tenant_id) / f"{export.id}.csv"
