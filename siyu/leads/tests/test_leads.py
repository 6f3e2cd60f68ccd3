"""Leads (线索): dedupe on phone and unionid, assignment audited, the public pool (公海) that leads nobody followed
up in time return to through the worker's sweep, and guides claiming from it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers.services import customer_create
from siyu.leads import selectors, services
from siyu.leads.models import Lead
from siyu.testing import IMMEDIATE_TASKS, World


def test_one_lead_per_phone_and_per_unionid_in_a_brand(world: World) -> None:
    hq = world.actor("hq")
    lead = services.lead_create(actor=hq, name="陈晨", phone="13900000001", unionid="u-1", source="展会")
    with pytest.raises(Conflict) as caught:
        services.lead_create(actor=hq, phone="+86 139-0000-0001")
    assert caught.value.field == "phone"
    with pytest.raises(Conflict) as caught:
        services.lead_create(actor=hq, unionid="u-1")
    assert caught.value.field == "unionid"
    with pytest.raises(ValidationFailed) as caught:
        services.lead_create(actor=hq, name="无联系方式")
    assert caught.value.field == "phone"
    # Another brand has its own leads: the same phone is a new lead there.
    services.lead_create(actor=world.actor("outsider"), phone="13900000001")
    assert Lead.objects.filter(tenant=world.tenant_a).count() == 1
    card = selectors.lead_card(lead)
    assert (card.name_masked, card.phone_masked, card.in_pool) == ("陈*", "139****0001", True)
    assert "13900000001" not in str(Lead.objects.filter(id=lead.id).values().get())


def test_assignment_is_scoped_and_audited(world: World) -> None:
    lead = services.lead_create(actor=world.actor("hq"), phone="13900000002")
    services.lead_assign(actor=world.actor("store1"), lead_id=lead.id, guide_id=world.guides["G1"].id)
    with pytest.raises(NotFound):  # G2 works in another store
        services.lead_assign(actor=world.actor("store1"), lead_id=lead.id, guide_id=world.guides["G2"].id)
    with pytest.raises(PermissionDenied):
        services.lead_assign(actor=world.actor("guide1"), lead_id=lead.id, guide_id=world.guides["G1"].id)
    services.lead_assign(actor=world.actor("region1"), lead_id=lead.id, guide_id=world.guides["G2"].id)
    lead.refresh_from_db()
    assert lead.owner_guide_id == world.guides["G2"].id
    # Now G2's: out of the store manager's and guide1's sight.
    with pytest.raises(NotFound):
        selectors.access_lead(actor=world.actor("store1"), lead_id=lead.id)
    audits = AuditLog.objects.filter(action="lead.assign").order_by("id")
    assert [(a.detail["from_guide_id"], a.detail["to_guide_id"]) for a in audits] == [
        (None, world.guides["G1"].id),
        (world.guides["G1"].id, world.guides["G2"].id),
    ]


def test_leads_not_followed_up_return_to_the_pool_and_a_guide_claims_them(world: World) -> None:
    hq = world.actor("hq")
    services.lead_settings_update(actor=hq, pool_after_days=3)
    guide = world.actor("guide1")
    mine = services.lead_create(actor=guide, phone="13900000003")  # a guide's own lead
    followed = services.lead_create(actor=guide, phone="13900000004")
    assert mine.owner_guide_id == world.guides["G1"].id
    assert mine.pool_due_at is not None
    assert mine.pool_due_at - mine.created_at == dt.timedelta(days=3)

    later = timezone.now() + dt.timedelta(days=2)
    Lead.objects.filter(id=followed.id).update(pool_due_at=later + dt.timedelta(days=3))  # followed up on day 2
    assert services.leads_return_to_pool(tenant_id=world.tenant_a.id, now=later) == 0
    day4 = timezone.now() + dt.timedelta(days=4)
    assert services.leads_return_to_pool(tenant_id=world.tenant_a.id, now=day4) == 1
    assert services.leads_return_to_pool(tenant_id=world.tenant_a.id, now=day4) == 0  # idempotent
    mine.refresh_from_db()
    assert (mine.owner_guide_id, mine.pool_due_at) == (None, None)
    assert AuditLog.objects.get(action="lead.returned").detail == {"from_guide_id": world.guides["G1"].id}

    # In the pool every persona of the brand sees it; a guide claims it, once.
    assert mine.id in set(selectors.lead_list(actor=world.actor("franchisee1"), pool=True).values_list("id", flat=True))
    claimed = services.lead_claim(actor=guide, lead_id=mine.id)
    assert claimed.owner_guide_id == world.guides["G1"].id
    with pytest.raises(Conflict):
        services.lead_claim(actor=world.actor("hq"), lead_id=mine.id, guide_id=world.guides["G2"].id)
    # Converted means linked to a customer: with nobody of that phone yet, a clear 409 and nothing changed.
    with pytest.raises(Conflict) as caught:
        services.lead_follow_up(actor=guide, lead_id=mine.id, status="converted")
    assert caught.value.field == "customer_id"
    assert Lead.objects.get(id=mine.id).status != "converted"
    customer = customer_create(actor=hq, name="新客", phone="13900000003", city="杭州", source="test")
    # Converted: linked, closed, never returns.
    closed = services.lead_follow_up(actor=guide, lead_id=mine.id, status="converted")
    assert (closed.status, closed.pool_due_at, closed.customer_id) == ("converted", None, customer.id)


def test_the_sweep_enqueues_a_job_per_brand_with_due_leads(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    lead = services.lead_create(actor=world.actor("guide1"), phone="13900000005")
    Lead.objects.filter(id=lead.id).update(pool_due_at=timezone.now() - dt.timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.leads_due() == 1
    lead.refresh_from_db()
    assert lead.owner_guide_id is None
    assert services.leads_due() == 0
