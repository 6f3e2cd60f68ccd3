"""The demo brand's acquisition: live codes, group codes, the store locator and the fission campaign it loads, with
their history, and the console pages that list them for the demo's HQ login."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
from django.conf import settings
from django.test import Client

from siyu.campaigns.models import Campaign, Invite, LandingVisit, Participant, RewardGrant
from siyu.campaigns.selectors import leaderboard
from siyu.campaigns.services import entry_state
from siyu.channels.models import LiveCode, LiveCodeGuide, WelcomeMessage
from siyu.channels.selectors import live_code_qr_url, live_code_stats
from siyu.core.models import Guide, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation
from siyu.demo import reference as ref
from siyu.demo.generate import TZ, customer_plan, fission_plan, org_plan
from siyu.demo.services import demo_load
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot, GroupMember
from siyu.groups.selectors import group_code_stats
from siyu.storecodes.models import StoreCodeSettings

pytestmark = pytest.mark.django_db

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=TZ)
# Big enough for a fission campaign with a reward and a participant under review (seed 5's plan has both).
SEED, SIZE = 5, 1500


@pytest.fixture
def demo() -> Tenant:
    load = demo_load(slug="demo", seed=SEED, customers=SIZE, anchor=ANCHOR).load
    assert load.tenant is not None
    return load.tenant


def _admin(client: Client) -> Client:
    assert client.login(username="admin", password=ref.DEMO_PASSWORD)
    return client


def _guides(code: LiveCode) -> list[str]:
    return list(
        LiveCodeGuide.objects.filter(live_code=code).order_by("position").values_list("guide__wecom_userid", flat=True)
    )


def test_every_store_and_channel_has_a_live_code_with_welcome_tags_and_history(demo: Tenant) -> None:
    actor = Actor.system(demo.id)
    codes = {c.state: c for c in LiveCode.objects.filter(tenant=demo).exclude(purpose=LiveCode.Purpose.FISSION)}
    stores = list(Store.objects.filter(tenant=demo).order_by("code"))
    assert set(codes) == {f"store-{s.code}" for s in stores} | {c.state for c in ref.LIVE_CODES}
    emulator_qr = settings.SIYU_EMULATOR_URL.rstrip("/") + "/emulator/qr/"
    for code in codes.values():
        assert code.status == LiveCode.Status.ACTIVE
        assert code.qr_code == f"{emulator_qr}{code.config_id}.svg"
        assert len(code.wecom_users) == 1  # the strategy's pick is the way's member
        assert code.wecom_users[0] in _guides(code)
        welcome = WelcomeMessage.objects.get(scope=WelcomeMessage.Scope.CODE, live_code=code)
        assert "{客户昵称}" in welcome.text  # each greets the customer by name

    for store in stores:
        code = codes[f"store-{store.code}"]
        active = Guide.objects.filter(store=store, status=Guide.Status.ACTIVE).order_by("id")
        assert (code.purpose, code.store_id) == (LiveCode.Purpose.STORE, store.id)
        assert _guides(code) == list(active.values_list("wecom_userid", flat=True))
        caps = set(LiveCodeGuide.objects.filter(live_code=code).values_list("daily_cap", flat=True))
        assert caps == ({ref.STORE_CODE_FRANCHISE_CAP} if store.franchisee_id else {None})
        assert list(code.tags.values_list("name", flat=True)) == ["门店扫码"]
    assert {c.strategy for c in codes.values()} == {LiveCode.Strategy.ROUND_ROBIN, LiveCode.Strategy.LEAST_LOADED}

    brand_ip = Guide.objects.get(tenant=demo, kind=Guide.Kind.BRAND_IP).wecom_userid
    leads = [brand_ip] + [f"{s.code.lower()}-01" for s in stores]
    for spec in ref.LIVE_CODES:
        code = codes[spec.state]
        assert (code.name, code.strategy, code.purpose) == (spec.name, spec.strategy, LiveCode.Purpose.CHANNEL)
        assert _guides(code) == (leads if spec.leads else [brand_ip])
        assert list(code.tags.values_list("name", flat=True)) == ([spec.tag] if spec.tag else [])
        caps = set(LiveCodeGuide.objects.filter(live_code=code).values_list("daily_cap", flat=True))
        assert caps == {spec.daily_cap}
    assert WelcomeMessage.objects.get(tenant=demo, scope=WelcomeMessage.Scope.DEFAULT).text == ref.DEFAULT_WELCOME
    assert WelcomeMessage.objects.get(tenant=demo, scope=WelcomeMessage.Scope.GUIDE).guide.wecom_userid == brand_ip

    # History: each code counts the timeline's adds with its state, since before the year began.
    for state in ("store-S001", "ad-douyin", "xhs-note", "bag-card-tmall"):
        code = codes[state]
        relations = FollowRelation.objects.filter(tenant=demo, state=state)
        stats = live_code_stats(actor=actor, live_code_id=code.id, now=ANCHOR)
        assert stats.adds == relations.count() > 0
        assert stats.deletes == relations.exclude(deleted_at=None).count()
        # The chart's 30 days end with the anchor's own day (the demo's "today").
        last_30_days = relations.filter(added_at__gte=ANCHOR - dt.timedelta(days=29))
        assert sum(d.adds for d in stats.by_day) == last_30_days.count() > 0
        by_guide = {g.guide_id: g.adds for g in stats.by_guide}
        assert by_guide == dict(Counter(relations.values_list("guide_id", flat=True)))
        if state != "store-S001":
            # Online leads reached the code's guides only: its stats name no one else.
            assert set(by_guide) <= set(LiveCodeGuide.objects.filter(live_code=code).values_list("guide_id", flat=True))
    assert codes["ip-haowu"].id == StoreCodeSettings.objects.get(tenant=demo).fallback_live_code_id


def test_group_codes_rotate_over_the_city_member_groups(demo: Tenant) -> None:
    actor = Actor.system(demo.id)
    codes = {c.state: c for c in GroupCode.objects.filter(tenant=demo)}
    assert codes
    for city, slug, threshold in ref.GROUP_CODE_CITIES:
        names = [ref.GROUP_NAME.format(city=city, number=n) for n in range(1, 6)]
        with_room = list(
            CustomerGroup.objects.filter(tenant=demo, name__in=names, member_count__lt=threshold).order_by("name")
        )
        if not with_room:
            assert f"group-{slug}" not in codes
            continue
        code = codes[f"group-{slug}"]
        assert code.store == Store.objects.filter(tenant=demo, city=city).order_by("code").first()
        assert (code.default_threshold, code.status, code.sync_error) == (threshold, GroupCode.Status.ACTIVE, "")
        slots = list(GroupCodeSlot.objects.filter(code=code).select_related("group").order_by("position"))
        assert [s.group for s in slots] == with_room
        assert all(s.threshold == threshold and s.added_at == s.group.created_at for s in slots)
        assert code.way_chat_ids == [g.chat_id for g in with_room][:5]
        assert code.qr_code.endswith(f"/emulator/qr/{code.config_id}.svg")
        members = GroupMember.objects.filter(group__in=with_room, member_type=GroupMember.Type.EXTERNAL)
        assert set(members.values_list("state", flat=True)) == {code.state}  # they scanned its QR
        stats = group_code_stats(actor=actor, code_id=code.id)
        assert stats.joins == members.count() > 0


def test_the_store_locator_shows_the_nearest_store_with_its_codes(
    demo: Tenant, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's stores keep mall hours: the page is read at 15:00 Shanghai time, when they are open, and again
    # at 03:00, when they are all closed, whatever the time the suite runs at.
    today = dt.datetime.now(TZ).date()
    afternoon = dt.datetime.combine(today, dt.time(15, 0), tzinfo=TZ)
    monkeypatch.setattr("django.utils.timezone.now", lambda: afternoon)
    row = StoreCodeSettings.objects.get(tenant=demo)
    assert (row.radius_m, row.time_zone) == (5_000, "Asia/Shanghai")
    group_code = GroupCode.objects.filter(tenant=demo).select_related("store").first()
    assert group_code is not None
    assert group_code.store is not None
    store = group_code.store
    live_code = LiveCode.objects.get(tenant=demo, state=f"store-{store.code}")
    page = client.get(f"/s/{row.public_token}/", {"lat": store.latitude, "lng": store.longitude, "preview": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert store.name in html
    assert live_code_qr_url(live_code) in html
    assert group_code.qr_code in html
    assert client.get(f"/s/{row.public_token}/").status_code == 200  # asks for the position
    night = dt.datetime.combine(today, dt.time(3, 0), tzinfo=TZ)
    monkeypatch.setattr("django.utils.timezone.now", lambda: night)
    page = client.get(f"/s/{row.public_token}/", {"lat": store.latitude, "lng": store.longitude, "preview": "1"})
    html = page.content.decode()
    assert page.status_code == 200
    assert store.name not in html  # closed: the brand IP's code instead
    ip_code = LiveCode.objects.get(id=row.fallback_live_code_id)
    assert live_code_qr_url(ip_code) in html


def test_the_fission_campaign_replays_the_timelines_referrals(demo: Tenant) -> None:
    plan = fission_plan(
        plan=customer_plan(org=org_plan(seed=SEED, anchor=ANCHOR), seed=SEED, customers=SIZE, anchor=ANCHOR),
        seed=SEED,
    )
    campaign = Campaign.objects.get(tenant=demo)
    assert (campaign.status, campaign.starts_at, campaign.ends_at) == (
        Campaign.Status.ACTIVE,
        plan.starts_at,
        plan.ends_at,
    )
    assert campaign.starts_at < ANCHOR < campaign.ends_at
    assert list(campaign.hosts.values_list("guide__kind", flat=True)) == [Guide.Kind.BRAND_IP]
    participants = Participant.objects.filter(campaign=campaign).select_related("follow_relation", "inviter")
    assert participants.count() == len(plan.joins) > 0
    entry = LiveCode.objects.get(id=campaign.entry_live_code_id)
    assert entry.state == entry_state(campaign.id)
    for p in participants:
        # The add that made them a participant carries the state of the code it came through.
        relation = p.follow_relation
        assert relation is not None
        assert relation.state == (p.inviter.code_state if p.inviter else entry.state)
        assert relation.add_way == FollowRelation.AddWay.QR_CODE
        assert p.joined_at == relation.added_at
        if p.live_code_id is not None:
            assert LiveCode.objects.get(id=p.live_code_id).state == p.code_state
    invites = Invite.objects.filter(campaign=campaign)
    assert invites.count() == sum(1 for j in plan.joins if j.inviter is not None) > 0
    assert set(invites.values_list("status", flat=True)) == {Invite.Status.COUNTED}  # all settled by the anchor
    assert all(i.decided_at <= ANCHOR for i in invites)
    # A participant whose own phone opened their landing waits for a review; its rewards are held.
    held = participants.get(review=Participant.Review.PENDING)
    assert [r["code"] for r in held.fraud_reasons] == ["inviter_device"]
    assert held.fraud_score >= campaign.fraud_threshold
    assert LandingVisit.objects.filter(participant=held).exists()
    # Whoever else reached a goal got its reward, handed over by the anchor.
    goal = min(t for t, *_ in ref.FISSION_TIERS)
    rewarded = set(RewardGrant.objects.filter(campaign=campaign).values_list("participant_id", flat=True))
    reached = {p.id for p in participants if p.invites_counted >= goal and p.review == Participant.Review.NONE}
    assert rewarded == reached != set()
    assert set(RewardGrant.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        RewardGrant.Status.FULFILLED
    }
    board = leaderboard(actor=Actor.system(demo.id), campaign_id=campaign.id)
    assert [p.invites_counted for p in board] == sorted((p.invites_counted for p in board), reverse=True)
    assert board[0].invites_counted == max(p.invites_counted for p in participants)


def test_the_console_lists_the_demos_acquisition_for_its_hq_login(demo: Tenant, client: Client) -> None:
    _admin(client)
    html = client.get("/acquisition/channel-codes/", {"q": "store-S001"}).content.decode()
    s001 = LiveCode.objects.get(tenant=demo, state="store-S001")
    assert re.findall(r'data-code-id="(\d+)"', html) == [str(s001.id)]
    listed = client.get("/acquisition/channel-codes/").content.decode()
    assert len(re.findall(r'data-code-id="(\d+)"', listed)) == 25  # a full first page
    detail = client.get(f"/acquisition/channel-codes/{s001.id}/").content.decode()
    assert f'data-kpi="adds">{FollowRelation.objects.filter(tenant=demo, state="store-S001").count()}<' in detail
    assert set(re.findall(r'data-member="([^"]+)"', detail)) == set(_guides(s001))
    welcome = client.get("/acquisition/channel-codes/welcome/").content.decode()
    assert ref.DEFAULT_WELCOME in welcome

    groups = client.get("/acquisition/group-codes/").content.decode()
    assert set(re.findall(r'data-state="(group-[a-z]+)"', groups)) == set(
        GroupCode.objects.filter(tenant=demo).values_list("state", flat=True)
    )
    code = GroupCode.objects.filter(tenant=demo).first()
    assert code is not None
    assert client.get(f"/acquisition/group-codes/{code.id}/").status_code == 200

    campaign = Campaign.objects.get(tenant=demo)
    assert re.findall(r'data-campaign-id="(\d+)"', client.get("/acquisition/fission/").content.decode()) == [
        str(campaign.id)
    ]
    fission = client.get(f"/acquisition/fission/{campaign.id}/").content.decode()
    participants = Participant.objects.filter(campaign=campaign)
    assert f'data-stat="participants">{participants.count()}<' in fission
    assert f'data-stat="review">{participants.filter(review=Participant.Review.PENDING).count()}<' in fission
    board = leaderboard(actor=Actor.system(demo.id), campaign_id=campaign.id)
    for p in board:
        assert f'data-participant-id="{p.id}"' in fission
    assert client.get("/acquisition/store-codes/").status_code == 200
