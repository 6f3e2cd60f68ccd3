"""Merging and unmerging customers: rows of every context move to the survivor and come back exactly; rows that
would collide stay; late arrivals carrying the merged customer's identity go back with it; bad input changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.apps import apps
from django.db import models

from siyu.analytics.models import Event
from siyu.commerce.models import Order
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers import identity as oneid
from siyu.customers.models import Customer, CustomerMerge, FollowRelation, Identity, MergeCandidate
from siyu.customers.references import customer_references
from siyu.customers.selectors import access_customer, customer_list, merge_candidate_list
from siyu.customers.services import IdentityInput, customer_create, follow_relation_add
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import CustomerTag
from siyu.tags.services import customer_tag_add
from siyu.testing import World

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


def snapshot() -> dict[str, list[tuple[Any, Any]]]:
    """Which customer every row of every referencing table points at: (pk, customer id), in pk order."""
    return {
        r.label: list(r.model._default_manager.order_by("pk").values_list("pk", r.column))
        for r in customer_references()
    }


def profile(customer_id: int) -> tuple[Any, ...]:
    c = Customer.objects.get(id=customer_id)
    return (c.name_enc, c.name_index, c.phone_enc, c.phone_hash, c.address_enc, c.city, c.gender, c.owner_guide_id,
            c.source, c.match_name_city_phone, c.match_name_address, c.merged_into_id)  # fmt: skip


@pytest.fixture
def shared(world: World) -> World:
    """c2 with rows in several contexts, two of which collide with c1's (the same guide; the same tag)."""
    hq = world.actor("hq")
    c2 = world.customers["c2"]
    # c2 is also followed by G1, who follows c1: one follow relation per guide and customer.
    follow_relation_add(actor=hq, customer_id=c2.id, guide_id=world.guides["G1"].id, external_userid="wmc2",
                        added_at=T0 + dt.timedelta(days=1))  # fmt: skip
    customer_tag_add(actor=hq, customer_id=c2.id, tag_id=world.tags["护肤"].id)  # c1 has it too
    for no, key in (("T-1", "c1"), ("T-2", "c2"), ("T-3", "c2")):
        Order.objects.create(tenant=world.tenant_a, customer=world.customers[key], shop="tmall", order_no=no,
                             amount_cents=1000, paid_at=T0)  # fmt: skip
    group = CustomerGroup.objects.create(tenant=world.tenant_a, chat_id="wr-1", owner=world.guides["G2"],
                                         created_at=T0, updated_at=T0)  # fmt: skip
    GroupMember.objects.create(tenant=world.tenant_a, group=group, member_type=2, userid="wmc2", customer=c2,
                               join_time=T0)  # fmt: skip
    return world


