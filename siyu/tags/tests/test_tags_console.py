"""The console's tags page (HQ creates, renames, reorders and deletes groups and tags in place with htmx; other roles
read) and the automatic tagging rules page (list, form with errors naming the field, run now with its counts)."""

from __future__ import annotations

import datetime as dt

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from siyu.commerce.models import Order
from siyu.console.tests.conftest import login
from siyu.core.models import AuditLog
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagRule, TagSource
from siyu.testing import World

HTMX = {"HTTP_HX_REQUEST": "true"}


def change(client: Client, action: str, **fields: object) -> str:
    answer = client.post(reverse("console:tag_catalogue_change", args=[action]), fields, **HTMX)
    assert answer.status_code == 200
    return answer.content.decode()


def test_hq_edits_the_catalogue_in_place(client: Client, world: World) -> None:
    login(client, "hq")
    html = change(client, "group-new", name="肤质", tags="干皮，油皮")
    assert 'data-tag-group="肤质"' in html
    group = TagGroup.objects.get(tenant=world.tenant_a, name="肤质")
    assert sorted(group.tags.values_list("name", flat=True)) == ["干皮", "油皮"]
    html = change(client, "tag-new", id=group.id, name="混合皮")
    assert 'data-tag="混合皮"' in html
    # A name the group already has comes back as an error in the panel, and nothing changes.
    html = change(client, "tag-new", id=group.id, name="干皮")
    assert 'id="tag-error"' in html
    assert "already exists" in html
    assert group.tags.count() == 3
    dry = Tag.objects.get(group=group, name="干皮")
    change(client, "tag-rename", id=dry.id, name="干性皮肤", order=9)
    dry.refresh_from_db()
    assert (dry.name, dry.order) == ("干性皮肤", 9)
    change(client, "group-rename", id=group.id, name="肤质类型", order=3)
    assert TagGroup.objects.get(id=group.id).name == "肤质类型"
    # Deleting a tag takes it off the customers, audited with the count.
    care = world.tags["护肤"]
    change(client, "tag-delete", id=care.id)
    assert not Tag.objects.filter(id=care.id).exists()
    assert AuditLog.objects.filter(action="tag.delete").latest("id").detail["customer_tags"] == 2
    change(client, "group-delete", id=group.id)
    assert not TagGroup.objects.filter(id=group.id).exists()


def test_other_roles_read_the_catalogue_but_cannot_change_it(client: Client, world: World) -> None:
    login(client, "store1")
    page = client.get(reverse("console:tag_list")).content.decode()
    assert 'data-tag="护肤"' in page
    assert "create-group" not in page
    answer = client.post(reverse("console:tag_catalogue_change", args=["group-new"]), {"name": "偷建"}, **HTMX)
    assert answer.status_code == 403
    assert not TagGroup.objects.filter(name="偷建").exists()


def test_other_brands_tag_is_not_found(client: Client, world: World) -> None:
    login(client, "outsider")
    html = change(client, "tag-delete", id=world.tags["护肤"].id)
    assert "not found" in html
    assert Tag.objects.filter(id=world.tags["护肤"].id).exists()


def test_hq_creates_and_runs_a_purchase_rule(client: Client, world: World) -> None:
    login(client, "hq")
    paid = timezone.now() - dt.timedelta(days=1)
    Order.objects.create(tenant=world.tenant_a, customer=world.customers["c2"], shop="tmall", order_no="R1",
                         amount_cents=9900, product_series="精华", paid_at=paid)  # fmt: skip
    form = {"name": "买过精华", "kind": "purchase", "tag_id": world.tags["护肤"].id, "product_series": "精华",
            "min_count": "0", "enabled": "on"}  # fmt: skip
    bad = client.post(reverse("console:tag_rule_new"), form)
    assert bad.status_code == 422
    assert 'data-error-field="min_count"' in bad.content.decode()
    assert not TagRule.objects.exists()
    answer = client.post(reverse("console:tag_rule_new"), {**form, "min_count": "1"})
    assert answer.status_code == 302
    rule = TagRule.objects.get()
    assert (rule.kind, rule.params["product_series"], rule.tag_id) == ("purchase", "精华", world.tags["护肤"].id)
    client.post(reverse("console:tag_rule_action", args=[rule.id, "run"]))
    page = client.get(reverse("console:tag_rules")).content.decode()
    assert 'data-rule="买过精华"' in page
    # c1 and c3 carry 护肤 by hand; c2 bought the series and is tagged by the rule.
    row = CustomerTag.objects.get(customer=world.customers["c2"], tag=world.tags["护肤"])
    assert (row.source, row.rule) == (TagSource.PURCHASE, rule.label)
    rule.refresh_from_db()
    assert (rule.last_added, rule.last_matched) == (1, 1)
    assert '<td class="num" data-added>1</td>' in page


def test_rules_page_is_hq_only(client: Client, world: World) -> None:
    login(client, "region1")
    assert client.get(reverse("console:tag_rules")).status_code == 403
