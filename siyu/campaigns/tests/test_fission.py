"""Fission campaigns (任务宝): joining, invites and their rejection reasons, the 24-hour hold, rewards exactly once,
the fraud score and review, and data scopes across two brands.

The channels hook is called here the way channels calls it (`fission_invite_record` with a live code id and the
follow relation the add produced); the codes' WeCom side is covered by the emulator tests.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection

from siyu.campaigns import services
from siyu.campaigns.models import Campaign, Invite, Participant, ParticipantMessage, RewardGrant, RewardTier
from siyu.campaigns.selectors import access_campaign, leaderboard, participant_list, review_queue
from siyu.campaigns.services import TierInput
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation
from siyu.customers.services import IdentityInput, customer_create, follow_relation_add, follow_relation_delete
from siyu.testing import IMMEDIATE_TASKS, World, build_world

START = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.UTC)
ENTRY_CODE = 9_001


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.fixture
def campaign(world: World) -> Campaign:
    campaign = services.campaign_create(
        actor=world.actor("hq"),
        name="春季邀友",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[
            TierInput(2, "coupon", "满100减20券"),
            TierInput(3, "gift", "帆布袋", stock=1),
        ],
        guide_ids=[world.guides["G1"].id, world.guides["G2"].id],
        poster_caption="邀请好友，一起领好礼",
    )
    # Activation makes the entry code in WeCom through channels; here the code's id is given directly.
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=ENTRY_CODE)
    campaign.refresh_from_db()
    return campaign


class Adds:
    """Customers adding a guide at given times, as the WeCom callbacks would record them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.actor = world.actor("hq")
        self.n = 0

    def new(self, *, at: dt.datetime, guide: str = "G1", unionid: str = "", phone: str = "") -> FollowRelation:
        self.n += 1
        identities = [IdentityInput(kind="unionid", value=unionid)] if unionid else []
        customer = customer_create(
            actor=self.actor, name=f"客户{self.n}", phone=phone, source="wecom", identities=identities, created_at=at
        )
        return self.add(customer.id, at=at, guide=guide)

    def add(self, customer_id: int, *, at: dt.datetime, guide: str = "G1") -> FollowRelation:
        return follow_relation_add(
            actor=self.actor,
            customer_id=customer_id,
            guide_id=self.world.guides[guide].id,
            external_userid=f"wm-{customer_id}-{guide}",
            added_at=at,
        )


def join(world: World, relation: FollowRelation, code: int = ENTRY_CODE, *, device: str | None = None) -> None:
    """The add reaches the hook; through a personal code, the invitee's device opened the landing first."""
    inviter = Participant.objects.filter(live_code_id=code).first()
    if inviter is not None:
        services.landing_visit_record(participant=inviter, fingerprint=device or f"device-{relation.id}")
    services.fission_invite_record(
        actor=Actor.system(world.tenant_a.id), live_code_id=code, follow_relation_id=relation.id
    )


def seed(world: World, campaign: Campaign, adds: Adds, *, at: dt.datetime, code: int) -> Participant:
    relation = adds.new(at=at)
    join(world, relation)
    participant = Participant.objects.get(campaign=campaign, customer_id=relation.customer_id)
    # The personal code is made on the participant's first visit; its id is what later adds come through.
    Participant.objects.filter(id=participant.id).update(live_code_id=code)
    participant.refresh_from_db()
    return participant


def statuses(inviter: Participant) -> list[tuple[str, str]]:
    return list(Invite.objects.filter(inviter=inviter).order_by("id").values_list("status", "reason"))


def test_states_fit_wecom() -> None:
    assert services.entry_state(35) == "fxz"
    assert services.personal_state(10**9, 10**12) == "fxgjdgxs_cre66i9s"
    assert len(services.personal_state(36**12, 36**12)) <= 30


