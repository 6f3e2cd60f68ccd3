"""Fixed personas across two brands, shared by every context's tests.

Brand A ("澄光"): regions R1 (stores S1, S2) and R2 (store S3); franchisee F1 owns S1 and S3; guides G1..G3 in
S1..S3 plus the brand IP account. Customers c1..c3 are followed by G1..G3, c4 only by the brand IP, c5 by nobody.
Brand B ("远山") has its own HQ admin and customer. Who sees what:

| persona     | role            | sees customers |
|-------------|-----------------|----------------|
| hq          | HQ admin        | c1 c2 c3 c4 c5 |
| region1     | region manager  | c1 c2          |
| store1      | store manager   | c1             |
| guide1      | guide           | c1             |
| franchisee1 | franchisee      | c1 c3          |
| outsider    | HQ admin of B   | only brand B's |
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser

from siyu.core import services as core_services
from siyu.core.models import Franchisee, Guide, Membership, Region, Role, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.services import IdentityInput, customer_create, follow_relation_add
from siyu.tags.models import Tag
from siyu.tags.services import customer_tag_add, tag_group_create

# TASKS with the in-process backend: jobs run in the request that enqueues them, after commit (no worker).
IMMEDIATE_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default", "fast"]}
}
PASSWORD = "siyu-test-pass-1"  # noqa: S105 - fixed persona password for tests

VISIBLE = {
    "hq": {"c1", "c2", "c3", "c4", "c5"},
    "region1": {"c1", "c2"},
    "store1": {"c1"},
    "guide1": {"c1"},
    "franchisee1": {"c1", "c3"},
    "outsider": set(),
}
# The guides each persona sees (by World.guides key): its stores' guides, a guide itself; brand B's HQ only its own.
GUIDES_IN_SCOPE = {
    "hq": {"G1", "G2", "G3", "IP"},
    "region1": {"G1", "G2"},
    "store1": {"G1"},
    "guide1": {"G1"},
    "franchisee1": {"G1", "G3"},
    "outsider": {"GB"},
}


@dataclass
class World:
    tenant_a: Tenant
    tenant_b: Tenant
    regions: dict[str, Region] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    franchisees: dict[str, Franchisee] = field(default_factory=dict)
    guides: dict[str, Guide] = field(default_factory=dict)
    users: dict[str, AbstractBaseUser] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)

    def actor(self, persona: str) -> Actor:
        return Actor.from_membership(self.memberships[persona])

    def customer_keys(self, ids: set[int]) -> set[str]:
        by_id = {c.id: key for key, c in self.customers.items()}
        return {by_id.get(i, f"other:{i}") for i in ids}


def build_world() -> World:
    t0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
    a = core_services.tenant_create(name="澄光", slug="chengguang", wecom_corp_id="wwA")
    b = core_services.tenant_create(name="远山", slug="yuanshan", wecom_corp_id="wwB")
    w = World(tenant_a=a, tenant_b=b)
    w.regions["R1"] = core_services.region_create(tenant=a, name="华东", code="R1")
    w.regions["R2"] = core_services.region_create(tenant=a, name="华南", code="R2")
    w.franchisees["F1"] = core_services.franchisee_create(tenant=a, name="杭州星河商贸", code="F1")
    for code, region, franchisee in (("S1", "R1", "F1"), ("S2", "R1", None), ("S3", "R2", "F1")):
        w.stores[code] = core_services.store_create(
            tenant=a,
            region=w.regions[region],
            franchisee=w.franchisees[franchisee] if franchisee else None,
            name=f"门店{code}",
            code=code,
            city="杭州",
            latitude=Decimal("30.27"),
            longitude=Decimal("120.15"),
        )
    for i, store in enumerate(("S1", "S2", "S3"), start=1):
        w.guides[f"G{i}"] = core_services.guide_create(
            tenant=a, name=f"导购{i}", wecom_userid=f"guide{i}", store=w.stores[store]
        )
    w.guides["IP"] = core_services.guide_create(
        tenant=a, name="好物体验官", wecom_userid="brand_ip", kind=Guide.Kind.BRAND_IP
    )
    b_region = core_services.region_create(tenant=b, name="华北", code="R1")
    b_store = core_services.store_create(tenant=b, region=b_region, name="门店B1", code="S1")
    w.stores["B1"] = b_store
    w.guides["GB"] = core_services.guide_create(tenant=b, name="导购B", wecom_userid="guide1", store=b_store)

    personas = {
        "hq": (a, Role.HQ_ADMIN, {}),
        "region1": (a, Role.REGION_MANAGER, {"region": w.regions["R1"]}),
        "store1": (a, Role.STORE_MANAGER, {"store": w.stores["S1"]}),
        "guide1": (a, Role.GUIDE, {"guide": w.guides["G1"]}),
        "franchisee1": (a, Role.FRANCHISEE, {"franchisee": w.franchisees["F1"]}),
        "outsider": (b, Role.HQ_ADMIN, {}),
    }
    for name, (tenant, role, anchors) in personas.items():
        user = core_services.user_create(username=name, password=PASSWORD)
        w.users[name] = user
        w.memberships[name] = core_services.membership_create(tenant=tenant, user=user, role=role, **anchors)

    hq = w.actor("hq")
    people = {
        "c1": ("王小明", "13800000001", "G1"),
        "c2": ("李华", "13800000002", "G2"),
        "c3": ("张伟", "13800000003", "G3"),
        "c4": ("赵敏", "13800000004", "IP"),
        "c5": ("孙丽", "13800000005", None),
    }
    for i, (key, (name, phone, guide)) in enumerate(people.items()):
        customer = customer_create(
            actor=hq,
            name=name,
            phone=phone,
            city="杭州",
            source="test",
            identities=[IdentityInput(kind="unionid", value=f"union-{key}")],
            created_at=t0 + dt.timedelta(hours=i),
        )
        w.customers[key] = customer
        w.phones[key] = phone
        w.names[key] = name
        if guide:
            follow_relation_add(
                actor=hq,
                customer_id=customer.id,
                guide_id=w.guides[guide].id,
                external_userid=f"wm{key}",
                added_at=t0 + dt.timedelta(hours=i, minutes=5),
                add_way=FollowRelation.AddWay.QR_CODE,
                state="store-S1",
            )
    outsider = w.actor("outsider")
    cb = customer_create(actor=outsider, name="周杰", phone="13800000001", city="北京", source="test")
    w.customers["b1"] = cb
    w.phones["b1"] = "13800000001"
    w.names["b1"] = "周杰"
    follow_relation_add(
        actor=outsider, customer_id=cb.id, guide_id=w.guides["GB"].id, external_userid="wmb1", added_at=t0
    )

    group = tag_group_create(actor=hq, name="兴趣", tags=["护肤", "彩妆"])
    for tag in group.tags.all():
        w.tags[tag.name] = tag
    customer_tag_add(actor=hq, customer_id=w.customers["c1"].id, tag_id=w.tags["护肤"].id)
    customer_tag_add(actor=hq, customer_id=w.customers["c3"].id, tag_id=w.tags["护肤"].id)
    customer_tag_add(actor=hq, customer_id=w.customers["c2"].id, tag_id=w.tags["彩妆"].id)
    return w
