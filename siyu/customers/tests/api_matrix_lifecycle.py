"""The lifecycle and loss-alert rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py).

Stage counts, moves by hand and lost customers follow each persona's data scope (siyu.testing.VISIBLE): a customer
out of scope, or of brand B, is 404 naming `customer_id` and nothing changes. The configuration and "run now" are
HQ's: every other role gets 403 and the configuration and audit log stay as they were.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.core.models import AuditLog
from siyu.customers.models import Customer, LifecycleConfig, LossAlert
from siyu.customers.services import follow_relation_delete
from siyu.testing import VISIBLE, World

HQ = {"hq", "outsider"}


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


def _state() -> tuple[Any, ...]:
    return (
        list(Customer.objects.order_by("id").values_list("id", "lifecycle_stage", "stage_held_until")),
        list(LifecycleConfig.objects.order_by("id").values_list("tenant_id", "hold_days", "stages")),
        AuditLog.objects.count(),
    )


def _refused(ctx: Ctx, answer: Any, before: Any) -> None:
    assert (answer.status, answer.body) == (403, {"detail": "only HQ configures the lifecycle", "field": None})
    assert _state() == before


def check_stage_list(ctx: Ctx) -> None:
    answer = ctx.client.get("/lifecycle/stages")
    assert answer.status == 200
    counts = {row["stage"]: row["count"] for row in answer.body}
    expected = 1 if ctx.persona == "outsider" else len(VISIBLE[ctx.persona])
    assert counts == {"new": expected, "engaged": 0, "first_purchase": 0, "repeat": 0, "dormant": 0, "lost": 0}


def check_config_get(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.get("/lifecycle/config")
    if ctx.persona not in HQ:
        _refused(ctx, answer, before)
        return
    assert (answer.status, answer.body["hold_days"], len(answer.body["stages"])) == (200, 30, 6)


def check_config_update(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.patch("/lifecycle/config", {"hold_days": 7, "engaged_days": 14})
    if ctx.persona not in HQ:
        _refused(ctx, answer, before)
        return
    assert (answer.status, answer.body["hold_days"], answer.body["engaged_days"]) == (200, 7, 14)
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert LifecycleConfig.objects.get().tenant_id == tenant.id
    before = _state()
    bad = ctx.client.patch("/lifecycle/config", {"dormant_days": 500, "lost_days": 400})
    assert (bad.status, bad.body["field"]) == (409, "dormant_days")
    assert _state() == before


def check_run(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.post("/lifecycle/run", {})
    if ctx.persona not in HQ:
        _refused(ctx, answer, before)
        return
    assert (answer.status, answer.body) == (202, {"queued": True})
    assert AuditLog.objects.filter(action="lifecycle.run").count() == 1


def check_stage_move(ctx: Ctx) -> None:
    for key in ("c1", "c2", "c3", "c4", "c5", "b1"):
        customer = ctx.world.customers[key]
        before = _state()
        answer = ctx.client.post(f"/customers/{customer.id}/stage", {"stage": "engaged"})
        visible = key in VISIBLE[ctx.persona] or (key == "b1" and ctx.persona == "outsider")
        if visible:
            assert (answer.status, answer.body["lifecycle_stage"]) == (200, "engaged"), (ctx.persona, key)
            assert Customer.objects.get(id=customer.id).lifecycle_stage == "engaged"
        else:
            assert (answer.status, answer.body["field"]) == (404, "customer_id"), (ctx.persona, key)
            assert _state() == before


def check_loss_list(ctx: Ctx) -> None:
    w = ctx.world
    for key, guide in (("c1", "G1"), ("c2", "G2"), ("c3", "G3")):
        follow_relation_delete(actor=w.actor("hq"), customer_id=w.customers[key].id, guide_id=w.guides[guide].id,
                               by_customer=True)  # fmt: skip
    answer = ctx.client.get("/loss-alerts")
    assert answer.status == 200
    by_id = {c.id: k for k, c in w.customers.items()}
    got = {by_id[row["customer_id"]] for row in answer.body["items"]}
    expected = {"c1", "c2", "c3"} & VISIBLE[ctx.persona]
    assert (got, answer.body["count"]) == (expected, len(expected))
    assert LossAlert.objects.count() == 3


# operationId → (method, path as the OpenAPI document spells it, check)
LIFECYCLE_CHECKS = {
    "lifecycle_stage_list": ("get", "/api/v1/lifecycle/stages", check_stage_list),
    "lifecycle_config_get": ("get", "/api/v1/lifecycle/config", check_config_get),
    "lifecycle_config_update": ("patch", "/api/v1/lifecycle/config", check_config_update),
    "lifecycle_run": ("post", "/api/v1/lifecycle/run", check_run),
    "customer_stage_move": ("post", "/api/v1/customers/{customer_id}/stage", check_stage_move),
    "loss_alert_list": ("get", "/api/v1/loss-alerts", check_loss_list),
}


def lifecycle_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = LIFECYCLE_CHECKS[operation_id]
    url = path.format(customer_id=world.customers["c1"].id) if "{customer_id}" in path else path
    bodies: dict[str, Any] = {
        "lifecycle_config_update": {"hold_days": 7},
        "lifecycle_run": {},
        "customer_stage_move": {"stage": "engaged"},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((LIFECYCLE_CHECKS, lifecycle_request),)