def test_invites_count_after_the_hold_and_rewards_are_granted_once(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_002)
    friends = [adds.new(at=t + dt.timedelta(minutes=30 * i)) for i in range(1, 4)]
    for relation in friends:
        join(world, relation, 9_002)
        services.fission_invite_record(  # the hook runs again (a retried job): still one invite
            actor=Actor.system(world.tenant_a.id), live_code_id=9_002, follow_relation_id=relation.id
        )
    already = adds.add(world.customers["c1"].id, at=t + dt.timedelta(hours=3), guide="G2")  # a customer since January
    join(world, already, 9_002)
    myself = adds.add(inviter.customer_id, at=t + dt.timedelta(hours=3), guide="G2")  # scans their own poster
    join(world, myself, 9_002)
    # One friend deletes the guide 2 hours after adding: inside the 24-hour hold.
    follow_relation_delete(
        actor=world.actor("hq"),
        customer_id=friends[2].customer_id,
        guide_id=friends[2].guide_id,
        by_customer=True,
        at=friends[2].added_at + dt.timedelta(hours=2),
    )
    inviter.refresh_from_db()
    assert (inviter.invites_pending, inviter.invites_counted, inviter.invites_rejected) == (3, 0, 2)
    assert statuses(inviter)[3:] == [("rejected", "existing_customer"), ("rejected", "self")]
    # Invitees take part themselves, with the inviter recorded; the self-invite makes no second participant.
    assert set(Participant.objects.filter(inviter=inviter).values_list("customer_id", flat=True)) == {
        r.customer_id for r in [*friends, already]
    }

    before = services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(hours=24))
    assert before.counted == 0  # no hold has ended yet
    counts = services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    assert (counts.counted, counts.rejected, counts.rewards) == (2, 1, 1)
    inviter.refresh_from_db()
    assert (inviter.invites_pending, inviter.invites_counted, inviter.invites_rejected) == (0, 2, 3)
    assert statuses(inviter)[2] == ("rejected", "quick_delete")
    grant = RewardGrant.objects.get(participant=inviter)
    assert (grant.tier.threshold, grant.kind, grant.payload["reward_name"]) == (2, "coupon", "满100减20券")
    assert inviter.fraud_score < campaign.fraud_threshold  # one self-scan is not a pattern
    texts = list(ParticipantMessage.objects.filter(participant=inviter).values_list("kind", "text"))
    assert ("invite_counted", "有一位好友的邀请已计入：你已完成 2/3 个邀请。") in texts
    assert ("reward", "恭喜！你邀请满 2 人，获得满100减20券！") in texts

    again = services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=3))
    assert (again.counted, again.rejected, again.rewards) == (0, 0, 0)
    assert services.reward_grant(participant_id=inviter.id, tier_id=grant.tier_id) is None
    assert RewardGrant.objects.filter(participant=inviter).count() == 1
    assert RewardTier.objects.get(id=grant.tier_id).granted == 1


