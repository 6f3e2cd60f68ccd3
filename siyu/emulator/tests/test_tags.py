"""Corp tags: list/add/edit/del limits and errors, and mark_tag on customers."""

from __future__ import annotations

from typing import Any

from siyu.emulator.tests.conftest import Running, WeComClient


def all_tags(client: WeComClient) -> dict[str, tuple[str, str]]:
    """tag id → (group name, tag name) of every live tag."""
    groups = client.post("externalcontact/get_corp_tag_list", {})["tag_group"]
    return {t["id"]: (g["group_name"], t["name"]) for g in groups for t in g["tag"]}


def test_list_matches_the_seeded_tags_in_order(emulator: Running) -> None:
    data = emulator.client.post("externalcontact/get_corp_tag_list", {})
    assert data["errcode"] == 0
    groups = data["tag_group"]
    expected = sorted(emulator.corp.tag_groups.values(), key=lambda g: -g.order)
    assert [g["group_name"] for g in groups] == [g.group_name for g in expected]
    first = groups[0]
    assert [t["name"] for t in first["tag"]] == [t.name for t in sorted(expected[0].tags, key=lambda t: -t.order)]
    # `deleted` only appears when querying by id.
    assert "deleted" not in first
    assert all("deleted" not in t for t in first["tag"])


def test_add_edit_delete_round_trip(emulator: Running) -> None:
    client = emulator.client
    added = client.post(
        "externalcontact/add_corp_tag",
        {"group_name": "到店频次", "order": 7, "tag": [{"name": "每周"}, {"name": "每月", "order": 3}]},
    )
    assert added["errcode"] == 0, added
    group = added["tag_group"]
    assert group["group_name"] == "到店频次"
    assert group["order"] == 7
    assert [t["name"] for t in group["tag"]] == ["每月", "每周"]  # larger order first
    weekly = next(t["id"] for t in group["tag"] if t["name"] == "每周")

    # Naming an existing group adds the tags to it; the response lists only the new ones.
    more = client.post("externalcontact/add_corp_tag", {"group_name": "到店频次", "tag": [{"name": "每年"}]})
    assert more["tag_group"]["group_id"] == group["group_id"]
    assert [t["name"] for t in more["tag_group"]["tag"]] == ["每年"]

    assert client.post("externalcontact/edit_corp_tag", {"id": weekly, "name": "每周两次"})["errcode"] == 0
    assert all_tags(client)[weekly] == ("到店频次", "每周两次")
    assert client.post("externalcontact/edit_corp_tag", {"id": group["group_id"], "name": "频次"})["errcode"] == 0
    assert all_tags(client)[weekly] == ("频次", "每周两次")

    assert client.post("externalcontact/del_corp_tag", {"tag_id": [weekly]})["errcode"] == 0
    assert weekly not in all_tags(client)
    by_id = client.post("externalcontact/get_corp_tag_list", {"tag_id": [weekly]})["tag_group"]
    assert by_id[0]["tag"] == [
        {
            "id": weekly,
            "name": "每周两次",
            "create_time": by_id[0]["tag"][0]["create_time"],
            "order": 0,
            "deleted": True,
        }
    ]

    # Deleting the last tags of a group deletes the group.
    remaining = [t for t, (g, _) in all_tags(client).items() if g == "频次"]
    assert client.post("externalcontact/del_corp_tag", {"tag_id": remaining})["errcode"] == 0
    by_group = client.post("externalcontact/get_corp_tag_list", {"group_id": [group["group_id"]]})["tag_group"]
    assert by_group[0]["deleted"] is True
    assert group["group_id"] not in {
        g["group_id"] for g in client.post("externalcontact/get_corp_tag_list", {})["tag_group"]
    }


def test_tag_errors(emulator: Running) -> None:
    client = emulator.client
    existing_group = next(iter(emulator.corp.tag_groups.values()))
    existing_tag = existing_group.tags[0]

    def add(body: dict[str, Any]) -> int:
        return int(client.post("externalcontact/add_corp_tag", body)["errcode"])

    assert add({"group_name": "x" * 31, "tag": [{"name": "ok"}]}) == 40058
    assert add({"group_name": "长度", "tag": [{"name": "标" * 31}]}) == 40058
    assert add({"group_name": "长度", "tag": [{"name": "标" * 30}]}) == 0
    assert add({"group_name": "空", "tag": []}) == 40063
    assert add({"group_name": "空", "tag": [{"name": ""}]}) == 40063
    assert add({"tag": [{"name": "无组"}]}) == 40063
    assert add({"group_id": "etnosuchgroup", "tag": [{"name": "a"}]}) == 40068
    assert add({"group_id": existing_group.group_id, "tag": [{"name": existing_tag.name}]}) == 40071
    assert add({"group_name": "重复", "tag": [{"name": "a"}, {"name": "a"}]}) == 40071

    assert client.post("externalcontact/edit_corp_tag", {"id": "etnosuchtag", "name": "x"})["errcode"] == 40068
    assert client.post("externalcontact/edit_corp_tag", {"id": existing_tag.id, "name": "y" * 31})["errcode"] == 40058
    sibling = existing_group.tags[1].name
    assert client.post("externalcontact/edit_corp_tag", {"id": existing_tag.id, "name": sibling})["errcode"] == 40071
    assert client.post("externalcontact/edit_corp_tag", {"id": existing_tag.id, "order": -1})["errcode"] == 40058
    assert client.post("externalcontact/del_corp_tag", {})["errcode"] == 40063
    assert client.post("externalcontact/del_corp_tag", {"tag_id": ["etnosuchtag"]})["errcode"] == 40068


