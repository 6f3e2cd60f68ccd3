"""The customer 360 page (客户360) reads each section in a fixed number of queries: a customer with ten tags,
guides, orders, groups, identities and timeline events costs the page no more queries than one with one of each
(an N+1 in a section or its template would add one per row)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.commerce.models import Order
from siyu.core.errors import NotFound
from siyu.core.models import Guide
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.customers.selectors import follow_relations_for, identities_for
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagSource
from siyu.testing import PASSWORD, World

# The page's whole budget, console chrome included (session, user, membership, brands), as measured: the
# relations and identities sections read their rows and the access check in one query each, orders count and GMV
# are one aggregate (22 → 20 → 17).
MAX_QUERIES = 17


def _customer_with(world: World, n: int, key: str) -> Customer:
    """A customer of guide G1's store with `n` of everything the 360 page lists, each row with its own guide, store,
    tag group and group owner (so a lazy foreign key read per row would show)."""
    tenant, store = world.tenant_a, world.stores["S1"]
    now = timezone.now()
    customer = Customer.objects.create(tenant=tenant, created_at=now, updated_at=now, owner_guide=world.guides["G1"])
    for i in range(n):
        guide = (
            world.guides["G1"]
            if i == 0
            else Guide.objects.create(tenant=tenant, store=store, name=f"{key}导购{i}", wecom_userid=f"{key}g{i}")
        )
        FollowRelation.objects.create(tenant=tenant, customer=customer, guide=guide, external_userid=f"{key}w{i}",
                                      added_at=now - dt.timedelta(days=i))  # fmt: skip
        group = TagGroup.objects.create(tenant=tenant, name=f"{key}组{i}")
        tag = Tag.objects.create(tenant=tenant, group=group, name=f"{key}标签{i}")
        source = TagSource.values[i % len(TagSource.values)]
        CustomerTag.objects.create(tenant=tenant, customer=customer, tag=tag, source=source, created_at=now)
        Identity.objects.create(tenant=tenant, customer=customer, kind="member_no", value=f"{key}-m{i}",
                                created_at=now)  # fmt: skip
        Order.objects.create(tenant=tenant, customer=customer, shop="youzan", order_no=f"{key}-{i}",
                             amount_cents=100 * (i + 1), paid_at=now - dt.timedelta(hours=i), store=store,
                             guide=guide)  # fmt: skip
        chat = CustomerGroup.objects.create(tenant=tenant, chat_id=f"{key}-wr{i}", name=f"{key}群{i}", owner=guide,
                                            created_at=now, updated_at=now, member_count=3)  # fmt: skip
        GroupMember.objects.create(tenant=tenant, group=chat, member_type=2, userid=f"{key}w{i}", customer=customer,
                                   join_time=now)  # fmt: skip
        for event_type, props in (
            ("message.received", {"guide_id": guide.id}),
            ("contact.added", {"guide_id": guide.id, "add_way": 1}),
            ("tag.added", {"tag_id": tag.id, "source": source, "tag": tag.name}),
        ):
            event_record(tenant_id=tenant.id, type=event_type, customer_id=customer.id, guide_id=guide.id,
                         occurred_at=now - dt.timedelta(minutes=i), properties=props)  # fmt: skip
    return customer


def _page_queries(client: Client, customer: Customer, expect: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        answer = client.get(f"/customers/{customer.id}/")
    assert answer.status_code == 200
    assert expect in answer.content.decode()  # the rows were rendered, so their queries were counted
    return len(ctx.captured_queries)


def test_the_360_page_costs_the_same_for_one_row_or_ten(world: World) -> None:
    one = _customer_with(world, 1, "one")
    ten = _customer_with(world, 10, "ten")
    for persona in ("hq", "guide1"):
        client = Client()
        assert client.login(username=persona, password=PASSWORD)
        client.get(f"/customers/{one.id}/")  # warm per-process caches (lifecycle config, translations)
        few = _page_queries(client, one, "one标签0")
        many = _page_queries(client, ten, "ten标签9")
        assert many == few, (persona, few, many)
        assert many <= MAX_QUERIES, (persona, many)


def test_sections_read_with_their_access_check_still_refuse_other_customers(world: World) -> None:
    """The relations and identities of a customer out of scope are not found (not an empty list); a customer in
    scope without any (a shop buyer no guide has added, for HQ) has none."""
    guide, hq = world.actor("guide1"), world.actor("hq")
    c3 = world.customers["c3"]  # served by G3, not G1
    for read in (follow_relations_for, identities_for):
        with pytest.raises(NotFound) as caught:
            read(actor=guide, customer_id=c3.id)
        assert caught.value.field == "customer_id"
        with pytest.raises(NotFound):
            read(actor=world.actor("outsider"), customer_id=c3.id)
    now = timezone.now()
    bare = Customer.objects.create(tenant=world.tenant_a, created_at=now, updated_at=now)
    assert (
        list(follow_relations_for(actor=hq, customer_id=bare.id)),
        list(identities_for(actor=hq, customer_id=bare.id)),
    ) == ([], [])
    assert [r.guide_id for r in follow_relations_for(actor=guide, customer_id=world.customers["c1"].id)] == [
        world.guides["G1"].id
    ]
