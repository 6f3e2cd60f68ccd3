"""The console's keyword tagging page: HQ lists, creates, edits, disables and deletes rules and reads the archive
on demand; bad input comes back on the form naming the field; other roles and brands get nowhere."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from siyu.console.tests.conftest import attr_values, login
from siyu.core.models import AuditLog
from siyu.tags.models import ChatArchiveCursor, CustomerTag, KeywordRule, Tag, TagSource
from siyu.tags.services import keyword_rule_create, tag_group_create
from siyu.tags.tests.conftest import Chats
from siyu.testing import IMMEDIATE_TASKS, World


def form(world: World, **fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "name": "敏感肌",
        "keywords": "敏感肌，过敏\n泛红",
        "exclusions": "不是敏感肌",
        "tags": [str(world.tags["护肤"].id)],
        "mode": "any",
        "scope": "both",
        "customer_only": "on",
        "enabled": "on",
        **fields,
    }
    return values


def rule_of(world: World, persona: str = "hq", name: str = "干皮") -> KeywordRule:
    tag = world.tags["护肤"] if persona == "hq" else Tag.objects.get(tenant=world.tenant_b)
    return keyword_rule_create(actor=world.actor(persona), name=name, keywords=[name], tag_ids=[tag.id])


def test_hq_creates_a_rule_from_the_form(client: Client, world: World) -> None:
    login(client, "hq")
    page = client.get(reverse("console:keyword_rules"))
    assert page.status_code == 200
    assert reverse("console:keyword_rule_new") in page.content.decode()
    assert client.get(reverse("console:keyword_rule_new")).status_code == 200

    response = client.post(reverse("console:keyword_rule_new"), form(world))

    assert response.status_code == 302
    rule = KeywordRule.objects.get()
    assert (rule.name, rule.keywords, rule.exclusions, rule.customer_only, rule.enabled) == (
        "敏感肌",
        ["敏感肌", "过敏", "泛红"],
        ["不是敏感肌"],
        True,
        True,
    )
    listed = client.get(reverse("console:keyword_rules")).content.decode()
    assert attr_values(listed, "data-rule") == ["敏感肌"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"keywords": " \n ，"}, "keywords"),
        ({"keywords": "肌" * 51}, "keywords"),
        ({"keywords": ",".join(f"词{i}" for i in range(1001))}, "keywords"),
        ({"tags": []}, "tag_ids"),
        ({"tags": ["999999"]}, "tag_ids"),
        ({"exclusions": "过敏"}, "exclusions"),
        ({"mode": "fuzzy"}, "mode"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_comes_back_on_the_form(client: Client, world: World, fields: dict[str, object], field: str) -> None:
    login(client, "hq")
    response = client.post(reverse("console:keyword_rule_new"), form(world, **fields))
    assert response.status_code == 422
    assert attr_values(response.content.decode(), "data-error-field") == [field]
    assert not KeywordRule.objects.exists()


def test_edit_disable_enable_and_delete(client: Client, world: World) -> None:
    rule = rule_of(world)
    login(client, "hq")
    edit = reverse("console:keyword_rule_edit", args=[rule.id])
    assert "干皮" in client.get(edit).content.decode()
    assert client.post(edit, form(world, name="干皮", keywords="干皮\n缺水", mode="exact")).status_code == 302
    rule.refresh_from_db()
    assert (rule.keywords, rule.mode) == (["干皮", "缺水"], "exact")

    action = "console:keyword_rule_action"
    client.post(reverse(action, args=[rule.id, "disable"]))
    assert KeywordRule.objects.get(id=rule.id).enabled is False
    client.post(reverse(action, args=[rule.id, "enable"]))
    assert KeywordRule.objects.get(id=rule.id).enabled is True
    client.post(reverse(action, args=[rule.id, "delete"]))
    assert not KeywordRule.objects.exists()
    assert list(AuditLog.objects.filter(target_type="keyword_rule").values_list("action", flat=True)) == [
        "keyword_rule.delete",
        "keyword_rule.update",
        "keyword_rule.update",
        "keyword_rule.update",
        "keyword_rule.create",
    ]


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_other_roles_are_refused_and_change_nothing(client: Client, world: World, persona: str) -> None:
    rule = rule_of(world)
    login(client, persona)
    before = (list(KeywordRule.objects.values()), AuditLog.objects.count())
    pages = [
        client.get(reverse("console:keyword_rules")),
        client.get(reverse("console:keyword_rule_new")),
        client.post(reverse("console:keyword_rule_new"), form(world, name="新规则")),
        client.get(reverse("console:keyword_rule_edit", args=[rule.id])),
        client.post(reverse("console:keyword_rule_edit", args=[rule.id]), form(world)),
        client.post(reverse("console:keyword_rule_action", args=[rule.id, "delete"])),
        client.post(reverse("console:keyword_rules_pull")),
    ]
    assert [p.status_code for p in pages] == [403] * len(pages)
    assert (list(KeywordRule.objects.values()), AuditLog.objects.count()) == before


def test_another_brand_sees_its_own_rules_and_404s_on_ours(client: Client, world: World) -> None:
    tag_group_create(actor=world.actor("outsider"), name="会员", tags=["VIP"])
    ours = rule_of(world)
    theirs = rule_of(world, "outsider", name="会员日")
    login(client, "outsider")
    listed = client.get(reverse("console:keyword_rules")).content.decode()
    assert attr_values(listed, "data-rule-id") == [str(theirs.id)]
    assert client.get(reverse("console:keyword_rule_edit", args=[ours.id])).status_code == 404
    assert client.post(reverse("console:keyword_rule_action", args=[ours.id, "delete"])).status_code == 404
    assert KeywordRule.objects.filter(id=ours.id).exists()


def test_reading_the_archive_now_tags_and_shows_the_progress(
    client: Client, chats: Chats, sensitive: Tag, settings: object, django_capture_on_commit_callbacks: object
) -> None:
    world = chats.world
    settings.TASKS = IMMEDIATE_TASKS  # type: ignore[attr-defined]
    rule = keyword_rule_create(actor=world.actor("hq"), name="敏感肌", keywords=["敏感肌"], tag_ids=[sensitive.id])
    seq = chats.say("wmc1", "想了解一下敏感肌的面霜", to="guide1")
    login(client, "hq")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        assert client.post(reverse("console:keyword_rules_pull")).status_code == 302
    assert CustomerTag.objects.get(customer=world.customers["c1"], tag=sensitive).source == TagSource.KEYWORD
    page = client.get(reverse("console:keyword_rules")).content.decode()
    assert attr_values(page, "data-rule-id") == [str(rule.id)]
    cursor = ChatArchiveCursor.objects.get(tenant=world.tenant_a)
    assert cursor.seq == seq
    assert f"data-seq>{seq}<" in page
    assert "data-tagged>1<" in page
