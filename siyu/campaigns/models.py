"""Campaigns (活动): fission (任务宝 / 群裂变) today; check-in and lottery reuse the reward tiers and grants.

A `Campaign` has reward tiers (3 invites → coupon, 10 → gift), host guides and dates. A customer who adds a host
guide through the campaign's entry code, or through another participant's personal code, becomes a `Participant`
with a personal code (a channels live code of purpose "fission") and a poster. Each add through a personal code
is an `Invite`: pending for the hold (24 h), then counted or rejected with a reason. `RewardGrant` rows are the
rewards, one per (participant, tier), ever; `ParticipantMessage` rows are the progress messages (an outbox).
`LandingVisit` and `ParticipantDevice` are the device fingerprints the anti-fraud rules read.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned
from siyu.customers.models import Customer, FollowRelation


class RewardKind(models.TextChoices):
    COUPON = "coupon", _("Coupon")
    POINTS = "points", _("Points")
    GIFT = "gift", _("Gift")


class Campaign(TenantOwned):
    """One campaign (活动). Only `fission` exists today; the kind keeps check-in and lottery in the same table."""

    class Kind(models.TextChoices):
        FISSION = "fission", _("Fission")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        ENDED = "ended", _("Ended")

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FISSION)
    name = models.CharField(max_length=60)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    poster_caption = models.CharField(max_length=60, blank=True, default="")
    poster_background = models.FileField(upload_to="campaigns/posters/", blank=True, default="")
    # The campaign's entry code (a channels live code of purpose "fission"): adds through it are seed participants.
    entry_live_code_id = models.BigIntegerField(null=True, blank=True)
    entry_qr_url = models.URLField(max_length=500, blank=True, default="")
    # Anti-fraud settings (see siyu.campaigns.fraud): participants at or above the threshold wait for a review.
    hold_hours = models.PositiveSmallIntegerField(default=24)
    fraud_threshold = models.PositiveSmallIntegerField(default=40)
    velocity_max = models.PositiveSmallIntegerField(default=5)
    velocity_minutes = models.PositiveSmallIntegerField(default=10)
    # When the latest settle job is scheduled to run: one job settles every invite whose hold has ended by then,
    # so invites whose holds end within the same few minutes share it instead of queueing one job each.
    settle_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind", "-starts_at"], name="campaign_tenant_kind")]
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return self.name


class CampaignHost(TenantOwned):
    """A guide whose WeCom account the campaign's codes add (the participants' codes rotate over the hosts)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="hosts")
    guide = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "guide"], name="campaign_host_unique")]


