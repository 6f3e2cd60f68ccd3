"""The OneID rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py can import them as it
imports the other contexts' rows; test_oneid_api.py runs them for every persona meanwhile).

Brand A has a merge (m1 into m2's survivor), two pending pairs in the review queue, and two more customers an HQ
admin may merge. Only HQ sees or changes any of it: the other roles of brand A get 403, brand B's HQ gets 404 for
brand A's ids and an empty queue of its own. Refused writes change nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from siyu.core.models import AuditLog
from siyu.customers import identity as oneid
from siyu.customers.models import Customer, CustomerMerge, MergeCandidate
from siyu.customers.services import customer_create
from siyu.testing import World

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


@dataclass(frozen=True)
class Fixture:
    merge: CustomerMerge
    approve: MergeCandidate
    reject: MergeCandidate
    to_merge: tuple[Customer, Customer]


def fixture(world: World) -> Fixture:
    """Built once per world (per test), kept on the world object."""
    built: Fixture | None = getattr(world, "_oneid_fixture", None)
    if built is not None:
        return built
    hq = world.actor("hq")

    def customer(name: str, phone: str, hours: int) -> Customer:
        return customer_create(
            actor=hq, name=name, city="宁波", phone=phone, source="test", created_at=T0 + dt.timedelta(hours=hours)
        )

    m1, m2 = customer("合并甲", "13500000101", 0), customer("合并乙", "13500000102", 1)
    merge = oneid.customer_merge(actor=hq, customer_ids=[m2.id, m1.id])
    # Same name, city and phone ending: two pairs in the queue.
    customer("钱多多", "13500001111", 2)
    customer("钱多多", "13600001111", 3)
    customer("孙悟", "13500002222", 4)
    customer("孙悟", "13600002222", 5)
    approve, reject = MergeCandidate.objects.filter(tenant=world.tenant_a, status="pending").order_by("id")
    to_merge = (customer("待合并", "13500000301", 6), customer("待合并二", "13500000302", 7))
    built = Fixture(merge=merge, approve=approve, reject=reject, to_merge=to_merge)
    world._oneid_fixture = built  # type: ignore[attr-defined]
    return built


def _state() -> tuple[Any, ...]:
    return (
        list(Customer.objects.order_by("id").values_list("id", "merged_into_id")),
        list(CustomerMerge.objects.order_by("id").values_list("id", "status")),
        list(MergeCandidate.objects.order_by("id").values_list("id", "status")),
        AuditLog.objects.count(),
    )


def _refused(ctx: Ctx, answer: Any, before: tuple[Any, ...], field: str) -> None:
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, field), answer.body
    else:
        assert answer.status == 403, answer.body
        assert answer.body["detail"].startswith("only HQ may")
    assert _state() == before


def check_merge_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/customer-merges")
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["count"], answer.body["items"]) == (200, 0, [])
    elif ctx.persona == "hq":
        assert answer.status == 200
        assert [m["id"] for m in answer.body["items"]] == [f.merge.id]
        assert answer.body["items"][0]["moved"]["customers.Identity.customer"] == 1
    else:
        assert answer.status == 403


def check_merge(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    a, b = f.to_merge
    before = _state()
    answer = ctx.client.post("/customer-merges", {"customer_ids": [b.id, a.id]})
    if ctx.persona == "hq":
        assert answer.status == 201, answer.body
        assert (answer.body["survivor_id"], answer.body["merged_id"], answer.body["rule"]) == (a.id, b.id, "manual")
        assert Customer.objects.get(id=b.id).merged_into_id == a.id
    else:
        _refused(ctx, answer, before, "customer_ids")


def check_merge_get(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get(f"/customer-merges/{f.merge.id}")
    if ctx.persona == "hq":
        assert answer.status == 200
        assert (answer.body["survivor_id"], answer.body["merged_id"], answer.body["status"]) == (
            f.merge.survivor_id,
            f.merge.merged_id,
            "merged",
        )
    elif ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "merge_id")
    else:
        assert answer.status == 403


def check_unmerge(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    before = _state()
    answer = ctx.client.post(f"/customer-merges/{f.merge.id}/unmerge")
    if ctx.persona == "hq":
        assert (answer.status, answer.body["status"]) == (200, "unmerged"), answer.body
        assert Customer.objects.get(id=f.merge.merged_id).merged_into_id is None
        again = ctx.client.post(f"/customer-merges/{f.merge.id}/unmerge")
        assert (again.status, again.body["field"]) == (409, "merge_id")
    else:
        _refused(ctx, answer, before, "merge_id")


def check_candidate_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/customer-merge-candidates")
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["count"]) == (200, 0)
    elif ctx.persona == "hq":
        assert answer.status == 200
        assert [c["id"] for c in answer.body["items"]] == [f.reject.id, f.approve.id]  # same score: newest first
        first = answer.body["items"][1]
        assert (first["reason"], first["score"], first["status"]) == ("name_city_phone", 70, "pending")
        assert (first["customer_a"]["name_masked"], first["customer_a"]["phone_masked"]) == ("钱**", "135****1111")
        assert (first["customer_b"]["name_masked"], first["customer_b"]["phone_masked"]) == ("钱**", "136****1111")
        assert first["customer_a"]["identity_kinds"] == ["phone"]
    else:
        assert answer.status == 403


def _decide(ctx: Ctx, candidate: MergeCandidate, action: str, status: str) -> None:
    before = _state()
    answer = ctx.client.post(f"/customer-merge-candidates/{candidate.id}/{action}")
    if ctx.persona == "hq":
        assert (answer.status, answer.body["status"]) == (200, status), answer.body
        assert (answer.body["merge_id"] is not None) == (action == "approve")
        again = ctx.client.post(f"/customer-merge-candidates/{candidate.id}/{action}")
        assert (again.status, again.body["field"]) == (409, "candidate_id")
    else:
        _refused(ctx, answer, before, "candidate_id")


def check_candidate_approve(ctx: Ctx) -> None:
    _decide(ctx, fixture(ctx.world).approve, "approve", "approved")


def check_candidate_reject(ctx: Ctx) -> None:
    _decide(ctx, fixture(ctx.world).reject, "reject", "rejected")


# operationId → (method, path as the OpenAPI document spells it, check)
ONEID_CHECKS = {
    "customer_merge_list": ("get", "/api/v1/customer-merges", check_merge_list),
    "customer_merge": ("post", "/api/v1/customer-merges", check_merge),
    "customer_merge_get": ("get", "/api/v1/customer-merges/{merge_id}", check_merge_get),
    "customer_unmerge": ("post", "/api/v1/customer-merges/{merge_id}/unmerge", check_unmerge),
    "merge_candidate_list": ("get", "/api/v1/customer-merge-candidates", check_candidate_list),
    "merge_candidate_approve": (
        "post",
        "/api/v1/customer-merge-candidates/{candidate_id}/approve",
        check_candidate_approve,
    ),
    "merge_candidate_reject": (
        "post",
        "/api/v1/customer-merge-candidates/{candidate_id}/reject",
        check_candidate_reject,
    ),
}


def oneid_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    f = fixture(world)
    method, path, _check = ONEID_CHECKS[operation_id]
    url = path.format(merge_id=f.merge.id, candidate_id=(f.reject if "reject" in operation_id else f.approve).id)
    body = {"customer_ids": [c.id for c in f.to_merge]} if operation_id == "customer_merge" else None
    return method.upper(), url, body


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((ONEID_CHECKS, oneid_request),)
