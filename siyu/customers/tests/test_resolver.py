"""The bulk resolver: a batch of records becomes customers by the OneID rules, joins the brand's existing customers,
and is checked against the bench generator's ground truth (a small `siyu bench identity`)."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.analytics.models import Event
from siyu.core import pii
from siyu.core.errors import PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers.bench import measure
from siyu.customers.models import Customer, CustomerMerge, Identity, MergeCandidate
from siyu.customers.resolver import identities_resolve
from siyu.testing import World

T1 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T2 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)


def phone(n: int) -> str:
    return pii.phone_hash(f"1390000{n:04d}")


def test_records_sharing_an_account_id_or_a_verified_phone_become_one_customer(world: World) -> None:
    hq = world.actor("hq")
    records = [
        [("wecom_external_userid", "wm-a", False), ("unionid", "o-a", False)],  # 0: a WeCom contact
        [("unionid", "o-a", False)],  # 1: the same person in the mini-program
        [("member_no", "M1", False), ("phone", phone(1), True), ("unionid", "o-a", False)],  # 2: and a member
        [("tmall_buyer", "tb-x", False), ("phone", phone(1), False)],  # 3: a Tmall order, phone not verified
        [("tmall_buyer", "tb-x", False)],  # 4: another order of that account
        [("jd_buyer", "jd-y", False), ("phone", phone(1), False)],  # 5: a JD buyer giving the same phone
        [("member_no", "M2", False), ("phone", phone(2), True)],  # 6: someone else
    ]
    created = [T2, T2, T1, T2, T2, T2, T2]

    result = identities_resolve(actor=hq, records=records, created_at=created, source="import")

    ids = result.customer_ids
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4]
    assert len({ids[0], ids[3], ids[5], ids[6]}) == 4  # unverified phones never join anyone
    assert (result.records, result.clusters, result.links, result.customers_created) == (7, 4, 3, 4)
    person = Customer.objects.get(id=ids[0])
    assert (person.created_at, person.source, person.phone_hash) == (T1, "import", phone(1))
    assert Event.objects.filter(customer_id=person.id, type="customer.created").count() == 1
    assert Identity.objects.get(kind="phone", value=phone(1)).customer_id == ids[0]
    assert Identity.objects.get(kind="phone", value=phone(1)).verified is True
    assert Identity.objects.filter(customer_id=ids[3]).count() == 1  # tb-x only: the phone is the member's
    assert result.identities_created == 8
    # The two buyers who gave the member's phone are proposed for review with the member.
    assert set(MergeCandidate.objects.values_list("customer_a_id", "customer_b_id", "reason")) == {
        (ids[0], ids[3], "phone_unverified"),
        (ids[0], ids[5], "phone_unverified"),
    }
    assert result.candidates == 2
    audit = AuditLog.objects.get(action="customer.import_identities")
    assert (audit.detail["records"], audit.detail["customers_created"]) == (7, 4)


def test_a_batch_joins_and_links_the_brands_existing_customers(world: World) -> None:
    hq = world.actor("hq")
    c1, c2, c3 = (world.customers[k] for k in ("c1", "c2", "c3"))
    records = [
        [("unionid", "union-c1", False), ("member_no", "M-c1", False)],  # c1, known by its unionid
        [("wecom_external_userid", "wmc2", False), ("unionid", "union-c3", False)],  # c2 and c3 are one person
        [("phone", pii.phone_hash(world.phones["c4"]), True), ("member_no", "M-c4", False)],  # c4's phone, verified
        [("xiaoe_user", "u-new", False)],
    ]

    result = identities_resolve(actor=hq, records=records)

    assert result.customer_ids[0] == c1.id
    assert result.customer_ids[1] == c2.id  # the older of the two
    assert Customer.objects.get(id=c3.id).merged_into_id == c2.id
    assert CustomerMerge.objects.get().rule == "identity"
    # c4's phone was typed by an operator: a verified arrival is reviewed, not merged.
    c4_phone = Identity.objects.get(kind="phone", value=pii.phone_hash(world.phones["c4"]))
    assert (c4_phone.customer_id, c4_phone.verified) == (world.customers["c4"].id, False)
    assert result.customer_ids[2] not in {c.id for c in world.customers.values()}
    assert MergeCandidate.objects.get().customer_a_id == world.customers["c4"].id
    assert (result.customers_matched, result.existing_merged, result.customers_created) == (2, 1, 2)
    assert Identity.objects.get(value="M-c1").customer_id == c1.id


def test_a_verified_phone_upgrades_the_same_customers_unverified_one(world: World) -> None:
    c4 = world.customers["c4"]
    records = [[("unionid", "union-c4", False), ("phone", pii.phone_hash(world.phones["c4"]), True)]]
    result = identities_resolve(actor=world.actor("hq"), records=records)
    assert result.customer_ids == [c4.id]
    assert Identity.objects.get(kind="phone", customer=c4).verified is True
    assert MergeCandidate.objects.count() == 0


@pytest.mark.parametrize(
    "record",
    [
        [("qq", "1", False)],
        [("unionid", "", False)],
        [("unionid", "x" * 129, False)],
        [("unionid", "a\x00b", False)],
        [("phone", "abc", "yes")],
    ],
)
def test_bad_records_are_refused_and_nothing_is_written(world: World, record: list[tuple[str, str, object]]) -> None:
    before = (Customer.objects.count(), Identity.objects.count(), Event.objects.count())
    with pytest.raises(ValidationFailed) as error:
        identities_resolve(actor=world.actor("hq"), records=[[("unionid", "o-fine", False)], record])  # type: ignore[list-item]
    assert (error.value.field, error.value.message.startswith("records[1]: ")) == ("records", True)
    assert (Customer.objects.count(), Identity.objects.count(), Event.objects.count()) == before


def test_importing_is_for_hq_only(world: World) -> None:
    with pytest.raises(PermissionDenied):
        identities_resolve(actor=world.actor("region1"), records=[[("unionid", "o-x", False)]])
    assert not Identity.objects.filter(value="o-x").exists()


def test_the_bench_matches_its_ground_truth_on_a_small_workload(db: None) -> None:
    report = measure(records=3000, seed=11, label="test", progress=lambda message: None)
    assert report.problems == []
    assert report.result.clusters == Customer.objects.filter(source="bench").count()
    assert report.result.candidates > 0  # relatives' phones on shop orders
    assert report.result.links == report.records - report.result.clusters


def test_each_new_customer_gets_one_created_event_at_its_first_seen_time(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    before = set(Event.objects.filter(type="customer.created").values_list("id", flat=True))
    records = [
        [("unionid", "union-c1", False)],  # c1 exists: no second created event
        [("member_no", "M-new-1", False)],
        [("member_no", "M-new-2", False), ("unionid", "o-new-2", False)],
        [("unionid", "o-new-2", False)],
    ]

    result = identities_resolve(actor=hq, records=records, created_at=[T2, T2, T2, T1], source="ocean")

    new_ids = sorted({result.customer_ids[1], result.customer_ids[2]})
    events = Event.objects.filter(type="customer.created").exclude(id__in=before).order_by("id")
    assert [e.customer_id for e in events] == new_ids  # in id order, none for c1
    created = dict(Customer.objects.filter(id__in=new_ids).values_list("id", "created_at"))
    assert {e.customer_id: e.occurred_at for e in events} == created
    assert created[result.customer_ids[2]] == T1  # the cluster's earliest record
    assert {(e.tenant_id, e.actor_id, e.guide_id) for e in events} == {(hq.tenant_id, hq.user_id, None)}
    assert [e.properties for e in events] == [{"source": "ocean"}] * 2
    assert not Event.objects.filter(type="customer.created", customer_id=c1.id).exclude(id__in=before).exists()


def test_values_with_quotes_backslashes_and_non_ascii_text_are_stored_as_given(world: World) -> None:
    odd = ['o-"quoted"', "back\\slash", "tab\tand\nnewline", "微信用户😀", "[1, 2]", "null"]
    source = 'import "2026" 导入'
    records = [[("unionid", value, False)] for value in odd] + [[("phone", phone(7), True)]]

    result = identities_resolve(actor=world.actor("hq"), records=records, source=source)

    stored = dict(Identity.objects.values_list("value", "customer_id"))
    assert {value: stored[value] for value in odd} == dict(zip(odd, result.customer_ids, strict=False))
    member = Customer.objects.get(id=result.customer_ids[-1])
    assert (member.source, member.phone_hash, member.lifecycle_stage, member.name_enc) == (source, phone(7), "new", "")
    verified = Identity.objects.get(kind="phone", value=phone(7)).verified
    assert verified is True
    assert Event.objects.get(customer_id=member.id, type="customer.created").properties == {"source": source}


def test_created_events_cover_only_the_given_customers_when_their_ids_are_not_consecutive(world: World) -> None:
    # On PostgreSQL another session may take sequence values between a batch's ids: a customer inside the range
    # that is not the batch's must get no event.
    from siyu.customers.resolver import _created_events, _id_runs

    assert list(_id_runs([11, 5, 6, 7, 3, 10])) == [(3, 3), (5, 7), (10, 11)]
    assert list(_id_runs([])) == []
    ids = identities_resolve(actor=world.actor("hq"), records=[[("unionid", f"o-gap-{n}", False)] for n in range(5)])
    ids_sorted = sorted(ids.customer_ids)
    ours = [i for i in ids_sorted if i != ids_sorted[2]]
    Event.objects.filter(customer_id__in=ids_sorted).delete()

    count = _created_events(
        tenant_id=world.tenant_a.id, customer_ids=ours, actor_id=None, properties="{}", recorded_at=T2
    )

    assert count == 4
    assert sorted(Event.objects.filter(customer_id__in=ids_sorted).values_list("customer_id", flat=True)) == ours
