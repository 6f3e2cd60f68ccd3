"""「加入群聊」 join ways: add/get/update/del_join_way over HTTP, and customers joining groups through them."""

from __future__ import annotations

from typing import Any

from siyu.emulator.ids import secret
from siyu.emulator.model import App
from siyu.emulator.seed import build_corp
from siyu.emulator.tests.conftest import SMALL, Receiver, Running, StartEmulator

OTHER_SCRM_AGENTID = 1000004


def _chats(running: Running, n: int) -> list[str]:
    return [c.chat_id for c in list(running.corp.group_chats.values())[:n]]


def _add(running: Running, **body: Any) -> dict[str, Any]:
    return running.client.post("externalcontact/groupchat/add_join_way", body)


def test_join_way_round_trip(emulator: Running) -> None:
    client = emulator.client
    chats = _chats(emulator, 2)
    made = _add(
        emulator,
        scene=2,
        remark="门店福利群二维码" * 5,  # 40 characters: cut to 30, not refused
        auto_create_room=1,
        room_base_name="福利群",
        room_base_id=10,
        chat_id_list=chats,
        state="store_qr",
        mark_source=True,
    )
    assert made["errcode"] == 0, made
    assert set(made) == {"errcode", "errmsg", "config_id"}
    config_id = made["config_id"]
    way = client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})
    assert way["join_way"] == {
        "config_id": config_id,
        "scene": 2,
        "remark": ("门店福利群二维码" * 5)[:30],
        "auto_create_room": 1,
        "room_base_name": "福利群",
        "room_base_id": 10,
        "chat_id_list": chats,
        "state": "store_qr",
        "qr_code": f"http://127.0.0.1:8001/emulator/qr/{config_id}.svg",
    }
    # A mini-program way has no QR code; defaults: auto_create_room 1, room_base_id 0.
    mini = _add(emulator, scene=1, chat_id_list=chats[:1])["config_id"]
    got = client.post("externalcontact/groupchat/get_join_way", {"config_id": mini})["join_way"]
    assert "qr_code" not in got
    assert (got["auto_create_room"], got["room_base_id"], got["state"]) == (1, 0, "")

    updated = client.post(
        "externalcontact/groupchat/update_join_way",
        {"config_id": config_id, "scene": 2, "chat_id_list": chats[1:], "state": "store_qr2", "auto_create_room": 0},
    )
    assert updated == {"errcode": 0, "errmsg": "ok"}
    way = client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    assert (way["chat_id_list"], way["state"], way["auto_create_room"], way["remark"]) == (
        chats[1:],
        "store_qr2",
        0,
        "",
    )

    assert client.post("externalcontact/groupchat/del_join_way", {"config_id": config_id})["errcode"] == 0
    assert client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["errcode"] == 41044
    assert client.post("externalcontact/groupchat/del_join_way", {"config_id": config_id})["errcode"] == 41044


def test_join_way_errors_change_nothing(emulator: Running) -> None:
    client = emulator.client
    chats = _chats(emulator, 6)
    assert _add(emulator, chat_id_list=chats[:1])["errcode"] == 40063  # scene
    assert _add(emulator, scene=3, chat_id_list=chats[:1])["errcode"] == 40058
    assert _add(emulator, scene=2)["errcode"] == 40063  # chat_id_list
    assert _add(emulator, scene=2, chat_id_list=chats)["errcode"] == 40058  # more than 5
    assert _add(emulator, scene=2, chat_id_list=["wrnosuchchat"])["errcode"] == 40050
    assert _add(emulator, scene=2, chat_id_list=chats[:1], state="s" * 31)["errcode"] == 40058
    assert _add(emulator, scene=2, chat_id_list=chats[:1], room_base_name="名" * 41)["errcode"] == 40058
    assert _add(emulator, scene=2, chat_id_list=chats[:1], auto_create_room=2)["errcode"] == 40058
    assert _add(emulator, scene=2, chat_id_list=chats[:1], room_base_id=-1)["errcode"] == 40058
    assert client.post("externalcontact/groupchat/get_join_way", {})["errcode"] == 41043
    assert client.post("externalcontact/groupchat/get_join_way", {"config_id": "nope"})["errcode"] == 41044
    config_id = _add(emulator, scene=2, chat_id_list=chats[:1], state="keep")["config_id"]
    bad = {"config_id": config_id, "scene": 2, "chat_id_list": ["wrnosuchchat"], "state": "changed"}
    assert client.post("externalcontact/groupchat/update_join_way", bad)["errcode"] == 40050
    assert client.post("externalcontact/groupchat/update_join_way", {"config_id": config_id})["errcode"] == 40063
    way = client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    assert (way["chat_id_list"], way["state"]) == (chats[:1], "keep")


