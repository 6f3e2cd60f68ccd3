"""Processing stored callbacks: each WeCom event becomes the right customer, follow-relation and timeline change.

Rows are stored through the real service (as the endpoint stores them) and processed by the real job function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.core import pii
from siyu.core.models import Guide
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.tags.models import Tag
from siyu.testing import IMMEDIATE_TASKS, World
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.services import contact_refresh, raw_callback_process, raw_callback_requeue
from siyu.wecom.tasks import raw_callback_run
from siyu.wecom.tests.support import (
    CORP_A,
    CORP_B,
    T0,
    FakeWeCom,
    FakeWeComServer,
    contact_xml,
    event_xml,
    signed_post,
)

CaptureOnCommit = Callable[..., Any]
AT = dt.datetime.fromtimestamp(T0, tz=dt.UTC)


NOT_A_CONTACT = {"errcode": 84061, "errmsg": "not external contact"}


@pytest.fixture(autouse=True)
def fake(connections: dict[str, WeComConnection]) -> Iterator[FakeWeCom]:
    """Brand A's WeCom, over HTTP: by default it knows no customer (84061), so adds use the callback alone."""
    fake = FakeWeCom()
    fake.answers["externalcontact/get"] = NOT_A_CONTACT
    server = FakeWeComServer(fake)
    WeComConnection.objects.filter(corp_id=CORP_A).update(api_base_url=server.url)
    yield fake
    server.stop()


def process(row: RawCallback) -> RawCallback:
    result = raw_callback_process(raw_callback_id=row.id)
    assert result is not None
    return result


def events(
    world: World, *types: str, customer_id: int | None = None
) -> list[tuple[str, int | None, int | None, dt.datetime, dict[str, Any]]]:
    qs = Event.objects.filter(tenant=world.tenant_a, type__in=types).order_by("id")
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return [(e.type, e.customer_id, e.guide_id, e.occurred_at, e.properties) for e in qs]


# -- adds --------------------------------------------------------------------------------------------------------


def test_a_new_customer_adding_a_guide(world: World, store: Callable[..., RawCallback]) -> None:
    row = store(contact_xml("add_external_contact", "guide1", "wmNEW001", State="store-S1", WelcomeCode="W1"))
    row = process(row)
    assert (row.status, row.error, row.attempts) == (RawCallback.Status.PROCESSED, "new customer", 1)
    assert row.processed_at is not None
    assert row.event["WelcomeCode"] == "W1"  # kept for the acquisition flow's welcome message
    identity = Identity.objects.get(tenant=world.tenant_a, kind=Identity.Kind.WECOM_EXTERNAL_USERID, value="wmNEW001")
    customer = identity.customer
    guide = world.guides["G1"]
    assert (customer.source, customer.owner_guide_id, customer.created_at) == ("wecom", guide.id, AT)
    relation = FollowRelation.objects.get(customer=customer)
    assert (relation.guide_id, relation.external_userid, relation.state, relation.status, relation.added_at) == (
        guide.id,
        "wmNEW001",
        "store-S1",
        FollowRelation.Status.ACTIVE,
        AT,
    )
    assert relation.add_way == FollowRelation.AddWay.UNKNOWN
    assert events(world, "customer.created", "contact.added", customer_id=customer.id) == [
        ("customer.created", customer.id, None, AT, {"source": "wecom"}),
        ("contact.added", customer.id, guide.id, AT, {"guide_id": guide.id, "add_way": 0, "state": "store-S1"}),
    ]


def _detail(external_userid: str, *follows: dict[str, Any], name: str = "林小雨", unionid: str = "") -> dict[str, Any]:
    """externalcontact/get's answer: the customer and their followers."""
    contact = {"external_userid": external_userid, "name": name, "type": 1, "gender": 2, "unionid": unionid}
    return {"external_contact": contact, "follow_user": list(follows)}


def _follow(userid: str, *, remark: str = "", tag_ids: tuple[str, ...] = (), state: str = "") -> dict[str, Any]:
    tags = [{"group_name": "兴趣", "tag_name": t, "type": 1, "tag_id": t} for t in tag_ids]
    return {"userid": userid, "createtime": T0, "remark": remark, "description": "", "add_way": 1, "state": state,
            "tags": tags}  # fmt: skip


