"""The client's acquisition calls — 「联系我」 contact ways, welcome messages, 「加入群聊」 join ways — against the
emulator over HTTP: what siyu sends is what WeCom accepts, and WeCom's refusals come back as errors."""

from __future__ import annotations

import pytest

from siyu.wecom.errors import WeComAPIError
from siyu.wecom.tests.emulated import Brand


def _members(brand: Brand, count: int) -> list[str]:
    return sorted(m.userid for m in brand.corp.members.values() if m.customer_contact)[:count]


def test_a_contact_way_is_created_read_listed_updated_and_deleted(brand: Brand) -> None:
    client = brand.client(brand.connection)
    one, two = _members(brand, 2)
    created = client.contact_way_add(users=[one], state="ch_poster_1", remark="海报")
    assert created.config_id
    assert created.qr_code.endswith(".svg")
    way = client.contact_way_get(created.config_id)
    assert (way["type"], way["state"], way["user"], way["remark"]) == (1, "ch_poster_1", [one], "海报")

    several = client.contact_way_add(users=[one, two], state="ch_store_2")
    assert client.contact_way_get(several.config_id)["type"] == 2
    listed = client.contact_way_list_page()
    assert {created.config_id, several.config_id} <= set(listed.config_ids)

    client.contact_way_update(several.config_id, users=[two], state="ch_store_3")
    way = client.contact_way_get(several.config_id)
    assert (way["user"], way["state"]) == ([two], "ch_store_3")

    client.contact_way_delete(created.config_id)
    with pytest.raises(WeComAPIError) as gone:
        client.contact_way_get(created.config_id)
    assert gone.value.errcode == 41044


def test_wecom_refuses_a_state_over_30_characters(brand: Brand) -> None:
    client = brand.client(brand.connection)
    with pytest.raises(WeComAPIError) as refused:
        client.contact_way_add(users=_members(brand, 1), state="x" * 31)
    assert refused.value.endpoint == "externalcontact/add_contact_way"


def test_a_welcome_code_sends_once(brand: Brand) -> None:
    client = brand.client(brand.connection)
    (guide,) = _members(brand, 1)
    added = brand.admin("simulate/add_contact", {"userid": guide, "name": "小林"})
    code = added["welcome_code"]
    link = {"title": "新人礼", "url": "https://example.com/gift", "picurl": "", "desc": ""}
    client.welcome_send(welcome_code=code, text="你好 小林", attachments=[{"msgtype": "link", "link": link}])
    sent = brand.admin("welcome_messages")["welcome_messages"]
    assert [(m["welcome_code"], m["text"], m["attachments"][0]["link"]["title"]) for m in sent] == [
        (code, "你好 小林", "新人礼")
    ]
    with pytest.raises(WeComAPIError) as again:
        client.welcome_send(welcome_code=code, text="again")
    assert again.value.errcode == 41051
    with pytest.raises(WeComAPIError) as unknown:
        client.welcome_send(welcome_code="not-a-code", text="hi")
    assert unknown.value.errcode == 41050


def test_a_join_way_over_groups_is_created_read_updated_and_deleted(brand: Brand) -> None:
    client = brand.client(brand.connection)
    chats = sorted(brand.corp.group_chats)[:3]
    config_id = client.join_way_add(chat_ids=chats[:2], state="grp_vip", room_base_name="VIP 群", room_base_id=3)
    way = client.join_way_get(config_id)
    assert (way["chat_id_list"], way["state"], way["auto_create_room"], way["room_base_id"]) == (
        chats[:2],
        "grp_vip",
        1,
        3,
    )
    assert way["qr_code"]
    client.join_way_update(config_id, chat_ids=chats, state="grp_vip2", auto_create_room=False)
    way = client.join_way_get(config_id)
    assert (way["chat_id_list"], way["state"], way["auto_create_room"]) == (chats, "grp_vip2", 0)
    client.join_way_delete(config_id)
    with pytest.raises(WeComAPIError):
        client.join_way_get(config_id)
    with pytest.raises(ValueError, match="1 to 5 chats"):
        client.join_way_add(chat_ids=[])
