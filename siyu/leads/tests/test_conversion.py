"""Lead → customer conversion (线索转客户): by hand, into a named customer or the one with the lead's phone or
unionid; automatically by the leads sweep once a customer holds the lead's phone or unionid. A converted lead is
linked, says who converted it and when, is audited, shows on the customer's timeline, and never returns to the
public pool (公海)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.core.errors import Conflict, NotFound
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers.services import IdentityInput, customer_create
from siyu.leads import selectors, services, tasks
from siyu.leads.models import Lead, LeadSettings
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World


def test_an_operator_converts_a_lead_into_a_named_customer(world: World) -> None:
    guide = world.actor("guide1")
    lead = services.lead_create(actor=guide, name="陈晨", phone="13900000101", source="展会")
    c1 = world.customers["c1"]

    converted = services.lead_convert(actor=guide, lead_id=lead.id, customer_id=c1.id)

    lead.refresh_from_db()
    assert (lead.status, lead.customer_id, lead.converted_by_id, lead.pool_due_at) == (
        "converted", c1.id, world.users["guide1"].id, None,
    )  # fmt: skip
    assert lead.converted_at is not None
    assert converted.customer_id == c1.id
    audit = AuditLog.objects.get(action="lead.convert", target_id=str(lead.id))
    assert audit.detail == {"customer_id": c1.id, "by": "hand", "matched_on": ""}
    event = Event.objects.get(type="lead.converted", customer_id=c1.id)
    assert event.properties == {"lead_id": lead.id, "by": "hand", "source": "展会", "matched_on": ""}
    assert event.guide_id == world.guides["G1"].id
    # Once only.
    with pytest.raises(Conflict) as caught:
        services.lead_convert(actor=guide, lead_id=lead.id, customer_id=c1.id)
    assert caught.value.field == "lead_id"


def test_converting_without_a_customer_finds_the_one_with_the_same_phone_or_unionid(world: World) -> None:
    hq = world.actor("hq")
    by_phone = services.lead_create(actor=hq, phone=world.phones["c2"])
    by_unionid = services.lead_create(actor=hq, unionid="u-lead-360")
    nobody = services.lead_create(actor=hq, phone="13900000102")
    holder = customer_create(actor=hq, name="周周", identities=[IdentityInput("unionid", "u-lead-360")])

    assert services.lead_convert(actor=hq, lead_id=by_phone.id).customer_id == world.customers["c2"].id
    assert services.lead_convert(actor=hq, lead_id=by_unionid.id).customer_id == holder.id
    assert AuditLog.objects.get(action="lead.convert", target_id=str(by_unionid.id)).detail["matched_on"] == "unionid"
    before = Lead.objects.filter(id=nobody.id).values().get()
    with pytest.raises(Conflict) as caught:
        services.lead_convert(actor=hq, lead_id=nobody.id)
    assert caught.value.field == "customer_id"
    assert Lead.objects.filter(id=nobody.id).values().get() == before
    assert not AuditLog.objects.filter(action="lead.convert", target_id=str(nobody.id)).exists()


def test_conversion_is_scoped(world: World) -> None:
    system = Actor.system(world.tenant_a.id)
    pooled = services.lead_create(actor=system, phone="13900000103")
    g2s = services.lead_create(actor=system, phone="13900000104")
    services.lead_assign(actor=system, lead_id=g2s.id, guide_id=world.guides["G2"].id)
    mine = services.lead_create(actor=world.actor("guide1"), phone="13900000105")
    guide = world.actor("guide1")
    c1, c3 = world.customers["c1"].id, world.customers["c3"].id
    with pytest.raises(Conflict) as caught:  # in the pool: claim it first
        services.lead_convert(actor=guide, lead_id=pooled.id, customer_id=c1)
    assert caught.value.field == "lead_id"
    with pytest.raises(NotFound) as caught:  # another guide's lead
        services.lead_convert(actor=guide, lead_id=g2s.id, customer_id=c1)
    assert caught.value.field == "lead_id"
    with pytest.raises(NotFound) as caught:  # a customer G1 does not serve
        services.lead_convert(actor=guide, lead_id=mine.id, customer_id=c3)
    assert caught.value.field == "customer_id"
    with pytest.raises(NotFound):  # another brand's lead
        services.lead_convert(actor=world.actor("outsider"), lead_id=mine.id, customer_id=c1)
    assert Lead.objects.filter(status="converted").count() == 0
    # A manager converts a lead of the pool; the pool no longer lists it.
    services.lead_convert(actor=world.actor("hq"), lead_id=pooled.id, customer_id=c1)
    assert pooled.id not in {lead.id for lead in selectors.lead_list(actor=guide, pool=True)}


def test_the_sweep_converts_leads_a_customer_now_matches_and_never_returns_them_to_the_pool(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    hq, guide = world.actor("hq"), world.actor("guide1")
    by_phone = services.lead_create(actor=guide, phone="13900000106", source="抖音")
    # A lead made before unionids were kept with the lead: found from the customer's side (its hash).
    old = services.lead_create(actor=guide, unionid="u-old")
    Lead.objects.filter(id=old.id).update(unionid_enc="")
    unmatched = services.lead_create(actor=guide, phone="13900000107")
    overdue = timezone.now() - dt.timedelta(minutes=1)
    Lead.objects.filter(id__in=[by_phone.id, old.id, unmatched.id]).update(pool_due_at=overdue)
    assert services.leads_convert_matched(tenant_id=world.tenant_a.id) == 0
    # Later the same people become customers (a member binding its phone, a unionid from the mini-program).
    phone_holder = customer_create(actor=hq, name="林林", phone="13900000106")
    unionid_holder = customer_create(actor=hq, name="王五", identities=[IdentityInput("unionid", "u-old")])
    # And a lead arrives for someone already a customer, after the last match: found from the lead's side.
    late = services.lead_create(actor=guide, unionid="u-late")
    late_holder = customer_create(actor=hq, name="赵六", identities=[IdentityInput("unionid", "u-late")])
    LeadSettings.objects.filter(tenant=world.tenant_a).update(matched_at=timezone.now() - dt.timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.leads_due() == 1  # brand A: leads due back, and not matched for a while
    linked = dict(Lead.objects.filter(status="converted").values_list("id", "customer_id"))
    assert linked == {by_phone.id: phone_holder.id, old.id: unionid_holder.id, late.id: late_holder.id}
    for lead in Lead.objects.filter(id__in=linked):
        assert (lead.converted_by_id, lead.converted_at is not None, lead.pool_due_at) == (None, True, None)
        assert lead.owner_guide_id == world.guides["G1"].id  # converted ones are not returned to the pool
    assert Lead.objects.get(id=unmatched.id).owner_guide_id is None  # the unmatched one is
    audits = AuditLog.objects.filter(action="lead.convert").values_list("target_id", "detail")
    assert {(t, d["by"], d["matched_on"]) for t, d in audits} == {
        (str(by_phone.id), "match", "phone"), (str(old.id), "match", "unionid"), (str(late.id), "match", "unionid"),
    }  # fmt: skip
    assert Event.objects.filter(type="lead.converted", customer_id=phone_holder.id).count() == 1
    # Idempotent: nothing more to convert, and a brand matched lately gets no job until something is due.
    assert tasks.leads_return_run.call(world.tenant_a.id) == "converted=0 returned=0"
    assert services.leads_due() == 0


def test_the_console_converts_a_lead_by_phone(world: World) -> None:
    lead = services.lead_create(actor=world.actor("guide1"), phone=world.phones["c1"], source="门店")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert client.login(username="guide1", password=PASSWORD)
    page = client.get("/leads/").content.decode()
    assert f'action="/leads/{lead.id}/convert/"' in page

    assert client.post(f"/leads/{lead.id}/convert/", {"customer_id": ""}).status_code == 302
    lead.refresh_from_db()
    assert (lead.status, lead.customer_id) == ("converted", world.customers["c1"].id)
    page = client.get("/leads/").content.decode()
    assert f'data-customer-id="{world.customers["c1"].id}"' in page
    assert f'action="/leads/{lead.id}/convert/"' not in page
    # A bad number is said, not a 500.
    other = services.lead_create(actor=world.actor("guide1"), phone="13900000108")
    answer = client.post(f"/leads/{other.id}/convert/", {"customer_id": "abc"}, follow=True)
    assert answer.status_code == 200
    assert Lead.objects.get(id=other.id).status == "new"


def test_erasing_a_customer_erases_the_leads_converted_into_it_and_their_unionid(world: World) -> None:
    """A lead linked by conversion only (its phone differs from the customer's) is the same person's too."""
    from siyu.leads.privacy import erase_customer, export_customer

    guide = world.actor("guide1")
    lead = services.lead_create(actor=guide, name="陈晨", unionid="u-erase", phone="13900000109")
    services.lead_convert(actor=guide, lead_id=lead.id, customer_id=world.customers["c1"].id)
    exported = export_customer(tenant_id=world.tenant_a.id, customer_id=world.customers["c1"].id)["leads"]
    assert [(row["unionid"], row["phone"]) for row in exported] == [("u-erase", "13900000109")]
    assert erase_customer(tenant_id=world.tenant_a.id, customer_id=world.customers["c1"].id) == {"leads": 1}
    erased = Lead.objects.filter(id=lead.id).values("name_enc", "phone_enc", "unionid_enc", "unionid_hash").get()
    assert erased == {"name_enc": "", "phone_enc": "", "unionid_enc": "", "unionid_hash": ""}
