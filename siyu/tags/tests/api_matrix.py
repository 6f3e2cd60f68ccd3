"""The keyword-rule rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Keyword rules are HQ's: every other role gets 403 on every operation, brand B's HQ sees only brand B's rules and
gets 404 for brand A's, and a refused write leaves the rules and the audit log untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.tags.models import KeywordRule, Tag
from siyu.tags.services import keyword_rule_create
from siyu.testing import World

HQ = {"hq", "outsider"}
RULE_NAME = "敏感肌"


class Ctx(Protocol):
    world: World
    persona: str
    client: Any
    b_tag: Tag


def _state() -> tuple[list[tuple[Any, ...]], int]:
    rules = list(KeywordRule.objects.order_by("id").values_list("id", "tenant_id", "name", "keywords", "enabled"))
    return rules, AuditLog.objects.count()


def _rule(world: World, brand: str = "a", *, tag: Tag | None = None) -> KeywordRule:
    """Brand A's (or B's) rule 敏感肌, made once."""
    tenant = world.tenant_a if brand == "a" else world.tenant_b
    existing = KeywordRule.objects.filter(tenant=tenant, name=RULE_NAME).first()
    if existing is not None:
        return existing
    tag_id = (tag or world.tags["护肤"]).id
    return keyword_rule_create(actor=Actor.system(tenant.id), name=RULE_NAME, keywords=["敏感肌"], tag_ids=[tag_id])


def _own_tag(ctx: Ctx) -> Tag:
    return ctx.b_tag if ctx.persona == "outsider" else ctx.world.tags["护肤"]


def _refused(ctx: Ctx, answer: Any, before: Any) -> None:
    assert (answer.status, answer.body) == (403, {"detail": "only HQ manages keyword rules", "field": None})
    assert _state() == before


def check_list(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    b_rule = _rule(ctx.world, "b", tag=ctx.b_tag)
    before = _state()
    answer = ctx.client.get("/keyword-rules")
    if ctx.persona not in HQ:
        _refused(ctx, answer, before)
        return
    own = b_rule if ctx.persona == "outsider" else a_rule
    assert answer.status == 200
    assert [(r["id"], r["name"], r["tags"][0]["id"]) for r in answer.body["items"]] == [
        (own.id, RULE_NAME, _own_tag(ctx).id)
    ]


def check_get(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.get(f"/keyword-rules/{a_rule.id}")
    if ctx.persona == "hq":
        assert (answer.status, answer.body["id"], answer.body["keywords"]) == (200, a_rule.id, ["敏感肌"])
    elif ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "rule_id")
    else:
        _refused(ctx, answer, before)


def check_create(ctx: Ctx) -> None:
    before = _state()
    body = {"name": "干皮", "keywords": ["干皮", "缺水"], "tag_ids": [_own_tag(ctx).id]}
    answer = ctx.client.post("/keyword-rules", body)
    if ctx.persona not in HQ:
        _refused(ctx, answer, before)
        return
    assert answer.status == 201, answer.body
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert KeywordRule.objects.get(id=answer.body["id"]).tenant_id == tenant.id
    # The other brand's tag is not found, and nothing is written.
    before = _state()
    other = ctx.world.tags["护肤"] if ctx.persona == "outsider" else ctx.b_tag
    refused = ctx.client.post("/keyword-rules", {**body, "name": "油皮", "tag_ids": [other.id]})
    assert (refused.status, refused.body["field"]) == (404, "tag_ids")
    assert _state() == before


def check_update(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.patch(f"/keyword-rules/{a_rule.id}", {"enabled": False})
    if ctx.persona == "hq":
        assert (answer.status, answer.body["enabled"]) == (200, False)
    elif ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "rule_id")
        assert _state() == before
    else:
        _refused(ctx, answer, before)


def check_delete(ctx: Ctx) -> None:
    a_rule = _rule(ctx.world)
    before = _state()
    answer = ctx.client.delete(f"/keyword-rules/{a_rule.id}")
    if ctx.persona == "hq":
        assert answer.status == 204
        assert not KeywordRule.objects.filter(id=a_rule.id).exists()
    elif ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "rule_id")
        assert _state() == before
    else:
        _refused(ctx, answer, before)


# operationId → (method, path as the OpenAPI document spells it, check)
KEYWORD_RULE_CHECKS = {
    "keyword_rule_list": ("get", "/api/v1/keyword-rules", check_list),
    "keyword_rule_create": ("post", "/api/v1/keyword-rules", check_create),
    "keyword_rule_get": ("get", "/api/v1/keyword-rules/{rule_id}", check_get),
    "keyword_rule_update": ("patch", "/api/v1/keyword-rules/{rule_id}", check_update),
    "keyword_rule_delete": ("delete", "/api/v1/keyword-rules/{rule_id}", check_delete),
}


def keyword_rule_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = KEYWORD_RULE_CHECKS[operation_id]
    url = path.format(rule_id=_rule(world).id) if "{rule_id}" in path else path
    bodies: dict[str, Any] = {
        "keyword_rule_create": {"name": "干皮", "keywords": ["干皮"], "tag_ids": [world.tags["彩妆"].id]},
        "keyword_rule_update": {"enabled": False},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((KEYWORD_RULE_CHECKS, keyword_rule_request),)
