"""Fission campaigns (任务宝 / 裂变): campaigns, participants with their fraud score, the leaderboard, the review
queue and the rewards. Handlers parse, call one service or selector, and shape the answer; names are masked."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import BeforeValidator, Field, StrictBool

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    NO_NUL_PATTERN,
    TRIMMED_PATTERN,
    BodyId,
    BodyIn,
    Id,
    JsonInt,
    NoNul,
    NotNull,
    PageOut,
    PageParams,
    Trimmed,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.campaigns import selectors, services
from siyu.campaigns.models import Campaign, Participant, RewardGrant, RewardKind, RewardTier
from siyu.campaigns.services import MAX_CAPTION, MAX_NAME, MAX_THRESHOLD, MAX_TIERS, TierInput
from siyu.core.errors import NotFound

router = Router(tags=["campaigns"])


CampaignStatusEnum = str_enum("CampaignStatus", Campaign.Status)
RewardKindEnum = str_enum("RewardKind", RewardKind)
ReviewEnum = str_enum("ParticipantReview", Participant.Review)
GrantStatusEnum = str_enum("RewardGrantStatus", RewardGrant.Status)
ParticipantOrderEnum = StrEnum("ParticipantOrder", {k.upper(): k for k in selectors.PARTICIPANT_ORDERS})  # type: ignore[misc]

# Names are stripped by the services: the API takes them trimmed and not blank (not only spaces or \x85).
Text60 = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed
]
Caption = Annotated[str, Field(max_length=MAX_CAPTION, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul]


def _date_text(value: Any) -> Any:
    # The body is parsed JSON: a date must be a string (RFC 3339); pydantic alone would take seconds since 1970.
    if not isinstance(value, str | dt.datetime):
        raise ValueError("must be a date-time string such as 2026-03-01T10:00:00+08:00")
    return value


When = Annotated[dt.datetime, BeforeValidator(_date_text)]


class TierIn(BodyIn):
    threshold: Annotated[int, Field(ge=1, le=MAX_THRESHOLD), JsonInt] = Field(description="Counted invites.")
    reward_kind: RewardKindEnum  # type: ignore[valid-type]
    reward_name: Text60
    stock: Annotated[int, Field(ge=0, le=10_000_000), JsonInt] | None = Field(
        None, description="How many can be granted; null for unlimited."
    )
    points: Annotated[int, Field(ge=1, le=1_000_000), JsonInt] | None = Field(
        None, description="Points rewards: how many points."
    )


class FraudSettingsIn(BodyIn):
    hold_hours: Annotated[int, Field(ge=1, le=720), JsonInt] = 24
    fraud_threshold: Annotated[int, Field(ge=1, le=100), JsonInt] = 40
    velocity_max: Annotated[int, Field(ge=1, le=1000), JsonInt] = 5
    velocity_minutes: Annotated[int, Field(ge=1, le=1440), JsonInt] = 10


class CampaignIn(BodyIn):
    name: Text60
    starts_at: When
    ends_at: When
    tiers: list[TierIn] = Field(min_length=1, max_length=MAX_TIERS)
    guide_ids: list[BodyId] = Field(min_length=1, max_length=100, description="Guides who host the codes.")
    poster_caption: Caption = ""
    settings: FraudSettingsIn | None = None


class CampaignPatchIn(BodyIn):
    name: Annotated[Text60 | None, NotNull] = None
    starts_at: Annotated[When | None, NotNull] = None
    ends_at: Annotated[When | None, NotNull] = None
    tiers: Annotated[list[TierIn] | None, NotNull] = Field(None, min_length=1, max_length=MAX_TIERS)
    guide_ids: Annotated[list[BodyId] | None, NotNull] = Field(None, min_length=1, max_length=100)
    poster_caption: Annotated[Caption | None, NotNull] = None
    settings: Annotated[FraudSettingsIn | None, NotNull] = None


class TierOut(Schema):
    id: int
    threshold: int
    reward_kind: RewardKindEnum  # type: ignore[valid-type]
    reward_name: str
    stock: int | None
    granted: int
    payload: dict[str, Any]


class CampaignOut(Schema):
    id: int
    name: str
    status: CampaignStatusEnum  # type: ignore[valid-type]
    starts_at: dt.datetime
    ends_at: dt.datetime
    poster_caption: str
    entry_qr_url: str
    hold_hours: int
    fraud_threshold: int
    velocity_max: int
    velocity_minutes: int
    guide_ids: list[int]
    tiers: list[TierOut]


class StatsOut(Schema):
    participants: int
    pending: int
    counted: int
    rejected: int
    review: int
    grants: int
    rejected_by_reason: dict[str, int]


class CampaignDetailOut(CampaignOut):
    stats: StatsOut


class FraudReasonOut(Schema):
    code: str
    weight: int


class ParticipantOut(Schema):
    id: int
    customer_id: int
    name_masked: str
    guide_id: int
    inviter_id: int | None
    joined_at: dt.datetime
    invites_pending: int
    invites_counted: int
    invites_rejected: int
    counted_at: dt.datetime | None = Field(description="When the counted total was reached (leaderboard tie-break).")
    fraud_score: int = Field(description="0-100; at or above the campaign's threshold, rewards wait for a review.")
    fraud_reasons: list[dict[str, Any]]
    review: ReviewEnum  # type: ignore[valid-type]
    has_code: bool


class LeaderOut(Schema):
    rank: int
    participant_id: int
    name_masked: str
    invites_counted: int
    counted_at: dt.datetime | None


class ReviewIn(BodyIn):
    approve: StrictBool
    note: Annotated[str, Field(max_length=200, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul] = ""


class GrantOut(Schema):
    id: int
    participant_id: int
    name_masked: str
    threshold: int
    kind: RewardKindEnum  # type: ignore[valid-type]
    payload: dict[str, Any]
    status: GrantStatusEnum  # type: ignore[valid-type]
    granted_at: dt.datetime
    fulfilled_at: dt.datetime | None


class ParticipantFilters(PageParams):
    review: Annotated[ReviewEnum | None, NotNull] = None  # type: ignore[valid-type]
    order: ParticipantOrderEnum = Field(ParticipantOrderEnum("rank"), description="rank, fraud or joined.")  # type: ignore[valid-type]
    min_score: Annotated[int | None, NotNull] = Field(None, ge=0, le=100)


class GrantFilters(PageParams):
    status: Annotated[GrantStatusEnum | None, NotNull] = None  # type: ignore[valid-type]


class CampaignFilters(PageParams):
    status: Annotated[CampaignStatusEnum | None, NotNull] = None  # type: ignore[valid-type]


def _tiers(tiers: list[TierIn]) -> list[TierInput]:
    return [
        TierInput(
            threshold=t.threshold,
            reward_kind=t.reward_kind.value,
            reward_name=t.reward_name,
            stock=t.stock,
            payload={"points": t.points} if t.points is not None else {},
        )
        for t in tiers
    ]


def _tier(t: RewardTier) -> dict[str, Any]:
    return {
        "id": t.id,
        "threshold": t.threshold,
        "reward_kind": t.reward_kind,
        "reward_name": t.reward_name,
        "stock": t.stock,
        "granted": t.granted,
        "payload": t.payload,
    }


def _campaign(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
        "poster_caption": c.poster_caption,
        "entry_qr_url": c.entry_qr_url,
        "hold_hours": c.hold_hours,
        "fraud_threshold": c.fraud_threshold,
        "velocity_max": c.velocity_max,
        "velocity_minutes": c.velocity_minutes,
        "guide_ids": selectors.host_guide_ids(c),
        "tiers": [_tier(t) for t in selectors.tiers_of(c)],
    }


def _detail(request: HttpRequest, campaign_id: int) -> dict[str, Any]:
    actor = actor_of(request)
    campaign = selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    stats = selectors.campaign_stats(actor=actor, campaign_id=campaign.id)
    return {**_campaign(campaign), "stats": stats.__dict__}


def _participant(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "customer_id": p.customer_id,
        "name_masked": selectors.masked_name(p),
        "guide_id": p.guide_id,
        "inviter_id": p.inviter_id,
        "joined_at": p.joined_at,
        "invites_pending": p.invites_pending,
        "invites_counted": p.invites_counted,
        "invites_rejected": p.invites_rejected,
        "counted_at": p.counted_at,
        "fraud_score": p.fraud_score,
        "fraud_reasons": p.fraud_reasons,
        "review": p.review,
        "has_code": p.live_code_id is not None,
    }


def _settings(payload: FraudSettingsIn | None) -> dict[str, int] | None:
    return payload.model_dump() if payload is not None else None


@router.get(
    "/campaigns",
    response={200: PageOut[CampaignOut], **error_responses(401, 422)},
    operation_id="campaign_list",
    summary="Fission campaigns in scope (HQ: all; others: those their guides host), newest first",
)
def campaign_list_api(request: HttpRequest, filters: Query[CampaignFilters]) -> Page[dict[str, Any]]:
    qs = selectors.campaign_list(actor=actor_of(request), status=filters.status.value if filters.status else "")
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_campaign(c) for c in rows])


@router.post(
    "/campaigns",
    response={201: CampaignDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="campaign_create",
    summary="Create a fission campaign (a draft: activate it to make its entry code)",
)
def campaign_create_api(request: HttpRequest, payload: CampaignIn) -> Status[dict[str, Any]]:
    campaign = services.campaign_create(
        actor=actor_of(request),
        name=payload.name,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        tiers=_tiers(payload.tiers),
        guide_ids=payload.guide_ids,
        poster_caption=payload.poster_caption,
        settings=_settings(payload.settings),
    )
    return Status(201, _detail(request, campaign.id))


@router.get(
    "/campaigns/{campaign_id}",
    response={200: CampaignDetailOut, **error_responses(401, 404, 422)},
    operation_id="campaign_get",
    summary="One campaign with its tiers and its counts in your scope",
)
def campaign_get_api(request: HttpRequest, campaign_id: Path[Id]) -> dict[str, Any]:
    return _detail(request, campaign_id)


@router.patch(
    "/campaigns/{campaign_id}",
    response={200: CampaignDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="campaign_update",
    summary="Change a campaign; only the fields sent change",
)
def campaign_update_api(request: HttpRequest, campaign_id: Path[Id], payload: CampaignPatchIn) -> dict[str, Any]:
    services.campaign_update(
        actor=actor_of(request),
        campaign_id=campaign_id,
        name=payload.name,
        starts_at=payload.starts_at,
        ends_at=payload.ends_at,
        tiers=_tiers(payload.tiers) if payload.tiers is not None else None,
        guide_ids=payload.guide_ids,
        poster_caption=payload.poster_caption,
        settings=_settings(payload.settings),
    )
    return _detail(request, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/activate",
    response={200: CampaignDetailOut, **error_responses(400, 401, 403, 404, 409, 422, 503)},
    operation_id="campaign_activate",
    summary="Start a campaign: its entry code is made in WeCom",
)
def campaign_activate_api(request: HttpRequest, campaign_id: Path[Id]) -> dict[str, Any]:
    """409 naming `wecom` when the brand has not connected WeCom; 503 when WeCom does not answer (try again)."""
    services.campaign_activate(actor=actor_of(request), campaign_id=campaign_id)
    return _detail(request, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/end",
    response={200: CampaignDetailOut, **error_responses(401, 403, 404, 422)},
    operation_id="campaign_end",
    summary="End a campaign now (pending invites still settle after their hold)",
)
def campaign_end_api(request: HttpRequest, campaign_id: Path[Id]) -> dict[str, Any]:
    services.campaign_end(actor=actor_of(request), campaign_id=campaign_id)
    return _detail(request, campaign_id)


@router.get(
    "/campaigns/{campaign_id}/participants",
    response={200: PageOut[ParticipantOut], **error_responses(401, 404, 422)},
    operation_id="campaign_participants",
    summary="Participants in scope with their counts, fraud score and reasons (sortable by rank, fraud, joined)",
)
def participant_list_api(
    request: HttpRequest, campaign_id: Path[Id], filters: Query[ParticipantFilters]
) -> Page[dict[str, Any]]:
    qs = selectors.participant_list(
        actor=actor_of(request),
        campaign_id=campaign_id,
        review=filters.review.value if filters.review else "",
        order=filters.order.value,
        min_score=filters.min_score,
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_participant(p) for p in rows])


@router.get(
    "/campaigns/{campaign_id}/leaderboard",
    response={200: list[LeaderOut], **error_responses(401, 404, 422)},
    operation_id="campaign_leaderboard",
    summary="The top 20 by counted invites; ties go to whoever reached the count first",
)
def leaderboard_api(request: HttpRequest, campaign_id: Path[Id]) -> list[dict[str, Any]]:
    rows = selectors.leaderboard(actor=actor_of(request), campaign_id=campaign_id)
    return [
        {
            "rank": i,
            "participant_id": p.id,
            "name_masked": selectors.masked_name(p),
            "invites_counted": p.invites_counted,
            "counted_at": p.counted_at,
        }
        for i, p in enumerate(rows, start=1)
    ]


@router.post(
    "/campaigns/{campaign_id}/participants/{participant_id}/review",
    response={200: ParticipantOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="campaign_participant_review",
    summary="Approve (grant the rewards reached) or reject a participant held by the fraud score",
)
def review_api(
    request: HttpRequest, campaign_id: Path[Id], participant_id: Path[Id], payload: ReviewIn
) -> dict[str, Any]:
    actor = actor_of(request)
    selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    participant = selectors.access_participant(actor=actor, participant_id=participant_id)
    if participant.campaign_id != campaign_id:
        raise NotFound(f"participant {participant_id} not found", field="participant_id")
    services.participant_review(actor=actor, participant_id=participant_id, approve=payload.approve, note=payload.note)
    return _participant(selectors.access_participant(actor=actor, participant_id=participant_id))


@router.get(
    "/campaigns/{campaign_id}/rewards",
    response={200: PageOut[GrantOut], **error_responses(401, 404, 422)},
    operation_id="campaign_rewards",
    summary="Rewards granted, newest first",
)
def grant_list_api(request: HttpRequest, campaign_id: Path[Id], filters: Query[GrantFilters]) -> Page[dict[str, Any]]:
    qs = selectors.grant_list(
        actor=actor_of(request), campaign_id=campaign_id, status=filters.status.value if filters.status else ""
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_grant(g) for g in rows])


def _grant(g: RewardGrant) -> dict[str, Any]:
    return {
        "id": g.id,
        "participant_id": g.participant_id,
        "name_masked": selectors.masked_name(g.participant),
        "threshold": g.tier.threshold,
        "kind": g.kind,
        "payload": g.payload,
        "status": g.status,
        "granted_at": g.granted_at,
        "fulfilled_at": g.fulfilled_at,
    }


@router.post(
    "/campaigns/{campaign_id}/rewards/{grant_id}/fulfil",
    response={200: GrantOut, **error_responses(401, 403, 404, 422)},
    operation_id="campaign_reward_fulfil",
    summary="Mark a reward handed over (a gift sent); idempotent",
)
def fulfil_api(request: HttpRequest, campaign_id: Path[Id], grant_id: Path[Id]) -> dict[str, Any]:
    actor = actor_of(request)
    grant = selectors.grant_list(actor=actor, campaign_id=campaign_id).filter(id=grant_id).first()
    if grant is None:
        raise NotFound(f"reward {grant_id} not found", field="grant_id")
    services.reward_fulfil(actor=actor, grant_id=grant.id)
    grant.refresh_from_db()
    return _grant(grant)
