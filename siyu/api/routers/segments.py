"""Segments (人群): saved customer rule trees, their counts and members, always within the caller's data scope.

Every member of a brand may build and use segments; only a segment's owner or HQ may change or delete it. The rule
tree is described in siyu.analytics.segments. `rule` is documented as a free-form object, so a tree that does not
hold together is a 409 (not a schema 422) naming the bad node, e.g. `rule.rules[2].days`, and a tag, store or guide
the brand (or your scope) does not have is a 404 naming its node, e.g. `rule.rules[1].tag_id`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, StrictBool, ValidationInfo, field_validator

from siyu.analytics import selectors, services
from siyu.analytics.models import Segment, SegmentExport
from siyu.analytics.segments import rule_validate
from siyu.api.auth import actor_of
from siyu.api.schemas import (
    TRIMMED_PATTERN,
    BodyIn,
    Id,
    LifecycleStageEnum,
    NotNull,
    PageOut,
    PageParams,
    Trimmed,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page
from siyu.core.scopes import Actor

router = Router(tags=["segments"])

ScheduleEnum = str_enum("SegmentSchedule", Segment.Schedule)
ExportStatusEnum = str_enum("SegmentExportStatus", SegmentExport.Status)


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only (as siyu.api.routers.customers): an audit row must not record an address the caller chose.
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return None


RULE_HELP = (
    'A rule tree: groups {"op": "and"|"or", "rules": [...]} and {"op": "not", "rule": {...}} over conditions '
    'has_tag / not_has_tag {"tag_id"}, attr {"field", "cmp", "value"} (gender, city, intent_level, source, created_at, '
    'lifecycle_stage), event_count {"type", "cmp", "value", "days" | "from"+"to"}, orders {"measure": count | '
    'amount_cents | last_paid, "cmp", "value", "shop"?, "product_series"?}, lifecycle {"stages"}, follow '
    '{"store_ids" | "guide_ids"}. At most 8 levels and 100 nodes; dates are Asia/Shanghai days (YYYY-MM-DD).'
)
SegmentName = Annotated[
    str,
    Field(min_length=1, max_length=services.MAX_SEGMENT_NAME, json_schema_extra={"pattern": TRIMMED_PATTERN}),
    Trimmed,
]
Rule = Annotated[dict[str, Any], Field(description=RULE_HELP)]
DailyAt = Annotated[
    str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, Asia/Shanghai; for daily refreshes.")
]


class SegmentIn(BodyIn):
    name: SegmentName
    rule: Rule
    schedule: ScheduleEnum = Field(ScheduleEnum("manual"))  # type: ignore[valid-type]
    daily_at: DailyAt | None = None


class SegmentPatch(BodyIn):
    """Any subset of the fields; the others stay. Null is not a value: leave a field out instead."""

    name: Annotated[SegmentName | None, NotNull] = None
    rule: Annotated[Rule | None, NotNull] = None
    schedule: Annotated[ScheduleEnum | None, NotNull] = None  # type: ignore[valid-type]
    daily_at: Annotated[DailyAt | None, NotNull] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value


class RuleIn(BodyIn):
    rule: Rule


class SegmentOut(Schema):
    id: int
    name: str
    rule: dict[str, Any]
    owner_id: int | None
    schedule: ScheduleEnum  # type: ignore[valid-type]
    daily_at: str | None
    count: int = Field(
        description="Customers in the caller's scope: for HQ the brand's count at refreshed_at, for others live."
    )
    refreshed_at: dt.datetime | None
    next_refresh_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CountOut(Schema):
    count: int = Field(description="Matching customers in the caller's scope, now.")
    computed_at: dt.datetime


class MemberOut(Schema):
    id: int
    name_masked: str
    phone_masked: str
    city: str
    lifecycle_stage: LifecycleStageEnum  # type: ignore[valid-type]
    owner_guide_name: str


def _time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


def _out(actor: Actor, segment: Segment) -> dict[str, Any]:
    count = segment.cached_count if actor.is_brand_wide else selectors.segment_count(actor=actor, rule=segment.rule)
    return {
        "id": segment.id,
        "name": segment.name,
        "rule": segment.rule,
        "owner_id": segment.owner_id,
        "schedule": segment.schedule,
        "daily_at": segment.daily_at.strftime("%H:%M") if segment.daily_at else None,
        "count": count,
        "refreshed_at": segment.refreshed_at,
        "next_refresh_at": segment.next_refresh_at,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


@router.get(
    "/segments",
    response={200: PageOut[SegmentOut], **error_responses(401, 422)},
    operation_id="segment_list",
    summary="The brand's segments, newest first, each counted within your scope",
)
def segment_list_api(request: HttpRequest, filters: Query[PageParams]) -> Page[dict[str, Any]]:
    actor = actor_of(request)
    qs = selectors.segment_list(actor=actor)
    count = qs.count()
    rows = list(qs[filters.offset : filters.offset + filters.limit]) if filters.offset < count else []
    return Page(items=[_out(actor, s) for s in rows], count=count, limit=filters.limit, offset=filters.offset)


@router.post(
    "/segments",
    response={201: SegmentOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="segment_create",
    summary="Save a segment",
)
def segment_create_api(request: HttpRequest, payload: SegmentIn) -> Status[dict[str, Any]]:
    """409 naming the bad node of a rule tree that does not hold together (`rule.rules[2].days`), or `name` when
    another segment of the brand has the name; 404 naming the node of a tag the brand does not have
    (`rule.rules[1].tag_id`)."""
    actor = actor_of(request)
    segment = services.segment_create(
        actor=actor,
        name=payload.name,
        rule=payload.rule,
        schedule=payload.schedule.value,
        daily_at=_time(payload.daily_at),
    )
    return Status(201, _out(actor, segment))


@router.post(
    "/segments/preview",
    response={200: CountOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="segment_preview",
    summary="Count the customers in your scope an unsaved rule tree matches",
)
def segment_preview_api(request: HttpRequest, payload: RuleIn) -> dict[str, Any]:
    actor = actor_of(request)
    now = timezone.now()
    rule = rule_validate(actor=actor, rule=payload.rule)
    return {"count": selectors.segment_count(actor=actor, rule=rule, now=now), "computed_at": now}


@router.get(
    "/segments/{segment_id}",
    response={200: SegmentOut, **error_responses(401, 404, 422)},
    operation_id="segment_get",
    summary="One segment",
)
def segment_get_api(request: HttpRequest, segment_id: Path[Id]) -> dict[str, Any]:
    actor = actor_of(request)
    return _out(actor, selectors.access_segment(actor=actor, segment_id=segment_id))


@router.patch(
    "/segments/{segment_id}",
    response={200: SegmentOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="segment_update",
    summary="Change a segment (its owner or HQ)",
)
def segment_update_api(request: HttpRequest, segment_id: Path[Id], payload: SegmentPatch) -> dict[str, Any]:
    actor = actor_of(request)
    segment = services.segment_update(
        actor=actor,
        segment_id=segment_id,
        name=payload.name,
        rule=payload.rule,
        schedule=payload.schedule.value if payload.schedule else None,
        daily_at=_time(payload.daily_at),
    )
    return _out(actor, segment)


@router.delete(
    "/segments/{segment_id}",
    response={204: None, **error_responses(401, 403, 404, 422)},
    operation_id="segment_delete",
    summary="Delete a segment (its owner or HQ)",
)
def segment_delete_api(request: HttpRequest, segment_id: Path[Id]) -> Status[None]:
    services.segment_delete(actor=actor_of(request), segment_id=segment_id)
    return Status(204, None)


@router.get(
    "/segments/{segment_id}/count",
    response={200: CountOut, **error_responses(401, 404, 422)},
    operation_id="segment_count",
    summary="Count a segment's customers in your scope, now",
)
def segment_count_api(request: HttpRequest, segment_id: Path[Id]) -> dict[str, Any]:
    actor = actor_of(request)
    segment = selectors.access_segment(actor=actor, segment_id=segment_id)
    now = timezone.now()
    return {"count": selectors.segment_count(actor=actor, rule=segment.rule, now=now), "computed_at": now}


@router.get(
    "/segments/{segment_id}/members",
    response={200: PageOut[MemberOut], **error_responses(401, 404, 422)},
    operation_id="segment_members",
    summary="A page of a segment's customers in your scope, by id, personal data masked",
)
def segment_members_api(request: HttpRequest, segment_id: Path[Id], filters: Query[PageParams]) -> Page[Any]:
    actor = actor_of(request)
    segment = selectors.access_segment(actor=actor, segment_id=segment_id)
    total, cards = selectors.segment_members(actor=actor, segment=segment, limit=filters.limit, offset=filters.offset)
    return Page(items=cards, count=total, limit=filters.limit, offset=filters.offset)


class ExportIn(BodyIn):
    reveal: StrictBool = Field(False, description="Unmasked names and phones: HQ admins only; audited.")


class ExportOut(Schema):
    id: int
    segment_id: int | None
    status: ExportStatusEnum  # type: ignore[valid-type]
    progress: int
    total: int
    reveal: bool
    error: str
    created_at: dt.datetime
    finished_at: dt.datetime | None


def _export_out(export: SegmentExport) -> dict[str, Any]:
    return {
        "id": export.id,
        "segment_id": export.segment_id,
        "status": export.status,
        "progress": export.progress,
        "total": export.total,
        "reveal": export.reveal,
        "error": export.error,
        "created_at": export.created_at,
        "finished_at": export.finished_at,
    }


@router.post(
    "/segments/{segment_id}/exports",
    response={201: ExportOut, **error_responses(400, 401, 403, 404, 422)},
    operation_id="segment_export_create",
    summary="Export a segment's customers in your scope as CSV (masked by default; audited); runs as a job",
)
def segment_export_create_api(request: HttpRequest, segment_id: Path[Id], payload: ExportIn) -> Status[dict[str, Any]]:
    """Follow the job with segment_export_get; the file is downloaded from the console's export page."""
    export = services.segment_export_request(
        actor=actor_of(request), segment_id=segment_id, reveal=payload.reveal, ip=client_ip(request)
    )
    export.refresh_from_db()
    return Status(201, _export_out(export))


@router.get(
    "/segment-exports/{export_id}",
    response={200: ExportOut, **error_responses(401, 404, 422)},
    operation_id="segment_export_get",
    summary="A segment export's status and progress (your own; HQ sees the brand's)",
)
def segment_export_get_api(request: HttpRequest, export_id: Path[Id]) -> dict[str, Any]:
    return _export_out(selectors.segment_export_get(actor=actor_of(request), export_id=export_id))
