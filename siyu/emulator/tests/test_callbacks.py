"""Callbacks: signed and encrypted as WeCom does, readable by siyu's crypto and by wechatpy, retried 3 times."""

from __future__ import annotations

import time
from xml.etree import ElementTree

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto

from siyu.emulator.tests.conftest import AES_KEY, TOKEN, Received, Receiver, Running, StartEmulator
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto, parse_xml


def connect(running: Running, receiver: Receiver) -> None:
    running.client.admin("callback", {"url": receiver.url, "token": TOKEN, "encoding_aes_key": AES_KEY})


def decrypt_both(running: Running, received: Received) -> ElementTree.Element:
    """Decrypt with siyu's crypto and with wechatpy; both must verify the signature and agree on the XML."""
    corp_id = running.corp.corp_id
    q = received.query
    ours = WeComCrypto(TOKEN, AES_KEY, corp_id).decrypt_message(
        body=received.body, msg_signature=q["msg_signature"], timestamp=q["timestamp"], nonce=q["nonce"]
    )
    theirs = WeChatCrypto(TOKEN, AES_KEY, corp_id).decrypt_message(
        received.body.decode(), q["msg_signature"], q["timestamp"], q["nonce"]
    )
    assert ours == theirs
    envelope = parse_xml(received.body)
    assert envelope.findtext("ToUserName") == corp_id
    return parse_xml(ours)


def fields(xml: ElementTree.Element) -> list[tuple[str, str]]:
    return [(child.tag, child.text or "") for child in xml]


