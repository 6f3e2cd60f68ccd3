"""change_external_chat callbacks: what people do to customer groups in WeCom shows up in siyu.

End to end with the emulator: a simulated action in the emulator (create, join, leave, rename, dismiss) produces
the event WeCom would push; the event goes signed through siyu's real callback endpoint into the raw store, and
processing reads the group from the emulator (groupchat/get over HTTP) and mirrors it through the groups services.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from siyu.analytics.models import Event
from siyu.core.models import AuditLog, Guide
from siyu.customers.models import Identity
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.wecom.models import RawCallback
from siyu.wecom.services import raw_callback_process
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, db_state, expected_state
from siyu.wecom.tests.support import signed_post


def act(brand: Brand, action: str, body: dict[str, Any]) -> list[RawCallback]:
    """Do `action` in the emulator a minute after the last one, and deliver its events to siyu's endpoint."""
    brand.admin("clock", {"advance": 60})
    result = brand.admin(f"simulate/{action}", body)
    first = min(result["deliveries"])
    deliveries = {d["id"]: d for d in brand.admin(f"callbacks?after={first - 1}")["deliveries"]}
    rows = []
    corp_id = brand.connection.corp_id
    for delivery_id in result["deliveries"]:
        response = signed_post(deliveries[delivery_id]["xml"], key=corp_id, corp_id=corp_id).send()
        assert response.status_code == 200
        rows.append(RawCallback.objects.filter(tenant=brand.tenant).latest("id"))
    return rows


def process(brand: Brand, row: RawCallback) -> RawCallback:
    result = raw_callback_process(raw_callback_id=row.id, client_factory=brand.client)
    assert result is not None
    return result


def at(row: RawCallback) -> dt.datetime:
    assert row.created_at is not None
    return row.created_at


def group_events(brand: Brand, chat_id: str) -> list[tuple[str, str, dt.datetime, dict[str, Any]]]:
    ext_of = dict(
        Identity.objects.filter(tenant=brand.tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID).values_list(
            "customer_id", "value"
        )
    )
    rows = Event.objects.filter(tenant=brand.tenant, type__in=("group.joined", "group.left")).order_by("id")
    return [
        (e.type, ext_of[e.customer_id], e.occurred_at, {k: v for k, v in e.properties.items() if k != "group_id"})
        for e in rows
        if e.properties["chat_id"] == chat_id
    ]


@pytest.fixture
def synced(brand: Brand) -> Brand:
    """The brand with the corp's members and customers (but no groups) synced."""
    options = SyncOptions(client_factory=brand.client, phases=["members", "contacts"])
    sync_run(tenant_id=brand.tenant.id, options=options)
    return brand


def owner_and_customers(brand: Brand, count: int) -> tuple[str, list[str]]:
    with brand.server.emulator.lock:
        corp = brand.corp
        owner = next(u for u in sorted(corp.members) if u.startswith("guide") and len(corp.customers_of(u)) >= count)
        return owner, list(corp.customers_of(owner))[:count]


def test_a_new_group_arrives_with_its_members(synced: Brand) -> None:
    brand = synced
    owner, (c1, c2) = owner_and_customers(brand, 2)
    (row,) = act(brand, "chat/create", {"owner": owner, "name": "VIP福利群", "members": [c1, c2, "brand_ip"]})

    row = process(brand, row)

    assert (row.event_type, row.change_type, row.status, row.error) == (
        "change_external_chat",
        "create",
        RawCallback.Status.PROCESSED,
        "new group",
    )
    group = CustomerGroup.objects.get(tenant=brand.tenant)
    assert (group.name, group.owner.wecom_userid, group.status, group.member_count, group.created_at) == (
        "VIP福利群",
        owner,
        CustomerGroup.Status.ACTIVE,
        4,
        at(row),
    )
    members = {m.userid: m for m in GroupMember.objects.filter(group=group)}
    assert set(members) == {owner, c1, c2, "brand_ip"}
    assert members["brand_ip"].guide == Guide.objects.get(tenant=brand.tenant, wecom_userid="brand_ip")
    assert members[c1].customer == Identity.objects.get(tenant=brand.tenant, value=c1).customer
    assert (members[c1].member_type, members[c1].invitor, members[c1].join_scene) == (2, owner, 1)
    assert group_events(brand, group.chat_id) == [
        ("group.joined", c1, at(row), {"group": "VIP福利群", "chat_id": group.chat_id, "join_scene": 1}),
        ("group.joined", c2, at(row), {"group": "VIP福利群", "chat_id": group.chat_id, "join_scene": 1}),
    ]
    assert AuditLog.objects.filter(action="group.create", target_id=str(group.id)).count() == 1


