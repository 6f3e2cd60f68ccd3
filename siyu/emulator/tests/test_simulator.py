"""The behaviour simulator: its ground truth equals what the emulator ends up holding and what it pushed as callbacks.

Everything goes over HTTP: the simulation is started with POST /emulator/simulate/run, the resulting state is read
through WeCom's API (and the admin export where WeCom has no API), callbacks are received by a real HTTP endpoint
and decrypted with siyu's crypto. Expected callbacks are derived here from the ground truth's records, not from
the emulator's event code.
"""

from __future__ import annotations

import time
from typing import Any
from xml.etree import ElementTree

from siyu.emulator.clock import Clock
from siyu.emulator.model import App, Corp
from siyu.emulator.seed import build_corp
from siyu.emulator.simulator import KEYWORDS, KINDS, keywords_in
from siyu.emulator.tests.conftest import (
    SMALL,
    Receiver,
    Running,
    StartEmulator,
    WeComClient,
    free_port,
    serve_cli,
    stop_cli,
    wait_up,
)
from siyu.wecom.crypto import parse_xml

FROZEN = 1_700_000_500.0  # after the seed's anchor; a clock that stands still makes whole runs byte-identical

Truth = dict[str, Any]


def _simulate(client: WeComClient, **body: Any) -> Truth:
    return client.admin("simulate/run", body)


def _in_step_order(truth: Truth) -> list[tuple[str, dict[str, Any]]]:
    names = ("adds", "deletes", "messages", "joins", "leaves", "opens", "refusals")
    records = [(name, r) for name in names for r in truth[name]]
    return sorted(records, key=lambda item: item[1]["step"])


def _expected_callbacks(truth: Truth, corp_id: str) -> list[list[tuple[str, Any]]]:
    """The callbacks every add, delete, join, leave and refusal must produce (messages and opens produce none)."""
    header = [("ToUserName", corp_id), ("FromUserName", "sys")]
    out: list[list[tuple[str, Any]]] = []
    for name, r in _in_step_order(truth):
        common = [*header, ("CreateTime", str(r["at"])), ("MsgType", "event")]
        if name == "adds":
            fields = [("ChangeType", "add_external_contact"), ("UserID", r["userid"])]
            fields.append(("ExternalUserID", r["external_userid"]))
            fields += [("State", r["state"])] if r["state"] else []
            fields.append(("WelcomeCode", r["welcome_code"]))
            out.append([*common, ("Event", "change_external_contact"), *fields])
        elif name == "deletes":
            change = "del_follow_user" if r["by"] == "customer" else "del_external_contact"
            ids = [("UserID", r["userid"]), ("ExternalUserID", r["external_userid"])]
            out.append([*common, ("Event", "change_external_contact"), ("ChangeType", change), *ids])
        elif name == "refusals":
            fields = [("ChangeType", "transfer_fail"), ("FailReason", "customer_refused")]
            fields += [("UserID", r["takeover_userid"]), ("ExternalUserID", r["external_userid"])]
            out.append([*common, ("Event", "change_external_contact"), *fields])
        elif name in ("joins", "leaves"):
            if r.get("new_chat"):  # a full join way opened a new chat first
                created = [("ChatId", r["chat_id"]), ("ChangeType", "create")]
                out.append([*common, ("Event", "change_external_chat"), *created])
            detail, scene = ("add_member", "JoinScene") if name == "joins" else ("del_member", "QuitScene")
            scene_value = str(r["join_scene"] if name == "joins" else r["quit_scene"])
            out.append(
                [
                    *common,
                    ("Event", "change_external_chat"),
                    ("ChatId", r["chat_id"]),
                    ("ChangeType", "update"),
                    ("UpdateDetail", detail),
                    (scene, scene_value),
                    ("MemChangeCnt", "1"),
                    ("MemChangeList", [r["external_userid"]]),
                ]
            )
    return out


def _fields(xml: ElementTree.Element) -> list[tuple[str, Any]]:
    """Tag/value pairs; <MemChangeList> becomes its list of items; member-version hashes are checked apart."""
    out: list[tuple[str, Any]] = []
    for child in xml:
        if child.tag in ("LastMemVer", "CurMemVer"):
            continue
        out.append((child.tag, [i.text for i in child] if len(child) else child.text or ""))
    return out