def test_add_contact_delivers_a_signed_encrypted_event(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    client = emulator.client
    guide = next(u for u in emulator.corp.members if u.startswith("guide"))
    added = client.admin("simulate/add_contact", {"userid": guide, "state": "store_3"})
    deliveries = client.wait_callbacks(1)
    assert len(receiver.received) == 1
    xml = decrypt_both(emulator, receiver.received[0])
    create_time = xml.findtext("CreateTime")
    assert fields(xml) == [
        ("ToUserName", emulator.corp.corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", "change_external_contact"),
        ("ChangeType", "add_external_contact"),
        ("UserID", guide),
        ("ExternalUserID", added["external_userid"]),
        ("State", "store_3"),
        ("WelcomeCode", added["welcome_code"]),
    ]
    assert abs(int(create_time or 0) - time.time()) < 60
    (delivery,) = deliveries
    assert delivery["acknowledged"] is True
    assert [a["status"] for a in delivery["attempts"]] == [200]
    assert delivery["attempts"][0]["latency_ms"] >= 0
    # The welcome code of the event works with the API.
    sent = client.post(
        "externalcontact/send_welcome_msg", {"welcome_code": added["welcome_code"], "text": {"content": "hi"}}
    )
    assert sent["errcode"] == 0


def test_wrong_key_or_token_does_not_verify(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    emulator.client.admin(
        "simulate/add_contact", {"userid": next(u for u in emulator.corp.members if u.startswith("guide"))}
    )
    emulator.client.wait_callbacks(1)
    received = receiver.received[0]
    q = received.query
    with pytest.raises(CallbackCryptoError):
        WeComCrypto("other-token", AES_KEY, emulator.corp.corp_id).decrypt_message(
            body=received.body, msg_signature=q["msg_signature"], timestamp=q["timestamp"], nonce=q["nonce"]
        )
    with pytest.raises(CallbackCryptoError):
        WeComCrypto(TOKEN, AES_KEY, "wwsomeothercorp00").decrypt_message(
            body=received.body, msg_signature=q["msg_signature"], timestamp=q["timestamp"], nonce=q["nonce"]
        )


def test_receiver_answering_500_twice_gets_the_third_try(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    receiver.script = [(500, 0.0), (500, 0.0)]
    emulator.client.admin(
        "simulate/add_contact", {"userid": next(u for u in emulator.corp.members if u.startswith("guide"))}
    )
    (delivery,) = emulator.client.wait_callbacks(1)
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["acknowledged"] is True
    assert len(receiver.received) == 3
    # A retry is the same request again, so the receiver can recognise it.
    assert len({(tuple(sorted(r.query.items())), r.body) for r in receiver.received}) == 1
    for received in receiver.received:
        decrypt_both(emulator, received)


def test_three_tries_in_total_then_give_up(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    receiver.script = [(503, 0.0)] * 5
    emulator.client.admin(
        "simulate/add_contact", {"userid": next(u for u in emulator.corp.members if u.startswith("guide"))}
    )
    (delivery,) = emulator.client.wait_callbacks(1)
    assert [a["status"] for a in delivery["attempts"]] == [503, 503, 503]
    assert delivery["acknowledged"] is False
    time.sleep(0.3)
    assert len(receiver.received) == 3


def test_slow_answer_counts_as_not_acknowledged(start_emulator: StartEmulator, receiver: Receiver) -> None:
    running = start_emulator(callback_timeout=0.5)
    connect(running, receiver)
    receiver.script = [(200, 1.0)]
    running.client.admin(
        "simulate/add_contact", {"userid": next(u for u in running.corp.members if u.startswith("guide"))}
    )
    (delivery,) = running.client.wait_callbacks(1)
    assert delivery["attempts"][0]["status"] is None
    assert "no answer within 0.5s" in delivery["attempts"][0]["error"]
    assert [a["status"] for a in delivery["attempts"][1:]] == [200]
    assert delivery["acknowledged"] is True


def test_no_callback_url_records_the_event_without_sending(emulator: Running) -> None:
    emulator.client.admin(
        "simulate/add_contact", {"userid": next(u for u in emulator.corp.members if u.startswith("guide"))}
    )
    (delivery,) = emulator.client.wait_callbacks(1)
    assert delivery["acknowledged"] is False
    assert delivery["error"] == "no callback URL configured"
    assert delivery["attempts"] == []


def test_contact_deletions_and_edits(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    client = emulator.client
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 2)
    by_member, by_customer = list(customer.follows)
    ext = customer.external_userid
    tag = next(iter(emulator.corp.tag_groups.values())).tags[-1].id

    client.admin("simulate/del_contact", {"userid": by_customer, "external_userid": ext, "by": "customer"})
    client.admin(
        "simulate/edit_contact", {"userid": by_member, "external_userid": ext, "remark": "VIP", "add_tag": [tag]}
    )
    client.admin("simulate/del_contact", {"userid": by_member, "external_userid": ext, "by": "member"})
    client.wait_callbacks(3)
    events = [fields(decrypt_both(emulator, r))[5:] for r in receiver.received]
    assert events == [
        [("ChangeType", "del_follow_user"), ("UserID", by_customer), ("ExternalUserID", ext)],
        [("ChangeType", "edit_external_contact"), ("UserID", by_member), ("ExternalUserID", ext)],
        [("ChangeType", "del_external_contact"), ("UserID", by_member), ("ExternalUserID", ext)],
    ]
    # The customer deleting the member leaves a one-way relationship the API still returns; the member deleting
    # the customer ends it.
    data = client.get("externalcontact/get", external_userid=ext)
    assert [f["userid"] for f in data["follow_user"]] == [by_customer]
    assert ext not in client.get("externalcontact/list", userid=by_member).get("external_userid", [])
    marked = client.post("externalcontact/mark_tag", {"userid": by_member, "external_userid": ext, "add_tag": [tag]})
    assert marked["errcode"] == 84061


def test_transfer_deletion_carries_source(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    customer = next(iter(emulator.corp.contacts.values()))
    userid = next(iter(customer.follows))
    body = {
        "userid": userid,
        "external_userid": customer.external_userid,
        "by": "member",
        "source": "DELETE_BY_TRANSFER",
    }
    emulator.client.admin("simulate/del_contact", body)
    emulator.client.wait_callbacks(1)
    assert fields(decrypt_both(emulator, receiver.received[0]))[-1] == ("Source", "DELETE_BY_TRANSFER")


def test_tag_events(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    client = emulator.client
    created = client.admin("simulate/tags/create", {"group_name": "活动", "tags": ["双11", "618"]})
    client.admin("simulate/tags/create", {"group_id": created["group_id"], "tags": ["年货节"]})
    client.admin("simulate/tags/update", {"id": created["tag_ids"][0], "name": "双十一"})
    client.admin("simulate/tags/delete", {"group_ids": [created["group_id"]]})
    client.wait_callbacks(4)
    events = [fields(decrypt_both(emulator, r))[5:] for r in receiver.received]
    third_tag = client.post("externalcontact/get_corp_tag_list", {"group_id": [created["group_id"]]})["tag_group"][0][
        "tag"
    ]
    new_id = next(t["id"] for t in third_tag if t["name"] == "年货节")
    assert events == [
        [("Id", created["group_id"]), ("TagType", "tag_group"), ("ChangeType", "create")],
        [("Id", new_id), ("TagType", "tag"), ("ChangeType", "create")],
        [("Id", created["tag_ids"][0]), ("TagType", "tag"), ("ChangeType", "update")],
        [("Id", created["group_id"]), ("TagType", "tag_group"), ("ChangeType", "delete")],
    ]
    assert all(decrypt_both(emulator, r).findtext("Event") == "change_external_tag" for r in receiver.received)


def test_group_chat_events(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    client = emulator.client
    owner = next(u for u in emulator.corp.members if u.startswith("guide"))
    customers = list(emulator.corp.contacts)[:3]
    chat_id = client.admin("simulate/chat/create", {"owner": owner, "name": "新品试用群", "members": customers[:1]})[
        "chat_id"
    ]
    client.admin("simulate/chat/join", {"chat_id": chat_id, "members": customers[1:], "join_scene": 3})
    client.admin("simulate/chat/leave", {"chat_id": chat_id, "members": customers[:1], "quit_scene": 1})
    client.admin("simulate/chat/update", {"chat_id": chat_id, "name": "新品试用群2"})
    client.admin("simulate/chat/dismiss", {"chat_id": chat_id})
    client.wait_callbacks(5)
    events = [decrypt_both(emulator, r) for r in receiver.received]
    assert all(e.findtext("Event") == "change_external_chat" for e in events)
    assert [(e.findtext("ChatId"), e.findtext("ChangeType"), e.findtext("UpdateDetail")) for e in events] == [
        (chat_id, "create", None),
        (chat_id, "update", "add_member"),
        (chat_id, "update", "del_member"),
        (chat_id, "update", "change_name"),
        (chat_id, "dismiss", None),
    ]
    join, leave = events[1], events[2]
    assert [c.tag for c in join][5:] == [
        "ChatId",
        "ChangeType",
        "UpdateDetail",
        "JoinScene",
        "MemChangeCnt",
        "MemChangeList",
        "LastMemVer",
        "CurMemVer",
    ]
    assert (join.findtext("JoinScene"), join.findtext("MemChangeCnt")) == ("3", "2")
    assert [i.text for i in join.iter("Item")] == customers[1:]
    assert join.findtext("CurMemVer") == leave.findtext("LastMemVer")
    assert (leave.findtext("QuitScene"), [i.text for i in leave.iter("Item")]) == ("1", customers[:1])
    assert client.post("externalcontact/groupchat/get", {"chat_id": chat_id})["errcode"] == 40050


def test_api_changes_fire_no_callbacks(emulator: Running, receiver: Receiver) -> None:
    connect(emulator, receiver)
    client = emulator.client
    customer = next(iter(emulator.corp.contacts.values()))
    userid = next(iter(customer.follows))
    tag = next(iter(emulator.corp.tag_groups.values())).tags[-1].id
    assert (
        client.post(
            "externalcontact/mark_tag",
            {"userid": userid, "external_userid": customer.external_userid, "add_tag": [tag]},
        )["errcode"]
        == 0
    )
    assert client.post("externalcontact/add_corp_tag", {"group_name": "API", "tag": [{"name": "a"}]})["errcode"] == 0
    time.sleep(0.2)
    assert client.admin("callbacks")["deliveries"] == []
    assert receiver.received == []


def test_simulation_errors_are_400(emulator: Running) -> None:
    client = emulator.client
    assert client.admin_raw("simulate/add_contact", {"userid": "nobody"}).status == 400
    assert client.admin_raw("simulate/del_contact", {"userid": "brand_ip", "external_userid": "wmnone"}).status == 400
    assert client.admin_raw("simulate/no_such_action", {}).status == 404
    assert client.admin("callbacks")["deliveries"] == []


def test_callback_settings_are_checked(emulator: Running, receiver: Receiver) -> None:
    client = emulator.client
    assert (
        client.admin_raw("callback", {"url": receiver.url, "token": TOKEN, "encoding_aes_key": "short"}).status == 400
    )
    assert client.admin_raw("callback", {"url": "ftp://x", "token": TOKEN, "encoding_aes_key": AES_KEY}).status == 400
    assert client.admin("corps")["corps"][0]["callback"]["url"] == ""


def test_signature_timestamp_is_wall_clock_even_when_the_emulator_clock_moved(
    emulator: Running, receiver: Receiver
) -> None:
    connect(emulator, receiver)
    emulator.client.admin("clock", {"advance": 86_400})
    emulator.client.admin(
        "simulate/add_contact", {"userid": next(u for u in emulator.corp.members if u.startswith("guide"))}
    )
    emulator.client.wait_callbacks(1)
    received = receiver.received[0]
    assert abs(int(received.query["timestamp"]) - time.time()) < 60
    assert abs(int(decrypt_both(emulator, received).findtext("CreateTime") or 0) - (time.time() + 86_400)) < 60
