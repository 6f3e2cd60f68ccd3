"""Leads (线索): list, create (deduplicated on phone and unionid), assign and reassign, claim from the public pool
(公海), follow up, convert into a customer (转客户). Handlers call one service or selector."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import ConfigDict, Field, field_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    TRIMMED_PATTERN,
    BodyId,
    BodyIn,
    Id,
    IntentLevel,
    Name,
    NotNull,
    PageOut,
    PageParams,
    Phone,
    Source,
    Trimmed,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.leads import selectors, services
from siyu.leads.models import Lead

router = Router(tags=["leads"])

LeadStatusEnum = str_enum("LeadStatus", Lead.Status)
Unionid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        json_schema_extra={"pattern": TRIMMED_PATTERN},
        description="WeChat unionid; stored only as a keyed hash.",
    ),
    Trimmed,
]


class LeadFilters(PageParams):
    pool: bool | None = Field(None, description="true: only the public pool; false: only owned leads.")
    status: LeadStatusEnum | None = None  # type: ignore[valid-type]


class LeadIn(BodyIn):
    # A phone or a unionid, said in the schema too (clients and generated tests see the rule, not only the 422).
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["phone"]}, {"required": ["unionid"]}]})

    name: Name = ""
    phone: Annotated[Annotated[Phone, Field(min_length=1)] | None, NotNull] = Field(
        None, description="Deduplicated: one lead per phone."
    )
    unionid: Annotated[Unionid | None, NotNull] = Field(None, description="Deduplicated: one lead per unionid.")
    source: Source = ""
    intent_level: IntentLevel = 0

    @field_validator("phone", "unionid", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value


class LeadAssignIn(BodyIn):
    guide_id: BodyId


class LeadClaimIn(BodyIn):
    guide_id: BodyId = Field(description="Who takes the lead: a guide in scope (a guide claims with its own id).")


class LeadFollowUpIn(BodyIn):
    status: LeadStatusEnum = Field(  # type: ignore[valid-type]
        LeadStatusEnum("following"), description="following (keeps the lead N more days), converted or invalid."
    )


class LeadConvertIn(BodyIn):
    customer_id: Annotated[BodyId | None, NotNull] = Field(
        None,
        description="The customer the lead became (in scope). Left out: the brand's customer with the lead's phone "
        "or unionid (409 naming customer_id when there is none).",
    )

    @field_validator("customer_id", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value


class LeadOut(Schema):
    id: int
    name_masked: str
    phone_masked: str
    source: str
    intent_level: int
    status: LeadStatusEnum  # type: ignore[valid-type]
    owner_guide_id: int | None
    owner_guide_name: str
    in_pool: bool
    assigned_at: dt.datetime | None
    last_followup_at: dt.datetime | None
    pool_due_at: dt.datetime | None = Field(description="When the lead returns to the pool unless followed up.")
    created_at: dt.datetime
    customer_id: int | None = Field(description="The customer the lead was converted into (转客户).")
    converted_at: dt.datetime | None


def _out(lead: Lead) -> dict[str, Any]:
    return selectors.lead_card(lead).__dict__


@router.get(
    "/leads",
    response={200: PageOut[LeadOut], **error_responses(401, 422)},
    operation_id="lead_list",
    summary="Leads in scope and the public pool, newest first",
)
def lead_list_api(request: HttpRequest, filters: Query[LeadFilters]) -> Page[dict[str, Any]]:
    qs = selectors.lead_list(
        actor=actor_of(request), pool=filters.pool, status=filters.status.value if filters.status else ""
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_out(r) for r in rows])


@router.post(
    "/leads",
    response={201: LeadOut, **error_responses(400, 401, 409, 422)},
    operation_id="lead_create",
    summary="Create a lead: a guide's is their own, anyone else's starts in the pool",
)
def lead_create_api(request: HttpRequest, payload: LeadIn) -> Status[dict[str, Any]]:
    """409 naming `phone` or `unionid` when a lead of the brand already has it; 422 naming `phone` when neither."""
    lead = services.lead_create(
        actor=actor_of(request),
        name=payload.name,
        phone=payload.phone or "",
        unionid=payload.unionid or "",
        source=payload.source,
        intent_level=payload.intent_level,
    )
    return Status(201, _out(selectors.access_lead(actor=actor_of(request), lead_id=lead.id)))


@router.post(
    "/leads/{lead_id}/assign",
    response={200: LeadOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="lead_assign",
    summary="Assign or reassign a lead to a guide in scope (managers and HQ; audited)",
)
def lead_assign_api(request: HttpRequest, lead_id: Path[Id], payload: LeadAssignIn) -> dict[str, Any]:
    return _out(services.lead_assign(actor=actor_of(request), lead_id=lead_id, guide_id=payload.guide_id))


@router.post(
    "/leads/{lead_id}/claim",
    response={200: LeadOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="lead_claim",
    summary="Claim a lead from the public pool (a guide for themselves, a manager for a guide in scope)",
)
def lead_claim_api(request: HttpRequest, lead_id: Path[Id], payload: LeadClaimIn) -> dict[str, Any]:
    """409 naming `lead_id` when the lead is no longer in the pool; 404 naming `guide_id` for a guide out of scope."""
    return _out(services.lead_claim(actor=actor_of(request), lead_id=lead_id, guide_id=payload.guide_id))


@router.post(
    "/leads/{lead_id}/follow-up",
    response={200: LeadOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="lead_follow_up",
    summary="Record a follow-up: the owner keeps the lead for the brand's pool period again, or closes it",
)
def lead_follow_up_api(request: HttpRequest, lead_id: Path[Id], payload: LeadFollowUpIn) -> dict[str, Any]:
    return _out(services.lead_follow_up(actor=actor_of(request), lead_id=lead_id, status=payload.status.value))


@router.post(
    "/leads/{lead_id}/convert",
    response={200: LeadOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="lead_convert",
    summary="Convert a lead into a customer: the one named, or the brand's customer with its phone or unionid",
)
def lead_convert_api(request: HttpRequest, lead_id: Path[Id], payload: LeadConvertIn) -> dict[str, Any]:
    """Links the lead to the customer, closes it (it never returns to the pool) and audits it; 409 naming `lead_id`
    when it was converted already, or `customer_id` when no customer has its phone or unionid."""
    lead = services.lead_convert(actor=actor_of(request), lead_id=lead_id, customer_id=payload.customer_id)
    return _out(lead)
