"""Writes of the campaigns context: fission campaigns (任务宝), participants, invites, anti-fraud, rewards.

The life of an invite: a customer adds a host guide through a participant's personal code → the channels hook calls
`fission_invite_record` (pending, or rejected at once with a reason) → after the hold (24 h) `fission_invites_settle`
counts it unless the invitee deleted the guide meanwhile → rewards for the tiers reached are granted, exactly once
per (participant, tier), unless the inviter's fraud score holds them for an operator's review.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext

from siyu.analytics.services import event_record
from siyu.campaigns import fraud
from siyu.campaigns.models import (
    Campaign,
    CampaignHost,
    Invite,
    LandingVisit,
    Participant,
    ParticipantDevice,
    ParticipantMessage,
    RewardGrant,
    RewardKind,
    RewardTier,
)
from siyu.campaigns.selectors import access_campaign, access_participant, require_operator
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.customers.models import Customer, FollowRelation

logger = logging.getLogger(__name__)

MAX_NAME = 60
MAX_CAPTION = 60
MAX_TIERS = 5
MAX_HOSTS = 100
MAX_THRESHOLD = 10_000
MAX_BACKGROUND_BYTES = 5 * 1024 * 1024
SETTLE_BATCH = 1_000
SETTLE_SLOT = dt.timedelta(minutes=5)  # invites whose holds end within one slot share a settle job
STATE_PREFIX = "fx"


# -- campaigns ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierInput:
    threshold: int
    reward_kind: str
    reward_name: str
    stock: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def entry_state(campaign_id: int) -> str:
    """The `state` of a campaign's entry code: "fx" + the campaign id in base 36 (WeCom allows 30 characters)."""
    return f"{STATE_PREFIX}{_b36(campaign_id)}"


def personal_state(campaign_id: int, participant_id: int) -> str:
    """The `state` of a participant's code, e.g. "fx2s_1ekf": campaign and participant ids in base 36."""
    state = f"{STATE_PREFIX}{_b36(campaign_id)}_{_b36(participant_id)}"
    if len(state) > 30:  # 36^13 ids: never in practice, but WeCom would refuse the code
        raise ValidationFailed("the code's state would exceed 30 characters", field="state")
    return state


def _clean_tiers(tiers: Sequence[TierInput]) -> list[TierInput]:
    if not tiers:
        raise ValidationFailed("a campaign needs at least one reward tier", field="tiers")
    if len(tiers) > MAX_TIERS:
        raise ValidationFailed(f"at most {MAX_TIERS} reward tiers", field="tiers")
    cleaned: list[TierInput] = []
    for i, tier in enumerate(tiers):
        if not 1 <= tier.threshold <= MAX_THRESHOLD:
            raise ValidationFailed(f"the invite goal must be 1 to {MAX_THRESHOLD}", field=f"tiers.{i}.threshold")
        if tier.reward_kind not in RewardKind.values:
            raise ValidationFailed(f"unknown reward kind {tier.reward_kind!r}", field=f"tiers.{i}.reward_kind")
        name = clean_text(tier.reward_name, field=f"tiers.{i}.reward_name", max_length=MAX_NAME)
        if not name:
            raise ValidationFailed("name the reward", field=f"tiers.{i}.reward_name")
        if tier.stock is not None and tier.stock < 0:
            raise ValidationFailed("stock cannot be negative", field=f"tiers.{i}.stock")
        payload = dict(tier.payload)
        if tier.reward_kind == RewardKind.POINTS:
            points = payload.get("points")
            if not isinstance(points, int) or isinstance(points, bool) or not 1 <= points <= 1_000_000:
                # A well-formed tier whose fields contradict each other: a conflict, like the date order.
                raise Conflict("points rewards need payload.points (1 to 1,000,000)", field=f"tiers.{i}.payload")
        cleaned.append(TierInput(tier.threshold, tier.reward_kind, name, tier.stock, payload))
    thresholds = [t.threshold for t in cleaned]
    if len(set(thresholds)) != len(thresholds):
        raise Conflict("two tiers have the same invite goal", field="tiers")
    return sorted(cleaned, key=lambda t: t.threshold)


def _clean_hosts(actor: Actor, guide_ids: Collection[int]) -> list[int]:
    wanted = sorted(set(guide_ids))
    if not wanted:
        raise ValidationFailed("choose at least one guide to host the codes", field="guide_ids")
    if len(wanted) > MAX_HOSTS:
        raise ValidationFailed(f"at most {MAX_HOSTS} guides", field="guide_ids")
    found = dict(Guide.objects.filter(tenant_id=actor.tenant_id, id__in=wanted).values_list("id", "status"))
    for guide_id in wanted:
        # As channels does: an id the brand does not have is not found, a guide who left is a conflict.
        if guide_id not in found:
            raise NotFound(f"unknown guide {guide_id}", field="guide_ids")
        if found[guide_id] != Guide.Status.ACTIVE:
            raise Conflict(f"guide {guide_id} has left WeCom", field="guide_ids")
    return wanted