def _api_follows(client: WeComClient) -> dict[tuple[str, str], str]:
    """(userid, external_userid) → state, for every relationship WeCom's API returns."""
    users = client.get("externalcontact/get_follow_user_list")["follow_user"]
    found: dict[tuple[str, str], str] = {}
    for i in range(0, len(users), 100):
        cursor = ""
        while True:
            page = client.post(
                "externalcontact/batch/get_by_user", {"userid_list": users[i : i + 100], "limit": 100, "cursor": cursor}
            )
            assert page["errcode"] == 0, page
            for row in page["external_contact_list"]:
                info = row["follow_info"]
                found[(info["userid"], row["external_contact"]["external_userid"])] = info.get("state", "")
            cursor = page["next_cursor"]
            if not cursor:
                break
    return found


def _api_groups(client: WeComClient) -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    """Members of every customer group, and (chat_id, member, state) of members who came with a join-way state."""
    listed = client.post("externalcontact/groupchat/list", {"limit": 1000})
    assert listed["errcode"] == 0, listed
    groups, states = {}, set()
    for row in listed["group_chat_list"]:
        chat = client.post("externalcontact/groupchat/get", {"chat_id": row["chat_id"]})["group_chat"]
        groups[chat["chat_id"]] = {m["userid"] for m in chat["member_list"]}
        states |= {(chat["chat_id"], m["userid"], m["state"]) for m in chat["member_list"] if m.get("state")}
    return groups, states


