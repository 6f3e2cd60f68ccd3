"""The tag catalogue's update/delete and the automatic tagging rules' rows of the API's authorisation matrix
(siyu/api/tests/test_authorization.py imports them).

Only HQ changes the catalogue and manages rules: every other role gets 403 with nothing written; brand B's HQ gets
404 for brand A's groups, tags and rules (naming the path parameter) and changes nothing of brand A.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.analytics.models import Event
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagRule
from siyu.tags.rules import tag_rule_create
from siyu.tags.services import tag_group_create
from siyu.testing import World

HQ = {"hq", "outsider"}
CATALOGUE_REFUSAL = {"detail": "only HQ can change the brand's tag catalogue", "field": None}
RULES_REFUSAL = {"detail": "only HQ manages tagging rules", "field": None}
RULE_NAME = "买过精华"


class Ctx(Protocol):
    world: World
    persona: str
    client: Any
    b_group: TagGroup
    b_tag: Tag


def _state() -> tuple[Any, ...]:
    return (
        list(TagGroup.objects.order_by("id").values_list("id", "name", "order")),
        list(Tag.objects.order_by("id").values_list("id", "name", "order", "group_id")),
        list(TagRule.objects.order_by("id").values_list("id", "name", "params", "enabled")),
        CustomerTag.objects.count(),
        Event.objects.count(),
        AuditLog.objects.count(),
    )


def _refused(answer: Any, before: Any, body: dict[str, Any]) -> None:
    assert (answer.status, answer.body) == (403, body)
    assert _state() == before


def _target(ctx: Ctx, kind: str) -> tuple[int, bool]:
    """Brand A's group or tag (the one every persona of brand A sees), and whether the persona may change it."""
    obj = ctx.world.tags["护肤"].group if kind == "group" else ctx.world.tags["护肤"]
    return obj.id, ctx.persona == "hq"


def _not_found(answer: Any, field: str, before: Any) -> None:
    assert (answer.status, answer.body["field"]) == (404, field)
    assert _state() == before


def check_group_update(ctx: Ctx) -> None:
    group_id, allowed = _target(ctx, "group")
    before = _state()
    answer = ctx.client.patch(f"/tag-groups/{group_id}", {"name": "兴趣爱好", "order": 5})
    if allowed:
        assert (answer.status, answer.body["name"], answer.body["order"]) == (200, "兴趣爱好", 5)
        assert TagGroup.objects.get(id=group_id).name == "兴趣爱好"
    elif ctx.persona == "outsider":
        _not_found(answer, "group_id", before)
        own = ctx.client.patch(f"/tag-groups/{ctx.b_group.id}", {"name": "会员体系"})
        assert (own.status, own.body["name"]) == (200, "会员体系")
    else:
        _refused(answer, before, CATALOGUE_REFUSAL)


def check_group_delete(ctx: Ctx) -> None:
    group_id, allowed = _target(ctx, "group")
    before = _state()
    answer = ctx.client.delete(f"/tag-groups/{group_id}")
    if allowed:
        # The world tags c1 and c3 护肤 and c2 彩妆: all three come off with the group.
        assert (answer.status, answer.body) == (200, {"customer_tags": 3})
        assert not TagGroup.objects.filter(id=group_id).exists()
    elif ctx.persona == "outsider":
        _not_found(answer, "group_id", before)
    else:
        _refused(answer, before, CATALOGUE_REFUSAL)


def check_tag_update(ctx: Ctx) -> None:
    tag_id, allowed = _target(ctx, "tag")
    before = _state()
    answer = ctx.client.patch(f"/tags/{tag_id}", {"name": "护肤品"})
    if allowed:
        assert (answer.status, answer.body["name"]) == (200, "护肤品")
        # A name another tag of the group has is a conflict naming the field.
        clash = ctx.client.patch(f"/tags/{tag_id}", {"name": "彩妆"})
        assert (clash.status, clash.body["field"]) == (409, "name")
    elif ctx.persona == "outsider":
        _not_found(answer, "tag_id", before)
    else:
        _refused(answer, before, CATALOGUE_REFUSAL)


def check_tag_delete(ctx: Ctx) -> None:
    tag_id, allowed = _target(ctx, "tag")
    before = _state()
    answer = ctx.client.delete(f"/tags/{tag_id}")
    if allowed:
        assert (answer.status, answer.body) == (200, {"customer_tags": 2})
        assert not CustomerTag.objects.filter(tag_id=tag_id).exists()
    elif ctx.persona == "outsider":
        _not_found(answer, "tag_id", before)
    else:
        _refused(answer, before, CATALOGUE_REFUSAL)


def _rule(world: World, brand: str = "a", *, tag: Tag | None = None) -> TagRule:
    """Brand A's (or B's) purchase rule, made once."""
    tenant = world.tenant_a if brand == "a" else world.tenant_b
    existing = TagRule.objects.filter(tenant=tenant, name=RULE_NAME).first()
    if existing is not None:
        return existing
    return tag_rule_create(
        actor=Actor.system(tenant.id),
        name=RULE_NAME,
        kind="purchase",
        tag_id=(tag or world.tags["护肤"]).id,
        params={"product_series": "精华"},
    )


