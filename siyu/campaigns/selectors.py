"""Reads of the campaigns context, always from an actor's tenant and data scope.

HQ sees every campaign and participant of the brand. Other roles see the campaigns one of their guides hosts, and
the participants served by a guide in their scope (the guide the participant added). Only HQ runs campaigns
(creates, edits, reviews): a campaign speaks for the whole brand. Public pages find a participant by token only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from siyu.campaigns.models import (
    Campaign,
    CampaignHost,
    Invite,
    LandingVisit,
    Participant,
    ParticipantDevice,
    ParticipantMessage,
    RewardGrant,
    RewardTier,
)
from siyu.core import pii
from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.scopes import Actor
from siyu.customers.selectors import customer_pii


def require_operator(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ operators run campaigns")


def can_operate(actor: Actor) -> bool:
    return actor.is_brand_wide


def campaign_list(*, actor: Actor, status: str = "") -> QuerySet[Campaign]:
    qs = Campaign.objects.filter(tenant_id=actor.tenant_id)
    if actor.guide_ids is not None:
        hosted = CampaignHost.objects.filter(tenant_id=actor.tenant_id, guide_id__in=sorted(actor.guide_ids))
        qs = qs.filter(id__in=hosted.values("campaign_id"))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-starts_at", "-id")


def access_campaign(*, actor: Actor, campaign_id: int, for_update: bool = False) -> Campaign:
    qs = campaign_list(actor=actor).filter(id=campaign_id)
    if for_update:
        qs = qs.select_for_update()
    campaign = qs.first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found", field="campaign_id")
    return campaign


def participant_scope(*, actor: Actor) -> QuerySet[Participant]:
    qs = Participant.objects.filter(tenant_id=actor.tenant_id)
    if actor.guide_ids is not None:
        qs = qs.filter(guide_id__in=sorted(actor.guide_ids))
    return qs


def access_participant(*, actor: Actor, participant_id: int, for_update: bool = False) -> Participant:
    qs = participant_scope(actor=actor).filter(id=participant_id).select_related("campaign", "customer", "guide")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    participant = qs.first()
    if participant is None:
        raise NotFound(f"participant {participant_id} not found", field="participant_id")
    return participant


PARTICIPANT_ORDERS = {
    "rank": ("-invites_counted", "counted_at", "id"),
    "fraud": ("-fraud_score", "id"),
    "joined": ("-joined_at", "-id"),
}


def participant_list(
    *, actor: Actor, campaign_id: int, review: str = "", order: str = "rank", min_score: int | None = None
) -> QuerySet[Participant]:
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    qs = participant_scope(actor=actor).filter(campaign=campaign)
    if review:
        qs = qs.filter(review=review)
    if min_score is not None:
        qs = qs.filter(fraud_score__gte=min_score)
    return qs.select_related("customer", "guide").order_by(*PARTICIPANT_ORDERS.get(order, PARTICIPANT_ORDERS["rank"]))


def leaderboard(*, actor: Actor, campaign_id: int, limit: int = 20) -> list[Participant]:
    """Counted invites, ties by the time the count was reached (earlier first); participants rejected in review
    are left out. Scoped like every participant list."""
    return list(
        participant_list(actor=actor, campaign_id=campaign_id)
        .filter(invites_counted__gt=0)
        .exclude(review=Participant.Review.REJECTED)[:limit]
    )


def review_queue(*, actor: Actor, campaign_id: int) -> QuerySet[Participant]:
    return participant_list(actor=actor, campaign_id=campaign_id, review=Participant.Review.PENDING, order="fraud")


def grant_list(*, actor: Actor, campaign_id: int, status: str = "") -> QuerySet[RewardGrant]:
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    qs = RewardGrant.objects.filter(
        tenant_id=actor.tenant_id, campaign=campaign, participant__in=participant_scope(actor=actor)
    )
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("tier", "participant__customer").order_by("-granted_at", "-id")


def tiers_of(campaign: Campaign) -> list[RewardTier]:
    return list(RewardTier.objects.filter(campaign=campaign).order_by("threshold"))


def host_guide_ids(campaign: Campaign) -> list[int]:
    return list(CampaignHost.objects.filter(campaign=campaign).order_by("guide_id").values_list("guide_id", flat=True))


@dataclass(frozen=True)
class CampaignStats:
    participants: int
    pending: int
    counted: int
    rejected: int
    review: int
    grants: int
    rejected_by_reason: dict[str, int]


def campaign_stats(*, actor: Actor, campaign_id: int) -> CampaignStats:
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    participants = participant_scope(actor=actor).filter(campaign=campaign)
    invites = Invite.objects.filter(campaign=campaign, inviter__in=participants)
    by_status = dict(invites.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    reasons = dict(
        invites.filter(status=Invite.Status.REJECTED)
        .values_list("reason")
        .annotate(n=Count("id"))
        .values_list("reason", "n")
    )
    return CampaignStats(
        participants=participants.count(),
        pending=by_status.get(Invite.Status.PENDING, 0),
        counted=by_status.get(Invite.Status.COUNTED, 0),
        rejected=by_status.get(Invite.Status.REJECTED, 0),
        review=participants.filter(review=Participant.Review.PENDING).count(),
        grants=RewardGrant.objects.filter(campaign=campaign, participant__in=participants).count(),
        rejected_by_reason=reasons,
    )


def campaign_daily(*, actor: Actor, campaign_id: int, days: int = 60) -> dict[str, list[Any]]:
    """Per day: participants joined, invites by their current status (by the day of the add); for the chart."""
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    tz = timezone.get_current_timezone()
    participants = participant_scope(actor=actor).filter(campaign=campaign)
    joined = dict(
        participants.annotate(day=TruncDate("joined_at", tzinfo=tz))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    invites: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for day, status, n in (
        Invite.objects.filter(campaign=campaign, inviter__in=participants)
        .annotate(day=TruncDate("added_at", tzinfo=tz))
        .values_list("day", "status")
        .annotate(n=Count("id"))
        .values_list("day", "status", "n")
    ):
        invites[status][day] = n
    all_days = sorted(set(joined) | {d for by_day in invites.values() for d in by_day})[-days:]
    return {
        "days": [d.isoformat() for d in all_days],
        "participants": [joined.get(d, 0) for d in all_days],
        "pending": [invites[Invite.Status.PENDING].get(d, 0) for d in all_days],
        "counted": [invites[Invite.Status.COUNTED].get(d, 0) for d in all_days],
        "rejected": [invites[Invite.Status.REJECTED].get(d, 0) for d in all_days],
    }


def masked_name(participant: Participant) -> str:
    """The participant's name as public pages and lists show it (e.g. 王*明): never the full name."""
    name = customer_pii(participant.customer)["name"]
    return pii.mask_name(name) if name else f"#{participant.id}"