def test_merge_moves_every_context_and_unmerge_restores_both_sides_exactly(shared: World) -> None:
    w = shared
    hq = w.actor("hq")
    c1, c2 = w.customers["c1"], w.customers["c2"]
    before = snapshot()
    profiles = (profile(c1.id), profile(c2.id))
    c2_rows = {label: {pk for pk, cid in rows if cid == c2.id} for label, rows in before.items()}

    merge = oneid.customer_merge(actor=hq, customer_ids=[c2.id, c1.id])

    assert (merge.survivor_id, merge.merged_id, merge.rule, merge.status) == (c1.id, c2.id, "manual", "merged")
    collided_relation = FollowRelation.objects.get(customer=c2, guide=w.guides["G1"]).id
    collided_tag = CustomerTag.objects.get(customer=c2, tag=w.tags["护肤"]).id
    kept = {"customers.FollowRelation.customer": [collided_relation], "tags.CustomerTag.customer": [collided_tag]}
    assert merge.kept == kept
    # Everything else of c2 moved, and the record says exactly which rows.
    moved_expected = {label: sorted(ids - set(kept.get(label, []))) for label, ids in c2_rows.items()}
    assert {label: sorted(ids) for label, ids in merge.moved.items()} == {k: v for k, v in moved_expected.items() if v}
    assert {"analytics.Event.customer_id", "commerce.Order.customer", "groups.GroupMember.customer",
            "customers.Identity.customer", "customers.FollowRelation.customer", "tags.CustomerTag.customer"} <= set(
        merge.moved)  # fmt: skip
    after = snapshot()
    for label, rows in after.items():
        for pk, cid in rows:
            if pk in c2_rows[label]:
                assert cid == (c2.id if pk in (merge.kept.get(label) or []) else c1.id), (label, pk)
    assert Order.objects.filter(customer=c1).count() == 3
    assert set(Identity.objects.filter(customer=c1).values_list("value", flat=True)) >= {"union-c2", "wmc2"}
    # c2 is gone from every list and lookup; its history is c1's.
    assert c2.id not in set(customer_list(actor=hq).values_list("id", flat=True))
    with pytest.raises(NotFound):
        access_customer(actor=hq, customer_id=c2.id)
    assert set(customer_list(actor=w.actor("region1")).values_list("id", flat=True)) == {c1.id}
    audit = AuditLog.objects.get(action="customer.merge")
    assert (audit.target_id, audit.detail["merged_id"], audit.detail["kept"]) == (
        str(c1.id), c2.id, {"customers.FollowRelation.customer": 1, "tags.CustomerTag.customer": 1}
    )  # fmt: skip

    unmerged = oneid.customer_unmerge(actor=hq, merge_id=merge.id)

    assert snapshot() == before
    assert (profile(c1.id), profile(c2.id)) == profiles
    assert (unmerged.status, unmerged.unmerged_at is not None) == ("unmerged", True)
    assert unmerged.restored == {label: sorted(ids) for label, ids in merge.moved.items()}
    assert set(customer_list(actor=w.actor("region1")).values_list("id", flat=True)) == {c1.id, c2.id}
    # An operator took them apart: the pair stays apart.
    pair = MergeCandidate.objects.get(customer_a=c1, customer_b=c2)
    assert (pair.status, pair.reason, pair.decided_by_id) == ("rejected", "unmerged", w.users["hq"].id)
    assert oneid.pair_blocked(tenant_id=w.tenant_a.id, a=c2.id, b=c1.id)
    assert AuditLog.objects.get(action="customer.unmerge").detail["survivor_id"] == c1.id


def test_rows_that_arrive_after_a_merge_stay_unless_they_carry_the_merged_customers_identity(world: World) -> None:
    hq = world.actor("hq")
    c1, c2 = world.customers["c1"], world.customers["c2"]
    merge = oneid.customer_merge(actor=hq, customer_ids=[c1.id, c2.id])
    later = T0 + dt.timedelta(days=30)
    # G3 adds the person through c2's WeCom id (external_userid wmc2, now c1's): a relation carrying c2's identity.
    carried = follow_relation_add(actor=hq, customer_id=c1.id, guide_id=world.guides["G3"].id,
                                  external_userid="wmc2", added_at=later)  # fmt: skip
    # The brand IP adds them through c1's own id; and c1 buys something: both are c1's, whoever c2 is.
    own = follow_relation_add(actor=hq, customer_id=c1.id, guide_id=world.guides["IP"].id,
                              external_userid="wmc1", added_at=later)  # fmt: skip
    order = Order.objects.create(tenant=world.tenant_a, customer=c1, shop="jd", order_no="J-1", amount_cents=1,
                                 paid_at=later)  # fmt: skip
    oneid.identity_attach(actor=hq, customer_id=c1.id, kind="member_no", value="M-77")

    merge = oneid.customer_unmerge(actor=hq, merge_id=merge.id)

    assert FollowRelation.objects.get(id=carried.id).customer_id == c2.id
    assert FollowRelation.objects.get(id=own.id).customer_id == c1.id
    assert Order.objects.get(id=order.id).customer_id == c1.id
    assert Identity.objects.get(kind="member_no", value="M-77").customer_id == c1.id
    assert carried.id in merge.restored["customers.FollowRelation.customer"]
    # The events of the late relation were recorded for c1 and stay there (they carry no identity).
    assert Event.objects.filter(customer_id=c1.id, type="contact.added", guide_id=world.guides["G3"].id).count() == 1