def _all_after(client: WeComClient, path: str, key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = client.admin(path, after=rows[-1]["seq"] if rows else 0, limit=200)[key]
        if not page:
            return rows
        rows += page


def _prepare(running: Running) -> tuple[str, str]:
    """A join way with a state on one chat, and on-job transfers waiting, so joins by way and refusals happen.
    Returns the join way's config_id and the chat owner new chats of the way get."""
    client = running.client
    chat = max(running.corp.group_chats.values(), key=lambda c: len(c.member_list))
    way = client.post(
        "externalcontact/groupchat/add_join_way",
        {
            "scene": 2,
            "chat_id_list": [chat.chat_id],
            "state": "jw_spring",
            "room_base_name": "春季福利群",
            "room_base_id": 1,
        },
    )
    assert way["errcode"] == 0, way
    handover = chat.owner
    customers = list(running.corp.customers_of(handover))[:20]
    takeover = next(u for u in running.corp.members if u.startswith("guide") and u != handover)
    started = client.post(
        "externalcontact/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers},
    )
    assert [c["errcode"] for c in started["customer"]] == [0] * len(customers)
    return way["config_id"], chat.owner


def test_ground_truth_equals_the_state_and_the_callbacks(start_emulator: StartEmulator, receiver: Receiver) -> None:
    biggest = max(len(c.member_list) for c in build_corp(SMALL).group_chats.values())
    emulator = start_emulator(join_way_room_limit=biggest + 4)  # the join way's chat fills up: new chats open
    receiver.connect(emulator)
    client = emulator.client
    config_id, way_owner = _prepare(emulator)
    truth = _simulate(client, steps=600, seed=5)
    assert truth["steps"] == len(truth["kinds"]) == sum(truth["counts"][k] for k in KINDS) == 600
    counts = truth["counts"]
    assert min(counts[k] for k in KINDS) > 0  # every kind of action happened
    changes = ("add", "customer_delete", "member_delete", "join", "leave", "refuse_transfer")
    new_chats = sum(1 for r in truth["joins"] if r["new_chat"])
    assert counts["callbacks"] == sum(counts[k] for k in changes) + new_chats
    by_way = [r for r in truth["joins"] if r["config_id"]]
    assert by_way
    assert {(r["config_id"], r["state"], r["join_scene"]) for r in by_way} == {(config_id, "jw_spring", 3)}
    assert new_chats > 0

    # Callbacks: exactly the expected events, in order, each verified and decrypted.
    receiver.wait(counts["callbacks"])
    time.sleep(0.2)  # nothing more arrives
    events = receiver.events(emulator.corp.corp_id)
    assert [_fields(e) for e in events] == _expected_callbacks(truth, emulator.corp.corp_id)
    last_version: dict[str, str] = {}
    for event in events:  # each chat's member-version hashes chain from one event to the next
        chat_id = event.findtext("ChatId") or ""
        if event.findtext("CurMemVer"):  # member changes carry versions; a create does not
            if chat_id in last_version:
                assert event.findtext("LastMemVer") == last_version[chat_id]
            last_version[chat_id] = event.findtext("CurMemVer") or ""
    assert [d["id"] for d in client.admin("callbacks")["deliveries"]] == truth["delivery_ids"]

    # Relationships: the seeded ones, then every add and delete applied in step order.
    expected: dict[tuple[str, str], list[Any]] = {
        (f.userid, c.external_userid): [f.state, f.customer_deleted]
        for c in emulator.corp.contacts.values()
        for f in c.follows.values()
    }
    for name, r in _in_step_order(truth):
        key = (r.get("userid", ""), r.get("external_userid", ""))
        if name == "adds":
            expected[key] = [r["state"], False]
        elif name == "deletes" and r["by"] == "customer":
            expected[key][1] = True
        elif name == "deletes":
            del expected[key]
    assert _api_follows(client) == {k: v[0] for k, v in expected.items()}
    export = client.admin("corps/export")
    deleted_by_customer = {
        (userid, ext)
        for ext, c in export["contacts"].items()
        for userid, f in c["follows"].items()
        if f["customer_deleted"]
    }
    assert deleted_by_customer == {k for k, v in expected.items() if v[1]}
    new_customers = [r["external_userid"] for r in truth["adds"] if r["new_customer"]]
    assert len(new_customers) == counts["new_customers"] == len(set(new_customers))
    assert set(new_customers).isdisjoint(emulator.corp.contacts)

    # Groups: seeded members, plus joins (into new chats of the join way too), minus leaves.
    groups = {c.chat_id: {m.userid for m in c.member_list} for c in emulator.corp.group_chats.values()}
    states = set()
    for name, r in _in_step_order(truth):
        if name == "joins":
            if r["new_chat"]:
                groups[r["chat_id"]] = {way_owner}
            assert r["external_userid"] not in groups[r["chat_id"]]
            groups[r["chat_id"]].add(r["external_userid"])
            if r["state"]:
                states.add((r["chat_id"], r["external_userid"], r["state"]))
        elif name == "leaves":
            groups[r["chat_id"]].remove(r["external_userid"])
            states.discard((r["chat_id"], r["external_userid"], "jw_spring"))
    assert _api_groups(client) == (groups, states)
    way = client.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})["join_way"]
    assert way["chat_id_list"][1:] == [r["chat_id"] for r in truth["joins"] if r["new_chat"]]
    assert way["room_base_id"] == 1 + new_chats
    # Refusals: those transfers are over (status 3) for transfer_result.
    refused = {r["external_userid"] for r in truth["refusals"]}
    ((handover, takeover),) = {(r["handover_userid"], r["takeover_userid"]) for r in truth["refusals"]}
    result = client.post("externalcontact/transfer_result", {"handover_userid": handover, "takeover_userid": takeover})
    assert {c["external_userid"] for c in result["customer"] if c["status"] == 3} == refused

    # Chat content: the message store (the session archive's stand-in) holds exactly what the truth says was said.
    stored = _all_after(client, "chat_messages", "messages")
    assert [
        (m["seq"], m["msgid"], m["from"], m["tolist"], m["roomid"], m["text"]["content"], m["msgtime"] // 1000)
        for m in stored
    ] == [
        (r["seq"], r["msgid"], r["sender"], r["tolist"], r["roomid"], r["content"], r["at"]) for r in truth["messages"]
    ]
    assert all(m["action"] == "send" and m["msgtype"] == "text" for m in stored)
    assert all(r["keywords"] == list(keywords_in(r["content"])) for r in truth["messages"])
    opens = _all_after(client, "material_opens", "opens")
    assert [(o["seq"], o["userid"], o["external_userid"], o["material_id"], o["url"]) for o in opens] == [
        (r["seq"], r["userid"], r["external_userid"], r["material_id"], r["url"]) for r in truth["opens"]
    ]


def test_same_seed_gives_the_same_events_byte_for_byte(start_emulator: StartEmulator, make_receiver: Any) -> None:
    runs = []
    for _ in range(2):
        running = start_emulator(clock=Clock(frozen_at=FROZEN))
        receiver = make_receiver()
        receiver.connect(running)
        truth = _simulate(running.client, steps=400, seed=11)
        receiver.wait(truth["counts"]["callbacks"])
        xml = [ElementTree.tostring(e, encoding="unicode") for e in receiver.events(running.corp.corp_id)]
        state = running.client.admin("corps/export")
        del state["callback"]  # each run has its own receiver URL
        runs.append((truth, xml, state, running))
    (first, first_xml, first_state, one), (second, second_xml, second_state, _) = runs
    assert first == second
    assert first_xml == second_xml
    assert len(first_xml) == first["counts"]["callbacks"] > 0
    assert first_state == second_state
    # Another seed on the same state does something else.
    other = start_emulator(clock=Clock(frozen_at=FROZEN))
    assert _simulate(other.client, steps=400, seed=12)["kinds"] != first["kinds"]
    # A second run continues from the state the first left: it is not a replay of the first.
    assert _simulate(one.client, steps=50, seed=11)["adds"] != first["adds"][:50]


def test_no_two_callbacks_look_alike_within_a_second(start_emulator: StartEmulator) -> None:
    """Under a frozen clock every event has the same CreateTime; the receiver's de-duplication key must still
    tell them apart, or siyu would drop real events as retries."""
    running = start_emulator(clock=Clock(frozen_at=FROZEN))
    truth = _simulate(running.client, steps=3000, seed=2)
    deliveries = running.client.admin("callbacks")["deliveries"]
    assert len(deliveries) == truth["counts"]["callbacks"]
    keys = []
    for delivery in deliveries:
        xml = parse_xml(delivery["xml"])
        identity = [xml.findtext(t) or "" for t in ("CreateTime", "ChangeType", "UserID", "ExternalUserID", "ChatId")]
        identity.append(xml.findtext("UpdateDetail") or "")
        identity += [i.text or "" for i in xml.iter("Item")]
        keys.append(tuple(identity))
    assert len(set(keys)) == len(keys)
    # Every keyword of the vocabulary turns up over a run of this size, so tagging rules all have matches.
    assert set(truth["keyword_counts"]) == set(KEYWORDS)


def test_background_rate_matches_a_run_of_the_same_length(start_emulator: StartEmulator) -> None:
    live = start_emulator(clock=Clock(frozen_at=FROZEN))
    started = live.client.admin("simulate/run", {"rate": 40, "seed": 9})
    assert (started["running"], started["rate"], started["seed"]) == (True, 40, 9)
    time.sleep(1.5)
    status = live.client.admin("simulate/status")
    assert status["running"] is True
    expected = 40 * status["seconds"]
    assert expected * 0.5 <= status["steps"] <= expected * 1.2 + 2
    stopped = live.client.admin("simulate/stop", {})
    assert stopped["running"] is False
    time.sleep(0.1)
    background = live.client.admin("simulate/truth")
    assert background["steps"] == live.client.admin("simulate/status")["steps"] >= stopped["steps"]
    # The background run is the same sequence as a fixed-length run of the same seed on the same start.
    fixed = start_emulator(clock=Clock(frozen_at=FROZEN))
    assert _simulate(fixed.client, steps=background["steps"], seed=9) == background


def _only(kind: str, **shares: float) -> dict[str, float]:
    return {**dict.fromkeys(KINDS, 0.0), kind: 1.0, **shares}


def test_mix_selects_the_actions(emulator: Running) -> None:
    client = emulator.client
    only_chat = _simulate(client, steps=50, seed=1, mix=_only("message"))
    assert set(only_chat["kinds"]) == {"message"}
    assert only_chat["delivery_ids"] == []
    grow = _simulate(client, steps=30, seed=1, mix=_only("add", existing_customer=0))
    assert grow["counts"]["new_customers"] == 30
    assert client.admin("corps")["corps"][0]["counts"]["contacts"] == len(emulator.corp.contacts) + 30


def test_seconds_per_step_moves_the_clock(emulator: Running) -> None:
    client = emulator.client
    before = client.admin("clock")["offset"]
    truth = _simulate(client, steps=20, seed=4, seconds_per_step=30)
    assert client.admin("clock")["offset"] == before + 600
    times = [r["at"] for _, r in _in_step_order(truth)]
    assert times == sorted(times)
    assert times[-1] - times[0] >= 19 * 30 - 1


def test_simulation_requests_are_checked(start_emulator: StartEmulator) -> None:
    running = start_emulator()
    client = running.client
    assert client.admin_raw("simulate/run", {"seed": 1}).status == 400
    assert client.admin_raw("simulate/run", {"steps": 1, "rate": 1}).status == 400
    assert client.admin_raw("simulate/run", {"steps": 1, "mix": {"dance": 1}}).status == 400
    assert client.admin_raw("simulate/run", {"steps": 1, "mix": {"add": -1}}).status == 400
    assert client.admin_raw("simulate/run", {"steps": 1, "corp_id": "wwnope"}).status == 400
    assert client.admin_raw("simulate/run", {"rate": 0}).status == 400
    assert client.admin_raw("simulate/truth", {}).status == 400
    assert client.admin("simulate/status") == {"running": False, "steps": 0}
    empty = start_emulator(corps=[Corp("wwempty000000001", "空", apps=[App(1, "scrm", "s" * 43, True)])])
    refused = empty.client.admin_raw("simulate/run", {"steps": 1})
    assert refused.status == 400
    assert "nothing to simulate" in refused.json()["error"]


def test_single_message_and_open_actions(emulator: Running) -> None:
    client = emulator.client
    customer = next(c for c in emulator.corp.contacts.values() if len(c.follows) == 1)
    (guide,) = customer.follows
    ext = customer.external_userid
    said = client.admin("simulate/message", {"from": ext, "to": guide, "content": "我想买敏感肌能用的面霜"})
    reply = client.admin("simulate/message", {"from": guide, "to": ext, "content": "好的亲"})
    chat = next(iter(emulator.corp.group_chats.values()))
    in_group = client.admin("simulate/message", {"from": chat.owner, "chat_id": chat.chat_id, "content": "群公告"})
    messages = client.admin("chat_messages")["messages"]
    assert [m["seq"] for m in messages] == [said["seq"], reply["seq"], in_group["seq"]] == [1, 2, 3]
    assert messages[0] == {
        "seq": 1,
        "msgid": said["msgid"],
        "action": "send",
        "from": ext,
        "tolist": [guide],
        "roomid": "",
        "msgtime": messages[0]["msgtime"],
        "msgtype": "text",
        "text": {"content": "我想买敏感肌能用的面霜"},
    }
    assert said["msgid"].endswith(f"_{messages[0]['msgtime'] // 1000}")
    assert messages[2]["tolist"] == [m.userid for m in chat.member_list if m.userid != chat.owner]
    assert client.admin("chat_messages", after=2)["messages"] == messages[2:]
    assert client.admin("chat_messages", after=0, limit=1)["messages"] == messages[:1]
    # No callback for chat content.
    assert client.admin("callbacks")["deliveries"] == []

    stranger = next(c.external_userid for c in emulator.corp.contacts.values() if guide not in c.follows)
    assert client.admin_raw("simulate/message", {"from": stranger, "to": guide, "content": "hi"}).status == 400
    assert client.admin_raw("simulate/message", {"from": ext, "to": guide, "content": ""}).status == 400
    client.admin("simulate/del_contact", {"userid": guide, "external_userid": ext, "by": "customer"})
    assert client.admin_raw("simulate/message", {"from": guide, "to": ext, "content": "在吗"}).status == 400

    materials = [{"material_id": "m1", "title": "新品", "url": "https://brand.example.com/m1"}]
    assert client.admin("materials", {"materials": materials})["materials"] == materials
    other = next(c for c in emulator.corp.contacts.values() if c.external_userid != ext)
    userid = next(iter(other.follows))
    opened = client.admin(
        "simulate/open_material", {"external_userid": other.external_userid, "userid": userid, "material_id": "m1"}
    )
    (row,) = client.admin("material_opens")["opens"]
    assert row["seq"] == opened["seq"] == 1
    assert (row["external_userid"], row["userid"], row["material_id"], row["url"]) == (
        other.external_userid,
        userid,
        "m1",
        "https://brand.example.com/m1",
    )
    missing = {"external_userid": other.external_userid, "userid": userid, "material_id": "nope"}
    assert client.admin_raw("simulate/open_material", missing).status == 400
    assert client.admin_raw("materials", {"materials": [{"title": "x"}]}).status == 400
    # The simulator opens the corp's own materials once it has some.
    truth = _simulate(client, steps=200, seed=3)
    assert {r["material_id"] for r in truth["opens"]} == {"m1"}


def test_activity_log_is_capped(start_emulator: StartEmulator) -> None:
    running = start_emulator(activity_log_max=50)
    truth = _simulate(running.client, steps=400, seed=6)
    stored = running.client.admin("chat_messages")
    assert stored["last_seq"] == truth["counts"]["message"] > 60
    assert 50 <= len(stored["messages"]) <= 55
    assert stored["messages"][-1]["seq"] == stored["last_seq"]
    assert [m["seq"] for m in stored["messages"]] == list(range(stored["messages"][0]["seq"], stored["last_seq"] + 1))


def test_siyu_emulator_simulate_rate() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--no-persist", "--customers", "30", "--group-chats", "2", "--seed", "3", "--corp-id", "wwsimcli000000001"]
    proc = serve_cli(port, *args, "--simulate-rate", "25", "--simulate-seed", "4")
    try:
        (corp,) = wait_up(url, proc)["corps"]
        client = WeComClient(url, corp["corp_id"], "")
        deadline = time.monotonic() + 20
        while (status := client.admin("simulate/status"))["steps"] < 10:
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert (status["running"], status["rate"], status["seed"]) == (True, 25, 4)
        assert client.admin("corps")["corps"][0]["counts"]["contacts"] >= 30
    finally:
        output = stop_cli(proc)
    assert "simulator       25 actions/s, seed 4" in output
