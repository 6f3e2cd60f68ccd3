"""The console's leads page: the list in scope and the public pool (公海), claiming, following up, settings."""

from __future__ import annotations

from django.test import Client

from siyu.core.scopes import Actor
from siyu.leads.models import Lead, LeadSettings
from siyu.leads.services import lead_assign, lead_create
from siyu.testing import PASSWORD, World


def _login(persona: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert client.login(username=persona, password=PASSWORD)
    return client


def test_guide_claims_from_the_pool_and_follows_up(world: World) -> None:
    system = Actor.system(world.tenant_a.id)
    pooled = lead_create(actor=system, name="陈晨", phone="13900000011", source="展会")
    others = lead_create(actor=system, phone="13900000012")
    lead_assign(actor=system, lead_id=others.id, guide_id=world.guides["G2"].id)
    guide = _login("guide1")

    page = guide.get("/leads/?pool=1").content.decode()
    assert "公海" in page
    assert f'data-lead-id="{pooled.id}" data-pool' in page
    assert f'data-lead-id="{others.id}"' not in page  # G2's lead
    assert "陈*" in page
    assert "13900000011" not in page

    assert guide.post(f"/leads/{pooled.id}/claim/").status_code == 302
    pooled.refresh_from_db()
    assert pooled.owner_guide_id == world.guides["G1"].id
    assert guide.post(f"/leads/{pooled.id}/follow-up/").status_code == 302
    pooled.refresh_from_db()
    assert (pooled.status, pooled.last_followup_at is not None) == ("following", True)
    assert guide.post(f"/leads/{others.id}/follow-up/").status_code == 404


def test_hq_sets_the_pool_period_and_others_may_not(world: World) -> None:
    assert _login("hq").post("/leads/settings/", {"pool_after_days": "5"}).status_code == 302
    assert LeadSettings.objects.get(tenant=world.tenant_a).pool_after_days == 5
    assert "5 天" in _login("hq").get("/leads/").content.decode()
    assert _login("store1").post("/leads/settings/", {"pool_after_days": "9"}).status_code == 403
    assert LeadSettings.objects.get(tenant=world.tenant_a).pool_after_days == 5
    assert Lead.objects.count() == 0


def test_a_store_manager_adds_a_lead_and_assigns_it_within_the_store(world: World) -> None:
    manager = _login("store1")
    assert manager.post("/leads/new/", {"name": "林一", "phone": "13900000021", "source": "门店到访",
                                         "intent_level": "3"}).status_code == 302  # fmt: skip
    lead = Lead.objects.get(tenant=world.tenant_a)
    assert (lead.owner_guide_id, lead.source, lead.intent_level) == (None, "门店到访", 3)
    page = manager.get("/leads/").content.decode()
    assert "线索已添加。" in page
    # The manager can assign to the store's guides and no one else's.
    assert f'<option value="{world.guides["G1"].id}"' in page
    assert f'<option value="{world.guides["G3"].id}"' not in page
    assert manager.post(f"/leads/{lead.id}/assign/", {"guide_id": world.guides["G3"].id}).status_code == 302
    lead.refresh_from_db()
    assert lead.owner_guide_id is None
    assert manager.post(f"/leads/{lead.id}/assign/", {"guide_id": world.guides["G1"].id}).status_code == 302
    lead.refresh_from_db()
    assert lead.owner_guide_id == world.guides["G1"].id
    # The same phone again is refused with a message, and nothing is added; so is a bad intent level.
    again = manager.post("/leads/new/", {"phone": "139 0000 0021"}, follow=True).content.decode()
    assert "a lead with this phone already exists" in again
    manager.post("/leads/new/", {"phone": "13900000022", "intent_level": "9"})
    assert Lead.objects.count() == 1
    # A guide has no assign control: guides claim from the pool.
    assert "data-assign" not in _login("guide1").get("/leads/").content.decode()
