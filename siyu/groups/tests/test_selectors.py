"""Who sees which groups: a group is in scope when its owner guide is (HQ sees every group of its brand)."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core.errors import NotFound
from siyu.groups.models import CustomerGroup
from siyu.groups.selectors import access_group, group_list, group_member_list, groups_of_customer
from siyu.groups.services import GroupInput, GroupMemberInput, group_upsert
from siyu.testing import World

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
# One group per guide of brand A (G1 in S1/R1/F1, G2 in S2/R1, G3 in S3/R2/F1, the brand IP in no store), and one
# of brand B. c1 sits in G1's and G3's groups.
VISIBLE = {
    "hq": {"wrG1", "wrG2", "wrG3", "wrIP"},
    "region1": {"wrG1", "wrG2"},
    "store1": {"wrG1"},
    "guide1": {"wrG1"},
    "franchisee1": {"wrG1", "wrG3"},
    "outsider": {"wrGB"},
}


@pytest.fixture
def groups(world: World) -> dict[str, CustomerGroup]:
    made = {}
    for owner, members in (("G1", ["wmc1"]), ("G2", ["wmc2"]), ("G3", ["wmc1", "wmc3"]), ("IP", ["wmc4"])):
        data = GroupInput(
            chat_id=f"wr{owner}",
            name=f"{owner}的群",
            owner_guide_id=world.guides[owner].id,
            created_at=T0,
            members=[GroupMemberInput(userid=u, member_type=2, join_time=T0) for u in members],
        )
        made[owner] = group_upsert(actor=world.actor("hq"), data=data).group
    other = GroupInput(chat_id="wrGB", name="B", owner_guide_id=world.guides["GB"].id, created_at=T0)
    made["GB"] = group_upsert(actor=world.actor("outsider"), data=other).group
    return made


@pytest.mark.parametrize("persona", sorted(VISIBLE))
def test_each_persona_sees_the_groups_of_the_guides_in_its_scope(
    world: World, groups: dict[str, CustomerGroup], persona: str
) -> None:
    actor = world.actor(persona)
    assert set(group_list(actor=actor).values_list("chat_id", flat=True)) == VISIBLE[persona]
    for g in groups.values():
        if g.chat_id in VISIBLE[persona]:
            assert access_group(actor=actor, group_id=g.id) == g
        else:
            with pytest.raises(NotFound):
                access_group(actor=actor, group_id=g.id)


def test_filters_members_and_a_customers_groups(world: World, groups: dict[str, CustomerGroup]) -> None:
    hq = world.actor("hq")
    assert list(group_list(actor=hq, q="G3").values_list("chat_id", flat=True)) == ["wrG3"]
    assert list(group_list(actor=hq, owner_guide_id=world.guides["G2"].id).values_list("chat_id", flat=True)) == [
        "wrG2"
    ]
    members = group_member_list(actor=hq, group_id=groups["G3"].id)
    assert sorted(m.userid for m in members) == ["wmc1", "wmc3"]
    c1 = world.customers["c1"].id
    assert set(groups_of_customer(actor=hq, customer_id=c1).values_list("chat_id", flat=True)) == {"wrG1", "wrG3"}
    # A store manager of S1 sees c1 but only the group of its own guide.
    store1 = world.actor("store1")
    assert set(groups_of_customer(actor=store1, customer_id=c1).values_list("chat_id", flat=True)) == {"wrG1"}
    with pytest.raises(NotFound):
        group_member_list(actor=store1, group_id=groups["G3"].id)


def test_members_who_left_are_listed_on_request(world: World, groups: dict[str, CustomerGroup]) -> None:
    hq = world.actor("hq")
    g3 = groups["G3"]
    data = GroupInput(
        chat_id="wrG3",
        name=g3.name,
        owner_guide_id=world.guides["G3"].id,
        created_at=T0,
        members=[GroupMemberInput(userid="wmc3", member_type=2, join_time=T0)],
    )
    group_upsert(actor=hq, data=data)

    assert [m.userid for m in group_member_list(actor=hq, group_id=g3.id)] == ["wmc3"]
    assert sorted(m.userid for m in group_member_list(actor=hq, group_id=g3.id, current=False)) == ["wmc1", "wmc3"]
    c1 = world.customers["c1"].id
    assert set(groups_of_customer(actor=hq, customer_id=c1).values_list("chat_id", flat=True)) == {"wrG1"}
    assert set(groups_of_customer(actor=hq, customer_id=c1, current=False).values_list("chat_id", flat=True)) == {
        "wrG1",
        "wrG3",
    }
