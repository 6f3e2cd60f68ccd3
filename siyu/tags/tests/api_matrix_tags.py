"""The tag catalogue's update/delete rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py
imports them).

Only HQ changes the catalogue and manages rules: every other role gets 403 with nothing written; brand B's HQ gets
404 for brand A's groups, tags and rules (naming the path parameter) and changes nothing of brand A.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.analytics.models import Event
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagRule
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


# operationId → (method, path as the OpenAPI document spells it, check)
TAG_CHECKS = {
    "tag_group_update": ("patch", "/api/v1/tag-groups/{group_id}", check_group_update),
    "tag_group_delete": ("delete", "/api/v1/tag-groups/{group_id}", check_group_delete),
    "tag_update": ("patch", "/api/v1/tags/{tag_id}", check_tag_update),
    "tag_delete": ("delete", "/api/v1/tags/{tag_id}", check_tag_delete),
}


def tag_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = TAG_CHECKS[operation_id]
    group_id, tag_id = world.tags["护肤"].group_id, world.tags["护肤"].id
    if operation_id in ("tag_group_delete", "tag_delete"):
        # Deletes get a group of their own: the world's tags must still be there for the requests after them.
        group = tag_group_create(actor=Actor.system(world.tenant_a.id), name=f"删除 {operation_id}", tags=["临时"])
        group_id, tag_id = group.id, group.tags.get().id
    url = path.format(group_id=group_id, tag_id=tag_id)
    bodies: dict[str, Any] = {
        "tag_group_update": {"order": 3},
        "tag_update": {"order": 3},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((TAG_CHECKS, tag_request),)