def test_the_survivor_takes_the_merged_customers_profile_where_its_own_is_empty_and_gives_it_back(
    world: World,
) -> None:
    hq = world.actor("hq")
    c3 = world.customers["c3"]
    blank = customer_create(actor=hq, source="mini_program", created_at=T0 - dt.timedelta(days=365),
                            identities=[IdentityInput(kind="unionid", value="o-blank")])  # fmt: skip
    blank_before = profile(blank.id)

    merge = oneid.customer_merge(actor=hq, customer_ids=[c3.id, blank.id])

    assert merge.survivor_id == blank.id
    survivor = Customer.objects.get(id=blank.id)
    assert pii.decrypt(survivor.name_enc, field="name") == "张伟"
    assert (survivor.phone_hash, survivor.city) == (pii.phone_hash(world.phones["c3"]), "杭州")
    assert survivor.match_name_city_phone == Customer.objects.get(id=c3.id).match_name_city_phone != ""
    assert sorted(merge.filled) == ["city", "name_enc", "name_index", "phone_enc", "phone_hash"]
    # The survivor's own source stays.
    assert survivor.source == "mini_program"

    oneid.customer_unmerge(actor=hq, merge_id=merge.id)
    assert profile(blank.id) == blank_before


def test_merges_come_apart_in_reverse_order(world: World) -> None:
    hq = world.actor("hq")
    c1, c2 = world.customers["c1"], world.customers["c2"]
    oldest = customer_create(actor=hq, name="老客", created_at=T0 - dt.timedelta(days=900))
    first = oneid.customer_merge(actor=hq, customer_ids=[c1.id, c2.id])  # c2 into c1
    second = oneid.customer_merge(actor=hq, customer_ids=[c1.id, oldest.id])  # c1 into the oldest
    assert (second.survivor_id, second.merged_id) == (oldest.id, c1.id)
    assert set(Identity.objects.filter(customer=oldest).values_list("value", flat=True)) >= {"union-c1", "union-c2"}
    state = snapshot()

    with pytest.raises(Conflict) as refused:
        oneid.customer_unmerge(actor=hq, merge_id=first.id)
    assert refused.value.field == "merge_id"
    assert f"customer {c1.id} was merged into customer {oldest.id} afterwards" in refused.value.message
    assert snapshot() == state

    oneid.customer_unmerge(actor=hq, merge_id=second.id)
    oneid.customer_unmerge(actor=hq, merge_id=first.id)
    assert Identity.objects.get(value="union-c2").customer_id == c2.id
    assert Identity.objects.get(value="union-c1").customer_id == c1.id
    assert not Customer.objects.filter(merged_into__isnull=False).exists()


# -- bad input: a clear 4xx and nothing changed ---------------------------------------------------------------------


def _state() -> tuple[Any, ...]:
    return (snapshot(), list(Customer.objects.order_by("id").values_list("id", "merged_into_id")),
            CustomerMerge.objects.count(), AuditLog.objects.count())  # fmt: skip


@contextmanager
def nothing_changes() -> Iterator[None]:
    before = _state()
    yield
    assert _state() == before


@pytest.fixture
def unchanged(world: World) -> Iterator[None]:
    with nothing_changes():
        yield


def test_merging_customers_of_two_brands_is_not_found(world: World, unchanged: None) -> None:
    with pytest.raises(NotFound) as error:
        oneid.customer_merge(actor=world.actor("hq"), customer_ids=[world.customers["c1"].id, world.customers["b1"].id])
    assert (error.value.status_code, error.value.field) == (404, "customer_ids")
    assert error.value.message == f"customer {world.customers['b1'].id} not found"


def test_merging_a_customer_into_itself_is_refused(world: World, unchanged: None) -> None:
    c1 = world.customers["c1"]
    with pytest.raises(ValidationFailed) as error:
        oneid.customer_merge(actor=world.actor("hq"), customer_ids=[c1.id, c1.id])
    assert (error.value.status_code, error.value.field, error.value.message) == (
        422, "customer_ids", "a customer cannot be merged into itself"
    )  # fmt: skip