def test_quota_is_shared_with_contact_ways(start_emulator: StartEmulator) -> None:
    ways = len(build_corp(SMALL).contact_ways)
    running = start_emulator(max_contact_ways=ways + 1)
    chats = _chats(running, 1)
    assert _add(running, scene=2, chat_id_list=chats)["errcode"] == 0
    assert _add(running, scene=2, chat_id_list=chats)["errcode"] == 41045
    contact_way = {"type": 1, "scene": 2, "user": ["brand_ip"]}
    assert running.client.post("externalcontact/add_contact_way", contact_way)["errcode"] == 41045


def test_apps_only_see_their_own_join_ways(start_emulator: StartEmulator) -> None:
    corp = build_corp(SMALL)
    other_secret = secret(SMALL.seed, corp.corp_id, OTHER_SCRM_AGENTID)
    corp.apps.append(App(OTHER_SCRM_AGENTID, "另一个SCRM", other_secret, True))
    running = start_emulator(corps=[corp])
    config_id = _add(running, scene=2, chat_id_list=_chats(running, 1))["config_id"]
    other = running.client_for(corp.corp_id, other_secret)
    assert other.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["errcode"] == 41044
    assert other.post("externalcontact/groupchat/del_join_way", {"config_id": config_id})["errcode"] == 41044
    assert running.client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["errcode"] == 0


def test_customers_join_through_the_way(start_emulator: StartEmulator, receiver: Receiver) -> None:
    seeded = build_corp(SMALL)
    chat = next(c for c in seeded.group_chats.values() if len(c.member_list) >= 3)
    running = start_emulator(join_way_room_limit=len(chat.member_list) + 1)  # room for exactly one more
    receiver.connect(running)
    client = running.client
    config_id = _add(
        running, scene=2, chat_id_list=[chat.chat_id], state="jw1", room_base_name="新品群", room_base_id=3
    )["config_id"]
    outside = [c for c in seeded.contacts if all(m.userid != c for m in chat.member_list)][:3]

    first = client.admin("simulate/join_way", {"config_id": config_id, "external_userid": outside[0]})
    assert (first["chat_id"], first["created"]) == (chat.chat_id, False)
    members = client.post("externalcontact/groupchat/get", {"chat_id": chat.chat_id})["group_chat"]["member_list"]
    joined = next(m for m in members if m["userid"] == outside[0])
    assert (joined["join_scene"], joined["state"], joined["type"]) == (3, "jw1", 2)
    assert all("state" not in m for m in members if m["userid"] != outside[0])

    # The chat is full now: the way opens 新品群3, owned by the chat's owner, and counts on.
    second = client.admin("simulate/join_way", {"config_id": config_id, "external_userid": outside[1]})
    assert second["created"] is True
    new_chat = client.post("externalcontact/groupchat/get", {"chat_id": second["chat_id"], "need_name": 1})
    assert (new_chat["group_chat"]["name"], new_chat["group_chat"]["owner"]) == ("新品群3", chat.owner)
    assert [m["userid"] for m in new_chat["group_chat"]["member_list"]] == [chat.owner, outside[1]]
    way = client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    assert (way["chat_id_list"], way["room_base_id"]) == ([chat.chat_id, second["chat_id"]], 4)

    receiver.wait(3)
    events = receiver.events(running.corp.corp_id)
    assert [(e.findtext("ChatId"), e.findtext("ChangeType"), e.findtext("UpdateDetail")) for e in events] == [
        (chat.chat_id, "update", "add_member"),
        (second["chat_id"], "create", None),
        (second["chat_id"], "update", "add_member"),
    ]
    assert [e.findtext("JoinScene") for e in events if e.findtext("UpdateDetail")] == ["3", "3"]

    # Already in one of the way's chats, or everything full without auto_create_room: refused.
    again = client.admin_raw("simulate/join_way", {"config_id": config_id, "external_userid": outside[0]})
    assert again.status == 400
    client.post(
        "externalcontact/groupchat/update_join_way",
        {"config_id": config_id, "scene": 2, "chat_id_list": [chat.chat_id], "auto_create_room": 0},
    )
    full = client.admin_raw("simulate/join_way", {"config_id": config_id, "external_userid": outside[2]})
    assert full.status == 400
