"""The generator alone (no database): deterministic, and internally consistent the way a real brand is."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from siyu.core import pii
from siyu.customers.models import FollowRelation, Identity, LifecycleStage
from siyu.demo import reference as ref
from siyu.demo.generate import (
    DAYS,
    TZ,
    CustomerPlan,
    activity_plan,
    customer_plan,
    fission_plan,
    local_midnight,
    org_plan,
)

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=TZ)
SIZE = 1500


def _plan(seed: int = 7, customers: int = SIZE) -> CustomerPlan:
    return customer_plan(org=org_plan(seed=seed, anchor=ANCHOR), seed=seed, customers=customers, anchor=ANCHOR)


@pytest.fixture(scope="module")
def plan() -> CustomerPlan:
    return _plan()


def test_same_seed_generates_identical_brand(plan: CustomerPlan) -> None:
    again = _plan()
    assert again.org == plan.org
    assert again.customers == plan.customers
    assert again.orders == plan.orders
    assert activity_plan(plan=again, seed=7) == activity_plan(plan=plan, seed=7)


def test_another_seed_generates_another_brand(plan: CustomerPlan) -> None:
    other = _plan(seed=8)
    assert [c.name for c in other.customers[:50]] != [c.name for c in plan.customers[:50]]
    assert [c.phone for c in other.customers[:50]] != [c.phone for c in plan.customers[:50]]


def test_the_org_does_not_depend_on_the_number_of_customers() -> None:
    # The org tree does not depend on the number of customers: tests at small size check the real structure.
    assert _plan(customers=10).org == _plan(customers=SIZE).org


def test_org_has_regions_stores_with_city_coordinates_franchisees_and_guides(plan: CustomerPlan) -> None:
    org = plan.org
    assert len({s.region_code for s in org.stores}) == len(ref.REGIONS) >= 3
    assert len(org.stores) >= 20
    for store in org.stores:
        city = ref.CITIES[store.city]
        assert abs(float(store.latitude) - city.latitude) < 0.06
        assert abs(float(store.longitude) - city.longitude) < 0.06
        assert store.opens_at < store.closes_at
        assert store.address.startswith(f"{store.city}市")
    owned = Counter(s.franchisee_code for s in org.stores if s.franchisee_code)
    assert set(owned) == {code for code, _ in ref.FRANCHISEES}
    guides = [g for g in org.guides if g.kind == "guide"]
    assert len(guides) >= 100
    assert {g.store_code for g in guides} == {s.code for s in org.stores}
    assert len({g.wecom_userid for g in org.guides}) == len(org.guides)
    assert [g.name for g in org.guides if g.kind == "brand_ip"] == [ref.BRAND_IP_NAME]
    assert org.brand_ip.store_code is None
    # Guides were there before the year of customers began.
    assert all(g.joined_at < ANCHOR - dt.timedelta(days=DAYS) for g in org.guides)


def test_volumes_scale_with_the_number_of_customers(plan: CustomerPlan) -> None:
    assert len(plan.customers) == SIZE
    assert len(plan.orders) == round(SIZE * ref.ORDERS_PER_CUSTOMER)
    follows = Counter(len(c.follows) for c in plan.customers)
    assert follows[0] / SIZE < 0.1  # shop imports only
    assert 0.05 < follows[2] / SIZE < 0.2  # some customers have a second guide
    deleted = [f for c in plan.customers for f in c.follows if f.status != FollowRelation.Status.ACTIVE]
    assert {f.status for f in deleted} == {
        FollowRelation.Status.DELETED_BY_CUSTOMER,
        FollowRelation.Status.DELETED_BY_GUIDE,
    }
    assert all(f.deleted_at is not None and f.deleted_at > f.added_at for f in deleted)
    assert set(Counter(o.shop for o in plan.orders)) == {"tmall", "jd", "youzan", "xiaoe", "store", "mall"}
    assert set(Counter(o.status for o in plan.orders)) == {"paid", "completed", "refunded", "closed"}
    assert set(Counter(t.source for c in plan.customers for t in c.tags)) == {
        "manual", "channel", "keyword", "behaviour", "purchase", "rfm", "tier",
    }  # fmt: skip
    assert set(Counter(c.lifecycle_stage for c in plan.customers)) == set(LifecycleStage.values)
    assert plan.tag_count > 2 * SIZE
    assert len(activity_plan(plan=plan, seed=7)) > 2 * SIZE


def test_everything_happens_after_the_customer_arrived_and_before_the_anchor(plan: CustomerPlan) -> None:
    start = ANCHOR - dt.timedelta(days=DAYS)
    for c in plan.customers:
        assert start <= c.created_at < ANCHOR
        moments = [f.added_at for f in c.follows] + [o.paid_at for o in c.orders] + [t.at for t in c.tags]
        moments += [since for _, _, since in c.identities]
        assert all(c.created_at <= m < ANCHOR for m in moments), c
    for a in activity_plan(plan=plan, seed=7):
        customer = plan.customers[a.customer]
        assert customer.created_at <= a.occurred_at < ANCHOR


def test_activity_with_a_guide_stops_when_the_friendship_ended(plan: CustomerPlan) -> None:
    for a in activity_plan(plan=plan, seed=7):
        if a.type != "message.received":
            continue
        follow = next(f for f in plan.customers[a.customer].follows if f.guide == a.guide)
        assert follow.added_at <= a.occurred_at <= (follow.deleted_at or ANCHOR)


def test_orders_are_attributed_to_the_first_guide_and_its_store(plan: CustomerPlan) -> None:
    org = plan.org
    for o in plan.orders:
        customer = plan.customers[o.customer]
        assert o.guide == customer.owner
        assert o.store_code == (org.guides[o.guide].store_code if o.guide is not None else None)
        if o.shop == "store":
            assert o.store_code is not None
        assert o.amount_cents > 0
        assert (o.refunded_at is not None) == (o.status == "refunded")
    assert len({(o.shop, o.order_no) for o in plan.orders}) == len(plan.orders)


def test_identities_are_unique_and_match_the_customer(plan: CustomerPlan) -> None:
    values = [(kind, value) for c in plan.customers for kind, value, _ in c.identities]
    assert len(set(values)) == len(values)
    phones = [c.phone for c in plan.customers if c.phone]
    assert len(set(phones)) == len(phones)
    assert all(len(p) == 11 and p.startswith("1") and pii.normalize_phone(p) == p for p in phones)
    for c in plan.customers:
        kinds = {kind for kind, _, _ in c.identities}
        assert (Identity.Kind.WECOM_EXTERNAL_USERID in kinds) == bool(c.follows)
        shops = {o.shop for o in c.orders}
        assert (Identity.Kind.TMALL_BUYER in kinds) == ("tmall" in shops)
        assert (Identity.Kind.JD_BUYER in kinds) == ("jd" in shops)


def test_lifecycle_stage_follows_from_orders_and_friendships(plan: CustomerPlan) -> None:
    for c in plan.customers:
        paid = [o for o in c.orders if o.status != "closed"]
        all_deleted = bool(c.follows) and all(f.deleted_at for f in c.follows)
        if all_deleted:
            assert c.lifecycle_stage == LifecycleStage.LOST
        elif c.lifecycle_stage == LifecycleStage.REPEAT:
            assert len(paid) >= 2
        elif c.lifecycle_stage == LifecycleStage.FIRST_PURCHASE:
            assert len(paid) == 1
        elif c.lifecycle_stage in (LifecycleStage.NEW, LifecycleStage.ENGAGED):
            assert paid == []


def test_anchor_is_local_midnight() -> None:
    anchor = local_midnight(dt.datetime(2026, 6, 20, 17, 30, tzinfo=dt.UTC))  # 01:30 on the 21st in Shanghai
    assert anchor == dt.datetime(2026, 6, 21, tzinfo=TZ)


def test_leads_through_a_live_code_reach_the_codes_guides(plan: CustomerPlan) -> None:
    """The channel codes list the brand IP and every store's lead guide: their adds went to no one else."""
    coded = {c.state for c in ref.LIVE_CODES if c.leads}
    brand_ip = plan.org.brand_ip.index
    leads = {guides[0].index for guides in plan.org.guides_by_store.values()}
    first = [c.follows[0] for c in plan.customers if c.follows and c.follows[0].state in coded]
    assert {f.state for f in first} == {"ad-douyin", "xhs-note", "bag-card-tmall", "bag-card-jd"}
    assert {f.guide for f in first} <= leads | {brand_ip}
    assert brand_ip in {f.guide for f in first}


