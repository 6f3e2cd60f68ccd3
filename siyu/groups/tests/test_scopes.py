"""A group code shared by two stores, read by each persona of the fixed world (console pages and the API): the code
is seen through its store, and on it only the groups whose owner is in the reader's scope, with their counts.

HQ put store S2's group (owner 导购2) on store S1's code, next to S1's group (owner 导购1). Store S1's manager,
guide and franchisee see the code and S1's group only; the region sees both; brand B's HQ sees nothing of it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from siyu.api.tests.conftest import ApiClient
from siyu.console.tests.conftest import attr_values, login
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot, GroupMember
from siyu.testing import World

SHARED_GROUPS = {
    "hq": ["wrS1", "wrS2"],
    "region1": ["wrS1", "wrS2"],
    "store1": ["wrS1"],
    "guide1": ["wrS1"],
    "franchisee1": ["wrS1"],
}
PERSONAS = [*sorted(SHARED_GROUPS), "outsider"]


@pytest.fixture
def shared(world: World, codes: dict[str, GroupCode]) -> GroupCode:
    """S1's code over S1's group and S2's, both taking joiners; one customer joined S2's group through it."""
    code = codes["S1"]
    s2_group = CustomerGroup.objects.get(tenant=world.tenant_a, chat_id="wrS2")
    added = timezone.now() - dt.timedelta(days=1)
    GroupCodeSlot.objects.create(tenant_id=code.tenant_id, code=code, group=s2_group, position=1, added_at=added)
    GroupCode.objects.filter(id=code.id).update(way_chat_ids=["wrS1", "wrS2"])
    GroupMember.objects.create(
        tenant_id=code.tenant_id, group=s2_group, userid="wmjoiner", member_type=GroupMember.Type.EXTERNAL,
        join_time=timezone.now() - dt.timedelta(hours=1),
    )  # fmt: skip
    CustomerGroup.objects.filter(id=s2_group.id).update(member_count=5)
    return GroupCode.objects.get(id=code.id)


@pytest.mark.parametrize("persona", PERSONAS)
def test_api_detail_and_stats_show_only_the_groups_in_scope(
    shared: GroupCode, tokens: dict[str, str], persona: str
) -> None:
    api = ApiClient(tokens[persona])
    detail = api.get(f"/group-codes/{shared.id}")
    stats = api.get(f"/group-codes/{shared.id}/stats")
    listed = api.get("/group-codes")
    if persona == "outsider":
        assert (detail.status, detail.body["field"]) == (404, "code_id")
        assert (stats.status, stats.body["field"]) == (404, "code_id")
        assert shared.id not in {c["id"] for c in listed.body["items"]}
        return
    expected = SHARED_GROUPS[persona]
    assert detail.status == stats.status == 200
    assert [g["chat_id"] for g in detail.body["groups"]] == expected
    assert detail.body["way_chat_ids"] == expected
    assert [c["way_chat_ids"] for c in listed.body["items"] if c["id"] == shared.id] == [expected]
    assert [g["chat_id"] for g in stats.body["groups"]] == expected
    # Totals add up the groups shown: S2's group has 5 members and the one join through the code.
    s2 = "wrS2" in expected
    assert (stats.body["members"], stats.body["joins"]) == ((9, 1) if s2 else (4, 0))


@pytest.mark.parametrize("persona", PERSONAS)
def test_console_list_and_detail_show_only_the_groups_in_scope(client: Client, shared: GroupCode, persona: str) -> None:
    login(client, persona)
    detail = client.get(reverse("console:group_code_detail", args=[shared.id]))
    listed = client.get(reverse("console:group_codes")).content.decode()
    if persona == "outsider":
        assert detail.status_code == 404
        assert str(shared.id) not in attr_values(listed, "data-group-code-id")
        return
    expected = SHARED_GROUPS[persona]
    html = detail.content.decode()
    assert detail.status_code == 200
    assert attr_values(html, "data-chat-id") == expected
    assert attr_values(html, "data-way-chat") == expected
    if "wrS2" not in expected:  # neither the other store's group nor its owner is named anywhere on the page
        assert "群wrS2" not in html
        assert "导购2" not in html
    # The list counts the code's groups in scope.
    row = listed[listed.index(f'data-group-code-id="{shared.id}"') :]
    assert attr_values(row, "data-groups")[0] == str(len(expected))
