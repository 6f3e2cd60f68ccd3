"""The loader against the database: the brand it leaves behind, idempotence, resume after a crash, PII at rest."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models
from django.db.models import F

from siyu.analytics.models import Event, Segment
from siyu.campaigns.models import Invite, Participant, RewardGrant
from siyu.channels.models import LiveCode
from siyu.commerce.models import Order
from siyu.core.errors import Conflict
from siyu.core.models import AuditLog, Franchisee, Guide, Membership, Region, Role, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.customers.selectors import customer_list, customer_pii, customer_scope
from siyu.demo import acquisition, operations, services
from siyu.demo import reference as ref
from siyu.demo.generate import TZ, CustomerPlan, activity_plan, customer_plan, fission_plan, group_plan, org_plan
from siyu.demo.models import DemoLoad, DemoLoadState
from siyu.demo.services import PHASES, demo_load
from siyu.groups.models import GroupCode
from siyu.leads.models import Lead
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagRule
from siyu.wecom.models import WeComConnection

pytestmark = pytest.mark.django_db

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=TZ)
SIZE = 200
SEED = 11

TENANT_TABLES: tuple[type[models.Model], ...] = (
    Region, Franchisee, Store, Guide, Customer, Identity, FollowRelation, TagGroup, Tag, CustomerTag, Event, Order,
    Membership, AuditLog, WeComConnection, LiveCode, GroupCode, Participant, Invite, RewardGrant, Segment, TagRule,
    Lead,
)  # fmt: skip


def _counts(tenant_id: int) -> dict[str, int]:
    counts = {m.__name__: m.objects.filter(tenant_id=tenant_id).count() for m in TENANT_TABLES}  # type: ignore[attr-defined]
    counts["Tenant"] = Tenant.objects.count()
    counts["User"] = get_user_model().objects.count()
    return counts


def _plan(customers: int = SIZE) -> CustomerPlan:
    return customer_plan(org=org_plan(seed=SEED, anchor=ANCHOR), seed=SEED, customers=customers, anchor=ANCHOR)


def _expected(plan: CustomerPlan, *, granted: int = 0, fulfilled: int = 0) -> dict[str, int]:
    """Row counts the plan implies, event by event: what a complete load must have written, no more.

    The campaign's rewards are decided by the campaigns service as it settles the invites (`granted` of them, and
    `fulfilled` handed over by the loader), so those two come from the load.
    """
    follows = [f for c in plan.customers for f in c.follows]
    refunds = sum(1 for o in plan.orders if o.refunded_at)
    activity_ = activity_plan(plan=plan, seed=SEED)
    fission = fission_plan(plan=plan, seed=SEED)
    invites = sum(1 for j in fission.joins if j.inviter is not None)
    sharers = sum(1 for j in fission.joins if j.shared_at is not None)
    stores_with_guides = len({g.store_code for g in plan.org.guides if g.store_code and g.status == "active"})
    live_codes = stores_with_guides + len(ref.LIVE_CODES) + 1 + sharers  # + the campaign's entry and personal codes
    groups = group_plan(org=plan.org, plan=plan, activity=activity_, seed=SEED)
    group_sizes = {g.name: 1 + len(g.members) for g in groups}
    group_codes = sum(
        1
        for city, _slug, threshold in ref.GROUP_CODE_CITIES
        if any(group_sizes.get(ref.GROUP_NAME.format(city=city, number=n), threshold) < threshold for n in range(1, 6))
    )
    return {
        "Region": len(ref.REGIONS),
        "Franchisee": len(ref.FRANCHISEES),
        "Store": len(plan.org.stores),
        "Guide": len(plan.org.guides),
        "Customer": len(plan.customers),
        "Identity": plan.identity_count,
        "FollowRelation": len(follows),
        "TagGroup": len(ref.TAG_GROUPS),
        "Tag": sum(len(tags) for *_, tags in ref.TAG_GROUPS),
        "CustomerTag": plan.tag_count,
        # + the campaign's: campaign.joined per participant, campaign.invited per invite, reward.granted per reward
        "Event": len(plan.customers) + len(follows) + sum(1 for f in follows if f.deleted_at) + plan.tag_count
        + len(activity_) + len(plan.orders) + refunds + len(fission.joins) + invites + granted,
        "Order": len(plan.orders),
        "Membership": len(ref.LOGINS),
        # demo.load, one tag_group.create per group (the catalogue goes through the tags service), then the
        # acquisition's: the WeCom connection, each live code and group code, two welcome messages, the store
        # locator's settings, the campaign's creation and activation and each reward handed over.
        # ... and the operations phase's: each saved segment and tagging rule, each lead and each assignment.
        "AuditLog": 1 + len(ref.TAG_GROUPS) + 1 + live_codes + group_codes + 2 + 1 + 2 + fulfilled
        + operations.SEGMENTS + operations.RULES + operations.LEADS + operations.LEADS // 2,
        "Segment": operations.SEGMENTS,
        "TagRule": operations.RULES,
        "Lead": operations.LEADS,
        "WeComConnection": 1,
        "LiveCode": live_codes,
        "GroupCode": group_codes,
        "Participant": len(fission.joins),
        "Invite": invites,
    }  # fmt: skip


def _granted(tenant_id: int) -> dict[str, int]:
    grants = RewardGrant.objects.filter(tenant_id=tenant_id)
    return {"granted": grants.count(), "fulfilled": grants.filter(status=RewardGrant.Status.FULFILLED).count()}


def _load(slug: str = "demo") -> Tenant:
    result = demo_load(slug=slug, seed=SEED, customers=SIZE, anchor=ANCHOR)
    assert result.already_loaded is False
    return Tenant.objects.get(slug=slug)


def test_the_brand_has_regions_stores_franchisees_guides_and_the_brand_ip() -> None:
    tenant = _load()
    assert tenant.name == ref.BRAND_NAME
    assert Region.objects.filter(tenant=tenant).count() >= 3
    stores = Store.objects.filter(tenant=tenant)
    assert stores.count() >= 20
    for store in stores:
        city = ref.CITIES[store.city]
        assert store.latitude is not None
        assert store.longitude is not None
        assert abs(float(store.latitude) - city.latitude) < 0.06
        assert abs(float(store.longitude) - city.longitude) < 0.06
        assert len(store.hours["mon"]) == 1  # the same interval every day
        assert all(store.hours[day] == store.hours["mon"] for day in store.hours)
    for franchisee in Franchisee.objects.filter(tenant=tenant):
        assert franchisee.stores.count() >= 1
    guides = Guide.objects.filter(tenant=tenant, kind=Guide.Kind.GUIDE)
    assert guides.count() >= 100
    assert set(guides.values_list("store_id", flat=True)) == set(stores.values_list("id", flat=True))
    assert guides.filter(status=Guide.Status.DEPARTED).exists()
    brand_ip = Guide.objects.get(tenant=tenant, kind=Guide.Kind.BRAND_IP)
    assert (brand_ip.name, brand_ip.store_id) == (ref.BRAND_IP_NAME, None)
    assert FollowRelation.objects.filter(guide=brand_ip).exists()


def test_a_load_writes_exactly_what_the_plan_implies() -> None:
    tenant = _load()
    counts = _counts(tenant.id)
    expected = _expected(_plan(), **_granted(tenant.id))
    assert {k: counts[k] for k in expected} == expected
    events = Counter(Event.objects.filter(tenant=tenant).values_list("type", flat=True))
    assert events["customer.created"] == SIZE
    assert events["order.paid"] == round(SIZE * ref.ORDERS_PER_CUSTOMER)
    assert {"contact.added", "tag.added", "message.received", "order.refunded"} <= set(events)
    states = DemoLoadState.objects.filter(load__slug="demo")
    assert [s.phase for s in states] == [p.name for p in PHASES]
    assert all(s.done for s in states)


def test_timestamps_and_attribution_are_consistent_in_the_database() -> None:
    tenant = _load()
    created = dict(Customer.objects.filter(tenant=tenant).values_list("id", "created_at"))
    for customer_id, occurred_at in Event.objects.filter(tenant=tenant).values_list("customer_id", "occurred_at"):
        assert occurred_at >= created[customer_id]
        assert occurred_at < ANCHOR
    orders = Order.objects.filter(tenant=tenant).exclude(guide=None)
    assert orders.exists()
    assert not orders.exclude(guide_id=F("customer__owner_guide_id")).exists()
    assert not orders.exclude(store_id=F("guide__store_id")).exclude(store=None).exists()
    paid = Event.objects.filter(tenant=tenant, type="order.paid").values_list("properties", flat=True)
    assert {p["order_no"] for p in paid} == set(Order.objects.filter(tenant=tenant).values_list("order_no", flat=True))


def test_personal_data_is_encrypted_at_rest_and_found_by_phone() -> None:
    tenant = _load()
    plan = _plan()
    spec = next(c for c in plan.customers if c.phone and c.address)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Customer._meta.db_table} WHERE tenant_id = %s", [tenant.id])  # noqa: S608
        raw = "\n".join(str(value) for row in cursor.fetchall() for value in row)
        cursor.execute(f"SELECT value FROM {Identity._meta.db_table} WHERE tenant_id = %s", [tenant.id])  # noqa: S608
        raw += "\n".join(str(value) for (value,) in cursor.fetchall())
    assert spec.phone not in raw
    assert spec.name not in raw
    assert spec.address not in raw
    found = list(customer_list(actor=Actor.system(tenant.id), q=spec.phone))
    assert len(found) == 1
    assert customer_pii(found[0]) == {"name": spec.name, "phone": spec.phone, "address": spec.address}
    assert found[0].phone_enc.startswith("v1:")
    assert Identity.objects.filter(customer=found[0], kind=Identity.Kind.PHONE).get().value == found[0].phone_hash
    by_name = customer_list(actor=Actor.system(tenant.id), q=spec.name)
    assert found[0] in by_name


def test_demo_logins_work_and_see_their_scope() -> None:
    tenant = _load()
    for username, role in ref.LOGINS:
        user = authenticate(username=username, password=ref.DEMO_PASSWORD)
        assert user is not None, username
        membership = Membership.objects.get(tenant=tenant, user=user)
        assert membership.role == role
    guide_membership = Membership.objects.get(tenant=tenant, role=Role.GUIDE)
    assert guide_membership.guide is not None
    assert guide_membership.guide.user_id == guide_membership.user_id
    visible = {
        m.role: customer_scope(actor=Actor.from_membership(m)).count() for m in Membership.objects.filter(tenant=tenant)
    }
    # Nested scopes: the guide works in the store, the store is in the region, HQ sees everyone.
    assert 0 < visible[Role.GUIDE] <= visible[Role.STORE_MANAGER] < visible[Role.REGION_MANAGER]
    assert visible[Role.REGION_MANAGER] < visible[Role.HQ_ADMIN] == SIZE
    assert 0 < visible[Role.FRANCHISEE] < SIZE


def test_a_second_run_changes_nothing() -> None:
    tenant = _load()
    before = _counts(tenant.id)
    again = demo_load(slug="demo")
    assert again.already_loaded is True
    assert again.phases == {}
    assert _counts(tenant.id) == before


def test_a_second_run_with_other_parameters_is_refused() -> None:
    _load()
    with pytest.raises(Conflict, match="--customers 200"):
        demo_load(slug="demo", customers=SIZE + 1)


def _crash_when(predicate: Callable[[type[models.Model]], bool]) -> Callable[..., int]:
    """A rows_insert that writes its rows, then dies: like kill -9 in the middle of a phase."""
    real = services.rows_insert

    def crashing(*, model: type[models.Model], **kwargs: Any) -> int:
        written = real(model=model, **kwargs)
        if predicate(model):
            assert written > 0
            raise RuntimeError("simulated crash")
        return written

    return crashing


@pytest.mark.parametrize(
    ("crash_model", "failed_phase"),
    [(Customer, "customers"), (CustomerTag, "customer_tags"), (Order, "orders")],
)
def test_a_crashed_load_is_completed_by_the_next_run(
    monkeypatch: pytest.MonkeyPatch, crash_model: type[models.Model], failed_phase: str
) -> None:
    reference = _load(slug="reference")  # the same brand, loaded without a crash, for comparison
    monkeypatch.setattr(services, "rows_insert", _crash_when(lambda model: model is crash_model))
    with pytest.raises(RuntimeError, match="simulated crash"):
        demo_load(slug="demo", seed=SEED, customers=SIZE, anchor=ANCHOR)
    load = DemoLoad.objects.get(slug="demo")
    done = {s.phase: s.done for s in load.states.all()}
    names = [p.name for p in PHASES]
    failed_at = names.index(failed_phase)
    assert done == {name: i < failed_at for i, name in enumerate(names)}
    assert load.tenant_id is not None
    # The crashed phase left nothing behind: its rows were rolled back with its done flag.
    assert crash_model.objects.filter(tenant_id=load.tenant_id).count() == 0  # type: ignore[attr-defined]

    monkeypatch.undo()
    result = demo_load(slug="demo")  # the parameters come from the load record
    assert result.already_loaded is False
    assert list(result.phases) == names[failed_at:]
    assert _counts(load.tenant_id) == _counts(reference.id)
    expected = _expected(_plan(), **_granted(load.tenant_id))
    assert {k: v for k, v in _counts(load.tenant_id).items() if k in expected} == expected


def test_a_load_that_crashed_making_the_codes_is_completed_by_the_next_run(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _load(slug="reference")
    real = acquisition.fission_invite_replay

    def crashing(**kwargs: Any) -> None:
        real(**kwargs)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(acquisition, "fission_invite_replay", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        demo_load(slug="demo", seed=SEED, customers=SIZE, anchor=ANCHOR)
    load = DemoLoad.objects.get(slug="demo")
    # The phase that crashed and those after it are left to do.
    assert {s.phase: s.done for s in load.states.all()} == {
        p.name: p.name not in ("acquisition", "operations") for p in PHASES
    }
    # Codes, campaign and the connection went with the phase; the follow relations kept the timeline's states.
    assert not LiveCode.objects.filter(tenant_id=load.tenant_id).exists()
    assert not WeComConnection.objects.filter(tenant_id=load.tenant_id).exists()
    assert not FollowRelation.objects.filter(tenant_id=load.tenant_id, state__startswith="fx").exists()

    monkeypatch.undo()
    result = demo_load(slug="demo")
    assert list(result.phases) == ["acquisition", "operations"]
    assert _counts(load.tenant_id) == _counts(reference.id)


def test_two_loads_of_the_same_seed_hold_the_same_brand() -> None:
    first, second = _load(slug="demo"), _load(slug="demo-copy")

    def fingerprint(tenant: Tenant) -> dict[str, Any]:
        customers = list(Customer.objects.filter(tenant=tenant).order_by("id"))
        guides = dict(Guide.objects.filter(tenant=tenant).values_list("id", "wecom_userid"))
        return {
            "customers": [
                (customer_pii(c)["name"], customer_pii(c)["phone"], c.city, c.lifecycle_stage, c.created_at,
                 guides.get(c.owner_guide_id or 0))
                for c in customers
            ],
            "orders": sorted(
                Order.objects.filter(tenant=tenant).values_list("shop", "order_no", "amount_cents", "status", "paid_at")
            ),
            "events": Counter(Event.objects.filter(tenant=tenant).values_list("type", "occurred_at")),
            "identities": sorted(Identity.objects.filter(tenant=tenant).values_list("kind", "value")),
            "tags": Counter(CustomerTag.objects.filter(tenant=tenant).values_list("tag__name", "source", "created_at")),
            # Fission codes' states hold the campaign's id, which differs between the two brands.
            "codes": sorted(
                LiveCode.objects.filter(tenant=tenant).exclude(purpose=LiveCode.Purpose.FISSION)
                .values_list("state", "strategy", "wecom_users", "created_at")
            ),
            "participants": sorted(
                Participant.objects.filter(tenant=tenant)
                .values_list("joined_at", "invites_counted", "invites_pending", "fraud_score", "review")
            ),
        }  # fmt: skip

    assert fingerprint(first) == fingerprint(second)


def test_command_prints_the_logins_and_then_says_already_loaded() -> None:
    out = StringIO()
    call_command("demo", customers=SIZE, seed=SEED, stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000" in text
    assert ref.DEMO_PASSWORD in text
    for username, _ in ref.LOGINS:
        assert f" {username} " in text
    assert Customer.objects.filter(tenant__slug="demo").count() == SIZE

    out = StringIO()
    call_command("demo", stdout=out)
    assert "already loaded" in out.getvalue()
    assert ref.DEMO_PASSWORD in out.getvalue()
    with pytest.raises(CommandError, match="was started with"):
        call_command("demo", customers=SIZE + 5, stdout=StringIO())
