"""The keyword-rule API: CRUD as HQ, bad input answered 4xx naming the field with nothing written, and the count
of customers each rule tagged."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.api.tests.conftest import ApiClient
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.tags.models import KeywordRule, TagSource
from siyu.tags.services import customer_tag_add
from siyu.testing import World


@pytest.fixture
def api(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["hq"])


def body(world: World, **fields: Any) -> dict[str, Any]:
    return {"name": "敏感肌", "keywords": ["敏感肌", "过敏"], "tag_ids": [world.tags["护肤"].id], **fields}


def test_create_read_update_delete(world: World, api: ApiClient) -> None:
    created = api.post("/keyword-rules", body(world, exclusions=["不是敏感肌"], mode="all", scope="direct"))
    assert created.status == 201, created.body
    rule_id = created.body["id"]
    assert {k: v for k, v in created.body.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "敏感肌",
        "keywords": ["敏感肌", "过敏"],
        "exclusions": ["不是敏感肌"],
        "mode": "all",
        "scope": "direct",
        "customer_only": True,
        "enabled": True,
        "tags": [{"id": world.tags["护肤"].id, "name": "护肤", "group": "兴趣"}],
        "tagged": 0,
    }
    assert api.get(f"/keyword-rules/{rule_id}").body == created.body

    # A customer tagged by the rule is counted on it.
    label = f"keyword_rule:{rule_id}"
    customer_tag_add(
        actor=Actor.system(world.tenant_a.id),
        customer_id=world.customers["c2"].id,
        tag_id=world.tags["护肤"].id,
        source=TagSource.KEYWORD,
        rule=label,
    )
    listed = api.get("/keyword-rules")
    assert (listed.body["count"], listed.body["items"][0]["tagged"]) == (1, 1)

    patched = api.patch(f"/keyword-rules/{rule_id}", {"enabled": False, "keywords": ["ＳＰＦ"]})
    assert (patched.status, patched.body["enabled"], patched.body["keywords"]) == (200, False, ["ＳＰＦ"])
    assert patched.body["exclusions"] == ["不是敏感肌"]

    assert api.delete(f"/keyword-rules/{rule_id}").status == 204
    assert api.get(f"/keyword-rules/{rule_id}").status == 404
    assert list(AuditLog.objects.filter(target_type="keyword_rule").values_list("action", flat=True)) == [
        "keyword_rule.delete",
        "keyword_rule.update",
        "keyword_rule.create",
    ]


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"keywords": []}, 422, "keywords"),
        ({"keywords": ["肌" * 51]}, 422, "keywords.0"),
        ({"keywords": [f"词{i}" for i in range(1001)]}, 422, "keywords"),
        ({"keywords": [" 敏感肌"]}, 422, "keywords.0"),
        ({"exclusions": ["x" * 51]}, 422, "exclusions.0"),
        ({"exclusions": ["过敏"]}, 409, "exclusions"),
        ({"tag_ids": []}, 422, "tag_ids"),
        ({"tag_ids": [987_654]}, 404, "tag_ids"),
        ({"tag_ids": ["1"]}, 422, "tag_ids.0"),
        ({"mode": "fuzzy"}, 422, "mode"),
        ({"scope": None}, 422, "scope"),
        ({"enabled": 1}, 422, "enabled"),
        ({"name": ""}, 422, "name"),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    world: World, api: ApiClient, fields: dict[str, Any], status: int, field: str
) -> None:
    answer = api.post("/keyword-rules", body(world, **fields))
    assert (answer.status, answer.body["field"]) == (status, field), answer.body
    assert not KeywordRule.objects.exists()
    assert not AuditLog.objects.filter(target_type="keyword_rule").exists()


def test_a_taken_name_is_409(world: World, api: ApiClient) -> None:
    assert api.post("/keyword-rules", body(world)).status == 201
    answer = api.post("/keyword-rules", body(world, keywords=["干皮"]))
    assert (answer.status, answer.body["field"]) == (409, "name")


def test_patch_refuses_null_and_bad_values_and_changes_nothing(world: World, api: ApiClient) -> None:
    rule_id = api.post("/keyword-rules", body(world)).body["id"]
    before = list(KeywordRule.objects.values())
    bad = (({"enabled": None}, "enabled"), ({"keywords": []}, "keywords"), ({"tag_ids": [0]}, "tag_ids.0"))
    for patch, field in bad:
        answer = api.patch(f"/keyword-rules/{rule_id}", patch)
        assert (answer.status, answer.body["field"]) == (422, field), answer.body
    assert list(KeywordRule.objects.values()) == before