@pytest.mark.parametrize("ids", [[], [1], [1, 2, 3], [0, 1], [True, 2]])
def test_merging_needs_exactly_two_ids(world: World, unchanged: None, ids: list[Any]) -> None:
    with pytest.raises(ValidationFailed) as error:
        oneid.customer_merge(actor=world.actor("hq"), customer_ids=ids)
    assert error.value.field == "customer_ids"


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_only_hq_merges(world: World, persona: str) -> None:
    state = snapshot()
    with pytest.raises(PermissionDenied):
        oneid.customer_merge(
            actor=world.actor(persona), customer_ids=[world.customers["c1"].id, world.customers["c2"].id]
        )
    assert snapshot() == state
    assert CustomerMerge.objects.count() == 0


def test_unmerging_what_is_not_merged_is_refused(world: World) -> None:
    hq = world.actor("hq")
    merge = oneid.customer_merge(actor=hq, customer_ids=[world.customers["c1"].id, world.customers["c2"].id])
    oneid.customer_unmerge(actor=hq, merge_id=merge.id)
    with nothing_changes():
        with pytest.raises(Conflict) as error:
            oneid.customer_unmerge(actor=hq, merge_id=merge.id)
        assert (error.value.status_code, error.value.field) == (409, "merge_id")
        assert error.value.message == f"merge {merge.id} was already undone; the customers are not merged"
        with pytest.raises(NotFound):
            oneid.customer_unmerge(actor=hq, merge_id=merge.id + 1000)
        # Brand B's HQ cannot even see brand A's merge.
        with pytest.raises(NotFound):
            oneid.customer_unmerge(actor=world.actor("outsider"), merge_id=merge.id)


def test_a_merged_customer_cannot_be_merged_again(world: World) -> None:
    hq = world.actor("hq")
    c1, c2, c3 = (world.customers[k] for k in ("c1", "c2", "c3"))
    oneid.customer_merge(actor=hq, customer_ids=[c1.id, c2.id])
    with nothing_changes():
        with pytest.raises(NotFound):
            oneid.customer_merge(actor=hq, customer_ids=[c2.id, c3.id])
        with pytest.raises(Conflict):  # the engine itself, for callers that skip the scope check
            oneid.merge_apply(actor=hq, survivor_id=c3.id, merged_id=c2.id, rule="manual")


# -- the registry ---------------------------------------------------------------------------------------------------


def test_every_reference_to_a_customer_is_moved_by_a_merge() -> None:
    customer = apps.get_model("customers.Customer")
    own = {"customers.Customer", "customers.CustomerMerge", "customers.MergeCandidate"}
    foreign_keys = {
        f"{model._meta.label}.{f.name}"
        for model in apps.get_models()
        if model._meta.label not in own
        for f in model._meta.concrete_fields
        if isinstance(f, models.ForeignKey) and f.related_model is customer
    }
    labels = {r.label for r in customer_references()}
    assert foreign_keys | {"analytics.Event.customer_id"} == labels
    assert {"tags.CustomerTag.customer", "campaigns.Participant.customer", "commerce.Order.customer",
            "groups.GroupMember.customer", "customers.FollowRelation.customer"} <= labels  # fmt: skip
    unique = {r.label: r.unique_keys for r in customer_references()}
    assert unique["customers.FollowRelation.customer"] == (("tenant_id", "guide_id"),)
    assert unique["tags.CustomerTag.customer"] == (("tag_id",),)
    assert unique["campaigns.Participant.customer"] == (("campaign_id",),)
    assert unique["customers.Identity.customer"] == ()


def test_a_pair_made_moot_by_another_merge_leaves_the_queue_and_cannot_be_approved(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    new = customer_create(actor=hq, name="王小明", city="杭州", phone="13900000001")  # like c1: proposed
    candidate = MergeCandidate.objects.get(customer_a=c1, customer_b=new)
    assert list(merge_candidate_list(actor=hq)) == [candidate]
    older = customer_create(actor=hq, name="王晓明", created_at=T0 - dt.timedelta(days=30))
    oneid.customer_merge(actor=hq, customer_ids=[c1.id, older.id])  # c1 is part of `older` now

    assert list(merge_candidate_list(actor=hq)) == []
    with nothing_changes(), pytest.raises(Conflict) as error:
        oneid.merge_candidate_approve(actor=hq, candidate_id=candidate.id)
    assert error.value.message == f"customer {c1.id} is already merged into customer {older.id}"
    assert MergeCandidate.objects.get(id=candidate.id).status == "pending"
