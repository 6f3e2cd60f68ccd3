"""The groups services: mirroring a group with its member list, joins and leaves on the timeline, dismissal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from siyu.analytics.models import Event
from siyu.core.errors import NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.groups.services import (
    GroupInput,
    GroupMemberInput,
    group_dismiss,
    group_members_link_customer,
    group_upsert,
)
from siyu.testing import World

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


def member(userid: str, kind: int = 2, minutes: int = 0, **extra: Any) -> GroupMemberInput:
    return GroupMemberInput(userid=userid, member_type=kind, join_time=T0 + dt.timedelta(minutes=minutes), **extra)


def group(world: World, *members: GroupMemberInput, owner: str = "G1", **extra: Any) -> GroupInput:
    values: dict[str, Any] = {"chat_id": "wrCHAT1", "name": "会员群", "created_at": T0, "notice": "", **extra}
    return GroupInput(owner_guide_id=world.guides[owner].id, members=members, **values)


def timeline(world: World) -> list[tuple[str, int | None, dt.datetime, dict[str, Any]]]:
    rows = Event.objects.filter(tenant=world.tenant_a, type__in=("group.joined", "group.left")).order_by("id")
    return [(e.type, e.customer_id, e.occurred_at, e.properties) for e in rows]


def test_a_new_group_with_its_members(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]  # WeCom external user wmc1
    data = group(
        world,
        member("guide1", kind=1),
        member("wmc1", minutes=5, join_scene=3, state="qr-spring"),
        member("wmSTRANGER", minutes=6, join_scene=1, invitor="guide1"),
    )

    result = group_upsert(actor=hq, data=data)

    assert (result.created, result.changed, result.joined, result.left) == (True, True, 3, 0)
    g = CustomerGroup.objects.get(tenant=world.tenant_a, chat_id="wrCHAT1")
    assert (g.name, g.owner, g.member_count, g.status, g.created_at) == (
        "会员群",
        world.guides["G1"],
        3,
        CustomerGroup.Status.ACTIVE,
        T0,
    )
    rows = {m.userid: m for m in GroupMember.objects.filter(group=g)}
    assert (rows["guide1"].guide, rows["guide1"].customer) == (world.guides["G1"], None)
    assert (rows["wmc1"].customer, rows["wmc1"].join_scene, rows["wmc1"].state) == (c1, 3, "qr-spring")
    assert (rows["wmSTRANGER"].customer, rows["wmSTRANGER"].invitor) == (None, "guide1")
    props = {"group": "会员群", "group_id": g.id, "chat_id": "wrCHAT1"}
    # Only customers get timeline events; the stranger has no customer (yet).
    assert timeline(world) == [("group.joined", c1.id, T0 + dt.timedelta(minutes=5), {**props, "join_scene": 3})]
    audit = AuditLog.objects.get(action="group.create")
    assert (audit.target_id, audit.detail["joined"]) == (str(g.id), 3)


def test_the_same_state_again_changes_nothing(world: World) -> None:
    hq = world.actor("hq")
    data = group(world, member("guide1", kind=1), member("wmc1"))
    group_upsert(actor=hq, data=data)
    before = (Event.objects.count(), AuditLog.objects.count(), list(GroupMember.objects.values()))

    result = group_upsert(actor=hq, data=data, at=T0 + dt.timedelta(days=1))

    assert (result.created, result.changed, result.joined, result.left) == (False, False, 0, 0)
    assert (Event.objects.count(), AuditLog.objects.count(), list(GroupMember.objects.values())) == before


def test_leaving_and_coming_back(world: World) -> None:
    hq = world.actor("hq")
    c1, c2 = world.customers["c1"], world.customers["c2"]
    group_upsert(actor=hq, data=group(world, member("guide1", kind=1), member("wmc1"), member("wmc2")))
    left_at, back_at = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)

    gone = group_upsert(actor=hq, data=group(world, member("guide1", kind=1), member("wmc2")), at=left_at)
    back = group_upsert(
        actor=hq,
        data=group(world, member("guide1", kind=1), member("wmc2"), member("wmc1", minutes=120, join_scene=3)),
        at=back_at,
    )

    assert (gone.joined, gone.left, back.joined, back.left) == (0, 1, 1, 0)
    g = gone.group
    assert [(t, c, when) for t, c, when, _ in timeline(world)] == [
        ("group.joined", c1.id, T0),
        ("group.joined", c2.id, T0),
        ("group.left", c1.id, left_at),
        ("group.joined", c1.id, back_at),
    ]
    row = GroupMember.objects.get(group=g, userid="wmc1")
    assert (row.left_at, row.join_time, row.join_scene) == (None, back_at, 3)
    assert CustomerGroup.objects.get(id=g.id).member_count == 3


def test_owner_name_and_notice_changes_are_audited_without_timeline_noise(world: World) -> None:
    hq = world.actor("hq")
    group_upsert(actor=hq, data=group(world, member("wmc1")))
    events = Event.objects.count()

    result = group_upsert(actor=hq, data=group(world, member("wmc1"), owner="G2", name="新名字", notice="公告"))

    assert (result.changed, result.joined, result.left) == (True, 0, 0)
    g = CustomerGroup.objects.get(id=result.group.id)
    assert (g.owner, g.name, g.notice) == (world.guides["G2"], "新名字", "公告")
    assert sorted(AuditLog.objects.get(action="group.update").detail["fields"]) == ["name", "notice", "owner_id"]
    assert Event.objects.count() == events


def test_a_stranger_is_linked_when_they_become_a_customer(world: World) -> None:
    hq = world.actor("hq")
    group_upsert(actor=hq, data=group(world, member("wmc5", minutes=3)))  # c5 has no WeCom identity yet
    c5 = world.customers["c5"]
    assert timeline(world) == []

    linked = group_members_link_customer(actor=hq, external_userid="wmc5", customer_id=c5.id)

    assert linked == 1
    assert GroupMember.objects.get(userid="wmc5").customer == c5
    joined = ("group.joined", c5.id, T0 + dt.timedelta(minutes=3))
    assert [(t, c, when) for t, c, when, _ in timeline(world)] == [joined]
    assert group_members_link_customer(actor=hq, external_userid="wmc5", customer_id=c5.id) == 0


def test_dismissing_lets_everyone_go_once(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    group_upsert(actor=hq, data=group(world, member("guide1", kind=1), member("wmc1")))
    at = T0 + dt.timedelta(days=3)

    assert group_dismiss(actor=hq, chat_id="wrCHAT1", at=at) is True
    assert group_dismiss(actor=hq, chat_id="wrCHAT1", at=at) is False
    assert group_dismiss(actor=hq, chat_id="wrUNKNOWN") is False

    g = CustomerGroup.objects.get(chat_id="wrCHAT1")
    assert (g.status, g.dismissed_at, g.member_count) == (CustomerGroup.Status.DISMISSED, at, 0)
    assert list(GroupMember.objects.filter(group=g).values_list("left_at", flat=True)) == [at, at]
    assert timeline(world)[-1][:3] == ("group.left", c1.id, at)
    assert timeline(world)[-1][3]["reason"] == "dismissed"
    assert AuditLog.objects.filter(action="group.dismiss").count() == 1

    # Seen again in WeCom (a dismissal that never was): active again, everyone back.
    again = group_upsert(actor=hq, data=group(world, member("guide1", kind=1), member("wmc1")))
    assert (again.joined, CustomerGroup.objects.get(id=g.id).status) == (2, CustomerGroup.Status.ACTIVE)


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1"])
def test_only_hq_or_the_connector_writes_groups(world: World, persona: str) -> None:
    actor = world.actor(persona)
    with pytest.raises(PermissionDenied):
        group_upsert(actor=actor, data=group(world, member("wmc1")))
    with pytest.raises(PermissionDenied):
        group_dismiss(actor=actor, chat_id="wrCHAT1")
    assert not CustomerGroup.objects.exists()


def test_another_brands_guide_cannot_own_a_group(world: World) -> None:
    with pytest.raises(NotFound):
        group_upsert(actor=world.actor("hq"), data=group(world, member("wmc1"), owner="GB"))
    assert not CustomerGroup.objects.exists()


def test_bad_input_is_refused(world: World) -> None:
    hq = world.actor("hq")
    with pytest.raises(ValidationFailed):
        group_upsert(actor=hq, data=group(world, member("wmc1", kind=3)))
    with pytest.raises(ValidationFailed):
        group_upsert(actor=hq, data=group(world, member("wmc1"), chat_id=""))
    assert not CustomerGroup.objects.exists()
