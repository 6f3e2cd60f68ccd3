"""The segment rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Every member of a brand may use segments, but counts and members are always those of the caller's own scope; only
the owner (here HQ) or HQ may change or delete a segment; brand B's HQ gets 404 for brand A's segments and 404 for
brand A's tags in a rule; a refused write leaves segments and the audit log untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.analytics.models import Segment, SegmentExport
from siyu.analytics.services import segment_create, segment_export_request
from siyu.core.models import AuditLog
from siyu.tags.models import Tag
from siyu.testing import VISIBLE, World

NAME = "护肤人群"
SKIN = {"c1", "c3"}  # brand A's customers tagged 护肤 (siyu.testing)


class Ctx(Protocol):
    world: World
    persona: str
    client: Any
    b_tag: Tag
    a_fresh_tag: Tag


def _state() -> tuple[list[tuple[Any, ...]], int]:
    rows = list(Segment.objects.order_by("id").values_list("id", "tenant_id", "name", "rule", "schedule"))
    return rows, AuditLog.objects.count()


def _segment(world: World, brand: str = "a", *, tag: Tag | None = None) -> Segment:
    """Brand A's (or B's) segment 护肤人群, made once by its HQ."""
    tenant = world.tenant_a if brand == "a" else world.tenant_b
    existing = Segment.objects.filter(tenant=tenant, name=NAME).first()
    if existing is not None:
        return existing
    actor = world.actor("hq" if brand == "a" else "outsider")
    return segment_create(actor=actor, name=NAME, rule={"op": "has_tag", "tag_id": (tag or world.tags["护肤"]).id})


def _expected(persona: str) -> set[str]:
    return SKIN & VISIBLE[persona]


def _not_found(answer: Any, before: Any) -> None:
    assert (answer.status, answer.body["field"]) == (404, "segment_id"), answer.body
    assert _state() == before


def check_list(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    b_seg = _segment(ctx.world, "b", tag=ctx.b_tag)
    answer = ctx.client.get("/segments")
    assert answer.status == 200
    if ctx.persona == "outsider":
        # Brand B's one customer carries no tag: its segment is empty.
        assert [(s["id"], s["count"]) for s in answer.body["items"]] == [(b_seg.id, 0)]
    else:
        assert [(s["id"], s["count"]) for s in answer.body["items"]] == [(a_seg.id, len(_expected(ctx.persona)))]


def check_get(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    before = _state()
    answer = ctx.client.get(f"/segments/{a_seg.id}")
    if ctx.persona == "outsider":
        _not_found(answer, before)
    else:
        assert (answer.status, answer.body["name"], answer.body["count"]) == (200, NAME, len(_expected(ctx.persona)))


def check_create(ctx: Ctx) -> None:
    before = _state()
    own = ctx.b_tag if ctx.persona == "outsider" else ctx.world.tags["护肤"]
    body = {"name": "新人群", "rule": {"op": "has_tag", "tag_id": own.id}, "schedule": "daily", "daily_at": "08:30"}
    answer = ctx.client.post("/segments", body)
    assert answer.status == 201, answer.body
    created = Segment.objects.get(id=answer.body["id"])
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert (created.tenant_id, created.owner_id) == (tenant.id, ctx.world.users[ctx.persona].pk)
    assert answer.body["count"] == (0 if ctx.persona == "outsider" else len(_expected(ctx.persona)))
    assert AuditLog.objects.count() == before[1] + 1
    # The other brand's tag is unknown, naming the node; nothing is written.
    before = _state()
    other = ctx.world.tags["护肤"] if ctx.persona == "outsider" else ctx.b_tag
    bad = {"op": "and", "rules": [{"op": "lifecycle", "stages": ["new"]}, {"op": "has_tag", "tag_id": other.id}]}
    refused = ctx.client.post("/segments", {**body, "name": "另一个", "rule": bad})
    assert (refused.status, refused.body["field"]) == (404, "rule.rules[1].tag_id")
    # A tree that does not hold together: 409 naming the node.
    refused = ctx.client.post("/segments", {**body, "name": "另一个", "rule": {"op": "and", "rules": [{"op": "x"}]}})
    assert (refused.status, refused.body["field"]) == (409, "rule.rules[0].op")
    assert _state() == before


def check_update(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    before = _state()
    answer = ctx.client.patch(f"/segments/{a_seg.id}", {"name": "护肤老客"})
    if ctx.persona == "hq":
        assert (answer.status, answer.body["name"]) == (200, "护肤老客")
    elif ctx.persona == "outsider":
        _not_found(answer, before)
    else:
        assert answer.status == 403
        assert _state() == before


def check_delete(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    before = _state()
    answer = ctx.client.delete(f"/segments/{a_seg.id}")
    if ctx.persona == "hq":
        assert answer.status == 204
        assert not Segment.objects.filter(id=a_seg.id).exists()
    elif ctx.persona == "outsider":
        _not_found(answer, before)
    else:
        assert answer.status == 403
        assert _state() == before


def check_count(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    before = _state()
    answer = ctx.client.get(f"/segments/{a_seg.id}/count")
    if ctx.persona == "outsider":
        _not_found(answer, before)
    else:
        assert (answer.status, answer.body["count"]) == (200, len(_expected(ctx.persona)))


def check_preview(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.post("/segments/preview", {"rule": {"op": "has_tag", "tag_id": ctx.world.tags["护肤"].id}})
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "rule.tag_id")
    else:
        assert (answer.status, answer.body["count"]) == (200, len(_expected(ctx.persona)))
    assert _state() == before


def check_members(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    answer = ctx.client.get(f"/segments/{a_seg.id}/members")
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "segment_id")
        return
    assert answer.status == 200
    assert ctx.world.customer_keys({m["id"] for m in answer.body["items"]}) == _expected(ctx.persona)
    assert answer.body["count"] == len(_expected(ctx.persona))
    for member in answer.body["items"]:
        assert "*" in member["phone_masked"]


def _export(world: World) -> SegmentExport:
    """An export of brand A's segment asked for by brand A's HQ, made once."""
    existing = SegmentExport.objects.filter(tenant=world.tenant_a).first()
    if existing is not None:
        return existing
    return segment_export_request(actor=world.actor("hq"), segment_id=_segment(world).id)


def _export_state() -> tuple[Any, ...]:
    return (*_state(), list(SegmentExport.objects.order_by("id").values_list("id", "requested_by_id", "reveal")))


def check_export_create(ctx: Ctx) -> None:
    a_seg = _segment(ctx.world)
    before = _export_state()
    answer = ctx.client.post(f"/segments/{a_seg.id}/exports", {})
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "segment_id")
        assert _export_state() == before
        return
    assert answer.status == 201, answer.body
    export = SegmentExport.objects.get(id=answer.body["id"])
    assert (export.tenant_id, export.requested_by_id, export.reveal) == (
        ctx.world.tenant_a.id,
        ctx.world.users[ctx.persona].pk,
        False,
    )
    assert AuditLog.objects.filter(action="segment_export.request", target_id=str(export.id)).count() == 1
    # Unmasked personal data: HQ only; refused with nothing written.
    before = _export_state()
    answer = ctx.client.post(f"/segments/{a_seg.id}/exports", {"reveal": True})
    if ctx.persona == "hq":
        assert (answer.status, answer.body["reveal"]) == (201, True)
    else:
        assert (answer.status, answer.body["field"]) == (403, "reveal")
        assert _export_state() == before


def check_export_get(ctx: Ctx) -> None:
    export = _export(ctx.world)
    answer = ctx.client.get(f"/segment-exports/{export.id}")
    if ctx.persona == "hq":
        assert (answer.status, answer.body["id"], answer.body["segment_id"]) == (200, export.id, export.segment_id)
    else:
        # Someone else's export (or another brand's): not found.
        assert (answer.status, answer.body["field"]) == (404, "export_id")


# operationId → (method, path as the OpenAPI document spells it, check)
SEGMENT_CHECKS = {
    "segment_list": ("get", "/api/v1/segments", check_list),
    "segment_create": ("post", "/api/v1/segments", check_create),
    "segment_preview": ("post", "/api/v1/segments/preview", check_preview),
    "segment_get": ("get", "/api/v1/segments/{segment_id}", check_get),
    "segment_update": ("patch", "/api/v1/segments/{segment_id}", check_update),
    "segment_delete": ("delete", "/api/v1/segments/{segment_id}", check_delete),
    "segment_count": ("get", "/api/v1/segments/{segment_id}/count", check_count),
    "segment_members": ("get", "/api/v1/segments/{segment_id}/members", check_members),
    "segment_export_create": ("post", "/api/v1/segments/{segment_id}/exports", check_export_create),
    "segment_export_get": ("get", "/api/v1/segment-exports/{export_id}", check_export_get),
}


def segment_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = SEGMENT_CHECKS[operation_id]
    url = path.format(segment_id=_segment(world).id) if "{segment_id}" in path else path
    if "{export_id}" in path:
        url = path.format(export_id=_export(world).id)
    rule = {"op": "has_tag", "tag_id": world.tags["彩妆"].id}
    bodies: dict[str, Any] = {
        "segment_create": {"name": "彩妆人群", "rule": rule},
        "segment_preview": {"rule": rule},
        "segment_update": {"name": "护肤老客"},
        "segment_export_create": {},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((SEGMENT_CHECKS, segment_request),)
