"""Cursors and page limits: every list pages through exactly all rows (no duplicates, no gaps)."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.emulator import ids
from siyu.emulator.model import ExternalContact, Follow, Member
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.tests.conftest import ANCHOR, Running, StartEmulator, WeComClient, follow_pairs


def page_batch(client: WeComClient, userids: list[str], limit: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    pages = 0
    while True:
        body: dict[str, Any] = {"userid_list": userids, "cursor": cursor}
        if limit is not None:
            body["limit"] = limit
        data = client.post("externalcontact/batch/get_by_user", body)
        assert data["errcode"] == 0, data
        expected_size = min(limit or 50, 100)
        assert len(data["external_contact_list"]) <= expected_size
        rows += data["external_contact_list"]
        pages += 1
        cursor = data["next_cursor"]
        if not cursor:
            return rows
        # A page with a next_cursor is always full.
        assert len(data["external_contact_list"]) == expected_size


@pytest.mark.parametrize("limit", [None, 1, 7, 100, 1000])
def test_batch_get_by_user_returns_every_follow_exactly_once(emulator: Running, limit: int | None) -> None:
    client = emulator.client
    followers = client.get("externalcontact/get_follow_user_list")["follow_user"]
    rows = page_batch(client, followers, limit)
    pairs = [(r["follow_info"]["userid"], r["external_contact"]["external_userid"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == follow_pairs(emulator.corp)


def test_batch_get_by_user_row_content(emulator: Running) -> None:
    truth = emulator.corp
    customer = next(c for c in truth.contacts.values() if len(c.follows) == 2)
    follow = next(iter(customer.follows.values()))
    rows = page_batch(emulator.client, [follow.userid], 100)
    row = next(r for r in rows if r["external_contact"]["external_userid"] == customer.external_userid)
    assert row["external_contact"]["name"] == customer.name
    assert row["follow_info"]["tag_id"] == follow.tag_ids
    assert row["follow_info"]["createtime"] == follow.createtime
    assert row["follow_info"].get("state", "") == follow.state
    assert row["follow_info"]["add_way"] == follow.add_way


def test_batch_get_by_user_limits_and_cursor_errors(emulator: Running) -> None:
    client = emulator.client
    followers = client.get("externalcontact/get_follow_user_list")["follow_user"]
    assert client.post("externalcontact/batch/get_by_user", {"userid_list": []})["errcode"] == 40063
    too_many = [followers[0]] * 101
    assert client.post("externalcontact/batch/get_by_user", {"userid_list": too_many})["errcode"] == 40058
    assert client.post("externalcontact/batch/get_by_user", {"userid_list": ["nobody"]})["errcode"] == 40003
    assert client.post("externalcontact/batch/get_by_user", {"userid_list": ["hq_admin"]})["errcode"] == 610004
    forged = client.post("externalcontact/batch/get_by_user", {"userid_list": followers, "cursor": "abc.def"})
    assert forged["errcode"] == 50100
    first = client.post("externalcontact/batch/get_by_user", {"userid_list": followers, "limit": 5})
    # A cursor belongs to its query: reusing it with another member list is a client bug.
    other = client.post(
        "externalcontact/batch/get_by_user", {"userid_list": followers[:1], "cursor": first["next_cursor"]}
    )
    assert other["errcode"] == 50100


def test_paging_survives_changes_between_pages(emulator: Running) -> None:
    """Rows present throughout come exactly once even when follows are added and removed mid-way."""
    client = emulator.client
    followers = client.get("externalcontact/get_follow_user_list")["follow_user"]
    first = client.post("externalcontact/batch/get_by_user", {"userid_list": followers, "limit": 40})
    seen = [
        (r["follow_info"]["userid"], r["external_contact"]["external_userid"]) for r in first["external_contact_list"]
    ]
    truth = follow_pairs(emulator.corp)
    removed_early = seen[3]  # already returned
    removed_late = sorted(truth - set(seen))[0]  # not yet returned
    for userid, external_userid in (removed_early, removed_late):
        client.admin("simulate/del_contact", {"userid": userid, "external_userid": external_userid, "by": "member"})
    added = client.admin("simulate/add_contact", {"userid": followers[0]})
    cursor = first["next_cursor"]
    while cursor:
        page = client.post(
            "externalcontact/batch/get_by_user", {"userid_list": followers, "limit": 40, "cursor": cursor}
        )
        seen += [
            (r["follow_info"]["userid"], r["external_contact"]["external_userid"])
            for r in page["external_contact_list"]
        ]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert set(seen) - {(followers[0], added["external_userid"])} == truth - {removed_late}


def test_list_returns_each_members_customers(emulator: Running) -> None:
    client = emulator.client
    truth = emulator.corp
    for userid in client.get("externalcontact/get_follow_user_list")["follow_user"]:
        expected = {c.external_userid for c in truth.contacts.values() if userid in c.follows}
        data = client.get("externalcontact/list", userid=userid)
        if expected:
            assert set(data["external_userid"]) == expected
            assert len(data["external_userid"]) == len(expected)
        else:
            assert data["errcode"] == 84061
    assert client.get("externalcontact/list", userid="nobody")["errcode"] == 40003
    assert client.get("externalcontact/list", userid="hq_admin")["errcode"] == 610004
    assert client.get("externalcontact/list")["errcode"] == 41009


def test_get_follow_user_list_is_the_customer_contact_range(emulator: Running) -> None:
    data = emulator.client.get("externalcontact/get_follow_user_list")
    expected = [m.userid for m in emulator.corp.members.values() if m.customer_contact]
    assert data["follow_user"] == expected
    assert "hq_admin" not in data["follow_user"]


def test_get_pages_followers_beyond_500(start_emulator: StartEmulator) -> None:
    corp = build_corp(SeedSpec(seed=9, corp_id="wwtest0000000009", anchor=ANCHOR, customers=3, group_chats=0))
    popular = ExternalContact(ids.external_userid(corp.corp_id, 999_999), "网红客户")
    corp.contacts[popular.external_userid] = popular
    for n in range(1201):
        userid = f"extra{n:04d}"
        corp.members[userid] = Member(userid, f"导购{n}", [1], 1)
        corp.follow_add(popular, Follow(userid=userid, createtime=ANCHOR + n, seq=corp.next_seq()))
    running = start_emulator(corps=[corp])
    client = running.client
    seen: list[str] = []
    sizes = []
    cursor = ""
    while True:
        params = {"external_userid": popular.external_userid}
        if cursor:
            params["cursor"] = cursor
        data = client.get("externalcontact/get", **params)
        assert data["errcode"] == 0, data
        assert data["external_contact"]["name"] == "网红客户"
        sizes.append(len(data["follow_user"]))
        seen += [f["userid"] for f in data["follow_user"]]
        cursor = data.get("next_cursor", "")
        if not cursor:
            break
    assert sizes == [500, 500, 201]
    assert seen == [f"extra{n:04d}" for n in range(1201)]


def test_get_errors(emulator: Running) -> None:
    client = emulator.client
    assert client.get("externalcontact/get", external_userid="wmnosuchcontact")["errcode"] == 40096
    assert client.get("externalcontact/get")["errcode"] == 41035
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 1)
    assert client.get("externalcontact/get", external_userid=customer.external_userid, cursor="x.y")["errcode"] == 50100


def test_groupchat_list_pages_and_filters(start_emulator: StartEmulator) -> None:
    running = start_emulator(groupchat_scan_limit=1000)
    client = running.client
    truth = running.corp
    seen: list[str] = []
    cursor = ""
    while True:
        data = client.post("externalcontact/groupchat/list", {"limit": 3, "cursor": cursor})
        assert data["errcode"] == 0, data
        assert len(data["group_chat_list"]) <= 3
        seen += [c["chat_id"] for c in data["group_chat_list"]]
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert set(seen) == set(truth.group_chats)

    owner = next(iter(truth.group_chats.values())).owner
    owned = client.post("externalcontact/groupchat/list", {"limit": 1000, "owner_filter": {"userid_list": [owner]}})
    assert {c["chat_id"] for c in owned["group_chat_list"]} == {
        c.chat_id for c in truth.group_chats.values() if c.owner == owner
    }
    assert client.post("externalcontact/groupchat/list", {})["errcode"] == 40063
    assert client.post("externalcontact/groupchat/list", {"limit": 1001})["errcode"] == 40058
    too_many = {"limit": 10, "owner_filter": {"userid_list": [owner] * 101}}
    assert client.post("externalcontact/groupchat/list", too_many)["errcode"] == 40058


def test_groupchat_list_without_owner_filter_refuses_large_ranges(start_emulator: StartEmulator) -> None:
    running = start_emulator(groupchat_scan_limit=10)
    client = running.client
    assert client.post("externalcontact/groupchat/list", {"limit": 10})["errcode"] == 81017
    owner = next(iter(running.corp.group_chats.values())).owner
    filtered = client.post("externalcontact/groupchat/list", {"limit": 10, "owner_filter": {"userid_list": [owner]}})
    assert filtered["errcode"] == 0


def test_groupchat_get(emulator: Running) -> None:
    chat = next(iter(emulator.corp.group_chats.values()))
    data = emulator.client.post("externalcontact/groupchat/get", {"chat_id": chat.chat_id, "need_name": 1})
    assert data["errcode"] == 0
    group = data["group_chat"]
    assert group["owner"] == chat.owner
    assert [m["userid"] for m in group["member_list"]] == [m.userid for m in chat.member_list]
    assert [m["name"] for m in group["member_list"]] == [m.name for m in chat.member_list]
    assert {m["type"] for m in group["member_list"]} <= {1, 2}
    assert len(group["member_version"]) == 32
    without_names = emulator.client.post("externalcontact/groupchat/get", {"chat_id": chat.chat_id})
    assert all("name" not in m for m in without_names["group_chat"]["member_list"])
    assert emulator.client.post("externalcontact/groupchat/get", {"chat_id": "wrnosuchchat"})["errcode"] == 40050


def test_user_list_id_pages_every_member_department(emulator: Running) -> None:
    client = emulator.client
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        data = client.post("user/list_id", {"limit": 4, "cursor": cursor})
        assert data["errcode"] == 0
        rows += data["dept_user"]
        cursor = data["next_cursor"]
        if not cursor:
            break
    expected = [{"userid": m.userid, "department": d} for m in emulator.corp.members.values() for d in m.department]
    assert rows == expected
    assert client.post("user/list_id", {"limit": 10001})["errcode"] == 40058


def test_departments_and_members(emulator: Running) -> None:
    client = emulator.client
    truth = emulator.corp
    departments = client.get("department/list")["department"]
    assert {d["id"] for d in departments} == set(truth.departments)
    region = next(d for d in departments if d["parentid"] == 1)
    subtree = client.get("department/list", id=region["id"])["department"]
    assert {d["id"] for d in subtree} == {region["id"]} | {
        d.id for d in truth.departments.values() if d.parentid == region["id"]
    }
    assert client.get("department/list", id=999)["errcode"] == 60003
    everyone = client.get("user/simplelist", department_id=1, fetch_child=1)["userlist"]
    assert {u["userid"] for u in everyone} == set(truth.members)
    detail = client.get("user/list", department_id=1)["userlist"]
    assert {u["userid"] for u in detail} == {"hq_admin", "brand_ip"}
    assert client.get("user/get", userid="brand_ip")["position"] == "品牌IP号"
    assert client.get("user/get", userid="nobody")["errcode"] == 60111
