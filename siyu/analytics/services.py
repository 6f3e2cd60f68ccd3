"""Writes to the event log. Other contexts call `event_record` from their own services."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event, Segment, SegmentExport
from siyu.analytics.query import SHANGHAI, Scope, oltp_count
from siyu.analytics.segments import rule_validate
from siyu.analytics.selectors import access_segment
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.exports import csv_export_execute
from siyu.core.jobs import enqueue_on_commit
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_text

logger = logging.getLogger(__name__)


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


# --- segments (人群) ---------------------------------------------------------------------------------------

MAX_SEGMENT_NAME = 50


def segment_next_refresh(*, schedule: str, daily_at: dt.time | None, after: dt.datetime) -> dt.datetime | None:
    """When a schedule next falls due after `after`: the next full hour, or the next HH:MM Asia/Shanghai."""
    if schedule == Segment.Schedule.HOURLY:
        return after.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    if schedule == Segment.Schedule.DAILY:
        local = after.astimezone(SHANGHAI)
        due = local.replace(hour=daily_at.hour if daily_at else 0, minute=daily_at.minute if daily_at else 0)
        due = due.replace(second=0, microsecond=0)
        if due <= local:
            due += dt.timedelta(days=1)
        return due.astimezone(dt.UTC)
    return None


def _clean_schedule(schedule: str, daily_at: dt.time | None) -> None:
    if schedule not in Segment.Schedule.values:
        raise ValidationFailed(f"schedule must be one of {', '.join(Segment.Schedule.values)}", field="schedule")
    if schedule == Segment.Schedule.DAILY and daily_at is None:
        raise ValidationFailed("a daily refresh needs its time of day", field="daily_at")


def _require_editor(actor: Actor, segment: Segment) -> None:
    # Anyone of the brand may build segments; only their owner or HQ may change or delete one.
    if not actor.is_brand_wide and segment.owner_id != actor.user_id:
        raise PermissionDenied("only the segment's owner or HQ may change it")


def _brand_count(tenant_id: int, rule: dict[str, Any], now: dt.datetime) -> int:
    return oltp_count(rule=rule, scope=Scope(tenant_id=tenant_id, brand_wide=True), now=now)


@transaction.atomic
def segment_create(
    *,
    actor: Actor,
    name: str,
    rule: Any,
    schedule: str = Segment.Schedule.MANUAL,
    daily_at: dt.time | None = None,
) -> Segment:
    """Save a segment; its brand-wide count is taken at once."""
    name = clean_text(name, field="name", max_length=MAX_SEGMENT_NAME, required=True)
    tree = rule_validate(actor=actor, rule=rule)
    _clean_schedule(schedule, daily_at)
    if Segment.objects.filter(tenant_id=actor.tenant_id, name=name).exists():
        raise Conflict(f"segment {name!r} already exists", field="name")
    now = timezone.now()
    segment = Segment.objects.create(
        tenant_id=actor.tenant_id,
        name=name,
        rule=tree,
        owner_id=actor.user_id,
        schedule=schedule,
        daily_at=daily_at,
        cached_count=_brand_count(actor.tenant_id, tree, now),
        refreshed_at=now,
        next_refresh_at=segment_next_refresh(schedule=schedule, daily_at=daily_at, after=now),
    )
    audit_record(actor=actor, action="segment.create", target_type="segment", target_id=segment.id)
    return segment


@transaction.atomic
def segment_update(
    *,
    actor: Actor,
    segment_id: int,
    name: str | None = None,
    rule: Any = None,
    schedule: str | None = None,
    daily_at: dt.time | None = None,
) -> Segment:
    segment = access_segment(actor=actor, segment_id=segment_id)
    _require_editor(actor, segment)
    changed: list[str] = []
    if name is not None:
        name = clean_text(name, field="name", max_length=MAX_SEGMENT_NAME, required=True)
        if Segment.objects.filter(tenant_id=actor.tenant_id, name=name).exclude(id=segment.id).exists():
            raise Conflict(f"segment {name!r} already exists", field="name")
        segment.name = name
        changed.append("name")
    if rule is not None:
        segment.rule = rule_validate(actor=actor, rule=rule)
        changed.append("rule")
    if schedule is not None or daily_at is not None:
        segment.schedule = schedule or segment.schedule
        segment.daily_at = daily_at or segment.daily_at
        _clean_schedule(segment.schedule, segment.daily_at)
        changed.append("schedule")
    now = timezone.now()
    if "rule" in changed:
        segment.cached_count = _brand_count(actor.tenant_id, segment.rule, now)
        segment.refreshed_at = now
    segment.next_refresh_at = segment_next_refresh(schedule=segment.schedule, daily_at=segment.daily_at, after=now)
    segment.save()
    audit_record(
        actor=actor, action="segment.update", target_type="segment", target_id=segment.id, detail={"fields": changed}
    )
    return segment


@transaction.atomic
def segment_delete(*, actor: Actor, segment_id: int) -> None:
    segment = access_segment(actor=actor, segment_id=segment_id)
    _require_editor(actor, segment)
    audit_record(
        actor=actor, action="segment.delete", target_type="segment", target_id=segment.id, detail={"name": segment.name}
    )
    segment.delete()


def segment_refresh(*, segment_id: int, now: dt.datetime | None = None) -> Segment | None:
    """Recount a segment brand-wide and set its next due time; idempotent (a deleted segment is skipped)."""
    now = now or timezone.now()
    with transaction.atomic():
        segment = Segment.objects.select_for_update().filter(id=segment_id).first()
        if segment is None:
            return None
        segment.cached_count = _brand_count(segment.tenant_id, segment.rule, now)
        segment.refreshed_at = now
        # The sweep already moved a due time forward when it enqueued this job; only a passed one moves here.
        if segment.next_refresh_at is None or segment.next_refresh_at <= now:
            segment.next_refresh_at = segment_next_refresh(
                schedule=segment.schedule, daily_at=segment.daily_at, after=now
            )
        segment.save(update_fields=["cached_count", "refreshed_at", "next_refresh_at", "updated_at"])
    return segment


def segment_refresh_due(*, now: dt.datetime | None = None) -> int:
    """Enqueue a refresh for every segment whose due time has passed (the worker's sweep calls it every minute).

    The due time moves forward before the job is enqueued, so a second sweep does not enqueue it again.
    """
    from siyu.analytics.tasks import segment_refresh_run

    now = now or timezone.now()
    enqueued = 0
    for segment in Segment.objects.filter(next_refresh_at__lte=now).order_by("next_refresh_at")[:500]:
        nxt = segment_next_refresh(schedule=segment.schedule, daily_at=segment.daily_at, after=now)
        claimed = Segment.objects.filter(id=segment.id, next_refresh_at=segment.next_refresh_at).update(
            next_refresh_at=nxt
        )
        if claimed:
            enqueue_on_commit(segment_refresh_run, segment.id)
            enqueued += 1
    return enqueued


# --- segment exports (人群导出) ----------------------------------------------------------------------------

EXPORT_BATCH_SIZE = 500


def segment_export_request(
    *, actor: Actor, segment_id: int, reveal: bool = False, ip: str | None = None
) -> SegmentExport:
    """Ask for a CSV of the segment's members in the caller's scope; a background job writes it after commit.

    Masked by default; only HQ admins may export unmasked personal data. Follow it with `segment_export_get`.
    """
    from siyu.analytics.tasks import segment_export_run  # tasks import this module: import late, no cycle

    if actor.user_id is None:
        raise ValidationFailed("an export needs a requesting user to scope and audit it", field="actor")
    if reveal and not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins may export unmasked personal data", field="reveal")
    with transaction.atomic():
        segment = access_segment(actor=actor, segment_id=segment_id)
        export = SegmentExport.objects.create(
            tenant_id=actor.tenant_id,
            segment=segment,
            rule=segment.rule,
            requested_by_id=actor.user_id,
            requested_ip=ip,
            reveal=reveal,
        )
        audit_record(
            actor=actor,
            action="segment_export.request",
            target_type="segment_export",
            target_id=export.id,
            detail={"segment_id": segment.id, "revealed": reveal},
            ip=ip,
        )
        enqueue_on_commit(segment_export_run, export.id)
    return export


def segment_export_execute(*, export_id: int, batch_size: int = EXPORT_BATCH_SIZE) -> SegmentExport | None:
    """Run a pending export (siyu.core.exports): the segment's members in the requester's scope, as they are now,
    in the customers export's columns. None when there was nothing to claim; an error marks it failed."""
    from siyu.analytics.selectors import segment_export_path, segment_ids
    from siyu.customers.models import Customer
    from siyu.customers.services import EXPORT_HEADER, export_row

    def rows(export: SegmentExport, actor: Actor) -> tuple[int, Iterator[list[list[Any]]]]:
        ids = segment_ids(actor=actor, rule=export.rule)

        def batches() -> Iterator[list[list[Any]]]:
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                customers = Customer.objects.filter(tenant_id=actor.tenant_id, id__in=chunk)
                ordered = sorted(customers.select_related("owner_guide"), key=lambda c: c.id)
                yield [export_row(customer, reveal=export.reveal) for customer in ordered]

        return len(ids), batches()

    return csv_export_execute(
        model=SegmentExport,
        export_id=export_id,
        path_of=segment_export_path,
        header=EXPORT_HEADER,
        rows=rows,
        audit_target="segment_export",
        audit_detail=lambda export: {"segment_id": export.segment_id},
    )


@dataclass(frozen=True)
class SegmentExportFile:
    path: Path
    download_name: str


def segment_export_download(*, actor: Actor, export_id: int, ip: str | None = None) -> SegmentExportFile:
    """A finished export's file for the caller to stream; audited, as the file holds personal data."""
    from siyu.analytics.selectors import segment_export_get, segment_export_path

    export = segment_export_get(actor=actor, export_id=export_id)
    if export.status != SegmentExport.Status.DONE:
        raise Conflict(f"export {export_id} is {export.status}, not done", field="export_id")
    path = segment_export_path(export)
    if not path.is_file():
        raise NotFound(f"the file of export {export_id} is gone", field="export_id")
    audit_record(
        actor=actor,
        action="segment_export.download",
        target_type="segment_export",
        target_id=export.id,
        detail={"revealed": export.reveal},
        ip=ip,
    )
    stamp = timezone.localtime(export.created_at).strftime("%Y%m%d-%H%M")
    return SegmentExportFile(path=path, download_name=f"segment-{stamp}-{export.id}.csv")
