"""OneID rules as identities arrive: which arrivals merge two customers, which go to the review queue, and which
are refused; the fuzzy duplicate keys; the WeCom contact sync's unionid merges."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core import pii
from siyu.core.errors import Conflict, PermissionDenied
from siyu.core.models import AuditLog
from siyu.customers import identity as oneid
from siyu.customers.models import Customer, CustomerMerge, FollowRelation, Identity, MergeCandidate
from siyu.customers.selectors import customer_list
from siyu.customers.services import (
    IdentityInput,
    WeComContactInput,
    customer_create,
    customer_update,
    follow_relations_sync_wecom,
)
from siyu.testing import World

OLD = dt.datetime(2025, 6, 1, 9, 0, tzinfo=dt.UTC)


def _identity(world: World, kind: str, value: str) -> Identity:
    return Identity.objects.get(tenant=world.tenant_a, kind=kind, value=value)


def _newcomer(world: World, *, created_at: dt.datetime | None = None, external: str = "wm-new") -> Customer:
    return customer_create(
        actor=world.actor("hq"),
        source="wecom",
        identities=[IdentityInput(kind="wecom_external_userid", value=external)],
        created_at=created_at,
    )


def test_a_unionid_another_customer_holds_merges_the_two_into_the_older(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    new = _newcomer(world)

    arrival = oneid.identity_attach(actor=hq, customer_id=new.id, kind="unionid", value="union-c1", source="mini")

    assert (arrival.customer_id, arrival.attached) == (c1.id, False)
    merge = CustomerMerge.objects.get()
    assert arrival.merge == merge
    assert (merge.survivor_id, merge.merged_id, merge.rule, merge.identity_kind, merge.identity_value) == (
        c1.id, new.id, "unionid", "unionid", "union-c1"
    )  # fmt: skip
    assert Customer.objects.get(id=new.id).merged_into_id == c1.id
    # The newcomer's WeCom id (and its created event) are the older customer's now.
    assert _identity(world, "wecom_external_userid", "wm-new").customer_id == c1.id
    assert merge.moved["customers.Identity.customer"] == [_identity(world, "wecom_external_userid", "wm-new").id]
    assert new.id not in set(customer_list(actor=hq).values_list("id", flat=True))
    audit = AuditLog.objects.get(action="identity.attach")
    assert (audit.target_id, audit.detail["merge_id"], audit.detail["source"]) == (str(c1.id), merge.id, "mini")
    assert AuditLog.objects.get(action="customer.merge").detail["merged_id"] == new.id


def test_the_older_customer_survives_whichever_side_the_identity_arrives_on(world: World) -> None:
    c2 = world.customers["c2"]
    older = _newcomer(world, created_at=OLD)

    arrival = oneid.identity_attach(actor=world.actor("hq"), customer_id=older.id, kind="unionid", value="union-c2")

    assert arrival.customer_id == older.id
    assert Customer.objects.get(id=c2.id).merged_into_id == older.id
    assert _identity(world, "unionid", "union-c2").customer_id == older.id
    # c2's follow relation (G2) moved too, and with it region1's view of this person.
    assert FollowRelation.objects.get(guide=world.guides["G2"], external_userid="wmc2").customer_id == older.id
    assert set(customer_list(actor=world.actor("region1")).values_list("id", flat=True)) == {
        world.customers["c1"].id, older.id
    }  # fmt: skip


def test_a_phone_merges_only_when_verified_on_both_sides(world: World) -> None:
    hq = world.actor("hq")
    c3 = world.customers["c3"]
    phone = world.phones["c3"]
    new = _newcomer(world)

    # c3's phone was typed by an operator: not verified. A verified arrival is not enough: review, no merge.
    arrival = oneid.identity_attach(actor=hq, customer_id=new.id, kind="phone", value=phone, verified=True)
    candidate = MergeCandidate.objects.get()
    assert (arrival.customer_id, arrival.merge, arrival.candidate) == (new.id, None, candidate)
    assert (candidate.customer_a_id, candidate.customer_b_id, candidate.reason, candidate.score, candidate.status) == (
        c3.id, new.id, "phone_unverified", 90, "pending"
    )  # fmt: skip
    assert _identity(world, "phone", pii.phone_hash(phone)).customer_id == c3.id
    assert CustomerMerge.objects.count() == 0

    # c3 binds the phone as a member: the same identity becomes verified, nothing moves.
    again = oneid.identity_attach(actor=hq, customer_id=c3.id, kind="phone", value=phone, verified=True)
    assert (again.customer_id, again.attached, again.merge) == (c3.id, False, None)
    assert _identity(world, "phone", pii.phone_hash(phone)).verified is True

    # Now verified on both sides: one person. The pending pair is approved by the merge.
    merged = oneid.identity_attach(actor=hq, customer_id=new.id, kind="phone", value=phone, verified=True)
    assert merged.merge is not None
    assert (merged.merge.survivor_id, merged.merge.merged_id, merged.merge.rule) == (c3.id, new.id, "phone")
    candidate.refresh_from_db()
    assert (candidate.status, candidate.merge_id) == ("approved", merged.merge.id)


def test_an_unverified_phone_never_merges(world: World) -> None:
    hq = world.actor("hq")
    c4 = world.customers["c4"]
    oneid.identity_attach(actor=hq, customer_id=c4.id, kind="phone", value=world.phones["c4"], verified=True)
    new = _newcomer(world)

    # A shop order's phone (or a WeCom remark): not proof, even against a verified holder.
    arrival = oneid.identity_attach(actor=hq, customer_id=new.id, kind="phone", value=world.phones["c4"])

    assert arrival.merge is None
    assert arrival.candidate is not None
    assert (arrival.candidate.customer_a_id, arrival.candidate.customer_b_id) == (c4.id, new.id)
    assert CustomerMerge.objects.count() == 0
    assert _identity(world, "phone", pii.phone_hash(world.phones["c4"])).customer_id == c4.id


def test_a_rejected_pair_is_never_merged_or_proposed_again(world: World) -> None:
    hq = world.actor("hq")
    c3 = world.customers["c3"]
    new = _newcomer(world)
    oneid.identity_attach(actor=hq, customer_id=new.id, kind="phone", value=world.phones["c3"])
    candidate = MergeCandidate.objects.get()
    oneid.merge_candidate_reject(actor=hq, candidate_id=candidate.id)

    # Even an account id they share does not merge them now: the identity stays with its holder.
    arrival = oneid.identity_attach(actor=hq, customer_id=new.id, kind="unionid", value="union-c3")
    assert (arrival.customer_id, arrival.attached, arrival.merge, arrival.candidate) == (new.id, False, None, None)
    assert _identity(world, "unionid", "union-c3").customer_id == c3.id
    assert CustomerMerge.objects.count() == 0
    assert list(MergeCandidate.objects.values_list("status", flat=True)) == ["rejected"]


def test_attaching_identities_is_for_hq_only(world: World) -> None:
    with pytest.raises(PermissionDenied):
        oneid.identity_attach(
            actor=world.actor("region1"), customer_id=world.customers["c1"].id, kind="unionid", value="union-c2"
        )
    assert CustomerMerge.objects.count() == 0


def test_a_verified_phone_becomes_the_phone_of_a_customer_without_one(world: World) -> None:
    new = _newcomer(world)
    oneid.identity_attach(
        actor=world.actor("hq"), customer_id=new.id, kind="phone", value="139 1111 2222", verified=True
    )
    new.refresh_from_db()
    assert new.phone_hash == pii.phone_hash("13911112222")
    assert pii.decrypt(new.phone_enc, field="phone") == "13911112222"
    assert _identity(world, "phone", new.phone_hash).verified is True


# -- creating customers with identities ----------------------------------------------------------------------------


def test_creating_with_a_shared_identity_is_refused_unless_merging_is_asked_for(world: World) -> None:
    hq = world.actor("hq")
    before = Customer.objects.count()
    with pytest.raises(Conflict):
        customer_create(actor=hq, name="重复", identities=[IdentityInput(kind="unionid", value="union-c4")])
    assert Customer.objects.count() == before

    c4 = world.customers["c4"]
    survivor = customer_create(
        actor=hq,
        name="赵敏敏",
        source="member",
        identities=[
            IdentityInput(kind="unionid", value="union-c4"),
            IdentityInput(kind="member_no", value="M-0009"),
            IdentityInput(kind="phone", value="13700000009", verified=True),
        ],
        merge_shared=True,
    )

    assert survivor.id == c4.id
    created = Customer.objects.get(tenant=world.tenant_a, merged_into=c4)
    assert CustomerMerge.objects.get().merged_id == created.id
    assert {(i.kind, i.verified) for i in Identity.objects.filter(customer=c4)} == {
        ("unionid", False), ("member_no", False), ("phone", False), ("phone", True), ("wecom_external_userid", False)
    }  # fmt: skip
    # The survivor keeps its own name; nothing of it is overwritten.
    assert pii.decrypt(Customer.objects.get(id=c4.id).name_enc, field="name") == "赵敏"


def test_merging_on_create_is_for_hq_only(world: World) -> None:
    before = (Customer.objects.count(), Identity.objects.count())
    with pytest.raises(PermissionDenied):
        customer_create(
            actor=world.actor("store1"),
            owner_guide_id=world.guides["G1"].id,
            identities=[IdentityInput(kind="unionid", value="union-c1")],
            merge_shared=True,
        )
    assert (Customer.objects.count(), Identity.objects.count()) == before


# -- the WeCom contact sync ----------------------------------------------------------------------------------------


def test_wecom_sync_merges_a_contact_with_the_customer_holding_its_unionid(world: World) -> None:
    hq = world.actor("hq")
    mini = customer_create(
        actor=hq, source="mini_program", identities=[IdentityInput(kind="unionid", value="o-mini")], created_at=OLD
    )
    at = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    contact = WeComContactInput(external_userid="wm-sync", guide_id=world.guides["G3"].id, added_at=at, name="周小")
    first = follow_relations_sync_wecom(actor=hq, contacts=[contact])
    contact_customer = first.customer_ids["wm-sync"]
    assert contact_customer != mini.id

    # WeCom now reports the contact's unionid, which the mini-program customer holds: one person.
    second = follow_relations_sync_wecom(
        actor=hq,
        contacts=[WeComContactInput(external_userid="wm-sync", guide_id=world.guides["G3"].id, added_at=at,
                                    name="周小", unionid="o-mini")],
    )  # fmt: skip

    assert second.merged == 1
    assert second.customer_ids == {"wm-sync": mini.id}
    assert Customer.objects.get(id=contact_customer).merged_into_id == mini.id
    relation = FollowRelation.objects.get(guide=world.guides["G3"], external_userid="wm-sync")
    assert relation.customer_id == mini.id
    # The mini-program customer had no name: it takes the contact's.
    assert pii.decrypt(Customer.objects.get(id=mini.id).name_enc, field="name") == "周小"
    # The same page again changes nothing.
    third = follow_relations_sync_wecom(actor=hq, contacts=[contact])
    assert (third.merged, third.customer_ids) == (0, {"wm-sync": mini.id})
    assert CustomerMerge.objects.count() == 1


# -- fuzzy candidates --------------------------------------------------------------------------------------------


def test_same_name_city_and_phone_ending_is_proposed_for_review(world: World) -> None:
    c1 = world.customers["c1"]  # 王小明, 杭州, 13800000001
    new = customer_create(actor=world.actor("hq"), name="王小明", city="杭州", phone="13900000001")

    candidate = MergeCandidate.objects.get()
    assert (candidate.customer_a_id, candidate.customer_b_id, candidate.reason, candidate.score) == (
        c1.id, new.id, "name_city_phone", 70
    )  # fmt: skip
    # Another city, or another ending, is someone else.
    customer_create(actor=world.actor("hq"), name="王小明", city="上海", phone="13900000011")
    customer_create(actor=world.actor("hq"), name="王小明", city="杭州", phone="13900000002")
    assert MergeCandidate.objects.count() == 1


def test_same_name_and_address_is_proposed_however_the_address_is_written(world: World) -> None:
    hq = world.actor("hq")
    c2 = world.customers["c2"]
    customer_update(actor=hq, customer_id=c2.id, changes={"address": "杭州市西湖区文三路 1 号"})
    new = customer_create(actor=hq, name="李华", address="杭州市西湖区文三路1号", city="上海")

    candidate = MergeCandidate.objects.get()
    assert (candidate.customer_a_id, candidate.customer_b_id, candidate.reason, candidate.score) == (
        c2.id, new.id, "name_address", 80
    )  # fmt: skip


def test_the_scan_finds_pairs_from_the_blind_indexes_without_decrypting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    hq = world.actor("hq")
    a = customer_create(actor=hq, name="钱多多", city="苏州", phone="13600001234")
    b = customer_create(actor=hq, name="钱 多多", city="苏州 ", phone="13700001234")
    c = customer_create(actor=hq, name="钱多多", address="苏州市工业园区星湖街 8 号")
    d = customer_create(actor=hq, name="钱多多", address="苏州市工业园区星湖街8号")
    MergeCandidate.objects.all().delete()  # as after a bulk import that proposed nothing

    def no_decrypting(*args: object, **kwargs: object) -> str:
        raise AssertionError("the scan must not decrypt anyone")

    monkeypatch.setattr(pii, "decrypt", no_decrypting)
    assert oneid.merge_candidates_find(actor=hq) == 2
    assert set(MergeCandidate.objects.values_list("customer_a_id", "customer_b_id", "reason")) == {
        (a.id, b.id, "name_city_phone"), (c.id, d.id, "name_address")
    }  # fmt: skip
    assert oneid.merge_candidates_find(actor=hq) == 0  # known pairs are not proposed twice
    with pytest.raises(PermissionDenied):
        oneid.merge_candidates_find(actor=world.actor("region1"))
