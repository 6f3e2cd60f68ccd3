"""The privacy rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Consents follow the customer's scope: a persona reads and records them for the customers it sees and gets 404 for
the others. Exports, erasures and the request log are HQ's: every other role gets 403, brand B's HQ gets 404 for
brand A's customers, and a refused request leaves consents, requests, customers and the audit log untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers.models import Customer
from siyu.privacy.models import Consent, ErasedCustomer, PrivacyRequest
from siyu.privacy.services import privacy_export
from siyu.testing import VISIBLE, World

HQ = {"hq", "outsider"}
REFUSED = {"detail": "only HQ handles customers' privacy requests", "field": None}
CONSENT = {"purpose": "marketing", "granted": True, "channel": "sidebar", "text_version": "2026-01"}


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


def _state() -> tuple[Any, ...]:
    return (
        list(Consent.objects.order_by("id").values_list("id", "customer_id", "granted")),
        list(PrivacyRequest.objects.order_by("id").values_list("id", "kind", "customer_id")),
        list(ErasedCustomer.objects.order_by("id").values_list("customer_id", flat=True)),
        list(Customer.objects.order_by("id").values_list("id", "name_enc", "phone_hash")),
        AuditLog.objects.count(),
    )


def _sees(ctx: Ctx, key: str) -> bool:
    return key in VISIBLE[ctx.persona] or (key == "b1" and ctx.persona == "outsider")


def _own(ctx: Ctx) -> Customer:
    return ctx.world.customers["b1" if ctx.persona == "outsider" else "c1"]


def _not_found(answer: Any) -> None:
    assert (answer.status, answer.body["field"]) == (404, "customer_id"), answer.body


def _refused(answer: Any, before: Any) -> None:
    assert (answer.status, answer.body) == (403, REFUSED)
    assert _state() == before


def check_consent_list(ctx: Ctx) -> None:
    for key in ("c1", "c2", "b1"):
        before = _state()
        answer = ctx.client.get(f"/customers/{ctx.world.customers[key].id}/consents")
        if _sees(ctx, key):
            assert answer.status == 200, answer.body
            first = answer.body["current"][0]
            assert (first["purpose"], first["granted"]) == ("marketing", None)
            assert answer.body["history"] == []
        else:
            _not_found(answer)
        assert _state() == before


def check_consent_record(ctx: Ctx) -> None:
    for key in ("c1", "c2", "b1"):
        customer = ctx.world.customers[key]
        before = _state()
        answer = ctx.client.post(f"/customers/{customer.id}/consents", CONSENT)
        if _sees(ctx, key):
            assert (answer.status, answer.body["purpose"], answer.body["granted"]) == (201, "marketing", True)
            assert Consent.objects.get(id=answer.body["id"]).customer_id == customer.id
        else:
            _not_found(answer)
            assert _state() == before


def check_export(ctx: Ctx) -> None:
    own = _own(ctx)
    before = _state()
    answer = ctx.client.post(f"/customers/{own.id}/privacy-export", {"reason": "客户申请"})
    if ctx.persona not in HQ:
        _refused(answer, before)
        return
    assert answer.status == 200, answer.body
    name = ctx.world.names["b1" if ctx.persona == "outsider" else "c1"]
    assert (answer.body["document"]["profile"]["name"], answer.body["request"]["kind"]) == (name, "export")
    if ctx.persona == "outsider":
        before = _state()
        _not_found(ctx.client.post(f"/customers/{ctx.world.customers['c1'].id}/privacy-export", {"reason": "x"}))
        assert _state() == before


def check_erase(ctx: Ctx) -> None:
    own = _own(ctx)
    before = _state()
    answer = ctx.client.post(f"/customers/{own.id}/erasure", {"reason": "客户要求删除"})
    if ctx.persona not in HQ:
        _refused(answer, before)
        return
    assert (answer.status, answer.body["customer_ids"]) == (200, [own.id]), answer.body
    assert Customer.objects.get(id=own.id).phone_hash == ""
    before = _state()
    again = ctx.client.post(f"/customers/{own.id}/erasure", {"reason": "again"})
    assert (again.status, again.body["field"]) == (409, "customer_id")
    assert _state() == before
    if ctx.persona == "outsider":
        _not_found(ctx.client.post(f"/customers/{ctx.world.customers['c1'].id}/erasure", {"reason": "x"}))
        assert _state() == before


def check_erasure_status(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.get(f"/customers/{_own(ctx).id}/erasure")
    if ctx.persona not in HQ:
        _refused(answer, before)
        return
    assert (answer.status, answer.body["erased"], answer.body["request"]) == (200, False, None)
    if ctx.persona == "outsider":
        _not_found(ctx.client.get(f"/customers/{ctx.world.customers['c1'].id}/erasure"))


def check_request_list(ctx: Ctx) -> None:
    w = ctx.world
    a = privacy_export(actor=Actor.system(w.tenant_a.id), customer_id=w.customers["c1"].id, reason="A")[0]
    b = privacy_export(actor=Actor.system(w.tenant_b.id), customer_id=w.customers["b1"].id, reason="B")[0]
    before = _state()
    answer = ctx.client.get("/privacy/requests")
    if ctx.persona not in HQ:
        _refused(answer, before)
        return
    own = b if ctx.persona == "outsider" else a
    assert answer.status == 200
    assert [(r["id"], r["kind"], r["reason"]) for r in answer.body["items"]] == [(own.id, "export", own.reason)]


# operationId → (method, path as the OpenAPI document spells it, check)
PRIVACY_CHECKS = {
    "consent_list": ("get", "/api/v1/customers/{customer_id}/consents", check_consent_list),
    "consent_record": ("post", "/api/v1/customers/{customer_id}/consents", check_consent_record),
    "privacy_export": ("post", "/api/v1/customers/{customer_id}/privacy-export", check_export),
    "privacy_erase": ("post", "/api/v1/customers/{customer_id}/erasure", check_erase),
    "privacy_erasure_status": ("get", "/api/v1/customers/{customer_id}/erasure", check_erasure_status),
    "privacy_request_list": ("get", "/api/v1/privacy/requests", check_request_list),
}


def privacy_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = PRIVACY_CHECKS[operation_id]
    url = path.format(customer_id=world.customers["c1"].id) if "{customer_id}" in path else path
    bodies: dict[str, Any] = {
        "consent_record": CONSENT,
        "privacy_export": {"reason": "客户申请"},
        "privacy_erase": {"reason": "客户要求删除"},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((PRIVACY_CHECKS, privacy_request),)
