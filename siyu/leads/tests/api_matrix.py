"""The leads rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Each persona sees the leads of the guides in its scope plus its brand's public pool; brand B's HQ sees only brand
B's. Managers and HQ assign within their scope, only guides claim, and a refused write leaves the leads and the
audit log untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.leads.models import Lead
from siyu.leads.services import lead_assign, lead_create
from siyu.testing import World

# Which of the fixed leads each persona sees: L1 is G1's, L2 is G2's, L3 is in brand A's pool, LB in brand B's.
SEES = {
    "hq": {"L1", "L2", "L3"},
    "region1": {"L1", "L2", "L3"},
    "store1": {"L1", "L3"},
    "guide1": {"L1", "L3"},
    "franchisee1": {"L1", "L3"},
    "outsider": {"LB"},
}
MANAGERS = {"hq", "region1", "store1", "franchisee1"}


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


def _state() -> tuple[list[tuple[Any, ...]], int]:
    rows = list(Lead.objects.order_by("id").values_list("id", "owner_guide_id", "status", "pool_due_at"))
    return rows, AuditLog.objects.count()


def _leads(world: World) -> dict[str, Lead]:
    """The four fixed leads, made once per world."""
    found = {lead.source: lead for lead in Lead.objects.filter(source__in=["L1", "L2", "L3", "LB"])}
    if len(found) == 4:
        return found
    a = Actor.system(world.tenant_a.id)
    for key, phone, guide in (("L1", "13911110001", "G1"), ("L2", "13911110002", "G2"), ("L3", "13911110003", None)):
        lead = lead_create(actor=a, name=f"线索{key}", phone=phone, source=key)
        if guide:
            lead_assign(actor=a, lead_id=lead.id, guide_id=world.guides[guide].id)
    lead_create(actor=Actor.system(world.tenant_b.id), name="线索B", phone="13911110001", source="LB")
    return {lead.source: lead for lead in Lead.objects.filter(source__in=["L1", "L2", "L3", "LB"])}


def _not_found(answer: Any, before: Any) -> None:
    assert (answer.status, answer.body["field"]) == (404, "lead_id"), answer.body
    assert _state() == before


def check_list(ctx: Ctx) -> None:
    leads = _leads(ctx.world)
    answer = ctx.client.get("/leads")
    assert answer.status == 200
    by_id = {lead.id: key for key, lead in leads.items()}
    assert {by_id[row["id"]] for row in answer.body["items"]} == SEES[ctx.persona]
    pool = ctx.client.get("/leads", pool="true")
    assert {by_id[row["id"]] for row in pool.body["items"]} == {"LB" if ctx.persona == "outsider" else "L3"}


def check_create(ctx: Ctx) -> None:
    answer = ctx.client.post("/leads", {"name": "新线索", "phone": "13922220000", "source": "展会"})
    assert answer.status == 201, answer.body
    lead = Lead.objects.get(id=answer.body["id"])
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert lead.tenant_id == tenant.id
    expected_owner = ctx.world.guides["G1"].id if ctx.persona == "guide1" else None
    assert (answer.body["owner_guide_id"], answer.body["phone_masked"]) == (expected_owner, "139****0000")
    before = _state()
    again = ctx.client.post("/leads", {"phone": "+86 139-2222-0000"})
    assert (again.status, again.body["field"]) == (409, "phone")
    assert _state() == before


def check_assign(ctx: Ctx) -> None:
    leads = _leads(ctx.world)
    g1 = ctx.world.guides["G1"].id
    before = _state()
    answer = ctx.client.post(f"/leads/{leads['L3'].id}/assign", {"guide_id": g1})
    if ctx.persona == "guide1":
        assert (answer.status, answer.body["field"]) == (403, None)
        assert _state() == before
    elif ctx.persona == "outsider":
        _not_found(answer, before)
    else:
        assert (answer.status, answer.body["owner_guide_id"], answer.body["in_pool"]) == (200, g1, False)
    if ctx.persona in {"store1", "franchisee1"}:
        before = _state()  # G2's lead is outside their stores, and so is G2
        _not_found(ctx.client.post(f"/leads/{leads['L2'].id}/assign", {"guide_id": g1}), before)
        refused = ctx.client.post(f"/leads/{leads['L1'].id}/assign", {"guide_id": ctx.world.guides["G2"].id})
        assert (refused.status, refused.body["field"]) == (404, "guide_id")
        assert _state() == before


def check_claim(ctx: Ctx) -> None:
    leads = _leads(ctx.world)
    g1 = ctx.world.guides["G1"].id
    before = _state()
    body = {"guide_id": g1}
    answer = ctx.client.post(f"/leads/{leads['L3'].id}/claim", body)
    if ctx.persona == "outsider":
        # Brand A's guide is not brand B's, and neither is the lead.
        assert (answer.status, answer.body["field"]) == (404, "guide_id")
        assert _state() == before
        return
    assert (answer.status, answer.body["owner_guide_id"]) == (200, g1), answer.body
    before = _state()
    again = ctx.client.post(f"/leads/{leads['L3'].id}/claim", body)
    assert (again.status, again.body["field"]) == (409, "lead_id")
    other = ctx.client.post(f"/leads/{leads['L2'].id}/claim", body)  # G2's lead: owned, or not even visible
    assert (other.status, other.body["field"]) == ((409 if "L2" in SEES[ctx.persona] else 404), "lead_id")
    assert _state() == before
    if ctx.persona == "guide1":
        refused = ctx.client.post(f"/leads/{leads['L3'].id}/claim", {"guide_id": ctx.world.guides["G2"].id})
        assert (refused.status, refused.body["detail"]) == (403, "guides claim leads for themselves only")
        assert _state() == before


def check_follow_up(ctx: Ctx) -> None:
    leads = _leads(ctx.world)
    before = _state()
    answer = ctx.client.post(f"/leads/{leads['L1'].id}/follow-up", {"status": "following"})
    if ctx.persona == "outsider":
        _not_found(answer, before)
        return
    assert (answer.status, answer.body["status"]) == (200, "following")
    assert answer.body["last_followup_at"] is not None


def check_convert(ctx: Ctx) -> None:
    """L1 (G1's, phone 13911110001) into c1 (G1's customer): no customer has L1's phone, so naming none is a 409;
    naming c1 converts it, audited, once."""
    leads = _leads(ctx.world)
    c1 = ctx.world.customers["c1"].id
    before = _state()
    if ctx.persona == "outsider":
        _not_found(ctx.client.post(f"/leads/{leads['L1'].id}/convert", {"customer_id": c1}), before)
        return
    unmatched = ctx.client.post(f"/leads/{leads['L1'].id}/convert", {})
    assert (unmatched.status, unmatched.body["field"]) == (409, "customer_id"), unmatched.body
    assert _state() == before
    answer = ctx.client.post(f"/leads/{leads['L1'].id}/convert", {"customer_id": c1})
    assert (answer.status, answer.body["status"], answer.body["customer_id"]) == (200, "converted", c1), answer.body
    assert (answer.body["pool_due_at"], answer.body["converted_at"] is not None) == (None, True)
    assert AuditLog.objects.filter(action="lead.convert", target_id=str(leads["L1"].id)).count() == 1
    before = _state()
    again = ctx.client.post(f"/leads/{leads['L1'].id}/convert", {"customer_id": c1})
    assert (again.status, again.body["field"]) == (409, "lead_id")
    assert _state() == before


# operationId → (method, path as the OpenAPI document spells it, check)
LEAD_CHECKS = {
    "lead_list": ("get", "/api/v1/leads", check_list),
    "lead_create": ("post", "/api/v1/leads", check_create),
    "lead_assign": ("post", "/api/v1/leads/{lead_id}/assign", check_assign),
    "lead_claim": ("post", "/api/v1/leads/{lead_id}/claim", check_claim),
    "lead_follow_up": ("post", "/api/v1/leads/{lead_id}/follow-up", check_follow_up),
    "lead_convert": ("post", "/api/v1/leads/{lead_id}/convert", check_convert),
}


def lead_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = LEAD_CHECKS[operation_id]
    leads = _leads(world)
    # Sorted, the good-token test assigns before it claims: it reassigns L1, so L3 is still in the pool to claim.
    lead = leads["L3"] if operation_id == "lead_claim" else leads["L1"]
    url = path.format(lead_id=lead.id) if "{lead_id}" in path else path
    bodies: dict[str, Any] = {
        "lead_create": {"phone": "13933330000"},
        "lead_assign": {"guide_id": world.guides["G2"].id},
        "lead_claim": {"guide_id": world.guides["G2"].id},
        "lead_follow_up": {"status": "following"},
        "lead_convert": {"customer_id": world.customers["c1"].id},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((LEAD_CHECKS, lead_request),)