class RewardTier(TenantOwned):
    """A reward unlocked at `threshold` counted invites; `stock` None is unlimited, `granted` counts grants."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tiers")
    threshold = models.PositiveIntegerField()
    reward_kind = models.CharField(max_length=16, choices=RewardKind.choices)
    reward_name = models.CharField(max_length=60)
    # What the coupon / points ledgers will need: {"points": 100} or {"coupon_template": "..."}; opaque here.
    payload = models.JSONField(default=dict, blank=True)
    stock = models.PositiveIntegerField(null=True, blank=True)
    granted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "threshold"], name="reward_tier_unique")]
        ordering = ["threshold"]


class Participant(TenantOwned):
    """A customer taking part (参与者), with their personal code, their counts and their fraud score.

    `token` opens the participant's own page (progress, poster); `share_token` is the public landing their poster's
    QR leads to. Both are unguessable; neither is an id.
    """

    class Review(models.TextChoices):
        NONE = "none", _("Not needed")
        PENDING = "pending", _("Waiting for review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="participants")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")
    inviter = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    follow_relation = models.ForeignKey(FollowRelation, on_delete=models.SET_NULL, null=True, related_name="+")
    token = models.CharField(max_length=43, unique=True)
    share_token = models.CharField(max_length=43, unique=True)
    # The personal code, made when the participant first opens their page (WeCom caps contact ways per corp).
    live_code_id = models.BigIntegerField(null=True, blank=True, unique=True)
    code_state = models.CharField(max_length=30, blank=True, default="")
    qr_url = models.URLField(max_length=500, blank=True, default="")
    joined_at = models.DateTimeField()
    invites_pending = models.PositiveIntegerField(default=0)
    invites_counted = models.PositiveIntegerField(default=0)
    invites_rejected = models.PositiveIntegerField(default=0)
    # When the participant reached their current counted total: the leaderboard's tie-break (earlier first).
    counted_at = models.DateTimeField(null=True, blank=True)
    fraud_score = models.PositiveSmallIntegerField(default=0)
    fraud_reasons = models.JSONField(default=list, blank=True)
    review = models.CharField(max_length=16, choices=Review.choices, default=Review.NONE)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "customer"], name="participant_unique")]
        indexes = [
            models.Index(fields=["campaign", "-invites_counted", "counted_at"], name="participant_board"),
            models.Index(fields=["campaign", "-fraud_score"], name="participant_fraud"),
            models.Index(fields=["campaign", "review"], name="participant_review"),
        ]


class Invite(TenantOwned):
    """One add through a participant's personal code (邀请): pending during the hold, then counted or rejected."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        COUNTED = "counted", _("Counted")
        REJECTED = "rejected", _("Rejected")

    class Reason(models.TextChoices):
        SELF = "self", _("Self-invite")
        EXISTING = "existing_customer", _("Already a customer")
        DUPLICATE = "duplicate", _("Already invited or already taking part")
        OUTSIDE_DATES = "outside_dates", _("Outside the campaign dates")
        QUICK_DELETE = "quick_delete", _("Deleted the guide within the hold")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="invites")
    inviter = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="invites")
    invitee = models.ForeignKey(Participant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    follow_relation = models.ForeignKey(FollowRelation, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField()
    hold_until = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=24, choices=Reason.choices, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One add is one invite, however often the hook runs (re-runs, duplicate jobs).
            models.UniqueConstraint(fields=["campaign", "follow_relation"], name="invite_relation_unique"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "hold_until"], name="invite_settle"),
            models.Index(fields=["inviter", "added_at"], name="invite_inviter_time"),
            models.Index(fields=["campaign", "customer"], name="invite_customer"),
        ]


class LandingVisit(TenantOwned):
    """A device that opened a participant's public landing (the poster's QR) before seeing the contact code."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    device_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["participant", "device_hash"], name="landing_participant_device"),
            models.Index(fields=["campaign", "device_hash"], name="landing_campaign_device"),
        ]


class ParticipantDevice(TenantOwned):
    """A device the participant opened their own page on: seeing it on their own landing is a self-invite sign."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="devices")
    device_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "device_hash"], name="participant_device_unique")
        ]
        indexes = [models.Index(fields=["campaign", "device_hash"], name="participant_device_campaign")]


class RewardGrant(TenantOwned):
    """A reward earned (奖励发放): exactly one per (participant, tier), whatever runs twice.

    `granted` when earned; `fulfilled` once the coupon, points or gift reached the customer (the coupon and points
    ledgers of a later issue fulfil through `payload`; gifts are marked fulfilled by an operator).
    """

    class Status(models.TextChoices):
        GRANTED = "granted", _("Reward granted")
        FULFILLED = "fulfilled", _("Reward fulfilled")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="grants")
    tier = models.ForeignKey(RewardTier, on_delete=models.PROTECT, related_name="grants")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="grants")
    kind = models.CharField(max_length=16, choices=RewardKind.choices)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GRANTED)
    granted_at = models.DateTimeField()
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["participant", "tier"], name="reward_grant_unique")]
        indexes = [models.Index(fields=["campaign", "status"], name="reward_grant_status")]


class ParticipantMessage(TenantOwned):
    """A progress message (进度通知) to a participant, kept as an outbox row and shown on their page.

    WeCom has no API that messages a customer without the guide confirming each send (add_msg_template), so
    nothing is pushed today: `delivery` stays `page` (shown on the participant's page). `dedupe_key` makes a
    message written twice by a re-run one row.
    """

    class Kind(models.TextChoices):
        JOINED = "joined", _("Joined")
        INVITE_PENDING = "invite_pending", _("Invite waiting for the hold")
        INVITE_COUNTED = "invite_counted", _("Invite counted")
        INVITE_REJECTED = "invite_rejected", _("Invite not counted")
        REWARD = "reward", _("Reward earned")
        REVIEW = "review", _("Under review")

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    text = models.CharField(max_length=200)
    dedupe_key = models.CharField(max_length=64)
    delivery = models.CharField(max_length=16, default="page")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "dedupe_key"], name="participant_message_unique")
        ]
        ordering = ["-created_at", "-id"]
