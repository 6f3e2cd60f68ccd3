"""Keyword rule services: what HQ can create and change, what bad input is refused (naming the field, changing
nothing), who may not, and that brands never see each other's rules or tags."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError, ValidationFailed
from siyu.core.models import AuditLog
from siyu.tags.models import ChatArchiveCursor, KeywordRule, Tag
from siyu.tags.selectors import keyword_rule_list, keyword_rule_specs
from siyu.tags.services import (
    chat_archive_pull_due,
    keyword_rule_create,
    keyword_rule_delete,
    keyword_rule_update,
    tag_group_create,
)
from siyu.tags.tests.conftest import Chats
from siyu.testing import IMMEDIATE_TASKS, World


def create(world: World, persona: str = "hq", **fields: Any) -> KeywordRule:
    values: dict[str, Any] = {"name": "敏感肌", "keywords": ["敏感肌"], "tag_ids": [world.tags["护肤"].id], **fields}
    return keyword_rule_create(actor=world.actor(persona), **values)


def state() -> tuple[list[tuple[Any, ...]], int]:
    rules = list(KeywordRule.objects.order_by("id").values_list("id", "name", "keywords", "exclusions", "enabled"))
    return rules, AuditLog.objects.count()


def test_hq_creates_a_rule_and_the_audit_log_says_so(world: World) -> None:
    rule = create(
        world,
        keywords=[" 敏感肌 ", "SPF", "ｓｐｆ", "干皮"],
        exclusions=["不是敏感肌"],
        tag_ids=[world.tags["护肤"].id, world.tags["彩妆"].id, world.tags["护肤"].id],
        mode="all",
        scope="group",
        customer_only=False,
    )
    rule.refresh_from_db()
    assert (rule.keywords, rule.exclusions, rule.mode, rule.scope, rule.customer_only, rule.enabled) == (
        ["敏感肌", "SPF", "干皮"],  # stripped, and "ｓｐｆ" folds to "SPF"'s form: kept once
        ["不是敏感肌"],
        "all",
        "group",
        False,
        True,
    )
    assert sorted(t.name for t in rule.tags.all()) == ["彩妆", "护肤"]
    audit = AuditLog.objects.get(action="keyword_rule.create")
    assert (audit.target_id, audit.actor_id, audit.detail["keywords"], audit.detail["tag_ids"]) == (
        str(rule.id),
        world.users["hq"].id,
        3,
        [world.tags["护肤"].id, world.tags["彩妆"].id],
    )


def _too_many() -> list[str]:
    return [f"词{i}" for i in range(1001)]


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"keywords": []}, ValidationFailed, "keywords"),
        ({"keywords": ["敏感肌", "   "]}, ValidationFailed, "keywords"),
        ({"keywords": ["肌" * 51]}, ValidationFailed, "keywords"),
        ({"keywords": "敏感肌"}, ValidationFailed, "keywords"),
        ({"keywords": ["敏感\x00肌"]}, ValidationFailed, "keywords"),
        ({"keywords": _too_many()}, ValidationFailed, "keywords"),
        ({"exclusions": _too_many()}, ValidationFailed, "exclusions"),
        ({"exclusions": ["x" * 51]}, ValidationFailed, "exclusions"),
        ({"exclusions": ["敏感肌"]}, Conflict, "exclusions"),
        ({"tag_ids": []}, ValidationFailed, "tag_ids"),
        ({"tag_ids": [999_999]}, NotFound, "tag_ids"),
        ({"mode": "fuzzy"}, ValidationFailed, "mode"),
        ({"scope": "moments"}, ValidationFailed, "scope"),
        ({"name": ""}, ValidationFailed, "name"),
        ({"name": "规" * 51}, ValidationFailed, "name"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    world: World, fields: dict[str, Any], error: type[SiyuError], field: str
) -> None:
    before = state()
    with pytest.raises(error) as info:
        create(world, **fields)
    assert info.value.field == field
    assert state() == before


def test_exactly_1000_keywords_of_50_characters_are_fine(world: World) -> None:
    words = [f"{i:04d}" + "肌" * 46 for i in range(1000)]
    assert len(create(world, keywords=words).keywords) == 1000


def test_another_brands_tag_is_not_found(world: World) -> None:
    b_tag = tag_group_create(actor=world.actor("outsider"), name="会员", tags=["VIP"]).tags.get()
    with pytest.raises(NotFound) as info:
        create(world, tag_ids=[world.tags["护肤"].id, b_tag.id])
    assert info.value.field == "tag_ids"
    assert not KeywordRule.objects.exists()


def test_names_are_unique_per_brand(world: World) -> None:
    create(world)
    with pytest.raises(Conflict) as info:
        create(world, keywords=["干皮"])
    assert info.value.field == "name"
    b_tag = tag_group_create(actor=world.actor("outsider"), name="会员", tags=["VIP"]).tags.get()
    create(world, "outsider", tag_ids=[b_tag.id])  # the same name in another brand is another rule


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_only_hq_manages_rules(world: World, persona: str) -> None:
    rule = create(world)
    before = state()
    with pytest.raises(PermissionDenied):
        create(world, persona, name="另一个")
    with pytest.raises(PermissionDenied):
        keyword_rule_update(actor=world.actor(persona), rule_id=rule.id, enabled=False)
    with pytest.raises(PermissionDenied):
        keyword_rule_delete(actor=world.actor(persona), rule_id=rule.id)
    with pytest.raises(PermissionDenied):
        keyword_rule_list(actor=world.actor(persona))
    assert state() == before


def test_another_brands_rule_is_not_found(world: World) -> None:
    rule = create(world)
    before = state()
    outsider = world.actor("outsider")
    with pytest.raises(NotFound):
        keyword_rule_update(actor=outsider, rule_id=rule.id, enabled=False)
    with pytest.raises(NotFound):
        keyword_rule_delete(actor=outsider, rule_id=rule.id)
    assert list(keyword_rule_list(actor=outsider)) == []
    assert state() == before
    assert keyword_rule_specs(tenant_id=world.tenant_b.id) == []


def test_update_changes_the_given_fields_and_audits_what_changed(world: World) -> None:
    rule = create(world, exclusions=["不是敏感肌"])
    updated = keyword_rule_update(
        actor=world.actor("hq"), rule_id=rule.id, keywords=["敏感肌", "过敏"], tag_ids=[world.tags["彩妆"].id]
    )
    assert (updated.name, updated.keywords, updated.exclusions) == ("敏感肌", ["敏感肌", "过敏"], ["不是敏感肌"])
    assert [t.name for t in updated.tags.all()] == ["彩妆"]
    audit = AuditLog.objects.get(action="keyword_rule.update")
    assert audit.detail["changed"] == ["keywords", "tag_ids"]
    # Saving what is there changes nothing and writes no audit row.
    keyword_rule_update(actor=world.actor("hq"), rule_id=rule.id, keywords=["敏感肌", "过敏"])
    assert AuditLog.objects.filter(action="keyword_rule.update").count() == 1
    with pytest.raises(Conflict) as info:
        keyword_rule_update(actor=world.actor("hq"), rule_id=rule.id, exclusions=["过敏"])
    assert info.value.field == "exclusions"


def test_disabled_and_deleted_rules_leave_the_matcher(world: World) -> None:
    kept = create(world, name="干皮", keywords=["干皮"])
    off = create(world)
    gone = create(world, name="油皮", keywords=["油皮"])
    keyword_rule_update(actor=world.actor("hq"), rule_id=off.id, enabled=False)
    keyword_rule_delete(actor=world.actor("hq"), rule_id=gone.id)
    assert [s.id for s in keyword_rule_specs(tenant_id=world.tenant_a.id)] == [kept.id]
    assert AuditLog.objects.get(action="keyword_rule.delete").detail == {"name": "油皮"}


def test_a_deleted_tag_leaves_the_rules_that_applied_it(world: World) -> None:
    rule = create(world, tag_ids=[world.tags["护肤"].id, world.tags["彩妆"].id])
    Tag.objects.filter(id=world.tags["彩妆"].id).delete()
    assert keyword_rule_specs(tenant_id=world.tenant_a.id)[0].tag_ids == (world.tags["护肤"].id,)
    assert rule.tags.count() == 1


def test_the_sweep_enqueues_one_pull_per_brand_with_rules_and_an_archive(
    chats: Chats, settings: SettingsWrapper, django_capture_on_commit_callbacks: Any
) -> None:
    world = chats.world
    create(world)
    cache.clear()
    settings.TASKS = IMMEDIATE_TASKS
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert chat_archive_pull_due() == 1  # brand B has no rule
        assert chat_archive_pull_due() == 0  # enqueued moments ago
    assert len(callbacks) == 1
    # The immediate backend ran the pull the sweep enqueued.
    cursor = ChatArchiveCursor.objects.get()
    assert (cursor.tenant_id, cursor.pulled_at is not None) == (world.tenant_a.id, True)