def test_a_corp_holds_at_most_3000_tags(emulator: Running) -> None:
    client = emulator.client
    count = len(all_tags(client))
    group = 0
    while count < 3000:
        batch = min(100, 3000 - count)
        body = {"group_name": f"批量{group}", "tag": [{"name": f"t{i}"} for i in range(batch)]}
        assert client.post("externalcontact/add_corp_tag", body)["errcode"] == 0
        count += batch
        group += 1
    assert len(all_tags(client)) == 3000
    over = client.post("externalcontact/add_corp_tag", {"group_name": "再来", "tag": [{"name": "一个"}]})
    assert over["errcode"] == 40126
    # Deleting one frees room for one.
    victim = next(iter(all_tags(client)))
    client.post("externalcontact/del_corp_tag", {"tag_id": [victim]})
    assert (
        client.post("externalcontact/add_corp_tag", {"group_name": "再来", "tag": [{"name": "一个"}]})["errcode"] == 0
    )


def test_mark_tag_changes_the_customers_tags(emulator: Running) -> None:
    client = emulator.client
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 1)
    follow = next(iter(customer.follows.values()))
    tags = all_tags(client)
    new_tag = next(t for t in tags if t not in follow.tag_ids)
    body = {"userid": follow.userid, "external_userid": customer.external_userid}

    assert (
        client.post("externalcontact/mark_tag", {**body, "add_tag": [new_tag], "remove_tag": follow.tag_ids[:1]})[
            "errcode"
        ]
        == 0
    )
    got = client.get("externalcontact/get", external_userid=customer.external_userid)["follow_user"][0]["tags"]
    expected = [*follow.tag_ids[1:], new_tag]
    assert [t["tag_id"] for t in got] == expected
    assert got[-1] == {"group_name": tags[new_tag][0], "tag_name": tags[new_tag][1], "tag_id": new_tag, "type": 1}

    # A deleted tag disappears from the customers that carried it.
    client.post("externalcontact/del_corp_tag", {"tag_id": [new_tag]})
    got = client.get("externalcontact/get", external_userid=customer.external_userid)["follow_user"][0]["tags"]
    assert [t["tag_id"] for t in got] == follow.tag_ids[1:]

    assert client.post("externalcontact/mark_tag", body)["errcode"] == 40063
    assert client.post("externalcontact/mark_tag", {**body, "add_tag": ["etnosuchtag"]})["errcode"] == 40068
    stranger = next(
        u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u not in customer.follows
    )
    not_related = {"userid": stranger, "external_userid": customer.external_userid, "add_tag": follow.tag_ids[:1]}
    answer = client.post("externalcontact/mark_tag", not_related)
    assert answer["errcode"] == 84061
    assert answer["external_userid"] == []


def test_remark(emulator: Running) -> None:
    client = emulator.client
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 1)
    userid = next(iter(customer.follows))
    body = {"userid": userid, "external_userid": customer.external_userid}
    ok = client.post(
        "externalcontact/remark",
        {**body, "remark": "老客户", "description": "喜欢香氛", "remark_mobiles": ["13800000000"]},
    )
    assert ok["errcode"] == 0
    follow = client.get("externalcontact/get", external_userid=customer.external_userid)["follow_user"][0]
    assert (follow["remark"], follow["description"], follow["remark_mobiles"]) == (
        "老客户",
        "喜欢香氛",
        ["13800000000"],
    )
    # A rejected call changes nothing, including the fields that were valid.
    assert client.post("externalcontact/remark", {**body, "remark": "新", "description": "d" * 151})["errcode"] == 40058
    assert client.post("externalcontact/remark", {**body, "remark": "r" * 21})["errcode"] == 40058
    again = client.get("externalcontact/get", external_userid=customer.external_userid)["follow_user"][0]
    assert again["remark"] == "老客户"
    # API changes never fire callbacks.
    assert client.admin("callbacks")["deliveries"] == []
