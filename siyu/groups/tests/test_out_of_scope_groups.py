"""A store manager edits a group code HQ also put other stores' groups on (issue 5 follow-up).

HQ made store S1's code over four groups: S1's A, S2's X, S1's B, S2's Y (owners 导购1 and 导购2), X with its own
threshold and schedule. Store S1's manager sees the code and S1's groups only. When it edits the code (through the
API or the console form), S2's groups stay on it as they were, at their places, and the WeCom join way keeps
sending joiners to them; the manager's own groups fill the places its groups held, new ones go at the end.
The manager still cannot put a group outside its scope on the code.

WeCom is the emulator the test process shares (siyu.wecom.tests.emulated.world_wecom), as in the API matrix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from siyu.api.tests.conftest import ApiClient
from siyu.console.tests.conftest import login
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.groups import services
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot
from siyu.groups.selectors import group_code_slots_out_of_scope
from siyu.groups.services import (
    GroupCodeInput,
    GroupInput,
    GroupMemberInput,
    GroupSlotInput,
    group_code_create,
    group_code_update,
    group_upsert,
)
from siyu.testing import World
from siyu.wecom.models import WeComConnection
from siyu.wecom.tests.emulated import connect_world, world_corp, world_wecom

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
X_FROM, X_UNTIL = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, 2, 0, tzinfo=dt.UTC)


def open_chat(world: World, owner: str, name: str) -> CustomerGroup:
    """A chat `owner` opens in brand A's corp (a join way only takes chats WeCom has), mirrored as the sync would:
    the owner and three customers."""
    guide = world.guides[owner]
    connection = WeComConnection.objects.get(tenant_id=guide.tenant_id)
    admin = connection.api_base_url.removesuffix("cgi-bin/") + "emulator/simulate/chat/create"
    response = httpx.post(admin, json={"corp_id": connection.corp_id, "owner": guide.wecom_userid, "name": name},
                          timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    chat_id = response.json()["chat_id"]
    members = [GroupMemberInput(userid=guide.wecom_userid, member_type=1, join_time=T0)]
    members += [GroupMemberInput(userid=f"wm{chat_id}{i}", member_type=2, join_time=T0) for i in range(3)]
    data = GroupInput(chat_id=chat_id, name=name, owner_guide_id=guide.id, created_at=T0, members=members)
    return group_upsert(actor=Actor.system(guide.tenant_id), data=data).group


@dataclass(frozen=True)
class Shared:
    code: GroupCode
    groups: dict[str, CustomerGroup]  # A, B, C (S1's; C not on the code), X, Y (S2's), Z (S2's, not on the code)


@pytest.fixture
def shared(world: World) -> Shared:
    connect_world(world)
    groups = {key: open_chat(world, "G1" if key in "ABC" else "G2", f"{key}群") for key in "ABCXYZ"}
    data = GroupCodeInput(
        name="一店活码",
        state="shared-s1",
        store_id=world.stores["S1"].id,
        groups=[
            GroupSlotInput(groups["A"].id, threshold=150),
            GroupSlotInput(groups["X"].id, threshold=120, active_from=X_FROM, active_until=X_UNTIL),
            GroupSlotInput(groups["B"].id),
            GroupSlotInput(groups["Y"].id, threshold=90),
        ],
    )
    code = group_code_create(actor=world.actor("hq"), data=data)
    assert code.sync_error == ""
    return Shared(code=code, groups=groups)


def slots_of(code: GroupCode) -> list[tuple[str, int, int, dt.datetime | None, dt.datetime | None, bool]]:
    """What HQ sees of the code's groups: each one's name, position, threshold, schedule and how it came."""
    return [
        (s.group.name, s.position, s.threshold, s.active_from, s.active_until, s.auto_created)
        for s in GroupCodeSlot.objects.filter(code=code).select_related("group").order_by("position", "id")
    ]


def wecom_way(code: GroupCode) -> list[str]:
    code.refresh_from_db()
    with world_wecom().emulator.lock:
        return list(world_corp("a").join_ways[code.config_id].chat_id_list)


def edit_by_api(world: World, tokens: dict[str, str], code: GroupCode, groups: list[dict[str, Any]]) -> Any:
    body = {"name": code.name, "state": code.state, "store_id": world.stores["S1"].id, "groups": groups}
    return ApiClient(tokens["store1"]).call("PUT", f"/group-codes/{code.id}", body=body)


def edit_in_console(client: Client, world: World, code: GroupCode, groups: list[dict[str, Any]]) -> Any:
    login(client, "store1")
    form: dict[str, Any] = {
        "name": code.name, "state": code.state, "store": world.stores["S1"].id, "switch_mode": "threshold",
        "default_threshold": 180, "auto_create": "on", "room_base_name": code.room_base_name, "room_base_id": 1,
        "groups": [str(g["group_id"]) for g in groups],
    }  # fmt: skip
    for g in groups:
        form[f"threshold_{g['group_id']}"] = str(g.get("threshold", ""))
    return client.post(reverse("console:group_code_edit", args=[code.id]), form)


@pytest.mark.parametrize("via", ["api", "console"])
def test_a_store_manager_edits_its_groups_and_the_other_stores_groups_stay(
    world: World, shared: Shared, tokens: dict[str, str], client: Client, via: str
) -> None:
    g = shared.groups
    # The manager raises A's threshold, keeps B and adds S1's group C.
    wanted = [{"group_id": g["A"].id, "threshold": 160}, {"group_id": g["B"].id}, {"group_id": g["C"].id}]
    if via == "api":
        answer = edit_by_api(world, tokens, shared.code, wanted)
        assert answer.status == 200, answer.body
        # The manager's answer still names only its own groups.
        assert [s["name"] for s in answer.body["groups"]] == ["A群", "B群", "C群"]
        assert answer.body["way_chat_ids"] == [g["A"].chat_id, g["B"].chat_id, g["C"].chat_id]
    else:
        response = edit_in_console(client, world, shared.code, wanted)
        assert response.status_code == 302, response.content.decode()[:2000]
        detail = client.get(response["Location"]).content.decode()
        assert "A群" in detail
        assert "X群" not in detail
        assert "导购2" not in detail
        # The manager is told the code holds more than they see, on the detail page and the edit form.
        kept = "此活码另有 2 个群不在你的权限范围内"
        assert kept in detail
        assert kept in client.get(reverse("console:group_code_edit", args=[shared.code.id])).content.decode()
        login(client, "hq")
        assert "此活码另有" not in client.get(response["Location"]).content.decode()

    # HQ still sees S2's groups X and Y on the code, at their places and as HQ set them; C comes last.
    assert slots_of(shared.code) == [
        ("A群", 0, 160, None, None, False),
        ("X群", 1, 120, X_FROM, X_UNTIL, False),
        ("B群", 2, 180, None, None, False),
        ("Y群", 3, 90, None, None, False),
        ("C群", 4, 180, None, None, False),
    ]
    hq = ApiClient(tokens["hq"]).get(f"/group-codes/{shared.code.id}").body
    assert [s["name"] for s in hq["groups"]] == ["A群", "X群", "B群", "Y群", "C群"]
    # The join way (the first five groups with room) still sends joiners to S2's groups too.
    everything = [g[k].chat_id for k in "AXBYC"]
    assert wecom_way(shared.code) == everything
    assert shared.code.way_chat_ids == everything
    audit = AuditLog.objects.filter(action="group_code.update", target_id=str(shared.code.id)).get()
    assert audit.detail["groups"] == [g["A"].id, g["B"].id, g["C"].id]
    assert audit.detail["kept_out_of_scope"] == [g["X"].id, g["Y"].id]


def test_a_store_manager_cannot_put_a_group_outside_its_scope_on_the_code(
    world: World, shared: Shared, tokens: dict[str, str], client: Client
) -> None:
    g = shared.groups
    before = slots_of(shared.code)
    for other in ("Z", "X"):  # S2's group not on the code, and one that is
        answer = edit_by_api(world, tokens, shared.code, [{"group_id": g["A"].id}, {"group_id": g[other].id}])
        assert (answer.status, answer.body["field"]) == (404, "group_id"), other
        assert answer.body["detail"] == f"group {g[other].id} not found"
        assert slots_of(shared.code) == before
        assert wecom_way(shared.code) == [g[k].chat_id for k in "AXBY"]
    # The console offers only the manager's groups: a smuggled id of another store's group is not taken.
    response = edit_in_console(client, world, shared.code, [{"group_id": g["A"].id}, {"group_id": g["Z"].id}])
    assert response.status_code == 302
    assert slots_of(shared.code) == [
        ("A群", 0, 180, None, None, False),
        ("X群", 1, 120, X_FROM, X_UNTIL, False),
        ("Y群", 2, 90, None, None, False),
    ]
    assert wecom_way(shared.code) == [g[k].chat_id for k in "AXY"]


def update(world: World, persona: str, code: GroupCode, slots: list[GroupSlotInput], **extra: Any) -> GroupCode:
    store_id = world.stores["S1"].id
    data = GroupCodeInput(name=code.name, state=code.state, store_id=store_id, groups=slots, **extra)
    return group_code_update(actor=world.actor(persona), code_id=code.id, data=data)


def names(code: GroupCode) -> list[str]:
    return [name for name, *_ in slots_of(code)]


def test_the_managers_groups_fill_its_own_places_in_the_order_given(world: World, shared: Shared) -> None:
    g = shared.groups
    # Swapped: B takes A's place and A B's; X and Y do not move.
    update(world, "store1", shared.code, [GroupSlotInput(g["B"].id), GroupSlotInput(g["A"].id)])
    assert names(shared.code) == ["B群", "X群", "A群", "Y群"]
    # A taken off: B keeps the first place, the places after close up.
    update(world, "store1", shared.code, [GroupSlotInput(g["B"].id)])
    assert names(shared.code) == ["B群", "X群", "Y群"]
    assert wecom_way(shared.code) == [g[k].chat_id for k in "BXY"]
    # The region sees every group of the code: its list replaces them all, as HQ's does.
    update(world, "region1", shared.code, [GroupSlotInput(g["Y"].id), GroupSlotInput(g["A"].id)])
    assert names(shared.code) == ["Y群", "A群"]
    assert wecom_way(shared.code) == [g["Y"].chat_id, g["A"].chat_id]


def test_groups_wecom_opened_stay_after_the_configured_ones(world: World, shared: Shared) -> None:
    g = shared.groups
    z = GroupCodeSlot.objects.create(tenant_id=shared.code.tenant_id, code=shared.code, group=g["Z"], position=4,
                                     auto_created=True, added_at=T0)  # fmt: skip
    update(
        world, "store1", shared.code, [GroupSlotInput(g["A"].id), GroupSlotInput(g["B"].id), GroupSlotInput(g["C"].id)]
    )
    assert names(shared.code) == ["A群", "X群", "B群", "Y群", "C群", "Z群"]
    z.refresh_from_db()
    assert (z.position, z.auto_created, z.threshold) == (5, True, 180)


def test_a_hidden_groups_schedule_counts_for_schedule_mode(world: World, shared: Shared) -> None:
    g = shared.groups
    # X (S2's) carries the code's only schedule: the manager may switch to schedule mode without one of its own.
    code = update(world, "store1", shared.code, [GroupSlotInput(g["A"].id)], switch_mode="schedule")
    assert code.switch_mode == GroupCode.SwitchMode.SCHEDULE
    assert slots_of(code)[1] == ("X群", 1, 120, X_FROM, X_UNTIL, False)


def test_the_code_size_limit_counts_the_kept_groups(
    world: World, shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = shared.groups
    monkeypatch.setattr(services, "MAX_CODE_GROUPS", 4)
    before = slots_of(shared.code)
    mine = [GroupSlotInput(g[k].id) for k in "ABC"]
    with pytest.raises(ValidationFailed) as refused:
        update(world, "store1", shared.code, mine)
    assert refused.value.field == "group_ids"
    assert refused.value.message == "a code takes at most 4 groups (2 of them outside your scope are kept)"
    assert slots_of(shared.code) == before


def test_out_of_scope_slots_per_persona(world: World, shared: Shared) -> None:
    g = shared.groups

    def hidden(persona: str) -> list[int]:
        return [s.group_id for s in group_code_slots_out_of_scope(actor=world.actor(persona), code=shared.code)]

    assert hidden("hq") == hidden("region1") == []
    assert hidden("store1") == [g["X"].id, g["Y"].id]
    with pytest.raises(NotFound):
        update(world, "store1", shared.code, [GroupSlotInput(g["X"].id)])
