"""Privacy rights (PIPL): consents with history, the export of everything held on a customer, and erasure that
removes personal data from every table while aggregate counts stay right.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.apps import apps
from django.db.models import Sum

from siyu.analytics.models import Event
from siyu.analytics.services import event_record
from siyu.campaigns.models import Campaign, LandingVisit, Participant, ParticipantMessage
from siyu.channels.models import WelcomeSend
from siyu.commerce.models import Order
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers import identity as oneid
from siyu.customers.models import Customer, FollowRelation
from siyu.customers.selectors import customer_list
from siyu.customers.services import customer_get_or_create_by_identity
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.inheritance.models import Transfer, TransferItem, UnassignedCustomer
from siyu.leads.models import Lead
from siyu.leads.services import lead_create
from siyu.privacy import selectors, services
from siyu.privacy.models import Consent, ErasedCustomer, PrivacyRequest
from siyu.testing import World
from siyu.wecom.models import RawCallback, WeComConnection

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
ADDRESS = "杭州市西湖区文三路1号"
REMARK = "王小明VIP 13800000001"
CHAT = "我是王小明，电话13800000001"


@pytest.fixture
def rich(world: World) -> World:
    """c1 (王小明, 13800000001, unionid union-c1, WeCom wmc1) with rows in every context; c5 merged into c1."""
    hq = world.actor("hq")
    a = world.tenant_a
    c1 = world.customers["c1"]
    Customer.objects.filter(id=c1.id).update(address_enc=pii.encrypt(ADDRESS, field="address"))
    FollowRelation.objects.filter(customer=c1).update(remark=REMARK, description="住西湖区，喜欢玫瑰")
    oneid.identity_attach(actor=hq, customer_id=c1.id, kind="tmall_buyer", value="tb-wangxm")
    oneid.identity_attach(actor=hq, customer_id=c1.id, kind="wecom_external_userid", value="wmc1")
    for no, key, cents in (("T-1", "c1", 12_000), ("T-2", "c1", 3_000), ("T-3", "c2", 5_000)):
        Order.objects.create(tenant=a, customer=world.customers[key], shop="tmall", order_no=no, amount_cents=cents,
                             paid_at=T0)  # fmt: skip
        event_record(tenant_id=a.id, type="order.paid", customer_id=world.customers[key].id, occurred_at=T0,
                     properties={"order_no": no, "amount_cents": cents, "shop": "tmall"})  # fmt: skip
    event_record(tenant_id=a.id, type="message.received", customer_id=c1.id, occurred_at=T0,
                 properties={"guide_id": world.guides["G1"].id, "text": CHAT, "remark": REMARK})  # fmt: skip
    WelcomeSend.objects.create(tenant=a, customer=c1, guide=world.guides["G1"], text="王小明，欢迎！",
                               welcome_code="wc-1", received_at=T0)  # fmt: skip
    campaign = Campaign.objects.create(tenant=a, name="春日裂变", starts_at=T0, ends_at=T0 + dt.timedelta(days=7))
    participant = Participant.objects.create(tenant=a, campaign=campaign, customer=c1, guide=world.guides["G1"],
                                             token="tok-c1", share_token="share-c1", joined_at=T0,
                                             qr_url="https://example.com/qr/c1")  # fmt: skip
    LandingVisit.objects.create(tenant=a, campaign=campaign, participant=participant, device_hash="dev-c1",
                                created_at=T0)  # fmt: skip
    ParticipantMessage.objects.create(tenant=a, participant=participant, kind="progress", text="王小明，再邀1人",
                                      dedupe_key="k1", created_at=T0)  # fmt: skip
    group = CustomerGroup.objects.create(tenant=a, chat_id="wr-1", name="会员群", owner=world.guides["G1"],
                                         created_at=T0, updated_at=T0)  # fmt: skip
    GroupMember.objects.create(tenant=a, group=group, member_type=2, userid="wmc1", customer=c1, join_time=T0)
    transfer = Transfer.objects.create(tenant=a, kind="on_job", handover=world.guides["G1"],
                                       takeover=world.guides["G2"])  # fmt: skip
    TransferItem.objects.create(tenant=a, transfer=transfer, customer=c1, external_userid="wmc1")
    UnassignedCustomer.objects.create(tenant=a, handover_userid="guide1", external_userid="wmc1", customer=c1,
                                      dimission_time=T0)  # fmt: skip
    connection = WeComConnection.objects.create(tenant=a, corp_id="wwA")
    RawCallback.objects.create(tenant=a, connection=connection, received_at=T0, msg_signature="s", timestamp="1",
                               nonce="n", xml="<xml><ExternalUserID>wmc1</ExternalUserID></xml>",
                               event={"Event": "change_external_contact", "ExternalUserID": "wmc1", "UserID": "guide1",
                                      "WelcomeCode": "wc-1"},
                               event_type="change_external_contact", dedupe_key="d1")  # fmt: skip
    services.consent_record(actor=hq, customer_id=c1.id, purpose="marketing", granted=True, channel="wecom",
                            text_version="v1")  # fmt: skip
    lead_create(actor=hq, name="王先生", phone="13800000001", source="展会")  # the same person, as a lead
    lead_create(actor=hq, unionid="union-c5", source="小程序")  # c5, merged into c1
    oneid.customer_merge(actor=hq, customer_ids=[c1.id, world.customers["c5"].id])
    return world


# --- consents ---------------------------------------------------------------------------------------------


def test_consent_history_is_kept_and_the_latest_decision_is_the_state(world: World) -> None:
    guide = world.actor("guide1")
    c1 = world.customers["c1"].id
    services.consent_record(actor=guide, customer_id=c1, purpose="marketing", granted=True, channel="sidebar",
                            text_version="v1", recorded_at=T0)  # fmt: skip
    services.consent_record(actor=guide, customer_id=c1, purpose="marketing", granted=False, channel="store",
                            text_version="v2", recorded_at=T0 + dt.timedelta(days=1))  # fmt: skip

    states = selectors.consent_state(actor=guide, customer_id=c1)
    state = {s.purpose: (s.granted, s.channel, s.text_version) for s in states}
    assert state == {"marketing": (False, "store", "v2"), "analysis": (None, "", ""),
                     "third_party": (None, "", ""), "cross_border": (None, "", "")}  # fmt: skip
    history = selectors.consent_history(actor=world.actor("hq"), customer_id=c1)
    assert [(c.granted, c.text_version, c.recorded_by_id) for c in history] == [
        (False, "v2", world.users["guide1"].id),
        (True, "v1", world.users["guide1"].id),
    ]
    assert list(
        AuditLog.objects.filter(action__startswith="consent.").order_by("id").values_list("action", flat=True)
    ) == [
        "consent.grant",
        "consent.withdraw",
    ]
    # The customer's timeline shows both decisions, when they were made.
    events = Event.objects.filter(customer_id=c1, type__startswith="consent.").order_by("occurred_at")
    assert [(e.type, e.occurred_at, e.properties["channel"]) for e in events] == [
        ("consent.granted", T0, "sidebar"),
        ("consent.withdrawn", T0 + dt.timedelta(days=1), "store"),
    ]


def test_consent_refusals_change_nothing(world: World) -> None:
    c2 = world.customers["c2"].id
    with pytest.raises(NotFound):  # c2 is not served by guide1
        services.consent_record(actor=world.actor("guide1"), customer_id=c2, purpose="marketing", granted=True,
                                channel="store", text_version="v1")  # fmt: skip
    with pytest.raises(NotFound):  # another brand's customer
        services.consent_record(actor=world.actor("outsider"), customer_id=c2, purpose="marketing", granted=True,
                                channel="store", text_version="v1")  # fmt: skip
    for field, kwargs in (("purpose", {"purpose": "spam"}), ("channel", {"channel": "fax"}),
                          ("text_version", {"text_version": " "})):  # fmt: skip
        args = {"purpose": "marketing", "channel": "store", "text_version": "v1", **kwargs}
        with pytest.raises(ValidationFailed) as caught:
            services.consent_record(actor=world.actor("hq"), customer_id=c2, granted=True, **args)
        assert caught.value.field == field
    assert Consent.objects.count() == 0


# --- export -----------------------------------------------------------------------------------------------


def test_export_holds_every_contexts_data_decrypted_and_is_audited(rich: World) -> None:
    w = rich
    c1 = w.customers["c1"]
    request, doc = services.privacy_export(actor=w.actor("hq"), customer_id=c1.id, reason="客户来电申请 #1024",
                                           ip="10.0.0.1")  # fmt: skip

    assert (doc["customer_id"], doc["erased_at"]) == (c1.id, None)
    assert (doc["profile"]["name"], doc["profile"]["phone"], doc["profile"]["address"]) == (
        "王小明", "13800000001", ADDRESS)  # fmt: skip
    assert {(i["kind"], i["value"]) for i in doc["identities"]} >= {
        ("unionid", "union-c1"), ("tmall_buyer", "tb-wangxm"), ("wecom_external_userid", "wmc1")}  # fmt: skip
    assert [(r["guide"], r["remark"], r["external_userid"]) for r in doc["follow_relations"]] == [
        ("导购1", REMARK, "wmc1")]  # fmt: skip
    assert [(t["tag"], t["source"]) for t in doc["tags"]] == [("护肤", "manual")]
    assert sorted((o["order_no"], o["amount_cents"]) for o in doc["orders"]) == [("T-1", 12_000), ("T-2", 3_000)]
    assert Counter(e["type"] for e in doc["events"])["order.paid"] == 2
    assert any(e["properties"].get("text") == CHAT for e in doc["events"])
    assert [(c["purpose"], c["granted"]) for c in doc["consents"]] == [("marketing", True)]
    assert [(c["campaign"], c["messages"]) for c in doc["campaigns"]] == [("春日裂变", ["王小明，再邀1人"])]
    assert [(g["group"], g["userid"]) for g in doc["groups"]] == [("会员群", "wmc1")]
    assert [(t["from_guide"], t["to_guide"]) for t in doc["transfers"]] == [("导购1", "导购2")]
    assert [m["text"] for m in doc["welcome_messages"]] == ["王小明，欢迎！"]
    # The lead with c1's phone, and the one with c5's unionid (c1's since the merge).
    assert [(lead["name"], lead["phone"], lead["source"]) for lead in doc["leads"]] == [
        ("王先生", "13800000001", "展会"), ("", "", "小程序")]  # fmt: skip
    assert [c["event_type"] for c in doc["callbacks"]] == ["change_external_contact"]
    assert [(m["merged_customer_id"], m["rule"]) for m in doc["merges"]] == [(w.customers["c5"].id, "manual")]
    assert [(m["customer_id"], m["profile"]["name"]) for m in doc["merged_customers"]] == [
        (w.customers["c5"].id, "孙丽")]  # fmt: skip

    assert (request.kind, request.customer_id, request.reason) == ("export", c1.id, "客户来电申请 #1024")
    audit = AuditLog.objects.get(action="privacy.export")
    assert (audit.actor_id, audit.target_id, audit.detail["reason"], audit.ip) == (
        w.users["hq"].id, str(c1.id), "客户来电申请 #1024", "10.0.0.1")  # fmt: skip


def test_export_is_hq_only_and_needs_a_reason(rich: World) -> None:
    c1 = rich.customers["c1"].id
    for persona in ("region1", "store1", "guide1", "franchisee1"):
        with pytest.raises(PermissionDenied):
            services.privacy_export(actor=rich.actor(persona), customer_id=c1, reason="x")
    with pytest.raises(NotFound):
        services.privacy_export(actor=rich.actor("outsider"), customer_id=c1, reason="x")
    with pytest.raises(ValidationFailed) as caught:
        services.privacy_export(actor=rich.actor("hq"), customer_id=c1, reason="  ")
    assert caught.value.field == "reason"
    assert (PrivacyRequest.objects.count(), AuditLog.objects.filter(action="privacy.export").count()) == (0, 0)


# --- erasure ----------------------------------------------------------------------------------------------


def _dump(exclude_tenant_id: int) -> str:
    """Every row of every table (but the other brand's) as text, to grep for what must be gone."""
    parts = []
    for model in apps.get_models():
        if not model._meta.managed:
            continue
        qs = model._default_manager.all()
        if any(f.name == "tenant" for f in model._meta.concrete_fields):
            qs = qs.exclude(tenant_id=exclude_tenant_id)
        parts.extend(repr(row) for row in qs.values())
    return "\n".join(parts)


def _aggregates(tenant_id: int) -> dict[str, Any]:
    customers = Customer.objects.filter(tenant_id=tenant_id, merged_into__isnull=True)
    return {
        "stages": Counter(customers.values_list("lifecycle_stage", flat=True)),
        "customers": Customer.objects.filter(tenant_id=tenant_id).count(),
        "gmv": Order.objects.filter(tenant_id=tenant_id).aggregate(s=Sum("amount_cents"))["s"],
        "events": Counter(Event.objects.filter(tenant_id=tenant_id).values_list("type", flat=True)),
        "event_customers": Event.objects.filter(tenant_id=tenant_id).values("customer_id").distinct().count(),
        "relations": FollowRelation.objects.filter(tenant_id=tenant_id).count(),
        "members": GroupMember.objects.filter(tenant_id=tenant_id).count(),
        "participants": Participant.objects.filter(tenant_id=tenant_id).count(),
    }


def _tenant_rows(tenant_id: int) -> str:
    parts = []
    for model in apps.get_models():
        if (
            model._meta.managed
            and model is not AuditLog
            and any(f.name == "tenant" for f in model._meta.concrete_fields)
        ):
            parts.extend(repr(r) for r in model._default_manager.filter(tenant_id=tenant_id).order_by("pk").values())
    return "\n".join(parts)


def test_erasure_removes_personal_data_everywhere_and_keeps_aggregates(rich: World) -> None:
    w = rich
    a, b = w.tenant_a, w.tenant_b
    c1, c5 = Customer.objects.get(id=w.customers["c1"].id), Customer.objects.get(id=w.customers["c5"].id)
    # In clear where guides and chats wrote them, as identities, and as ciphertexts and keyed hashes on the rows.
    secrets_of = ["王小明", "13800000001", "union-c1", "union-c5", "tb-wangxm", "wmc1", "dev-c1", "tok-c1",
                  "share-c1", "wc-1", "西湖区", pii.phone_hash("13800000001"),
                  pii.phone_hash("13800000005"), c1.name_enc, c1.phone_enc, c1.address_enc, c1.name_index,
                  c5.name_enc, c5.phone_enc]  # fmt: skip
    leads = list(Lead.objects.filter(tenant=a).order_by("id"))
    secrets_of += [leads[0].name_enc, leads[0].phone_enc, leads[1].unionid_hash]
    present = [s for s in secrets_of if s in _dump(exclude_tenant_id=b.id)]
    assert present == secrets_of  # the fixture really put each one somewhere
    aggregates = _aggregates(a.id)
    other_brand = _tenant_rows(b.id)

    request = services.privacy_erase(actor=w.actor("hq"), customer_id=c1.id, reason="客户要求删除", ip="10.0.0.2")

    dump = _dump(exclude_tenant_id=b.id)
    assert [s for s in secrets_of if s in dump] == []
    assert _aggregates(a.id) == aggregates
    assert _tenant_rows(b.id) == other_brand
    # The other brand's customer with the same phone is still found by it.
    assert list(customer_list(actor=w.actor("outsider"), q="13800000001").values_list("id", flat=True)) == [
        w.customers["b1"].id]  # fmt: skip
    hq = w.actor("hq")
    for q in ("13800000001", "王小明", "13800000005", "union-c1", "wmc1"):
        assert list(customer_list(actor=hq, q=q)) == [], q
    # Orders and events stay on the tombstone, events without what the person said.
    assert Order.objects.filter(customer_id=c1.id).count() == 2
    message = Event.objects.get(customer_id=c1.id, type="message.received")
    assert message.properties == {"guide_id": w.guides["G1"].id}
    assert ErasedCustomer.objects.filter(tenant=a).count() == 2
    assert (request.customer_ids, request.counts["customers.identities"] >= 4) == ([c1.id, c5.id], True)
    assert request.counts["customers.customers"] == 2
    assert request.counts["leads.leads"] == 2
    assert Lead.objects.filter(tenant=a).count() == 2  # kept, matching nobody
    audit = AuditLog.objects.get(action="privacy.erase")
    assert (audit.actor_id, audit.target_id, audit.detail["reason"], audit.detail["counts"]) == (
        w.users["hq"].id, str(c1.id), "客户要求删除", request.counts)  # fmt: skip
    assert selectors.erasure_status(actor=hq, customer_id=c1.id) is not None

    # The same person adding the brand again is a new customer.
    again, created = customer_get_or_create_by_identity(actor=hq, kind="unionid", value="union-c1", source="wecom")
    assert created
    assert again.id != c1.id


def test_erasing_twice_is_a_clear_conflict_and_changes_nothing(rich: World) -> None:
    c1 = rich.customers["c1"].id
    services.privacy_erase(actor=rich.actor("hq"), customer_id=c1, reason="客户要求删除")
    before = (_tenant_rows(rich.tenant_a.id), AuditLog.objects.count())
    with pytest.raises(Conflict) as caught:
        services.privacy_erase(actor=rich.actor("hq"), customer_id=c1, reason="again")
    assert caught.value.field == "customer_id"
    assert "already erased" in caught.value.message
    with pytest.raises(Conflict):
        services.consent_record(actor=rich.actor("hq"), customer_id=c1, purpose="marketing", granted=True,
                                channel="store", text_version="v1")  # fmt: skip
    assert (_tenant_rows(rich.tenant_a.id), AuditLog.objects.count()) == before


def test_erasure_is_hq_only_and_refusals_change_nothing(rich: World) -> None:
    c1 = rich.customers["c1"].id
    before = (_tenant_rows(rich.tenant_a.id), AuditLog.objects.count())
    for persona in ("region1", "store1", "guide1", "franchisee1"):
        with pytest.raises(PermissionDenied):
            services.privacy_erase(actor=rich.actor(persona), customer_id=c1, reason="x")
    with pytest.raises(NotFound):
        services.privacy_erase(actor=rich.actor("outsider"), customer_id=c1, reason="x")
    with pytest.raises(NotFound):  # c5 is merged into c1: only the survivor is erased (with c5)
        services.privacy_erase(actor=rich.actor("hq"), customer_id=rich.customers["c5"].id, reason="x")
    assert (_tenant_rows(rich.tenant_a.id), AuditLog.objects.count()) == before