def name_initial(participant: Participant) -> str:
    """The first character of the name for the poster (no more PII than that on a shareable image)."""
    name = customer_pii(participant.customer)["name"]
    return name[:1] if name else "★"


# -- public (token) reads ------------------------------------------------------------------------------------------


def participant_by_token(*, token: str) -> Participant:
    participant = (
        Participant.objects.filter(token=token).select_related("campaign", "customer").first() if token else None
    )
    if participant is None:
        raise NotFound("not found")
    return participant


def participant_by_share_token(*, share_token: str) -> Participant:
    participant = (
        Participant.objects.filter(share_token=share_token).select_related("campaign", "customer").first()
        if share_token
        else None
    )
    if participant is None:
        raise NotFound("not found")
    return participant


def public_leaderboard(*, campaign: Campaign, limit: int = 10) -> list[dict[str, Any]]:
    """The top of the board as participants see it: rank, masked name, counted invites."""
    rows = (
        Participant.objects.filter(tenant_id=campaign.tenant_id, campaign=campaign, invites_counted__gt=0)
        .exclude(review=Participant.Review.REJECTED)
        .select_related("customer")
        .order_by(*PARTICIPANT_ORDERS["rank"])[:limit]
    )
    return [{"rank": i, "name": masked_name(p), "counted": p.invites_counted} for i, p in enumerate(rows, start=1)]


def participant_messages(*, participant: Participant, limit: int = 20) -> list[ParticipantMessage]:
    return list(ParticipantMessage.objects.filter(participant=participant).order_by("-created_at", "-id")[:limit])


def participant_grants(*, participant: Participant) -> list[RewardGrant]:
    return list(RewardGrant.objects.filter(participant=participant).select_related("tier").order_by("tier__threshold"))


def participant_of_customer(*, actor: Actor, campaign_id: int, customer_id: int) -> Participant:
    """A customer's participation in a campaign (with its campaign), within the actor's scope."""
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    participant = participant_scope(actor=actor).filter(campaign=campaign, customer_id=customer_id).first()
    if participant is None:
        raise NotFound(f"customer {customer_id} takes no part in campaign {campaign_id}", field="customer_id")
    participant.campaign = campaign
    return participant


def campaign_row_counts(*, actor: Actor) -> dict[str, int]:
    """How many rows of each campaigns table the brand holds (its data's footprint: imports, clean-ups). HQ only."""
    require_operator(actor)
    tables = (
        Campaign, CampaignHost, RewardTier, Participant, Invite, RewardGrant, ParticipantMessage, LandingVisit,
        ParticipantDevice,
    )  # fmt: skip
    return {model.__name__: model.objects.filter(tenant_id=actor.tenant_id).count() for model in tables}