def _clean_dates(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    for field_name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if timezone.is_naive(value):
            raise ValidationFailed("dates need a time zone", field=field_name)
    if ends_at <= starts_at:
        # Well-formed dates that contradict each other: a conflict (409), like the other cross-field rules.
        raise Conflict("the campaign must end after it starts", field="ends_at")


def _clean_fraud_settings(values: dict[str, int]) -> dict[str, int]:
    limits = {
        "hold_hours": (1, 720),
        "fraud_threshold": (1, 100),
        "velocity_max": (1, 1000),
        "velocity_minutes": (1, 1440),
    }
    for name, value in values.items():
        low, high = limits[name]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationFailed(f"{name} must be {low} to {high}", field=name)
    return values


def _clean_background(content: bytes | None) -> ContentFile[bytes] | None:
    if content is None:
        return None
    if len(content) > MAX_BACKGROUND_BYTES:
        raise ValidationFailed("the background image is larger than 5 MB", field="poster_background")
    from siyu.campaigns.poster import check_background

    kind = check_background(content)
    if kind is None:
        raise ValidationFailed("the background must be a PNG or JPEG image", field="poster_background")
    return ContentFile(content, name=f"{secrets.token_hex(8)}.{kind}")


@transaction.atomic
def campaign_create(
    *,
    actor: Actor,
    name: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    tiers: Sequence[TierInput],
    guide_ids: Collection[int],
    poster_caption: str = "",
    poster_background: bytes | None = None,
    settings: dict[str, int] | None = None,
) -> Campaign:
    """Create a fission campaign (draft). HQ only: a campaign speaks for the whole brand."""
    require_operator(actor)
    name = clean_text(name, field="name", max_length=MAX_NAME)
    if not name:
        raise ValidationFailed("name the campaign", field="name")
    _clean_dates(starts_at, ends_at)
    cleaned = _clean_tiers(tiers)
    hosts = _clean_hosts(actor, guide_ids)
    campaign = Campaign(
        tenant_id=actor.tenant_id,
        name=name,
        starts_at=starts_at,
        ends_at=ends_at,
        poster_caption=clean_text(poster_caption, field="poster_caption", max_length=MAX_CAPTION),
        created_by_id=actor.user_id,
        **_clean_fraud_settings(settings or {}),
    )
    background = _clean_background(poster_background)
    if background is not None:
        campaign.poster_background.save(background.name or "poster.png", background, save=False)
    campaign.save()
    _replace_tiers(campaign, cleaned)
    CampaignHost.objects.bulk_create(
        [CampaignHost(tenant_id=actor.tenant_id, campaign=campaign, guide_id=g) for g in hosts]
    )
    audit_record(
        actor=actor,
        action="campaign.create",
        target_type="campaign",
        target_id=campaign.id,
        detail={"name": name, "tiers": [t.threshold for t in cleaned], "guides": hosts},
    )
    return campaign


def _replace_tiers(campaign: Campaign, tiers: Sequence[TierInput]) -> None:
    existing = {t.threshold: t for t in campaign.tiers.all()}
    keep = {t.threshold for t in tiers}
    granted = [t for th, t in existing.items() if th not in keep and t.granted]
    if granted:
        raise Conflict(
            f"the tier at {granted[0].threshold} invites has granted rewards and cannot be removed", field="tiers"
        )
    RewardTier.objects.filter(campaign=campaign).exclude(threshold__in=keep).delete()
    for tier in tiers:
        row = existing.get(tier.threshold)
        if row is None:
            RewardTier.objects.create(
                tenant_id=campaign.tenant_id,
                campaign=campaign,
                threshold=tier.threshold,
                reward_kind=tier.reward_kind,
                reward_name=tier.reward_name,
                payload=tier.payload,
                stock=tier.stock,
            )
            continue
        if tier.stock is not None and tier.stock < row.granted:
            raise Conflict(f"{row.granted} rewards were already granted at {tier.threshold} invites", field="tiers")
        row.reward_kind, row.reward_name, row.payload, row.stock = (
            tier.reward_kind,
            tier.reward_name,
            tier.payload,
            tier.stock,
        )
        row.save(update_fields=["reward_kind", "reward_name", "payload", "stock"])


@transaction.atomic
def campaign_update(
    *,
    actor: Actor,
    campaign_id: int,
    name: str | None = None,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    tiers: Sequence[TierInput] | None = None,
    guide_ids: Collection[int] | None = None,
    poster_caption: str | None = None,
    poster_background: bytes | None = None,
    settings: dict[str, int] | None = None,
) -> Campaign:
    """Change what is given; an active campaign's codes keep working (new hosts reach new personal codes)."""
    require_operator(actor)
    campaign = access_campaign(actor=actor, campaign_id=campaign_id, for_update=True)
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("the campaign has ended", field="status")
    changed: list[str] = []
    if name is not None:
        campaign.name = clean_text(name, field="name", max_length=MAX_NAME)
        if not campaign.name:
            raise ValidationFailed("name the campaign", field="name")
        changed.append("name")
    if starts_at is not None or ends_at is not None:
        campaign.starts_at = starts_at or campaign.starts_at
        campaign.ends_at = ends_at or campaign.ends_at
        _clean_dates(campaign.starts_at, campaign.ends_at)
        changed += ["starts_at", "ends_at"]
    if poster_caption is not None:
        campaign.poster_caption = clean_text(poster_caption, field="poster_caption", max_length=MAX_CAPTION)
        changed.append("poster_caption")
    background = _clean_background(poster_background)
    if background is not None:
        campaign.poster_background.save(background.name or "poster.png", background, save=False)
        changed.append("poster_background")
    for key, value in _clean_fraud_settings(settings or {}).items():
        setattr(campaign, key, value)
        changed.append(key)
    campaign.save()
    if tiers is not None:
        _replace_tiers(campaign, _clean_tiers(tiers))
        changed.append("tiers")
    if guide_ids is not None:
        hosts = _clean_hosts(actor, guide_ids)
        CampaignHost.objects.filter(campaign=campaign).exclude(guide_id__in=hosts).delete()
        present = set(CampaignHost.objects.filter(campaign=campaign).values_list("guide_id", flat=True))
        CampaignHost.objects.bulk_create(
            [CampaignHost(tenant_id=actor.tenant_id, campaign=campaign, guide_id=g) for g in hosts if g not in present]
        )
        changed.append("guide_ids")
    audit_record(
        actor=actor, action="campaign.update", target_type="campaign", target_id=campaign.id, detail={"fields": changed}
    )
    return campaign


def _host_ids(campaign: Campaign) -> list[int]:
    return list(CampaignHost.objects.filter(campaign=campaign).order_by("guide_id").values_list("guide_id", flat=True))


def _live_code_create(
    *, tenant_id: int, name: str, guide_ids: Sequence[int], state: str, welcome_text: str
) -> tuple[int, str]:
    """A channels live code of purpose "fission" (a WeCom contact way): its id and QR picture URL."""
    from siyu.channels.services import live_code_create  # the channels context owns codes and their WeCom calls

    code = live_code_create(
        actor=Actor.system(tenant_id),
        name=name[:100],
        guide_ids=list(guide_ids),
        state=state,
        purpose="fission",
        welcome_text=welcome_text,
    )
    return code.id, code.qr_code


def campaign_activate(*, actor: Actor, campaign_id: int) -> Campaign:
    """Start a draft campaign: its entry code is made in WeCom (outside any transaction: an HTTP call)."""
    require_operator(actor)
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    if campaign.status == Campaign.Status.ENDED:
        raise Conflict("the campaign has ended", field="status")
    if campaign.entry_live_code_id is None:
        code_id, qr_url = _live_code_create(
            tenant_id=actor.tenant_id,
            name=f"{campaign.name} · 入口",
            guide_ids=_host_ids(campaign),
            state=entry_state(campaign.id),
            welcome_text=_welcome_text(campaign),
        )
        Campaign.objects.filter(id=campaign.id, entry_live_code_id__isnull=True).update(
            entry_live_code_id=code_id, entry_qr_url=qr_url
        )
    with transaction.atomic():
        campaign = access_campaign(actor=actor, campaign_id=campaign_id, for_update=True)
        if campaign.status != Campaign.Status.ACTIVE:
            campaign.status = Campaign.Status.ACTIVE
            campaign.save(update_fields=["status", "updated_at"])
            audit_record(actor=actor, action="campaign.activate", target_type="campaign", target_id=campaign.id)
    return campaign


@transaction.atomic
def campaign_end(*, actor: Actor, campaign_id: int) -> Campaign:
    """End a campaign now: later adds through its codes are not counted (pending invites still settle)."""
    require_operator(actor)
    campaign = access_campaign(actor=actor, campaign_id=campaign_id, for_update=True)
    if campaign.status != Campaign.Status.ENDED:
        campaign.status = Campaign.Status.ENDED
        campaign.ends_at = min(campaign.ends_at, timezone.now())
        if campaign.ends_at <= campaign.starts_at:
            campaign.starts_at = campaign.ends_at - dt.timedelta(seconds=1)
        campaign.save(update_fields=["status", "starts_at", "ends_at", "updated_at"])
        audit_record(actor=actor, action="campaign.end", target_type="campaign", target_id=campaign.id)
    return campaign


def _welcome_text(campaign: Campaign) -> str:
    with translation.override("zh-hans"):
        return gettext("Welcome to %(name)s! Invite friends to unlock your reward.") % {"name": campaign.name}


# -- participants and invites ----------------------------------------------------------------------------------------


def _new_participant(
    campaign: Campaign, relation: FollowRelation, *, inviter: Participant | None, joined_at: dt.datetime
) -> Participant | None:
    """The customer's participant row, created if new; None when a concurrent job created it first."""
    existing = Participant.objects.filter(campaign=campaign, customer_id=relation.customer_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            participant = Participant.objects.create(
                tenant_id=campaign.tenant_id,
                campaign=campaign,
                customer_id=relation.customer_id,
                guide_id=relation.guide_id,
                inviter=inviter,
                follow_relation=relation,
                token=secrets.token_urlsafe(32),
                share_token=secrets.token_urlsafe(32),
                joined_at=joined_at,
            )
    except IntegrityError:
        return Participant.objects.filter(campaign=campaign, customer_id=relation.customer_id).first()
    _message(participant, ParticipantMessage.Kind.JOINED, "joined", _joined_text(campaign), at=joined_at)
    event_record(
        tenant_id=campaign.tenant_id,
        type="campaign.joined",
        customer_id=relation.customer_id,
        guide_id=relation.guide_id,
        occurred_at=joined_at,
        properties={"campaign_id": campaign.id, "inviter_id": inviter.id if inviter else None},
    )
    return participant


def _in_dates(campaign: Campaign, when: dt.datetime) -> bool:
    return campaign.status == Campaign.Status.ACTIVE and campaign.starts_at <= when <= campaign.ends_at


def _is_self(inviter: Participant, customer: Customer) -> bool:
    """The inviter themself. OneID already makes one customer of every account sharing a unionid or a phone
    (identities are unique per brand), so a second WeChat account with the inviter's unionid *is* the inviter here;
    the phone hash is compared too for customers whose phone was typed in without an identity row."""
    if inviter.customer_id == customer.id:
        return True
    return bool(customer.phone_hash) and customer.phone_hash == inviter.customer.phone_hash


def _is_existing(campaign: Campaign, relation: FollowRelation, customer: Customer) -> bool:
    """Known to the brand before this add: created before the campaign, or following a guide since earlier."""
    if customer.created_at < campaign.starts_at:
        return True
    return (
        FollowRelation.objects.filter(
            tenant_id=campaign.tenant_id, customer_id=customer.id, added_at__lt=relation.added_at
        )
        .exclude(id=relation.id)
        .exists()
    )


def _reject_reason(campaign: Campaign, inviter: Participant, relation: FollowRelation, customer: Customer) -> str:
    if _is_self(inviter, customer):
        return Invite.Reason.SELF
    if not _in_dates(campaign, relation.added_at):
        return Invite.Reason.OUTSIDE_DATES
    if (
        Participant.objects.filter(campaign=campaign, customer_id=customer.id).exists()
        or Invite.objects.filter(campaign=campaign, customer_id=customer.id).exists()
    ):
        return Invite.Reason.DUPLICATE
    if _is_existing(campaign, relation, customer):
        return Invite.Reason.EXISTING
    return ""


@transaction.atomic
def fission_invite_record(*, actor: Actor, live_code_id: int, follow_relation_id: int) -> None:
    """A customer added a guide through a fission code (called by the channels hook after the add is applied).

    Through a campaign's entry code the customer joins as a participant. Through a participant's personal code it
    is also an invite of that participant: pending for the hold, or rejected at once (self-invite, already a
    customer, already invited or taking part, outside the dates). Idempotent: the same follow relation twice
    records one invite (the unique (campaign, follow relation) pair, safe under concurrent jobs).
    """
    relation = (
        FollowRelation.objects.filter(tenant_id=actor.tenant_id, id=follow_relation_id)
        .select_related("customer")
        .first()
    )
    if relation is None:
        raise NotFound(f"follow relation {follow_relation_id} not found", field="follow_relation_id")
    inviter = (
        Participant.objects.filter(tenant_id=actor.tenant_id, live_code_id=live_code_id)
        .select_related("campaign", "customer")
        .first()
    )
    if inviter is None:
        campaign = Campaign.objects.filter(tenant_id=actor.tenant_id, entry_live_code_id=live_code_id).first()
        if campaign is None:
            logger.info("fission code %s belongs to no campaign of tenant %s", live_code_id, actor.tenant_id)
            return
        if _in_dates(campaign, relation.added_at):
            # Existing customers may take part (and invite) too; they only never count as someone's invite.
            _new_participant(campaign, relation, inviter=None, joined_at=relation.added_at)
        return
    campaign = inviter.campaign
    if Invite.objects.filter(campaign=campaign, follow_relation_id=relation.id).exists():
        return
    reason = _reject_reason(campaign, inviter, relation, relation.customer)
    now = timezone.now()
    try:
        with transaction.atomic():
            invite = Invite.objects.create(
                tenant_id=actor.tenant_id,
                campaign=campaign,
                inviter=inviter,
                customer_id=relation.customer_id,
                follow_relation=relation,
                added_at=relation.added_at,
                hold_until=relation.added_at + dt.timedelta(hours=campaign.hold_hours),
                status=Invite.Status.REJECTED if reason else Invite.Status.PENDING,
                reason=reason,
                decided_at=now if reason else None,
            )
    except IntegrityError:
        return  # a concurrent run recorded this add
    if reason in ("", Invite.Reason.EXISTING):
        invitee = _new_participant(campaign, relation, inviter=inviter, joined_at=relation.added_at)
        if invitee is not None and invitee.inviter_id == inviter.id:
            Invite.objects.filter(id=invite.id).update(invitee=invitee)
    _recount(inviter.id)
    participant_rescore(participant_id=inviter.id)
    if reason:
        _message(
            inviter, ParticipantMessage.Kind.INVITE_REJECTED, f"invite:{invite.id}", _rejected_text(reason), at=now
        )
    else:
        _message(
            inviter, ParticipantMessage.Kind.INVITE_PENDING, f"invite:{invite.id}", _pending_text(campaign), at=now
        )
    event_record(
        tenant_id=actor.tenant_id,
        type="campaign.invited",
        customer_id=inviter.customer_id,
        guide_id=relation.guide_id,
        occurred_at=relation.added_at,
        properties={"campaign_id": campaign.id, "invite_id": invite.id, "status": invite.status, "reason": reason},
    )
    if not reason:
        at = settle_slot(invite.hold_until)
        transaction.on_commit(lambda: _schedule_settle(campaign_id=campaign.id, tenant_id=actor.tenant_id, at=at))


def settle_slot(hold_until: dt.datetime) -> dt.datetime:
    """When the settle job for a hold ending at `hold_until` runs: a minute later, so the delete callbacks of the
    hold's last second are in, rounded up to SETTLE_SLOT so the invites of those minutes share one job."""
    step = SETTLE_SLOT.total_seconds()
    at = (hold_until + dt.timedelta(minutes=1)).timestamp()
    return dt.datetime.fromtimestamp(math.ceil(at / step) * step, tz=dt.UTC)


def _schedule_settle(*, campaign_id: int, tenant_id: int, at: dt.datetime) -> None:
    """Queue a settle at `at` unless the campaign already has one then or later (which settles this hold too).

    The conditional UPDATE claims the slot: of the concurrent invites of one slot, one queues the job. A job lost
    after its claim (a worker killed) is made up by the worker's periodic sweep (`fission_settle_due`).
    """
    from siyu.campaigns.tasks import fission_settle_run  # tasks import this module

    claimed = (
        Campaign.objects.filter(id=campaign_id)
        .filter(Q(settle_at__isnull=True) | Q(settle_at__lt=at))
        .update(settle_at=at)
    )
    if not claimed:
        return
    try:
        fission_settle_run.using(run_after=at).enqueue(tenant_id)
    except Exception:  # a backend without run_after (immediate) settles on the next periodic run instead
        logger.debug("settle not scheduled for tenant %s", tenant_id, exc_info=True)
        # No job holds the slot: give it back, so the next invite of this slot tries again.
        Campaign.objects.filter(id=campaign_id, settle_at=at).update(settle_at=None)


def _recount(participant_id: int) -> None:
    """Recount a participant's invites from the invite rows (the counters are a cache of them)."""
    counts = dict(
        Invite.objects.filter(inviter_id=participant_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    reached = Invite.objects.filter(inviter_id=participant_id, status=Invite.Status.COUNTED).aggregate(
        at=Max("added_at")
    )["at"]
    Participant.objects.filter(id=participant_id).update(
        invites_pending=counts.get(Invite.Status.PENDING, 0),
        invites_counted=counts.get(Invite.Status.COUNTED, 0),
        invites_rejected=counts.get(Invite.Status.REJECTED, 0),
        counted_at=reached,
    )


def participant_rescore(*, participant_id: int) -> Participant:
    """Recompute a participant's fraud score and reasons from their invites and landing visits (see fraud.py).

    A participant reaching the campaign's threshold goes to the review queue (once: a decision stays).
    """
    participant = Participant.objects.select_related("campaign").get(id=participant_id)
    campaign = participant.campaign
    invites = list(
        Invite.objects.filter(inviter_id=participant_id).values_list(
            "status", "reason", "added_at", "follow_relation__status", "follow_relation__deleted_at"
        )
    )
    hold = dt.timedelta(hours=campaign.hold_hours)
    self_invites = sum(1 for _, reason, *_ in invites if reason == Invite.Reason.SELF)
    considered = [row for row in invites if row[1] != Invite.Reason.SELF]
    quick = sum(
        1
        for _, reason, added_at, rel_status, deleted_at in considered
        if reason == Invite.Reason.QUICK_DELETE
        or (rel_status != FollowRelation.Status.ACTIVE and deleted_at is not None and deleted_at - added_at < hold)
    )
    visits = list(
        LandingVisit.objects.filter(participant_id=participant_id)
        .values("device_hash")
        .annotate(n=Count("id"))
        .values_list("device_hash", "n")
    )
    own = set(ParticipantDevice.objects.filter(participant_id=participant_id).values_list("device_hash", flat=True))
    devices = [d for d, _ in visits]
    farm = 0
    if devices:
        farm = (
            LandingVisit.objects.filter(campaign_id=campaign.id, device_hash__in=devices)
            .values("device_hash")
            .annotate(n=Count("participant_id", distinct=True))
            .filter(n__gte=fraud.DEVICE_FARM_PARTICIPANTS)
            .count()
        )
    signals = fraud.Signals(
        self_invites=self_invites,
        inviter_device_visits=sum(n for d, n in visits if d in own),
        max_visits_one_device=max((n for _, n in visits), default=0),
        farm_devices=farm,
        invites=len(considered),
        distinct_devices=len(devices),
        max_in_window=fraud.max_in_window(
            [added_at for _, _, added_at, *_ in considered], dt.timedelta(minutes=campaign.velocity_minutes)
        ),
        quick_deletes=quick,
    )
    score, reasons = fraud.score(signals, velocity_max=campaign.velocity_max)
    updates: dict[str, Any] = {"fraud_score": score, "fraud_reasons": [r.as_dict() for r in reasons]}
    if score >= campaign.fraud_threshold and participant.review == Participant.Review.NONE:
        updates["review"] = Participant.Review.PENDING
    Participant.objects.filter(id=participant_id).update(**updates)
    for name, value in updates.items():
        setattr(participant, name, value)
    return participant


# -- settling invites after the hold ---------------------------------------------------------------------------------


@dataclass
class SettleCounts:
    counted: int = 0
    rejected: int = 0
    rewards: int = 0
    participants: int = 0


def fission_settle_due(*, now: dt.datetime | None = None) -> int:
    """Enqueue a settle for every brand with invites past their hold (for the worker's periodic sweep): the job
    scheduled at the end of each hold may have been lost with a worker. Returns how many brands were queued."""
    from siyu.campaigns.tasks import fission_settle_run  # tasks import this module

    # A minute's grace, as _schedule_settle gives the delete callbacks of the hold's last second.
    due = now if now is not None else timezone.now() - dt.timedelta(minutes=1)
    tenant_ids = sorted(
        set(
            Invite.objects.filter(status=Invite.Status.PENDING, hold_until__lte=due).values_list(
                "tenant_id", flat=True
            )
        )
    )
    for tenant_id in tenant_ids:
        enqueue_on_commit(fission_settle_run, tenant_id)
    return len(tenant_ids)


def fission_invites_settle(*, tenant_id: int, now: dt.datetime | None = None) -> SettleCounts:
    """Decide the pending invites whose hold has ended (counted, or rejected when the invitee deleted the guide
    within it), then grant the rewards their inviters reached. Idempotent and safe to run concurrently: each
    invite is claimed by a conditional UPDATE, each reward by a unique row.

    `now` is the clock to settle against (tests and the simulator pass WeCom's clock; jobs use the time).
    """
    now = now or timezone.now()
    counts = SettleCounts()
    touched: set[int] = set()
    while True:
        due = list(
            Invite.objects.filter(tenant_id=tenant_id, status=Invite.Status.PENDING, hold_until__lte=now)
            .order_by("hold_until", "id")
            .values_list("id", "inviter_id", "hold_until", "follow_relation__status", "follow_relation__deleted_at")[
                :SETTLE_BATCH
            ]
        )
        if not due:
            break
        quick = [
            i
            for i, _, hold_until, status, deleted_at in due
            if status != FollowRelation.Status.ACTIVE and deleted_at is not None and deleted_at <= hold_until
        ]
        counted = [i for i, *_ in due if i not in set(quick)]
        with transaction.atomic():
            counts.rejected += Invite.objects.filter(id__in=quick, status=Invite.Status.PENDING).update(
                status=Invite.Status.REJECTED, reason=Invite.Reason.QUICK_DELETE, decided_at=now
            )
            counts.counted += Invite.objects.filter(id__in=counted, status=Invite.Status.PENDING).update(
                status=Invite.Status.COUNTED, decided_at=now
            )
        touched.update(inviter for _, inviter, *_ in due)
    for participant_id in sorted(touched):
        with transaction.atomic():
            _recount(participant_id)
            participant = participant_rescore(participant_id=participant_id)
            _settled_messages(participant, now)
            counts.rewards += len(_grant_reached(participant, now))
    counts.participants = len(touched)
    return counts


def _settled_messages(participant: Participant, now: dt.datetime) -> None:
    decided = list(Invite.objects.filter(inviter_id=participant.id, decided_at=now).order_by("added_at", "id"))
    thresholds = list(
        RewardTier.objects.filter(campaign_id=participant.campaign_id).values_list("threshold", flat=True)
    )
    running = participant.invites_counted - sum(1 for i in decided if i.status == Invite.Status.COUNTED)
    for invite in decided:
        if invite.status == Invite.Status.COUNTED:
            running += 1
            goal = next((t for t in thresholds if t > running), thresholds[-1] if thresholds else running)
            text = _progress_text(running, goal)
            _message(participant, ParticipantMessage.Kind.INVITE_COUNTED, f"invite:{invite.id}:done", text, at=now)
        else:
            text = _rejected_text(invite.reason)
            _message(participant, ParticipantMessage.Kind.INVITE_REJECTED, f"invite:{invite.id}:done", text, at=now)


def _may_be_rewarded(participant: Participant) -> bool:
    if participant.review == Participant.Review.APPROVED:
        return True
    return (
        participant.review == Participant.Review.NONE and participant.fraud_score < participant.campaign.fraud_threshold
    )


def _grant_reached(participant: Participant, now: dt.datetime) -> list[RewardGrant]:
    if not _may_be_rewarded(participant):
        if participant.review == Participant.Review.PENDING:
            _message(participant, ParticipantMessage.Kind.REVIEW, "review", _review_text(), at=now)
        return []
    grants = []
    for tier in RewardTier.objects.filter(
        campaign_id=participant.campaign_id, threshold__lte=participant.invites_counted
    ):
        grant = reward_grant(participant_id=participant.id, tier_id=tier.id, at=now)
        if grant is not None:
            grants.append(grant)
    return grants


def reward_grant(*, participant_id: int, tier_id: int, at: dt.datetime | None = None) -> RewardGrant | None:
    """Grant a tier's reward to a participant, exactly once (the unique (participant, tier) row decides, so
    concurrent jobs and re-runs grant it once) and only while stock lasts (an atomic conditional decrement).

    Returns the new grant, or None when it was granted before or the stock is out.
    """
    now = at or timezone.now()
    with transaction.atomic():
        if RewardGrant.objects.filter(participant_id=participant_id, tier_id=tier_id).exists():
            return None
        tier = RewardTier.objects.get(id=tier_id)
        participant = Participant.objects.get(id=participant_id, campaign_id=tier.campaign_id)
        try:
            with transaction.atomic():
                grant = RewardGrant.objects.create(
                    tenant_id=tier.tenant_id,
                    campaign_id=tier.campaign_id,
                    tier=tier,
                    participant=participant,
                    kind=tier.reward_kind,
                    payload={**tier.payload, "reward_name": tier.reward_name},
                    granted_at=now,
                )
                taken = (
                    RewardTier.objects.filter(id=tier_id)
                    .filter(Q(stock__isnull=True) | Q(granted__lt=F("stock")))
                    .update(granted=F("granted") + 1)
                )
                if not taken:
                    raise _OutOfStock
        except IntegrityError:
            return None
        except _OutOfStock:
            _message(participant, ParticipantMessage.Kind.REWARD, f"stock:{tier_id}", _out_of_stock_text(tier), at=now)
            return None
        _message(participant, ParticipantMessage.Kind.REWARD, f"reward:{tier_id}", _reward_text(tier), at=now)
        event_record(
            tenant_id=tier.tenant_id,
            type="reward.granted",
            customer_id=participant.customer_id,
            guide_id=participant.guide_id,
            occurred_at=now,
            properties={"campaign_id": tier.campaign_id, "tier_id": tier.id, "kind": tier.reward_kind},
        )
        return grant


class _OutOfStock(Exception):
    pass


# -- operators: review and fulfilment --------------------------------------------------------------------------------


@transaction.atomic
def participant_review(*, actor: Actor, participant_id: int, approve: bool, note: str = "") -> Participant:
    """An operator's decision on a participant held for review: approving grants the rewards reached (and later
    ones); rejecting withholds them for good. Deciding again changes the decision only while nothing was granted."""
    require_operator(actor)
    participant = access_participant(actor=actor, participant_id=participant_id, for_update=True)
    if participant.review == Participant.Review.NONE:
        raise Conflict("this participant is not waiting for a review", field="participant_id")
    if not approve and participant.grants.exists():
        raise Conflict("rewards were already granted; they are never taken back", field="approve")
    participant.review = Participant.Review.APPROVED if approve else Participant.Review.REJECTED
    participant.reviewed_by_id = actor.user_id
    participant.reviewed_at = timezone.now()
    participant.save(update_fields=["review", "reviewed_by", "reviewed_at"])
    audit_record(
        actor=actor,
        action="campaign.participant_review",
        target_type="participant",
        target_id=participant.id,
        detail={
            "approve": approve,
            "score": participant.fraud_score,
            "note": clean_text(note, field="note", max_length=200),
        },
    )
    if approve:
        _grant_reached(participant, participant.reviewed_at)
    return participant


@transaction.atomic
def reward_fulfil(*, actor: Actor, grant_id: int) -> RewardGrant:
    """Mark a granted reward handed over (a gift sent, a coupon issued by hand); idempotent."""
    require_operator(actor)
    grant = RewardGrant.objects.select_for_update().filter(tenant_id=actor.tenant_id, id=grant_id).first()
    if grant is None:
        raise NotFound(f"reward {grant_id} not found", field="grant_id")
    if grant.status != RewardGrant.Status.FULFILLED:
        grant.status = RewardGrant.Status.FULFILLED
        grant.fulfilled_at = timezone.now()
        grant.save(update_fields=["status", "fulfilled_at"])
        audit_record(actor=actor, action="campaign.reward_fulfil", target_type="reward_grant", target_id=grant.id)
    return grant


# -- the participant's public pages ------------------------------------------------------------------------------


def device_hash(*, cookie_id: str, user_agent: str) -> str:
    """The device fingerprint: a cookie id the landing sets plus the browser's user agent, hashed (no raw UA kept)."""
    return hashlib.sha256(f"{cookie_id}\x00{user_agent}".encode()).hexdigest()


def participant_device_seen(*, participant: Participant, fingerprint: str) -> None:
    """The participant opened their own page on this device (a self-invite sign if it shows on their landing)."""
    ParticipantDevice.objects.get_or_create(
        participant=participant,
        device_hash=fingerprint,
        defaults={
            "tenant_id": participant.tenant_id,
            "campaign_id": participant.campaign_id,
            "created_at": timezone.now(),
        },
    )


def landing_visit_record(*, participant: Participant, fingerprint: str) -> None:
    """A device opened a participant's landing (their poster's QR) before being shown the contact code.

    One insert: the score is recomputed when it matters (each invite and each settle), so the landing, on the
    path of every scan, stays one cheap write.
    """
    LandingVisit.objects.create(
        tenant_id=participant.tenant_id,
        campaign_id=participant.campaign_id,
        participant=participant,
        device_hash=fingerprint,
        created_at=timezone.now(),
    )


def participant_code_ensure(*, participant: Participant) -> Participant:
    """The participant's personal code, made in WeCom on first need (one HTTP call, outside any transaction).

    Made lazily because WeCom caps contact ways per corp and most participants never share. Two requests racing
    both call WeCom, but the state is unique among live codes, so one code wins and the other request reads it.
    """
    if participant.live_code_id is not None:
        return participant
    campaign = participant.campaign
    state = personal_state(campaign.id, participant.id)
    try:
        code_id, qr_url = _live_code_create(
            tenant_id=participant.tenant_id,
            name=f"{campaign.name} · {participant.id}",
            guide_ids=[participant.guide_id] if _is_host(campaign, participant.guide_id) else _host_ids(campaign),
            state=state,
            welcome_text=_welcome_text(campaign),
        )
    except Conflict:
        # The state is taken: a concurrent request made the code, or an earlier one made it and died before
        # saving it here. Either way the code with this state is the participant's.
        from siyu.channels.selectors import live_code_list

        code = live_code_list(actor=Actor.system(participant.tenant_id), q=state).filter(state=state).first()
        if code is None or not code.config_id:
            raise
        code_id, qr_url = code.id, code.qr_code
    Participant.objects.filter(id=participant.id, live_code_id__isnull=True).update(
        live_code_id=code_id, code_state=state, qr_url=qr_url
    )
    participant.refresh_from_db()
    return participant


def _is_host(campaign: Campaign, guide_id: int) -> bool:
    return CampaignHost.objects.filter(campaign=campaign, guide_id=guide_id).exists()


def participant_codes_ensure(*, actor: Actor, campaign_id: int, participant_ids: Iterable[int]) -> int:
    """Make the personal codes of several participants at once (an operator preparing a launch); returns how many."""
    require_operator(actor)
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    made = 0
    for participant in Participant.objects.filter(campaign=campaign, id__in=list(participant_ids), live_code_id=None):
        participant.campaign = campaign
        made += participant_code_ensure(participant=participant).live_code_id is not None
    return made


# -- messages -------------------------------------------------------------------------------------------------------


def _message(participant: Participant, kind: str, key: str, text: str, *, at: dt.datetime) -> None:
    ParticipantMessage.objects.bulk_create(
        [
            ParticipantMessage(
                tenant_id=participant.tenant_id,
                participant=participant,
                kind=kind,
                text=text[:200],
                dedupe_key=key[:64],
                created_at=at,
            )
        ],
        ignore_conflicts=True,
    )


def _zh(text: str, **params: Any) -> str:
    # Customers read Chinese whatever language the operator's console uses.
    with translation.override("zh-hans"):
        return gettext(text) % params


def _joined_text(campaign: Campaign) -> str:
    return _zh("You joined %(name)s. Share your poster: friends who add us count for you.", name=campaign.name)


def _pending_text(campaign: Campaign) -> str:
    return _zh("A friend added us through your poster. It counts after %(hours)s hours.", hours=campaign.hold_hours)


def _progress_text(count: int, goal: int) -> str:
    return _zh("An invite counted: you have %(count)s/%(goal)s invites.", count=count, goal=goal)


def _rejected_text(reason: str) -> str:
    labels = {
        Invite.Reason.SELF: "your own account",
        Invite.Reason.EXISTING: "already our customer",
        Invite.Reason.DUPLICATE: "already invited",
        Invite.Reason.OUTSIDE_DATES: "outside the campaign dates",
        Invite.Reason.QUICK_DELETE: "deleted us within the hold",
    }
    with translation.override("zh-hans"):
        why = gettext(labels.get(reason, "not eligible"))
        return gettext("An invite did not count (%(why)s).") % {"why": why}


def _reward_text(tier: RewardTier) -> str:
    return _zh("You earned %(reward)s for %(count)s invites!", reward=tier.reward_name, count=tier.threshold)


def _out_of_stock_text(tier: RewardTier) -> str:
    return _zh(
        "You reached %(count)s invites, but %(reward)s is out of stock.", reward=tier.reward_name, count=tier.threshold
    )


def _review_text() -> str:
    return _zh("Your invites are being checked; rewards follow once confirmed.")


# -- history: what happened before siyu recorded it (imports, replayed histories) -----------------------------------
#
# The services above stamp what they record with the wall clock. A campaign brought over from another system, or a
# history replayed add by add (the demo brand's), goes through them all the same and then dates their stamps to
# when things happened. Dating is not a decision: these write no audit rows beyond the ones the services write.


def _not_future(at: dt.datetime, *, field: str) -> None:
    if at > timezone.now():
        raise ValidationFailed("a moment of the past is needed", field=field)


def campaign_backdate(*, actor: Actor, campaign_id: int, created_at: dt.datetime) -> Campaign:
    """Date a campaign when it was prepared rather than when its row was written. HQ only."""
    require_operator(actor)
    _not_future(created_at, field="created_at")
    campaign = access_campaign(actor=actor, campaign_id=campaign_id)
    Campaign.objects.filter(id=campaign.id).update(created_at=created_at)
    campaign.created_at = created_at
    return campaign


@transaction.atomic
def fission_invite_replay(*, actor: Actor, live_code_id: int, follow_relation_id: int) -> dt.datetime | None:
    """`fission_invite_record` for an add made earlier: what it stamps with the wall clock (the decision of an
    invite rejected at once, the inviter's message about the invite) is dated at the add's own time. HQ only.

    Returns the end of the invite's hold while it is pending, for the caller to settle it then
    (`fission_invites_settle` with that clock); None when the add was decided at once or was no invite.
    """
    require_operator(actor)
    fission_invite_record(actor=actor, live_code_id=live_code_id, follow_relation_id=follow_relation_id)
    invite = Invite.objects.filter(
        tenant_id=actor.tenant_id, follow_relation_id=follow_relation_id, inviter__live_code_id=live_code_id
    ).first()
    if invite is None:
        return None
    Invite.objects.filter(id=invite.id, decided_at__isnull=False).update(decided_at=invite.added_at)
    ParticipantMessage.objects.filter(participant_id=invite.inviter_id, dedupe_key=f"invite:{invite.id}").update(
        created_at=invite.added_at
    )
    return invite.hold_until if invite.status == Invite.Status.PENDING else None


def landing_visit_replay(*, actor: Actor, participant_id: int, fingerprint: str, at: dt.datetime) -> None:
    """`landing_visit_record` for a device that opened the participant's landing earlier, at `at`. HQ only."""
    require_operator(actor)
    _not_future(at, field="at")
    participant = access_participant(actor=actor, participant_id=participant_id)
    if not fingerprint:
        raise ValidationFailed("the device fingerprint is missing", field="fingerprint")
    LandingVisit.objects.create(
        tenant_id=participant.tenant_id,
        campaign_id=participant.campaign_id,
        participant=participant,
        device_hash=fingerprint[:64],
        created_at=at,
    )


def participant_device_replay(*, actor: Actor, participant_id: int, fingerprint: str, at: dt.datetime) -> None:
    """`participant_device_seen` for a device the participant opened their own page on earlier, first at `at`.
    Idempotent: a device seen before keeps its first date. HQ only."""
    require_operator(actor)
    _not_future(at, field="at")
    participant = access_participant(actor=actor, participant_id=participant_id)
    if not fingerprint:
        raise ValidationFailed("the device fingerprint is missing", field="fingerprint")
    ParticipantDevice.objects.get_or_create(
        participant=participant,
        device_hash=fingerprint[:64],
        defaults={"tenant_id": participant.tenant_id, "campaign_id": participant.campaign_id, "created_at": at},
    )


@transaction.atomic
def reward_fulfil_replay(*, actor: Actor, grant_id: int, fulfilled_at: dt.datetime) -> RewardGrant:
    """`reward_fulfil` for a reward handed over earlier, dated `fulfilled_at` (not before it was granted).
    Idempotent: a reward already marked fulfilled keeps its date."""
    require_operator(actor)
    _not_future(fulfilled_at, field="fulfilled_at")
    grant = RewardGrant.objects.filter(tenant_id=actor.tenant_id, id=grant_id).first()
    if grant is None:
        raise NotFound(f"reward {grant_id} not found", field="grant_id")
    if fulfilled_at < grant.granted_at:
        raise ValidationFailed("a reward is handed over after it was granted", field="fulfilled_at")
    if grant.status == RewardGrant.Status.FULFILLED:
        return grant
    grant = reward_fulfil(actor=actor, grant_id=grant_id)
    RewardGrant.objects.filter(id=grant.id).update(fulfilled_at=fulfilled_at)
    grant.fulfilled_at = fulfilled_at
    return grant