def test_stock_runs_out_atomically(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    gift = RewardTier.objects.get(campaign=campaign, threshold=3)
    t = START + dt.timedelta(hours=1)
    inviters = [seed(world, campaign, adds, at=t, code=9_100 + i) for i in range(2)]
    for i, inviter in enumerate(inviters):
        for k in range(3):
            join(world, adds.new(at=t + dt.timedelta(hours=k + i)), inviter.live_code_id or 0)
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    gift.refresh_from_db()
    assert gift.granted == 1
    # The first to reach 3 (their third invite was earlier) gets the one gift; the other is told it ran out.
    assert list(RewardGrant.objects.filter(tier=gift).values_list("participant_id", flat=True)) == [inviters[0].id]
    assert ParticipantMessage.objects.filter(participant=inviters[1], dedupe_key=f"stock:{gift.id}").exists()
    assert [p.id for p in leaderboard(actor=world.actor("hq"), campaign_id=campaign.id)][:2] == [
        inviters[0].id,
        inviters[1].id,
    ]


def test_outside_dates_and_ended_campaigns_do_not_count(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    inviter = seed(world, campaign, adds, at=START + dt.timedelta(hours=1), code=9_003)
    join(world, adds.new(at=START + dt.timedelta(days=31)), 9_003)
    assert statuses(inviter) == [("rejected", "outside_dates")]
    late = adds.new(at=START + dt.timedelta(days=40))
    join(world, late)  # through the entry code after the end: nobody joins
    assert not Participant.objects.filter(customer_id=late.customer_id).exists()


def test_velocity_holds_rewards_for_review_and_an_operator_decides(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_005)
    for k in range(7):  # 7 invites in 7 minutes: more than 5 in 10 minutes
        join(world, adds.new(at=t + dt.timedelta(minutes=k)), 9_005)
    inviter.refresh_from_db()
    assert inviter.review == Participant.Review.PENDING
    assert [r["code"] for r in inviter.fraud_reasons] == ["velocity"]
    assert inviter.fraud_score == 40
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    inviter.refresh_from_db()
    assert inviter.invites_counted == 7
    assert not RewardGrant.objects.filter(participant=inviter).exists()
    hq = world.actor("hq")
    assert [p.id for p in review_queue(actor=hq, campaign_id=campaign.id)] == [inviter.id]

    with pytest.raises(PermissionDenied):
        services.participant_review(actor=world.actor("store1"), participant_id=inviter.id, approve=True)
    services.participant_review(actor=hq, participant_id=inviter.id, approve=True)
    assert sorted(RewardGrant.objects.filter(participant=inviter).values_list("tier__threshold", flat=True)) == [2, 3]
    assert AuditLog.objects.filter(action="campaign.participant_review", target_id=str(inviter.id)).exists()
    with pytest.raises(Conflict):  # granted rewards are never taken back
        services.participant_review(actor=hq, participant_id=inviter.id, approve=False)


def test_rejected_participants_never_earn_and_leave_the_board(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_006)
    for k in range(6):
        join(world, adds.new(at=t + dt.timedelta(minutes=k)), 9_006)
    services.participant_review(actor=world.actor("hq"), participant_id=inviter.id, approve=False)
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    assert not RewardGrant.objects.filter(participant=inviter).exists()
    assert inviter.id not in [p.id for p in leaderboard(actor=world.actor("hq"), campaign_id=campaign.id)]


def test_bad_input_names_the_field(world: World) -> None:
    hq = world.actor("hq")
    base = {
        "actor": hq,
        "name": "x",
        "starts_at": START,
        "ends_at": START + dt.timedelta(days=1),
        "tiers": [TierInput(3, "coupon", "券")],
        "guide_ids": [world.guides["G1"].id],
    }
    cases = [
        ({"tiers": []}, "tiers"),
        ({"tiers": [TierInput(0, "coupon", "券")]}, "tiers.0.threshold"),
        ({"tiers": [TierInput(3, "cash", "券")]}, "tiers.0.reward_kind"),
        ({"name": " "}, "name"),
        ({"poster_background": b"not an image"}, "poster_background"),
        ({"settings": {"fraud_threshold": 0}}, "fraud_threshold"),
    ]
    for change, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            services.campaign_create(**{**base, **change})
        assert exc.value.field == field, change
    # Well-formed values that contradict each other or name nothing are conflicts (409) and not-found (404).
    for change, error, field in (
        ({"ends_at": START}, Conflict, "ends_at"),
        ({"tiers": [TierInput(3, "points", "积分")]}, Conflict, "tiers.0.payload"),
        ({"tiers": [TierInput(3, "coupon", "a"), TierInput(3, "gift", "b")]}, Conflict, "tiers"),
        ({"guide_ids": [world.guides["GB"].id]}, NotFound, "guide_ids"),  # brand B's guide
    ):
        with pytest.raises(error) as refused:
            services.campaign_create(**{**base, **change})
        assert refused.value.field == field, change
    assert not Campaign.objects.exists()
    with pytest.raises(PermissionDenied):
        services.campaign_create(**{**base, "actor": world.actor("region1")})


def test_scopes_and_tenants(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_007)  # follows G1 (store S1)
    g2_friend = adds.new(at=t + dt.timedelta(hours=1), guide="G2")
    join(world, g2_friend, 9_007)
    visible = {
        "hq": {inviter.customer_id, g2_friend.customer_id},
        "region1": {inviter.customer_id, g2_friend.customer_id},
        "store1": {inviter.customer_id},
        "guide1": {inviter.customer_id},
        "franchisee1": {inviter.customer_id},
    }
    for persona, expected in visible.items():
        rows = participant_list(actor=world.actor(persona), campaign_id=campaign.id)
        assert {p.customer_id for p in rows} == expected, persona
    with pytest.raises(NotFound):
        access_campaign(actor=world.actor("outsider"), campaign_id=campaign.id)
    # Brand B's hook call with brand A's relation id finds nothing.
    with pytest.raises(NotFound):
        services.fission_invite_record(
            actor=Actor.system(world.tenant_b.id), live_code_id=9_007, follow_relation_id=g2_friend.id
        )


@pytest.fixture
def concurrent_db(transactional_db: None) -> World:
    return build_world()


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="real concurrency needs PostgreSQL")
def test_concurrent_grants_give_one_reward(concurrent_db: World) -> None:
    world = concurrent_db
    hq = world.actor("hq")
    campaign = services.campaign_create(
        actor=hq,
        name="并发",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[TierInput(1, "points", "积分", payload={"points": 10})],
        guide_ids=[world.guides["G1"].id],
    )
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=ENTRY_CODE)
    adds = Adds(world)
    inviter = seed(world, Campaign.objects.get(id=campaign.id), adds, at=START + dt.timedelta(hours=1), code=9_008)
    join(world, adds.new(at=START + dt.timedelta(hours=2)), 9_008)
    tier = RewardTier.objects.get(campaign=campaign)
    results: list[object] = []

    def grant() -> None:
        try:
            results.append(services.reward_grant(participant_id=inviter.id, tier_id=tier.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=grant) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    assert RewardGrant.objects.filter(participant=inviter).count() == 1
    tier.refresh_from_db()
    assert tier.granted == 1


def test_shared_devices_and_quick_deletes_hold_rewards(world: World, campaign: Campaign) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    farm = seed(world, campaign, adds, at=t, code=9_030)
    own = seed(world, campaign, adds, at=t, code=9_031)
    quick = seed(world, campaign, adds, at=t, code=9_032)
    honest = seed(world, campaign, adds, at=t, code=9_033)
    services.participant_device_seen(participant=own, fingerprint="own-phone")
    for k in range(5):
        at = t + dt.timedelta(hours=k + 1)  # an hour apart: never a burst
        join(world, adds.new(at=at), 9_030, device="one-farm-phone")
        join(world, adds.new(at=at), 9_031, device="own-phone")
        join(world, adds.new(at=at), 9_033)
    leavers = [adds.new(at=t + dt.timedelta(hours=k + 1)) for k in range(6)]
    for relation in leavers:
        join(world, relation, 9_032)
    for relation in leavers[:4]:  # four of six delete the guide two hours after adding
        follow_relation_delete(
            actor=world.actor("hq"),
            customer_id=relation.customer_id,
            guide_id=relation.guide_id,
            by_customer=True,
            at=relation.added_at + dt.timedelta(hours=2),
        )
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    reasons = {
        p.id: (p.fraud_score, sorted(r["code"] for r in p.fraud_reasons), p.review)
        for p in Participant.objects.filter(id__in=[farm.id, own.id, quick.id, honest.id])
    }
    assert reasons == {
        farm.id: (60, ["device_reuse", "few_devices"], "pending"),
        own.id: (100, ["device_reuse", "few_devices", "inviter_device"], "pending"),
        quick.id: (40, ["quick_deletes"], "pending"),
        honest.id: (0, [], "none"),
    }
    assert set(RewardGrant.objects.values_list("participant_id", flat=True)) == {honest.id}
    assert list(review_queue(actor=world.actor("hq"), campaign_id=campaign.id).values_list("id", flat=True)) == [
        own.id,
        farm.id,
        quick.id,
    ]


def test_the_worker_sweep_queues_a_settle_for_brands_with_holds_ended(
    world: World, campaign: Campaign, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_003)
    join(world, adds.new(at=t + dt.timedelta(minutes=5)), 9_003)
    assert services.fission_settle_due(now=t + dt.timedelta(hours=23)) == 0  # still inside the 24-hour hold
    settings.TASKS = IMMEDIATE_TASKS  # the queued settle runs at once, as a worker would
    with django_capture_on_commit_callbacks(execute=True):
        assert services.fission_settle_due(now=t + dt.timedelta(days=2)) == 1
    inviter.refresh_from_db()
    assert (inviter.invites_pending, inviter.invites_counted) == (0, 1)


def _queued_settles() -> list[tuple[dt.datetime, list[Any]]]:
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.filter(task_path="siyu.campaigns.tasks.fission_settle_run", status="READY")
    return sorted((r.run_after, r.args_kwargs["args"]) for r in rows)


def test_invites_whose_holds_end_together_share_one_settle_job(
    world: World, campaign: Campaign, django_capture_on_commit_callbacks: Any
) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1, minutes=2)
    inviter = seed(world, campaign, adds, at=t, code=9_004)
    with django_capture_on_commit_callbacks(execute=True):
        for minutes in (0, 1, 2, 12):  # the first three holds end in the same 5 minutes, the last one later
            join(world, adds.new(at=t + dt.timedelta(minutes=minutes)), 9_004)
    tenant = world.tenant_a.id
    first = services.settle_slot(t + dt.timedelta(hours=24))
    assert first == START + dt.timedelta(hours=25, minutes=5)  # a minute's grace, rounded up to the slot
    assert _queued_settles() == [
        (first, [tenant]),
        (services.settle_slot(t + dt.timedelta(hours=24, minutes=12)), [tenant]),
    ]
    campaign.refresh_from_db()
    assert campaign.settle_at == START + dt.timedelta(hours=25, minutes=15)
    # The job at the first slot settles the three holds ended by then; the last waits for its own job.
    counts = services.fission_invites_settle(tenant_id=tenant, now=first)
    assert counts.counted == 3
    inviter.refresh_from_db()
    assert (inviter.invites_pending, inviter.invites_counted) == (1, 3)


def test_a_backend_that_cannot_defer_leaves_the_settle_to_the_sweep(
    world: World, campaign: Campaign, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    seed(world, campaign, adds, at=t, code=9_005)
    settings.TASKS = IMMEDIATE_TASKS  # runs jobs at once: no run_after
    with django_capture_on_commit_callbacks(execute=True):
        join(world, adds.new(at=t + dt.timedelta(minutes=1)), 9_005)
    campaign.refresh_from_db()
    assert campaign.settle_at is None  # no job holds the slot, so none is claimed
    assert services.fission_settle_due(now=t + dt.timedelta(days=2)) == 1