def test_an_add_reads_the_customers_name_unionid_remark_and_tags_from_wecom(
    world: World, store: Callable[..., RawCallback], fake: FakeWeCom
) -> None:
    Tag.objects.filter(id=world.tags["护肤"].id).update(wecom_tag_id="etSKIN")
    fake.answers["externalcontact/get"] = _detail(
        "wmNEW002", _follow("guide1", remark="林·敏感肌", tag_ids=("etSKIN",), state="store-S1"), unionid="uNEW2"
    )
    row = process(store(contact_xml("add_external_contact", "guide1", "wmNEW002", State="store-S1")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "new customer")
    customer = Identity.objects.get(kind=Identity.Kind.WECOM_EXTERNAL_USERID, value="wmNEW002").customer
    assert pii.decrypt(customer.name_enc, field="name") == "林小雨"
    assert customer.gender == 2
    assert Identity.objects.filter(customer=customer, kind=Identity.Kind.UNIONID, value="uNEW2").exists()
    relation = FollowRelation.objects.get(customer=customer)
    assert (relation.remark, relation.add_way, relation.state) == (
        "林·敏感肌",
        FollowRelation.AddWay.QR_CODE,
        "store-S1",
    )
    assert list(customer.customer_tags.values_list("tag__name", "source")) == [("护肤", "wecom")]
    assert [e[0] for e in events(world, "customer.created", "contact.added", customer_id=customer.id)] == [
        "customer.created",
        "contact.added",
    ]


def test_an_add_with_a_known_unionid_joins_the_customer_siyu_already_has(
    world: World, store: Callable[..., RawCallback], fake: FakeWeCom
) -> None:
    c5 = world.customers["c5"]  # known from elsewhere by unionid "union-c5", followed by no guide yet
    fake.answers["externalcontact/get"] = _detail("wmNEW005", _follow("guide2"), unionid="union-c5")
    before = Customer.objects.count()
    row = process(store(contact_xml("add_external_contact", "guide2", "wmNEW005")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    assert Customer.objects.count() == before  # one person, one customer (OneID)
    assert Identity.objects.get(kind=Identity.Kind.WECOM_EXTERNAL_USERID, value="wmNEW005").customer_id == c5.id
    assert FollowRelation.objects.get(customer=c5).guide_id == world.guides["G2"].id


def test_when_wecom_refuses_the_read_the_add_still_lands_and_details_follow_later(
    world: World, store: Callable[..., RawCallback], fake: FakeWeCom
) -> None:
    fake.fault("externalcontact/get", 60020)  # "not allow to access from your ip": not worth retrying
    row = process(store(contact_xml("add_external_contact", "guide1", "wmNEW003", State="live")))
    assert row.status == RawCallback.Status.PROCESSED
    assert "details to be read later" in row.error
    relation = FollowRelation.objects.get(external_userid="wmNEW003")
    assert (relation.state, relation.add_way) == ("live", FollowRelation.AddWay.UNKNOWN)
    # The follow-up job, once WeCom answers again.
    fake.answers["externalcontact/get"] = _detail("wmNEW003", _follow("guide1", remark="直播来的", state="live"))
    assert contact_refresh(raw_callback_id=row.id) == "refreshed"
    relation.refresh_from_db()
    assert (relation.remark, relation.add_way) == ("直播来的", FollowRelation.AddWay.QR_CODE)
    assert pii.decrypt(relation.customer.name_enc, field="name") == "林小雨"


def test_an_edit_replaces_the_remark_and_the_wecom_tags(
    world: World, store: Callable[..., RawCallback], fake: FakeWeCom
) -> None:
    c1 = world.customers["c1"]  # followed by guide1 as wmc1, with the manual tag 护肤
    Tag.objects.filter(id=world.tags["彩妆"].id).update(wecom_tag_id="etMAKEUP")
    fake.answers["externalcontact/get"] = _detail(
        "wmc1", _follow("guide1", remark="老客·爱彩妆", tag_ids=("etMAKEUP",))
    )
    row = process(store(contact_xml("edit_external_contact", "guide1", "wmc1")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    relation = FollowRelation.objects.get(customer=c1, guide=world.guides["G1"])
    assert relation.remark == "老客·爱彩妆"
    assert sorted(c1.customer_tags.values_list("tag__name", "source")) == [("彩妆", "wecom"), ("护肤", "manual")]
    # The guide takes the tag off again: the WeCom tag goes, the one siyu applied stays.
    fake.answers["externalcontact/get"] = _detail("wmc1", _follow("guide1", remark="老客"))
    process(store(contact_xml("edit_external_contact", "guide1", "wmc1", create_time=T0 + 60)))
    assert list(c1.customer_tags.values_list("tag__name", flat=True)) == ["护肤"]


def test_an_edit_for_a_customer_siyu_does_not_know_is_ignored(
    world: World, store: Callable[..., RawCallback], fake: FakeWeCom
) -> None:
    fake.answers["externalcontact/get"] = _detail("wmNOBODY", _follow("guide1"))
    row = process(store(contact_xml("edit_external_contact", "guide1", "wmNOBODY")))
    assert row.status == RawCallback.Status.IGNORED
    assert not Identity.objects.filter(value="wmNOBODY").exists()


def test_a_known_customer_adding_a_second_guide(world: World, store: Callable[..., RawCallback]) -> None:
    c1 = world.customers["c1"]  # follows G1 as external user wmc1
    customers_before = Customer.objects.count()
    row = process(store(contact_xml("add_external_contact", "guide2", "wmc1")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    assert Customer.objects.count() == customers_before
    assert sorted(FollowRelation.objects.filter(customer=c1).values_list("guide__wecom_userid", "status")) == [
        ("guide1", "active"),
        ("guide2", "active"),
    ]


def test_processing_twice_changes_nothing(world: World, store: Callable[..., RawCallback]) -> None:
    row = store(contact_xml("add_external_contact", "guide1", "wmNEW001"))
    first = process(row)
    snapshot = (Customer.objects.count(), FollowRelation.objects.count(), Event.objects.count())
    again = process(row)
    # Also the job entry point, as a worker would call it on a redelivered job.
    assert raw_callback_run.call(row.id) == "processed"
    assert (Customer.objects.count(), FollowRelation.objects.count(), Event.objects.count()) == snapshot
    assert (again.status, again.attempts, again.processed_at) == (first.status, 1, first.processed_at)


def test_half_add_then_add_is_one_friendship(world: World, store: Callable[..., RawCallback]) -> None:
    process(store(contact_xml("add_half_external_contact", "guide1", "wmNEW001", State="live", WelcomeCode="W1")))
    second = process(store(contact_xml("add_external_contact", "guide1", "wmNEW001", create_time=T0 + 30)))
    assert (second.status, second.error) == (RawCallback.Status.PROCESSED, "already following")
    assert FollowRelation.objects.filter(external_userid="wmNEW001").count() == 1
    customer_id = FollowRelation.objects.get(external_userid="wmNEW001").customer_id
    assert [e[4]["state"] for e in events(world, "contact.added", customer_id=customer_id)] == ["live"]


def test_an_unknown_member_becomes_a_placeholder_guide(world: World, store: Callable[..., RawCallback]) -> None:
    process(store(contact_xml("add_external_contact", "newbie", "wmNEW001")))
    guide = Guide.objects.get(tenant=world.tenant_a, wecom_userid="newbie")
    assert (guide.name, guide.store_id, guide.kind) == ("newbie", None, Guide.Kind.GUIDE)
    assert FollowRelation.objects.get(external_userid="wmNEW001").guide_id == guide.id


def test_a_long_state_is_cut_to_wecoms_30_characters(world: World, store: Callable[..., RawCallback]) -> None:
    process(store(contact_xml("add_external_contact", "guide1", "wmNEW001", State="s" * 40)))
    assert FollowRelation.objects.get(external_userid="wmNEW001").state == "s" * 30


# -- deletes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change_type", "status", "event_type"),
    [
        ("del_follow_user", FollowRelation.Status.DELETED_BY_CUSTOMER, "contact.deleted_by_customer"),
        ("del_external_contact", FollowRelation.Status.DELETED_BY_GUIDE, "contact.deleted_by_guide"),
    ],
)
def test_deletes(
    world: World, store: Callable[..., RawCallback], change_type: str, status: str, event_type: str
) -> None:
    when = T0 + 86_400
    row = process(store(contact_xml(change_type, "guide1", "wmc1", create_time=when)))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    relation = FollowRelation.objects.get(customer=world.customers["c1"], guide=world.guides["G1"])
    at = dt.datetime.fromtimestamp(when, tz=dt.UTC)
    assert (relation.status, relation.deleted_at) == (status, at)
    guide_id = world.guides["G1"].id
    assert events(world, event_type) == [(event_type, world.customers["c1"].id, guide_id, at, {"guide_id": guide_id})]
    # Delivered again later (a second row cannot exist; a re-run of the job is the realistic repeat).
    assert process(row).status == RawCallback.Status.PROCESSED
    assert len(events(world, event_type)) == 1


def test_a_delete_then_re_add(world: World, store: Callable[..., RawCallback]) -> None:
    process(store(contact_xml("del_follow_user", "guide1", "wmc1", create_time=T0 + 1000)))
    row = process(store(contact_xml("add_external_contact", "guide1", "wmc1", create_time=T0 + 2000, State="again")))
    assert row.status == RawCallback.Status.PROCESSED
    relation = FollowRelation.objects.get(customer=world.customers["c1"], guide=world.guides["G1"])
    assert (relation.status, relation.deleted_at, relation.state) == (FollowRelation.Status.ACTIVE, None, "again")


def test_a_delete_of_a_relation_already_deleted(world: World, store: Callable[..., RawCallback]) -> None:
    process(store(contact_xml("del_follow_user", "guide1", "wmc1", create_time=T0 + 1000)))
    # The guide also deleted the customer (WeCom sends both when both sides delete).
    row = process(store(contact_xml("del_external_contact", "guide1", "wmc1", create_time=T0 + 2000)))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "already deleted")
    assert FollowRelation.objects.get(external_userid="wmc1").status == FollowRelation.Status.DELETED_BY_CUSTOMER


def test_out_of_order_delivery_keeps_the_latest_state(world: World, store: Callable[..., RawCallback]) -> None:
    # The world's relation G1-c1 was added at t0 + 5 min; a delete stamped before that is older news.
    row = process(store(contact_xml("del_follow_user", "guide1", "wmc1", create_time=T0)))
    assert (row.status, row.error) == (RawCallback.Status.IGNORED, "stale: the relation was re-added after this delete")
    assert FollowRelation.objects.get(external_userid="wmc1").status == FollowRelation.Status.ACTIVE
    # And an add stamped before a later delete does not resurrect the relation.
    process(store(contact_xml("del_follow_user", "guide1", "wmc1", create_time=T0 + 1000)))
    late_add = process(store(contact_xml("add_external_contact", "guide1", "wmc1", create_time=T0 + 900)))
    assert (late_add.status, late_add.error) == (
        RawCallback.Status.IGNORED,
        "stale: the relation was deleted after this add",
    )
    assert FollowRelation.objects.get(external_userid="wmc1").status == FollowRelation.Status.DELETED_BY_CUSTOMER


@pytest.mark.parametrize(
    ("userid", "external_userid", "note"),
    [
        ("nobody", "wmc1", "unknown member nobody"),
        ("guide1", "wmUNKNOWN", "unknown customer"),
        ("guide2", "wmc1", "no follow relation between this guide and customer"),
    ],
)
def test_deletes_with_nothing_to_delete_are_ignored(
    world: World, store: Callable[..., RawCallback], userid: str, external_userid: str, note: str
) -> None:
    before = (Customer.objects.count(), Guide.objects.count(), FollowRelation.objects.count(), Event.objects.count())
    row = process(store(contact_xml("del_follow_user", userid, external_userid, create_time=T0 + 3600)))
    assert (row.status, row.error) == (RawCallback.Status.IGNORED, note)
    assert (Customer.objects.count(), Guide.objects.count(), FollowRelation.objects.count(), Event.objects.count()) == (
        before
    )


# -- events not consumed yet, and bad events ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "note"),
    [
        # Group create/update events read the group from WeCom: see test_group_events.py.
        (event_xml("change_external_chat", "dismiss", ChatId="wrCHAT"), "unknown group"),
        (
            contact_xml("transfer_fail", "guide2", "wmc1", FailReason="customer_refused"),
            "no transfer of this customer to this member is waiting",
        ),
        (event_xml("change_contact", "create_user", UserID="zhangsan"), "unsupported event change_contact"),
    ],
)
def test_events_not_consumed_yet_are_stored_and_ignored(
    world: World, store: Callable[..., RawCallback], xml: str, note: str
) -> None:
    before = (Customer.objects.count(), FollowRelation.objects.count(), Event.objects.count())
    row = process(store(xml))
    assert (row.status, row.error, row.attempts) == (RawCallback.Status.IGNORED, note, 1)
    assert (Customer.objects.count(), FollowRelation.objects.count(), Event.objects.count()) == before


def test_a_bad_event_fails_and_stays_retryable(world: World, store: Callable[..., RawCallback]) -> None:
    row = store(event_xml("change_external_contact", "add_external_contact", UserID="guide1"))
    before = (Customer.objects.count(), Guide.objects.count(), FollowRelation.objects.count(), Event.objects.count())
    row = process(row)
    assert (row.status, row.attempts, row.error) == (
        RawCallback.Status.FAILED,
        1,
        "BadEvent: the event has no ExternalUserID",
    )
    row = process(row)
    assert (row.status, row.attempts) == (RawCallback.Status.FAILED, 2)
    assert (Customer.objects.count(), Guide.objects.count(), FollowRelation.objects.count(), Event.objects.count()) == (
        before
    )


def test_a_failure_midway_rolls_back_everything(
    world: World, store: Callable[..., RawCallback], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The customer and the placeholder guide are written before the follow relation: a crash in between must not
    # leave them behind, or the retry would see a half-applied event.
    from siyu.customers import services as customer_services

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(customer_services, "follow_relation_add", boom)
    before = (Customer.objects.count(), Guide.objects.count(), Identity.objects.count(), Event.objects.count())
    row = process(store(contact_xml("add_external_contact", "newbie", "wmNEW001")))
    assert (row.status, row.attempts, row.error) == (RawCallback.Status.FAILED, 1, "RuntimeError: database went away")
    assert (Customer.objects.count(), Guide.objects.count(), Identity.objects.count(), Event.objects.count()) == before
    monkeypatch.undo()
    row = process(row)
    assert (row.status, row.attempts) == (RawCallback.Status.PROCESSED, 2)
    assert FollowRelation.objects.get(external_userid="wmNEW001").guide.wecom_userid == "newbie"


def test_a_missing_row_is_reported(db: None) -> None:
    assert raw_callback_process(raw_callback_id=123456) is None
    assert raw_callback_run.call(123456) == "missing"


# -- tenancy -----------------------------------------------------------------------------------------------------


def test_brand_b_callbacks_touch_only_brand_b(world: World, store: Callable[..., RawCallback]) -> None:
    # Brand B has a guide "guide1" too, and the external id wmc1 is brand A's c1: B must get its own customer.
    a_before = (
        Customer.objects.filter(tenant=world.tenant_a).count(),
        FollowRelation.objects.filter(tenant=world.tenant_a).count(),
        Event.objects.filter(tenant=world.tenant_a).count(),
    )
    row = process(store(contact_xml("add_external_contact", "guide1", "wmc1", corp_id=CORP_B), brand="B"))
    assert (row.tenant_id, row.status) == (world.tenant_b.id, RawCallback.Status.PROCESSED)
    relation = FollowRelation.objects.get(tenant=world.tenant_b, external_userid="wmc1")
    assert relation.guide_id == world.guides["GB"].id
    assert relation.customer.tenant_id == world.tenant_b.id
    assert relation.customer_id != world.customers["c1"].id
    assert (
        Customer.objects.filter(tenant=world.tenant_a).count(),
        FollowRelation.objects.filter(tenant=world.tenant_a).count(),
        Event.objects.filter(tenant=world.tenant_a).count(),
    ) == a_before


# -- end to end and re-queueing ----------------------------------------------------------------------------------


def test_end_to_end_through_http_with_the_immediate_backend(
    world: World,
    connections: dict[str, WeComConnection],
    settings: SettingsWrapper,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(contact_xml("add_external_contact", "guide3", "wmNEW009", State="ad")).send(Client())
    assert (response.status_code, response.content) == (200, b"")
    row = RawCallback.objects.get()
    assert (row.status, row.attempts) == (RawCallback.Status.PROCESSED, 1)
    assert FollowRelation.objects.get(external_userid="wmNEW009").guide_id == world.guides["G3"].id


def test_requeue_picks_up_lost_and_failed_callbacks(
    world: World,
    store: Callable[..., RawCallback],
    settings: SettingsWrapper,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    lost = store(contact_xml("add_external_contact", "guide1", "wmLOST"))  # its job never ran
    fresh = store(contact_xml("add_external_contact", "guide1", "wmFRESH"))
    gave_up = store(event_xml("change_external_contact", "add_external_contact", UserID="guide1"))
    RawCallback.objects.filter(id__in=[lost.id, gave_up.id]).update(received_at=AT)
    RawCallback.objects.filter(id=gave_up.id).update(status=RawCallback.Status.FAILED, attempts=5)
    with django_capture_on_commit_callbacks(execute=True):
        assert raw_callback_requeue(older_than=dt.timedelta(minutes=5)) == 1
    statuses = dict(RawCallback.objects.values_list("id", "status"))
    assert statuses == {
        lost.id: RawCallback.Status.PROCESSED,
        fresh.id: RawCallback.Status.RECEIVED,  # younger than the cut-off: its own job may still be coming
        gave_up.id: RawCallback.Status.FAILED,
    }