def test_joins_leaves_and_rejoins_follow_the_member_list(synced: Brand) -> None:
    brand = synced
    owner, (c1, c2, c3) = owner_and_customers(brand, 3)
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "新品试用群", "members": [c1, c2]})
    process(brand, create)
    chat_id = create.event["ChatId"]

    (join,) = act(brand, "chat/join", {"chat_id": chat_id, "members": [c3], "join_scene": 3})
    assert process(brand, join).error == "1 joined, 0 left"
    (leave,) = act(brand, "chat/leave", {"chat_id": chat_id, "members": [c1], "quit_scene": 1})
    assert process(brand, leave).error == "0 joined, 1 left"
    (back,) = act(brand, "chat/join", {"chat_id": chat_id, "members": [c1], "join_scene": 0})
    assert process(brand, back).error == "1 joined, 0 left"

    group = CustomerGroup.objects.get(tenant=brand.tenant, chat_id=chat_id)
    props = {"group": "新品试用群", "chat_id": chat_id}
    assert group_events(brand, chat_id) == [
        ("group.joined", c1, at(create), {**props, "join_scene": 1}),
        ("group.joined", c2, at(create), {**props, "join_scene": 1}),
        ("group.joined", c3, at(join), {**props, "join_scene": 3}),
        ("group.left", c1, at(leave), {**props, "reason": "left"}),
        ("group.joined", c1, at(back), {**props, "join_scene": 1}),  # invited back by the owner
    ]
    assert group.member_count == 4
    assert GroupMember.objects.filter(group=group).count() == 4  # the re-join reuses the row
    assert GroupMember.objects.get(group=group, userid=c1).left_at is None
    with brand.server.emulator.lock:
        assert db_state(brand.tenant)["groups"][chat_id] == expected_state(brand.corp)["groups"][chat_id]


def test_late_repeated_or_out_of_order_events_converge_on_wecoms_state(synced: Brand) -> None:
    brand = synced
    owner, (c1, c2, c3) = owner_and_customers(brand, 3)
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "群", "members": [c1]})
    chat_id = create.event["ChatId"]
    (join,) = act(brand, "chat/join", {"chat_id": chat_id, "members": [c2, c3]})
    (leave,) = act(brand, "chat/leave", {"chat_id": chat_id, "members": [c3]})

    # Processed backwards: each reads the group as it is now, so the first one already brings it up to date.
    assert process(brand, leave).error == "new group"
    assert process(brand, join).error == "unchanged"
    assert process(brand, create).error == "unchanged"
    again = raw_callback_process(raw_callback_id=join.id, client_factory=brand.client)
    assert again is not None
    assert again.attempts == 1  # done is done: a second run of the job does nothing

    with brand.server.emulator.lock:
        assert db_state(brand.tenant)["groups"][chat_id] == expected_state(brand.corp)["groups"][chat_id]
    # c3 came and went before siyu looked: its visit is not invented after the fact.
    assert sorted((t, c) for t, c, _, _ in group_events(brand, chat_id)) == [
        ("group.joined", c1),
        ("group.joined", c2),
    ]


