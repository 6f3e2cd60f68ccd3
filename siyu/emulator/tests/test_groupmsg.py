"""Mass messages: tasks are created by the API, sent only when the member confirms, with results to poll."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from siyu.emulator.tests.conftest import Running, StartEmulator, WeComClient

TEXT = {"content": "本周会员日，全场8折"}


def _guide_with_customers(running: Running, n: int = 5) -> tuple[str, list[str]]:
    by_guide: dict[str, list[str]] = {}
    for customer in running.corp.contacts.values():
        for userid in customer.follows:
            by_guide.setdefault(userid, []).append(customer.external_userid)
    userid = next(u for u, cs in by_guide.items() if len(cs) >= n and u.startswith("guide"))
    return userid, by_guide[userid]


def _all(client: WeComClient, api: str, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        data = client.post(api, {**body, "cursor": cursor})
        assert data["errcode"] == 0, data
        rows += data[key]
        cursor = data["next_cursor"]
        if not cursor:
            return rows


def test_single_message_flow(emulator: Running) -> None:
    client = emulator.client
    sender, customers = _guide_with_customers(emulator)
    made = client.post(
        "externalcontact/add_msg_template",
        {"chat_type": "single", "sender": sender, "external_userid": [*customers[:3], "wmnotacustomer"], "text": TEXT},
    )
    assert made["errcode"] == 0, made
    assert made["fail_list"] == ["wmnotacustomer"]
    msgid = made["msgid"]

    # Straight after creation the message is still being dispatched.
    assert client.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["errcode"] == 41063
    client.admin("clock", {"advance": 3})
    tasks = client.post("externalcontact/get_groupmsg_task", {"msgid": msgid})
    assert tasks["task_list"] == [{"userid": sender, "status": 0, "send_time": 0}]
    results = client.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": sender})["send_list"]
    assert [(r["external_userid"], r["status"]) for r in results] == [(c, 0) for c in customers[:3]]

    sent = client.admin("simulate/groupmsg/send", {"msgid": msgid, "userid": sender})
    assert (sent["sent"], sent["not_friend"], sent["over_quota"]) == (3, 0, 0)
    task = client.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"][0]
    assert task["status"] == 2
    assert task["send_time"] > 0
    results = client.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": sender})["send_list"]
    assert {r["status"] for r in results} == {1}

    now = int(client.admin("clock")["now"])
    listed = client.post(
        "externalcontact/get_groupmsg_list_v2", {"chat_type": "single", "start_time": now - 60, "end_time": now}
    )["group_msg_list"]
    assert [(m["msgid"], m["creator"], m["create_type"], m["text"]) for m in listed] == [(msgid, sender, 0, TEXT)]


def test_recipients_by_sender_and_tag_filter(emulator: Running) -> None:
    client = emulator.client
    sender, customers = _guide_with_customers(emulator)
    level_tags = [t.id for t in next(g for g in emulator.corp.tag_groups.values() if g.group_name == "客户等级").tags]
    tag = emulator.corp.contacts[customers[0]].follows[sender].tag_ids[0]
    expected = {c for c in customers if tag in emulator.corp.contacts[c].follows[sender].tag_ids}
    body = {"sender": sender, "tag_filter": {"group_list": [{"tag_list": [tag]}]}, "text": TEXT}
    msgid = client.post("externalcontact/add_msg_template", body)["msgid"]
    everyone = client.post("externalcontact/add_msg_template", {"sender": sender, "text": TEXT})["msgid"]
    client.admin("clock", {"advance": 3})
    got = client.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": sender})["send_list"]
    assert {r["external_userid"] for r in got} == expected
    all_rows = client.post("externalcontact/get_groupmsg_send_result", {"msgid": everyone, "userid": sender})[
        "send_list"
    ]
    assert {r["external_userid"] for r in all_rows} == set(customers)
    assert level_tags  # the seed tags every customer with a level


def test_without_sender_each_customer_goes_to_the_latest_follower(emulator: Running) -> None:
    client = emulator.client
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 2)
    latest = max(customer.follows.values(), key=lambda f: f.createtime).userid
    msgid = client.post(
        "externalcontact/add_msg_template", {"external_userid": [customer.external_userid], "text": TEXT}
    )["msgid"]
    client.admin("clock", {"advance": 3})
    assert [t["userid"] for t in client.post("externalcontact/get_groupmsg_task", {"msgid": msgid})["task_list"]] == [
        latest
    ]


def test_group_chat_messages(emulator: Running) -> None:
    client = emulator.client
    chat = next(iter(emulator.corp.group_chats.values()))
    owned = {c.chat_id for c in emulator.corp.group_chats.values() if c.owner == chat.owner}
    msgid = client.post("externalcontact/add_msg_template", {"chat_type": "group", "sender": chat.owner, "text": TEXT})[
        "msgid"
    ]
    client.admin("clock", {"advance": 3})
    rows = client.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": chat.owner})["send_list"]
    assert {r["chat_id"] for r in rows} == owned
    assert client.post("externalcontact/add_msg_template", {"chat_type": "group", "text": TEXT})["errcode"] == 40063


def test_receive_quota_is_the_days_of_the_month(emulator: Running) -> None:
    client = emulator.client
    sender, customers = _guide_with_customers(emulator, 1)
    target = customers[0]
    now = dt.datetime.fromtimestamp(client.admin("clock")["now"], ZoneInfo("Asia/Shanghai"))
    days = calendar.monthrange(now.year, now.month)[1]
    if now.day == days and now.hour == 23:
        client.admin("clock", {"advance": 7200})  # keep every send inside one natural month
        now = dt.datetime.fromtimestamp(client.admin("clock")["now"], ZoneInfo("Asia/Shanghai"))
        days = calendar.monthrange(now.year, now.month)[1]
    outcomes = []
    for _ in range(days + 1):
        msgid = client.post(
            "externalcontact/add_msg_template", {"sender": sender, "external_userid": [target], "text": TEXT}
        )["msgid"]
        outcomes.append(client.admin("simulate/groupmsg/send", {"msgid": msgid, "userid": sender}))
    assert [o["sent"] for o in outcomes] == [1] * days + [0]
    assert outcomes[-1]["over_quota"] == 1


def test_groupmsg_errors(start_emulator: StartEmulator) -> None:
    running = start_emulator(groupmsg_dispatch_seconds=0)
    client = running.client
    sender, _ = _guide_with_customers(running)
    assert client.post("externalcontact/add_msg_template", {"text": TEXT})["errcode"] == 40063
    assert client.post("externalcontact/add_msg_template", {"sender": sender})["errcode"] == 40063
    assert client.post("externalcontact/add_msg_template", {"sender": "nobody", "text": TEXT})["errcode"] == 40003
    nobody = client.post("externalcontact/add_msg_template", {"external_userid": ["wmnone"], "text": TEXT})
    assert (nobody["errcode"], nobody["fail_list"]) == (41048, ["wmnone"])
    too_many = client.post("externalcontact/add_msg_template", {"external_userid": ["x"] * 10_001, "text": TEXT})
    assert too_many["errcode"] == 40058
    assert client.post("externalcontact/get_groupmsg_task", {})["errcode"] == 41046
    assert client.post("externalcontact/get_groupmsg_task", {"msgid": "msgnope"})["errcode"] == 41047
    assert client.post("externalcontact/get_groupmsg_list_v2", {"chat_type": "single"})["errcode"] == 40063
    msgid = client.post("externalcontact/add_msg_template", {"sender": sender, "text": TEXT})["msgid"]
    assert client.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid})["errcode"] == 41009
    assert client.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})["errcode"] == 0
    assert client.admin_raw("simulate/groupmsg/send", {"msgid": msgid, "userid": sender}).status == 400


def test_pages_of_tasks_results_and_messages(emulator: Running) -> None:
    client = emulator.client
    sender, customers = _guide_with_customers(emulator, 5)
    start = int(client.admin("clock")["now"])
    made = [
        client.post("externalcontact/add_msg_template", {"sender": sender, "text": TEXT})["msgid"] for _ in range(7)
    ]
    client.admin("clock", {"advance": 3})
    end = int(client.admin("clock")["now"])
    listed = _all(
        client,
        "externalcontact/get_groupmsg_list_v2",
        {"chat_type": "single", "start_time": start, "end_time": end, "limit": 3},
        "group_msg_list",
    )
    assert [m["msgid"] for m in listed] == made
    rows = _all(
        client,
        "externalcontact/get_groupmsg_send_result",
        {"msgid": made[0], "userid": sender, "limit": 2},
        "send_list",
    )
    by_seq = sorted(customers, key=lambda c: emulator.corp.contacts[c].follows[sender].seq)
    assert [r["external_userid"] for r in rows] == by_seq


def test_remind_at_most_three_times_a_day(emulator: Running) -> None:
    client = emulator.client
    sender, _ = _guide_with_customers(emulator)
    msgid = client.post("externalcontact/add_msg_template", {"sender": sender, "text": TEXT})["msgid"]
    assert client.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] == 41063  # dispatching
    client.admin("clock", {"advance": 3})
    for _ in range(3):
        assert client.post("externalcontact/remind_groupmsg_send", {"msgid": msgid}) == {"errcode": 0, "errmsg": "ok"}
    assert client.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] == 45009
    client.admin("clock", {"advance": 86_400})
    client.refresh()
    assert client.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] == 0
    export = client.admin("corps/export")
    assert len(export["group_msgs"][msgid]["reminders"]) == 1  # only the last 24 hours are kept
    assert client.post("externalcontact/remind_groupmsg_send", {})["errcode"] == 41046
    assert client.post("externalcontact/remind_groupmsg_send", {"msgid": "msgnope"})["errcode"] == 41047
    client.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})
    assert client.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})["errcode"] == 40058