def check_rule_list(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    b_rule = _rule(ctx.world, "b", tag=ctx.b_tag)
    before = _state()
    answer = ctx.client.get("/tag-rules")
    if ctx.persona not in HQ:
        _refused(answer, before, RULES_REFUSAL)
        return
    own = b_rule if ctx.persona == "outsider" else a_rule
    assert answer.status == 200
    assert [(r["id"], r["kind"], r["params"]["product_series"]) for r in answer.body["items"]] == [
        (own.id, "purchase", "精华")
    ]


def check_rule_get(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.get(f"/tag-rules/{a_rule.id}")
    if ctx.persona == "hq":
        assert (answer.status, answer.body["tag"]["id"]) == (200, ctx.world.tags["护肤"].id)
    elif ctx.persona == "outsider":
        _not_found(answer, "rule_id", before)
    else:
        _refused(answer, before, RULES_REFUSAL)


def check_rule_create(ctx: Ctx) -> None:
    before = _state()
    own = ctx.b_tag if ctx.persona == "outsider" else ctx.world.tags["彩妆"]
    body = {"name": "常看资料", "kind": "behaviour", "tag_id": own.id,
            "params": {"event_type": "material.opened", "min_count": 2, "within_days": 7}}  # fmt: skip
    answer = ctx.client.post("/tag-rules", body)
    if ctx.persona not in HQ:
        _refused(answer, before, RULES_REFUSAL)
        return
    assert answer.status == 201, answer.body
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert TagRule.objects.get(id=answer.body["id"]).tenant_id == tenant.id
    before = _state()
    # The other brand's tag is not found; n ≤ 0 is refused naming the field; nothing is written.
    other = ctx.world.tags["护肤"] if ctx.persona == "outsider" else ctx.b_tag
    refused = ctx.client.post("/tag-rules", {**body, "name": "别家", "tag_id": other.id})
    assert (refused.status, refused.body["field"]) == (404, "tag_id")
    bad = ctx.client.post("/tag-rules", {**body, "name": "坏", "params": {**body["params"], "min_count": 0}})
    assert (bad.status, bad.body["field"]) == (409, "min_count")
    assert _state() == before


def check_rule_update(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.patch(f"/tag-rules/{a_rule.id}", {"enabled": False})
    if ctx.persona == "hq":
        assert (answer.status, answer.body["enabled"]) == (200, False)
        bad = ctx.client.patch(f"/tag-rules/{a_rule.id}", {"params": {"product_series": "精华", "within_days": 0}})
        assert (bad.status, bad.body["field"]) == (409, "within_days")
    elif ctx.persona == "outsider":
        _not_found(answer, "rule_id", before)
    else:
        _refused(answer, before, RULES_REFUSAL)


def check_rule_delete(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.delete(f"/tag-rules/{a_rule.id}")
    if ctx.persona == "hq":
        assert answer.status == 204
        assert not TagRule.objects.filter(id=a_rule.id).exists()
    elif ctx.persona == "outsider":
        _not_found(answer, "rule_id", before)
    else:
        _refused(answer, before, RULES_REFUSAL)


def check_rule_run(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.post(f"/tag-rules/{a_rule.id}/run", {})
    if ctx.persona == "hq":
        # Nobody bought the series: nothing to add; c1's and c3's manual 护肤 stay.
        assert (answer.status, answer.body) == (200, {"matched": 0, "added": 0, "removed": 0})
        assert CustomerTag.objects.filter(tag=ctx.world.tags["护肤"]).count() == 2
    elif ctx.persona == "outsider":
        _not_found(answer, "rule_id", before)
    else:
        _refused(answer, before, RULES_REFUSAL)


# operationId → (method, path as the OpenAPI document spells it, check)
TAG_CHECKS = {
    "tag_group_update": ("patch", "/api/v1/tag-groups/{group_id}", check_group_update),
    "tag_group_delete": ("delete", "/api/v1/tag-groups/{group_id}", check_group_delete),
    "tag_update": ("patch", "/api/v1/tags/{tag_id}", check_tag_update),
    "tag_delete": ("delete", "/api/v1/tags/{tag_id}", check_tag_delete),
    "tag_rule_list": ("get", "/api/v1/tag-rules", check_rule_list),
    "tag_rule_create": ("post", "/api/v1/tag-rules", check_rule_create),
    "tag_rule_get": ("get", "/api/v1/tag-rules/{rule_id}", check_rule_get),
    "tag_rule_update": ("patch", "/api/v1/tag-rules/{rule_id}", check_rule_update),
    "tag_rule_delete": ("delete", "/api/v1/tag-rules/{rule_id}", check_rule_delete),
    "tag_rule_run": ("post", "/api/v1/tag-rules/{rule_id}/run", check_rule_run),
}


def tag_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = TAG_CHECKS[operation_id]
    group_id, tag_id = world.tags["护肤"].group_id, world.tags["护肤"].id
    if operation_id in ("tag_group_delete", "tag_delete"):
        # Deletes get a group of their own: the world's tags must still be there for the requests after them.
        group = tag_group_create(actor=Actor.system(world.tenant_a.id), name=f"删除 {operation_id}", tags=["临时"])
        group_id, tag_id = group.id, group.tags.get().id
    url = path.format(group_id=group_id, tag_id=tag_id, rule_id=_rule(world).id if "{rule_id}" in path else 0)
    bodies: dict[str, Any] = {
        "tag_group_update": {"order": 3},
        "tag_update": {"order": 3},
        "tag_rule_create": {
            "name": "金卡",
            "kind": "tier",
            "tag_id": world.tags["彩妆"].id,
            "params": {"tier": "gold"},
        },
        "tag_rule_update": {"enabled": False},
        "tag_rule_run": {},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((TAG_CHECKS, tag_request),)
