"""History recorded after the fact (an import, the demo brand's replayed timeline): invites, landing visits, devices
and fulfilments go through the campaigns services and are dated when they happened, within the actor's brand and
scope, and a moment of the future is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.campaigns import services
from siyu.campaigns.models import (
    Campaign,
    Invite,
    LandingVisit,
    Participant,
    ParticipantDevice,
    ParticipantMessage,
    RewardGrant,
    RewardTier,
)
from siyu.campaigns.selectors import campaign_row_counts, participant_of_customer
from siyu.campaigns.services import TierInput
from siyu.core.errors import NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers.models import FollowRelation
from siyu.customers.services import customer_create, follow_relation_add
from siyu.testing import World

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ENTRY_CODE, PERSONAL_CODE = 9_001, 9_002


@pytest.fixture
def campaign(world: World) -> Campaign:
    campaign = services.campaign_create(
        actor=world.actor("hq"),
        name="春季邀友",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[TierInput(1, "coupon", "满100减20券")],
        guide_ids=[world.guides["G1"].id],
    )
    # Activation makes the entry code in WeCom through channels; here the code's id is given directly.
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=ENTRY_CODE)
    campaign.refresh_from_db()
    return campaign


def _add(world: World, at: dt.datetime, *, customer_id: int | None = None, guide: str = "G1") -> FollowRelation:
    """A customer (a new one unless given) adding a guide at `at`, as the callbacks record it."""
    actor = world.actor("hq")
    if customer_id is None:
        customer_id = customer_create(actor=actor, name="客户", source="wecom", created_at=at).id
    return follow_relation_add(
        actor=actor,
        customer_id=customer_id,
        guide_id=world.guides[guide].id,
        external_userid=f"wm-{customer_id}-{guide}",
        added_at=at,
    )


def _inviter(world: World, campaign: Campaign, at: dt.datetime) -> Participant:
    """A participant who joined through the entry code at `at` and has their personal code."""
    relation = _add(world, at)
    hq = world.actor("hq")
    assert services.fission_invite_replay(actor=hq, live_code_id=ENTRY_CODE, follow_relation_id=relation.id) is None
    participant = participant_of_customer(actor=hq, campaign_id=campaign.id, customer_id=relation.customer_id)
    Participant.objects.filter(id=participant.id).update(live_code_id=PERSONAL_CODE)
    participant.refresh_from_db()
    return participant


def test_a_replayed_invite_is_dated_at_the_add_and_tells_when_its_hold_ends(world: World, campaign: Campaign) -> None:
    hq = world.actor("hq")
    t = START + dt.timedelta(days=2)
    inviter = _inviter(world, campaign, t)
    assert inviter.joined_at == t

    friend = _add(world, t + dt.timedelta(hours=1))
    hold_end = services.fission_invite_replay(actor=hq, live_code_id=PERSONAL_CODE, follow_relation_id=friend.id)
    invite = Invite.objects.get(follow_relation=friend)
    assert (invite.status, invite.decided_at) == (Invite.Status.PENDING, None)
    assert hold_end == invite.hold_until == friend.added_at + dt.timedelta(hours=campaign.hold_hours)
    waiting = ParticipantMessage.objects.get(participant=inviter, dedupe_key=f"invite:{invite.id}")
    assert waiting.created_at == friend.added_at  # the inviter heard of it when the friend added, not today

    # The inviter adding another guide through their own code: rejected at once, and decided at the add's time.
    own = _add(world, t + dt.timedelta(hours=2), customer_id=inviter.customer_id, guide="G2")
    assert services.fission_invite_replay(actor=hq, live_code_id=PERSONAL_CODE, follow_relation_id=own.id) is None
    rejected = Invite.objects.get(follow_relation=own)
    assert (rejected.status, rejected.reason, rejected.decided_at) == (
        Invite.Status.REJECTED,
        Invite.Reason.SELF,
        own.added_at,
    )
    assert ParticipantMessage.objects.get(dedupe_key=f"invite:{rejected.id}").created_at == own.added_at

    # Settled with the clock of the hold's end, it counts then.
    counts = services.fission_invites_settle(tenant_id=world.tenant_a.id, now=hold_end + dt.timedelta(minutes=1))
    assert counts.counted == 1
    invite.refresh_from_db()
    assert (invite.status, invite.decided_at) == (Invite.Status.COUNTED, hold_end + dt.timedelta(minutes=1))


def test_visits_devices_fulfilments_and_the_campaign_are_dated_when_they_happened(
    world: World, campaign: Campaign
) -> None:
    hq = world.actor("hq")
    t = START + dt.timedelta(days=3)
    inviter = _inviter(world, campaign, t)
    services.landing_visit_replay(actor=hq, participant_id=inviter.id, fingerprint="phone-a", at=t)
    assert list(LandingVisit.objects.filter(participant=inviter).values_list("device_hash", "created_at")) == [
        ("phone-a", t)
    ]
    services.participant_device_replay(actor=hq, participant_id=inviter.id, fingerprint="own", at=t)
    services.participant_device_replay(actor=hq, participant_id=inviter.id, fingerprint="own", at=t + dt.timedelta(1))
    assert list(ParticipantDevice.objects.filter(participant=inviter).values_list("device_hash", "created_at")) == [
        ("own", t)  # seen again later: still first seen at t
    ]

    prepared = START - dt.timedelta(days=3)
    assert services.campaign_backdate(actor=hq, campaign_id=campaign.id, created_at=prepared).created_at == prepared
    assert Campaign.objects.get(id=campaign.id).created_at == prepared

    tier = RewardTier.objects.get(campaign=campaign)
    grant = services.reward_grant(participant_id=inviter.id, tier_id=tier.id, at=t + dt.timedelta(hours=1))
    assert grant is not None
    handed_over = grant.granted_at + dt.timedelta(days=2)
    fulfilled = services.reward_fulfil_replay(actor=hq, grant_id=grant.id, fulfilled_at=handed_over)
    assert (fulfilled.status, fulfilled.fulfilled_at) == (RewardGrant.Status.FULFILLED, handed_over)
    # Once: a second replay keeps the date, and the fulfilment is audited once, as reward_fulfil does it.
    services.reward_fulfil_replay(actor=hq, grant_id=grant.id, fulfilled_at=handed_over + dt.timedelta(days=1))
    assert RewardGrant.objects.get(id=grant.id).fulfilled_at == handed_over
    assert AuditLog.objects.filter(action="campaign.reward_fulfil", target_id=grant.id).count() == 1


def test_replays_refuse_the_future_and_stay_in_the_actors_brand_and_role(world: World, campaign: Campaign) -> None:
    hq, region, outsider = world.actor("hq"), world.actor("region1"), world.actor("outsider")
    t = START + dt.timedelta(days=3)
    inviter = _inviter(world, campaign, t)
    grant = services.reward_grant(
        participant_id=inviter.id, tier_id=RewardTier.objects.get(campaign=campaign).id, at=t + dt.timedelta(hours=1)
    )
    assert grant is not None
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    with pytest.raises(ValidationFailed) as at_error:
        services.landing_visit_replay(actor=hq, participant_id=inviter.id, fingerprint="p", at=tomorrow)
    assert at_error.value.field == "at"
    with pytest.raises(ValidationFailed) as device_error:
        services.participant_device_replay(actor=hq, participant_id=inviter.id, fingerprint="", at=t)
    assert device_error.value.field == "fingerprint"
    with pytest.raises(ValidationFailed) as created_error:
        services.campaign_backdate(actor=hq, campaign_id=campaign.id, created_at=tomorrow)
    assert created_error.value.field == "created_at"
    with pytest.raises(ValidationFailed) as early_error:
        services.reward_fulfil_replay(actor=hq, grant_id=grant.id, fulfilled_at=grant.granted_at - dt.timedelta(1))
    assert early_error.value.field == "fulfilled_at"

    # Only HQ records a brand's history; another brand's HQ finds none of it.
    with pytest.raises(PermissionDenied):
        services.landing_visit_replay(actor=region, participant_id=inviter.id, fingerprint="p", at=t)
    with pytest.raises(PermissionDenied):
        services.reward_fulfil_replay(actor=region, grant_id=grant.id, fulfilled_at=t + dt.timedelta(days=1))
    with pytest.raises(NotFound):
        services.landing_visit_replay(actor=outsider, participant_id=inviter.id, fingerprint="p", at=t)
    with pytest.raises(NotFound):
        services.participant_device_replay(actor=outsider, participant_id=inviter.id, fingerprint="p", at=t)
    with pytest.raises(NotFound):
        services.campaign_backdate(actor=outsider, campaign_id=campaign.id, created_at=t)
    with pytest.raises(NotFound):
        services.reward_fulfil_replay(actor=outsider, grant_id=grant.id, fulfilled_at=t + dt.timedelta(days=1))
    with pytest.raises(NotFound):
        participant_of_customer(actor=outsider, campaign_id=campaign.id, customer_id=inviter.customer_id)
    # None of the refused calls left a trace.
    assert not LandingVisit.objects.exists()
    assert not ParticipantDevice.objects.exists()
    assert Campaign.objects.get(id=campaign.id).created_at > START
    assert RewardGrant.objects.get(id=grant.id).status == RewardGrant.Status.GRANTED


def test_a_brands_campaign_rows_are_counted_for_its_hq_only(world: World, campaign: Campaign) -> None:
    _inviter(world, campaign, START + dt.timedelta(days=1))
    counts = campaign_row_counts(actor=world.actor("hq"))
    assert {k: counts[k] for k in ("Campaign", "CampaignHost", "RewardTier", "Participant", "Invite")} == {
        "Campaign": 1,
        "CampaignHost": 1,
        "RewardTier": 1,
        "Participant": 1,
        "Invite": 0,
    }
    assert set(campaign_row_counts(actor=world.actor("outsider")).values()) == {0}
    with pytest.raises(PermissionDenied):
        campaign_row_counts(actor=world.actor("store1"))
