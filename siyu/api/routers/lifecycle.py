"""Lifecycle stages (生命周期) and loss alerts (流失提醒).

Stages with counts and moves by hand follow the caller's data scope; the configuration and "run now" are HQ's.
Handlers call one service or selector.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, StrictBool, field_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    NO_NUL_PATTERN,
    BodyIn,
    Id,
    JsonInt,
    LifecycleStageEnum,
    NoNul,
    PageOut,
    PageParams,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.customers import alerts, lifecycle
from siyu.customers.models import LossAlert

router = Router(tags=["lifecycle"])

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

LossKindEnum = str_enum("LossKind", LossAlert.Kind)
Days = Annotated[int, Field(ge=1, le=lifecycle.MAX_DAYS), JsonInt]
StageName = Annotated[
    str,
    Field(max_length=lifecycle.MAX_STAGE_NAME, json_schema_extra={"pattern": NO_NUL_PATTERN}),
    NoNul,
]
HOLD_HELP = "Days a stage set by hand holds before the automatic rules may move the customer again."


class StageOut(Schema):
    stage: LifecycleStageEnum  # type: ignore[valid-type]
    name: str
    color: str
    enabled: bool
    count: int = Field(description="Customers at this stage within the caller's data scope.")


class StageSettingIn(BodyIn):
    stage: LifecycleStageEnum  # type: ignore[valid-type]
    name: StageName = Field("", description='"" shows the built-in name.')
    color: str = Field("#64748b", pattern=r"^#[0-9a-fA-F]{6}$")
    enabled: StrictBool = True


class LifecycleConfigOut(Schema):
    stages: list[StageOut]
    engaged_days: int
    dormant_days: int
    lost_days: int
    hold_days: int = Field(description=HOLD_HELP)
    last_run_at: dt.datetime | None
    last_moved: int
    next_run_at: dt.datetime | None


class LifecycleConfigPatch(BodyIn):
    """Any subset; `stages` lists every stage once, in display order."""

    stages: list[StageSettingIn] | None = Field(None, min_length=6, max_length=6)
    engaged_days: Days | None = None
    dormant_days: Days | None = None
    lost_days: Days | None = None
    hold_days: Days | None = Field(None, description=HOLD_HELP)


class StageMoveIn(BodyIn):
    stage: LifecycleStageEnum  # type: ignore[valid-type]


class StageMoveOut(Schema):
    id: int
    lifecycle_stage: LifecycleStageEnum  # type: ignore[valid-type]
    stage_held_until: dt.datetime | None


class RunOut(Schema):
    queued: bool


class LossAlertOut(Schema):
    id: int
    customer_id: int
    name_masked: str
    guide_id: int
    guide_name: str
    store_id: int | None
    kind: LossKindEnum  # type: ignore[valid-type]
    occurred_at: dt.datetime
    last_interaction_at: dt.datetime | None
    last_interaction_type: str
    notified: bool


class LossFilters(PageParams):
    since: dt.date | None = Field(None, description="First day (YYYY-MM-DD, inclusive).")
    until: dt.date | None = Field(None, description="Last day (YYYY-MM-DD, inclusive).")
    store_id: Id | None = None
    guide_id: Id | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_day(cls, value: Any) -> Any:
        # pydantic would also read "0" or "1700000000" as a Unix time: only a calendar date is a day here.
        if isinstance(value, str) and not _ISO_DAY.match(value):
            raise ValueError("must be a date as YYYY-MM-DD")
        return value


def _stages(request: HttpRequest) -> list[dict[str, Any]]:
    actor = actor_of(request)
    config = lifecycle.lifecycle_config_get(tenant_id=actor.tenant_id)
    counts = lifecycle.stage_counts(actor=actor)
    return [
        {"stage": s.stage, "name": s.name, "color": s.color, "enabled": s.enabled, "count": counts[s.stage]}
        for s in lifecycle.stage_settings(config)
    ]


def _config_out(request: HttpRequest) -> dict[str, Any]:
    config = lifecycle.lifecycle_config_get(tenant_id=actor_of(request).tenant_id)
    return {
        "stages": _stages(request),
        "engaged_days": config.engaged_days,
        "dormant_days": config.dormant_days,
        "lost_days": config.lost_days,
        "hold_days": config.hold_days,
        "last_run_at": config.last_run_at,
        "last_moved": config.last_moved,
        "next_run_at": config.next_run_at,
    }


@router.get(
    "/lifecycle/stages",
    response={200: list[StageOut], **error_responses(401)},
    operation_id="lifecycle_stage_list",
    summary="The lifecycle stages in the brand's order, with customers per stage in the caller's scope",
)
def lifecycle_stage_list_api(request: HttpRequest) -> list[dict[str, Any]]:
    return _stages(request)


@router.get(
    "/lifecycle/config",
    response={200: LifecycleConfigOut, **error_responses(401, 403)},
    operation_id="lifecycle_config_get",
    summary="The brand's lifecycle configuration (HQ only)",
)
def lifecycle_config_get_api(request: HttpRequest) -> dict[str, Any]:
    lifecycle.require_lifecycle_admin(actor_of(request))
    return _config_out(request)


@router.patch(
    "/lifecycle/config",
    response={200: LifecycleConfigOut, **error_responses(400, 401, 403, 409, 422)},
    operation_id="lifecycle_config_update",
    summary="Change the stages (order, names, colours, enabled) and the rules' thresholds (HQ only)",
)
def lifecycle_config_update_api(request: HttpRequest, payload: LifecycleConfigPatch) -> dict[str, Any]:
    """409 naming `stages` when they do not list every stage once with one enabled, or `dormant_days` when it
    exceeds `lost_days`."""
    changes = payload.model_dump(exclude_none=True, mode="json")
    lifecycle.lifecycle_config_update(actor=actor_of(request), changes=changes)
    return _config_out(request)


@router.post(
    "/lifecycle/run",
    response={202: RunOut, **error_responses(401, 403)},
    operation_id="lifecycle_run",
    summary="Run the lifecycle rules now, in a background job (HQ only)",
)
def lifecycle_run_api(request: HttpRequest) -> Status[dict[str, Any]]:
    lifecycle.lifecycle_run_request(actor=actor_of(request))
    return Status(202, {"queued": True})


@router.post(
    "/customers/{customer_id}/stage",
    response={200: StageMoveOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="customer_stage_move",
    summary="Move a customer to a lifecycle stage by hand; it holds there for the configured days",
)
def customer_stage_move_api(request: HttpRequest, customer_id: Path[Id], payload: StageMoveIn) -> dict[str, Any]:
    """404 naming `customer_id` for a customer outside the caller's scope; 409 naming `stage` for a disabled one."""
    customer = lifecycle.customer_stage_move(
        actor=actor_of(request), customer_id=customer_id, stage=payload.stage.value
    )
    return {
        "id": customer.id,
        "lifecycle_stage": customer.lifecycle_stage,
        "stage_held_until": customer.stage_held_until,
    }


def _loss_out(rows: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": r.alert.id,
            "customer_id": r.alert.customer_id,
            "name_masked": r.name_masked,
            "guide_id": r.alert.guide_id,
            "guide_name": r.alert.guide.name,
            "store_id": r.alert.store_id,
            "kind": r.alert.kind,
            "occurred_at": r.alert.occurred_at,
            "last_interaction_at": r.alert.last_interaction_at,
            "last_interaction_type": r.alert.last_interaction_type,
            "notified": r.alert.notified_at is not None,
        }
        for r in rows
    ]


@router.get(
    "/loss-alerts",
    response={200: PageOut[LossAlertOut], **error_responses(401, 422)},
    operation_id="loss_alert_list",
    summary="Lost customers (a customer deleted a guide, or a guide a customer) in the caller's scope, newest first",
)
def loss_alert_list_api(request: HttpRequest, filters: Query[LossFilters]) -> Page[dict[str, Any]]:
    qs = alerts.loss_alert_list(
        actor=actor_of(request),
        since=filters.since,
        until=filters.until,
        store_id=filters.store_id,
        guide_id=filters.guide_id,
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: _loss_out(alerts.loss_rows(rows)))