def test_the_fission_campaign_is_the_brand_ips_referrals_since_it_began() -> None:
    plan = _plan(seed=7, customers=4000)
    fission = fission_plan(plan=plan, seed=7)
    assert fission == fission_plan(plan=plan, seed=7)
    assert fission.starts_at == dt.datetime(2026, 5, 30, 10, tzinfo=TZ)
    assert fission.starts_at < ANCHOR < fission.ends_at
    referrals = sorted(
        (c.follows[0].added_at, c.index)
        for c in plan.customers
        if c.source == "referral" and c.follows[0].guide == plan.org.brand_ip.index
        and c.follows[0].added_at >= fission.starts_at
    )  # fmt: skip
    joins = fission.joins
    assert [(j.at, j.customer) for j in joins] == referrals
    invites = Counter(j.inviter for j in joins if j.inviter is not None)
    for j in joins:
        if j.inviter is None:
            assert j.visits == ()
            continue
        inviter = joins[j.inviter]
        # Invited through a poster shared before: by someone who joined and opened their page earlier.
        assert inviter.shared_at is not None
        assert inviter.at < inviter.shared_at < j.at
        assert j.visits
    assert 0 < len(invites) < sum(1 for j in joins if j.shared_at)  # many share, fewer bring friends
    # The two cheats: one phone behind all of an inviter's friends; an inviter's own phone on their landing.
    reused = [i for i in invites if len({v for j in joins if j.inviter == i for v in j.visits}) == 1]
    assert any(invites[i] >= 4 for i in reused)
    assert any(j.inviter in j.visits for j in joins)