def test_name_notice_and_owner_changes(synced: Brand) -> None:
    brand = synced
    owner, (c1,) = owner_and_customers(brand, 1)
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "老名字", "members": [c1]})
    process(brand, create)
    chat_id = create.event["ChatId"]
    new_owner = next(u for u in sorted(brand.corp.members) if u.startswith("guide") and u != owner)

    rows = act(brand, "chat/update", {"chat_id": chat_id, "name": "新名字", "notice": "每周五上新", "owner": new_owner})

    assert [r.event["UpdateDetail"] for r in rows] == ["change_owner", "change_name", "change_notice"]
    assert [process(brand, r).error for r in rows] == ["", "unchanged", "unchanged"]
    group = CustomerGroup.objects.get(tenant=brand.tenant, chat_id=chat_id)
    assert (group.name, group.notice, group.owner.wecom_userid) == ("新名字", "每周五上新", new_owner)
    detail = AuditLog.objects.filter(action="group.update", target_id=str(group.id)).get().detail
    assert sorted(detail["fields"]) == ["name", "notice", "owner_id"]


def test_a_dismissed_group_lets_everyone_go_and_ignores_late_updates(synced: Brand) -> None:
    brand = synced
    owner, (c1, c2) = owner_and_customers(brand, 2)
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "临时群", "members": [c1, c2]})
    process(brand, create)
    chat_id = create.event["ChatId"]
    (rename,) = act(brand, "chat/update", {"chat_id": chat_id, "name": "改名"})
    (dismiss,) = act(brand, "chat/dismiss", {"chat_id": chat_id})

    assert (process(brand, dismiss).status, dismiss.change_type) == (RawCallback.Status.PROCESSED, "dismiss")
    late = process(brand, rename)  # groupchat/get: the chat is gone

    assert late.status == RawCallback.Status.IGNORED
    assert late.error == "the group is no longer in WeCom (dismissed since)"
    group = CustomerGroup.objects.get(tenant=brand.tenant, chat_id=chat_id)
    assert (group.status, group.dismissed_at, group.member_count, group.name) == (
        CustomerGroup.Status.DISMISSED,
        at(dismiss),
        0,
        "临时群",
    )
    assert not GroupMember.objects.filter(group=group, left_at__isnull=True).exists()
    left = [(c, when, p["reason"]) for t, c, when, p in group_events(brand, chat_id) if t == "group.left"]
    assert left == [(c1, at(dismiss), "dismissed"), (c2, at(dismiss), "dismissed")]


def test_a_stranger_in_a_group_gets_the_join_on_their_timeline_once_they_add_a_guide(brand: Brand) -> None:
    sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client, phases=["members"]))
    owner, _ = owner_and_customers(brand, 1)
    (add,) = act(brand, "add_contact", {"userid": owner, "name": "新朋友"})
    stranger = add.event["ExternalUserID"]
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "欢迎群", "members": [stranger]})

    process(brand, create)  # before siyu knows the customer: a member row without a customer, no event
    member = GroupMember.objects.get(tenant=brand.tenant, userid=stranger)
    assert member.customer_id is None
    assert group_events(brand, create.event["ChatId"]) == []

    process(brand, add)

    member.refresh_from_db()
    assert member.customer == Identity.objects.get(tenant=brand.tenant, value=stranger).customer
    assert [(t, c) for t, c, _, _ in group_events(brand, create.event["ChatId"])] == [("group.joined", stranger)]


def test_group_events_survive_a_flaky_wecom(synced: Brand) -> None:
    brand = synced
    owner, (c1,) = owner_and_customers(brand, 1)
    (create,) = act(brand, "chat/create", {"owner": owner, "name": "稳定群", "members": [c1]})
    brand.admin("faults", {"seed": 3, "rate_http_5xx": 0.4, "rate_truncate": 0.3, "rate_errcode_45009": 0.2})

    row = process(brand, create)

    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "new group")
    assert sum(brand.admin("faults")["injected"][k] for k in ("http_5xx", "truncate", "errcode_45009")) >= 1
