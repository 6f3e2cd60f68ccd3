"""Inheritance: on-job and resigned customer transfers with their 24-hour window and limits, transfer_result,
get_unassigned_list, and group-chat inheritance. The emulator's clock is moved instead of waiting."""

from __future__ import annotations

import time
from typing import Any
from xml.etree import ElementTree

from siyu.emulator.clock import Clock
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.tests.conftest import ANCHOR, SMALL, Receiver, Running, StartEmulator, WeComClient

DAY = 86_400
FROZEN = 1_700_000_500.0


def _guides(running: Running) -> list[str]:
    return [u for u in running.corp.members if u.startswith("guide")]


def _pair(running: Running, n: int) -> tuple[str, str, list[str]]:
    """A handover guide, a takeover guide, and n customers of the handover the takeover does not have."""
    corp = running.corp
    guides = _guides(running)
    for handover in guides:
        for takeover in guides:
            own = [c for c in corp.customers_of(handover) if takeover not in corp.contacts[c].follows]
            if takeover != handover and len(own) >= n:
                return handover, takeover, own[:n]
    raise AssertionError("no suitable pair of guides")


def _transfer(client: WeComClient, handover: str, takeover: str, customers: list[str], **extra: Any) -> dict[str, Any]:
    body = {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers, **extra}
    return client.post("externalcontact/transfer_customer", body)


def _codes(answer: dict[str, Any]) -> list[int]:
    assert answer["errcode"] == 0, answer
    return [c["errcode"] for c in answer["customer"]]


def _result(
    client: WeComClient, handover: str, takeover: str, api: str = "transfer_result"
) -> dict[str, tuple[int, int]]:
    data = client.post(f"externalcontact/{api}", {"handover_userid": handover, "takeover_userid": takeover})
    assert data["errcode"] == 0, data
    return {c["external_userid"]: (c["status"], c["takeover_time"]) for c in data["customer"]}


def _advance(client: WeComClient, seconds: float) -> None:
    client.admin("clock", {"advance": seconds})
    client.refresh()  # a day's jump outlives the access token


def _contact_fields(xml: ElementTree.Element) -> list[tuple[str, str]]:
    return [(c.tag, c.text or "") for c in xml][5:]  # after ToUserName, FromUserName, CreateTime, MsgType, Event


def test_on_job_transfer_completes_after_24_hours(start_emulator: StartEmulator, receiver: Receiver) -> None:
    emulator = start_emulator(clock=Clock(frozen_at=FROZEN))  # a still clock: times can be compared exactly
    receiver.connect(emulator)
    client, corp = emulator.client, emulator.corp
    handover, takeover, customers = _pair(emulator, 4)
    friends = customers[3]  # already the takeover's customer: no add event for them
    client.admin("simulate/add_contact", {"userid": takeover, "external_userid": friends})
    receiver.wait(1)
    started_at = client.admin("clock")["now"]
    answer = _transfer(client, handover, takeover, customers, transfer_success_msg="您好，我是您的新顾问")
    assert answer["customer"] == [{"external_userid": c, "errcode": 0} for c in customers]
    due = int(started_at + DAY)
    assert _result(client, handover, takeover) == dict.fromkeys(customers, (2, due))  # waiting, takes over at `due`
    # Nothing happens before the 24 hours are over.
    _advance(client, DAY - 60)
    assert set(_result(client, handover, takeover).values()) == {(2, due)}
    assert len(receiver.received) == 1

    _advance(client, 61)
    assert _result(client, handover, takeover) == dict.fromkeys(customers, (1, due))
    receiver.wait(1 + 2 * 3 + 1)
    events = receiver.events(corp.corp_id)[1:]
    assert {e.findtext("CreateTime") for e in events} == {str(due)}
    expected: list[list[tuple[str, str]]] = []
    for customer in customers:
        if customer != friends:
            expected.append(
                [("ChangeType", "add_external_contact"), ("UserID", takeover), ("ExternalUserID", customer)]
            )
        expected.append(
            [
                ("ChangeType", "del_external_contact"),
                ("UserID", handover),
                ("ExternalUserID", customer),
                ("Source", "DELETE_BY_TRANSFER"),
            ]
        )
    assert [_contact_fields(e) for e in events] == expected

    # The customer now belongs to the takeover: add_way 202 (assigned), the handover's tags and remark kept.
    old = corp.contacts[customers[0]].follows[handover]
    data = client.get("externalcontact/get", external_userid=customers[0])
    (follow,) = [f for f in data["follow_user"] if f["userid"] in (handover, takeover)]
    assert (follow["userid"], follow["add_way"], follow["remark"]) == (takeover, 202, old.remark)
    assert [t["tag_id"] for t in follow["tags"]] == old.tag_ids
    assert "state" not in follow
    assert not set(customers) & set(client.get("externalcontact/list", userid=handover).get("external_userid", []))


def test_customer_refuses_within_the_window(start_emulator: StartEmulator, receiver: Receiver) -> None:
    emulator = start_emulator(clock=Clock(frozen_at=FROZEN))
    receiver.connect(emulator)
    client = emulator.client
    handover, takeover, customers = _pair(emulator, 2)
    assert _codes(_transfer(client, handover, takeover, customers)) == [0, 0]
    client.admin("clock", {"advance": 3600})
    refused = client.admin("simulate/transfer/refuse", {"external_userid": customers[0]})
    assert (refused["handover_userid"], refused["takeover_userid"]) == (handover, takeover)
    receiver.wait(1)
    (event,) = receiver.events(emulator.corp.corp_id)
    assert _contact_fields(event) == [
        ("ChangeType", "transfer_fail"),
        ("FailReason", "customer_refused"),
        ("UserID", takeover),
        ("ExternalUserID", customers[0]),
    ]
    now = int(client.admin("clock")["now"])
    assert _result(client, handover, takeover)[customers[0]] == (3, now)
    _advance(client, DAY)
    results = _result(client, handover, takeover)
    assert (results[customers[0]][0], results[customers[1]][0]) == (3, 1)
    # The refusing customer stays with the handover; too late to refuse the other one.
    assert handover in client.get("externalcontact/get", external_userid=customers[0])["follow_user"][0]["userid"]
    assert client.admin_raw("simulate/transfer/refuse", {"external_userid": customers[1]}).status == 400
    # A refused customer may be transferred again.
    assert _codes(_transfer(client, handover, takeover, customers[:1])) == [0]


def test_transfer_limits_and_errcodes(emulator: Running) -> None:
    client = emulator.client
    handover, takeover, customers = _pair(emulator, 3)
    first = customers[0]
    assert _codes(_transfer(client, handover, takeover, [first])) == [0]
    assert _codes(_transfer(client, handover, takeover, [first])) == [40129]  # already being transferred
    _advance(client, DAY + 1)
    # Back and forth: the second transfer within 90 days is allowed, the third is not.
    assert _codes(_transfer(client, takeover, handover, [first])) == [0]
    _advance(client, DAY + 1)
    assert _codes(_transfer(client, handover, takeover, [first])) == [40128]
    _advance(client, 89 * DAY)
    assert _codes(_transfer(client, handover, takeover, [first])) == [0]

    stranger = next(c for c in emulator.corp.contacts if handover not in emulator.corp.contacts[c].follows)
    mixed = _transfer(client, handover, takeover, [customers[1], "wmnosuchcustomer", stranger])
    assert _codes(mixed) == [0, 40096, 40131]
    assert _transfer(client, handover, handover, customers[2:])["errcode"] == 40130
    assert _transfer(client, handover, takeover, [])["errcode"] == 41035
    assert _transfer(client, handover, takeover, ["x"] * 101)["errcode"] == 40058
    assert _transfer(client, handover, takeover, customers[2:], transfer_success_msg="字" * 201)["errcode"] == 40058
    assert _transfer(client, handover, "nobody", customers[2:])["errcode"] == 40003
    assert _transfer(client, handover, "hq_admin", customers[2:])["errcode"] == 610004  # no customer-contact
    missing = client.post("externalcontact/transfer_customer", {"handover_userid": handover, "external_userid": ["x"]})
    assert missing["errcode"] == 40063
    assert client.post("externalcontact/transfer_result", {"handover_userid": handover})["errcode"] == 40063
    resigned = client.post(
        "externalcontact/resigned/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": customers[2:]},
    )
    assert resigned["errcode"] == 40097  # the handover has not resigned
    client.admin("simulate/member/resign", {"userid": handover})
    assert _transfer(client, handover, takeover, customers[2:])["errcode"] == 40058  # use the resigned API


def test_takeover_at_the_customer_limit(start_emulator: StartEmulator, receiver: Receiver) -> None:
    probe = build_corp(SMALL)
    guides = [u for u in probe.members if u.startswith("guide")]
    takeover = min(guides, key=lambda u: len(probe.customers_of(u)))
    running = start_emulator(member_customer_limit=len(probe.customers_of(takeover)))
    receiver.connect(running)
    client = running.client
    handover = next(u for u in guides if u != takeover and probe.customers_of(u))
    customer = next(c for c in probe.customers_of(handover) if takeover not in probe.contacts[c].follows)
    assert _codes(_transfer(client, handover, takeover, [customer])) == [0]
    _advance(client, DAY)
    assert _result(client, handover, takeover)[customer][0] == 4
    receiver.wait(1)
    (event,) = receiver.events(running.corp.corp_id)
    assert _contact_fields(event) == [
        ("ChangeType", "transfer_fail"),
        ("FailReason", "customer_limit_exceed"),
        ("UserID", takeover),
        ("ExternalUserID", customer),
    ]
    follows = [f["userid"] for f in client.get("externalcontact/get", external_userid=customer)["follow_user"]]
    assert handover in follows
    assert takeover not in follows


def test_relationship_gone_before_takeover_is_status_5(emulator: Running, receiver: Receiver) -> None:
    receiver.connect(emulator)
    client = emulator.client
    handover, takeover, customers = _pair(emulator, 1)
    assert _codes(_transfer(client, handover, takeover, customers)) == [0]
    client.admin("simulate/del_contact", {"userid": handover, "external_userid": customers[0], "by": "member"})
    _advance(client, DAY)
    assert _result(client, handover, takeover)[customers[0]][0] == 5
    time.sleep(0.3)
    assert len(receiver.received) == 1  # only the member's own deletion


def test_resigned_inheritance_and_unassigned_list(start_emulator: StartEmulator, receiver: Receiver) -> None:
    emulator = start_emulator(clock=Clock(frozen_at=FROZEN))
    receiver.connect(emulator)
    client, corp = emulator.client, emulator.corp
    handover, takeover, _ = _pair(emulator, 1)
    theirs = list(corp.customers_of(handover))
    assert client.post("externalcontact/get_unassigned_list", {})["info"] == []
    resigned_at = int(client.admin("clock")["now"])
    client.admin("simulate/member/resign", {"userid": handover})
    assert handover not in client.get("externalcontact/get_follow_user_list")["follow_user"]

    def unassigned(page_size: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = client.post("externalcontact/get_unassigned_list", {"page_size": page_size, "cursor": cursor})
            assert len(page["info"]) <= page_size
            rows += page["info"]
            assert page["is_last"] == (not page["next_cursor"])
            if page["is_last"]:
                return rows
            cursor = page["next_cursor"]

    expected = [{"handover_userid": handover, "external_userid": c, "dimission_time": resigned_at} for c in theirs]
    assert unassigned(3) == expected
    assert unassigned(1000) == expected
    legacy = client.post("externalcontact/get_unassigned_list", {"page_id": 1, "page_size": 2})
    assert legacy["info"] == expected[2:4]
    assert client.post("externalcontact/get_unassigned_list", {"page_id": 50, "page_size": 1000})["errcode"] == 40058

    chosen = [c for c in theirs if takeover not in corp.contacts[c].follows][:2]
    answer = client.post(
        "externalcontact/resigned/transfer_customer",
        {"handover_userid": handover, "takeover_userid": takeover, "external_userid": chosen},
    )
    assert _codes(answer) == [0, 0]
    assert [r["external_userid"] for r in unassigned(1000)] == [c for c in theirs if c not in chosen]
    started_at = int(client.admin("clock")["now"])
    assert _result(client, handover, takeover, "resigned/transfer_result") == dict.fromkeys(
        chosen, (2, started_at + DAY)
    )
    assert _result(client, handover, takeover) == {}  # on-job results are separate
    _advance(client, DAY)
    assert {s for s, _ in _result(client, handover, takeover, "resigned/transfer_result").values()} == {1}
    receiver.wait(2)
    time.sleep(0.2)
    events = receiver.events(corp.corp_id)
    # The takeover gets the customers; a resigned member's side ends without an event.
    assert [_contact_fields(e) for e in events] == [
        [("ChangeType", "add_external_contact"), ("UserID", takeover), ("ExternalUserID", c)] for c in chosen
    ]


def test_transfer_result_pages_by_1000(start_emulator: StartEmulator) -> None:
    spec = SeedSpec(seed=3, corp_id="wwbig00000000001", anchor=ANCHOR, regions=1, stores_per_region=1,
                    guides_per_store=2, customers=2600, group_chats=0)  # fmt: skip
    running = start_emulator(spec=spec)
    client = running.client
    handover, takeover = _guides(running)
    customers = list(running.corp.customers_of(handover))[:1150]
    assert len(customers) == 1150
    for i in range(0, len(customers), 100):
        codes = _codes(_transfer(client, handover, takeover, customers[i : i + 100]))
        assert set(codes) == {0}
    body = {"handover_userid": handover, "takeover_userid": takeover}
    first = client.post("externalcontact/transfer_result", body)
    assert len(first["customer"]) == 1000
    second = client.post("externalcontact/transfer_result", {**body, "cursor": first["next_cursor"]})
    assert (len(second["customer"]), second["next_cursor"]) == (150, "")
    assert [c["external_userid"] for c in first["customer"] + second["customer"]] == customers
    swapped = {"handover_userid": takeover, "takeover_userid": handover, "cursor": first["next_cursor"]}
    assert client.post("externalcontact/transfer_result", swapped)["errcode"] == 50100


def test_settles_without_any_request(start_emulator: StartEmulator, receiver: Receiver) -> None:
    running = start_emulator(settle_interval=0.05)
    receiver.connect(running)
    handover, takeover, customers = _pair(running, 1)
    assert _codes(_transfer(running.client, handover, takeover, customers)) == [0]
    running.server.emulator.clock.advance(DAY)  # no request: the settler thread notices
    receiver.wait(2, timeout=5)
    assert [e.findtext("ChangeType") for e in receiver.events(running.corp.corp_id)] == [
        "add_external_contact",
        "del_external_contact",
    ]


def _group_transfer(client: WeComClient, api: str, chats: list[str], new_owner: str) -> list[tuple[str, int]]:
    answer = client.post(f"externalcontact/{api}", {"chat_id_list": chats, "new_owner": new_owner})
    assert answer["errcode"] == 0, answer
    assert all(f["errmsg"] for f in answer["failed_chat_list"])
    return [(f["chat_id"], f["errcode"]) for f in answer["failed_chat_list"]]


def test_resigned_owner_groups(start_emulator: StartEmulator, receiver: Receiver) -> None:
    running = start_emulator(groupchat_transfer_seconds=60)
    receiver.connect(running)
    client, corp = running.client, running.corp
    owner = next(c.owner for c in corp.group_chats.values())
    owned = [c.chat_id for c in corp.group_chats.values() if c.owner == owner]
    other = next(c.chat_id for c in corp.group_chats.values() if c.owner != owner)
    heir = next(u for u in _guides(running) if u != owner)
    assert _group_transfer(client, "groupchat/transfer", owned[:1], heir) == [(owned[0], 90500)]  # not resigned
    client.admin("simulate/member/resign", {"userid": owner})
    awaiting = client.post("externalcontact/groupchat/list", {"status_filter": 1, "limit": 1000})["group_chat_list"]
    assert {c["chat_id"] for c in awaiting} == set(owned)

    failed = _group_transfer(client, "groupchat/transfer", [*owned, other, "wrnosuchchat"], heir)
    assert failed == [(other, 90500), ("wrnosuchchat", 90501)]
    assert _group_transfer(client, "groupchat/transfer", owned[:1], heir) == [(owned[0], 90507)]  # in progress
    in_progress = client.post("externalcontact/groupchat/list", {"status_filter": 2, "limit": 1000})
    assert {c["chat_id"] for c in in_progress["group_chat_list"]} == set(owned)
    client.admin("clock", {"advance": 61})
    for chat_id in owned:
        chat = client.post("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
        assert chat["owner"] == heir
        assert heir in [m["userid"] for m in chat["member_list"]]
    done = client.post("externalcontact/groupchat/list", {"status_filter": 3, "limit": 1000})["group_chat_list"]
    assert {c["chat_id"] for c in done} == set(owned)
    assert _group_transfer(client, "groupchat/transfer", owned[:1], heir) == [(owned[0], 90508)]
    time.sleep(0.2)
    assert receiver.received == []  # API-made changes push nothing


def test_on_job_owner_groups(emulator: Running) -> None:
    client, corp = emulator.client, emulator.corp
    chat = next(iter(corp.group_chats.values()))
    heir = next(u for u in _guides(emulator) if u != chat.owner)
    assert _group_transfer(client, "groupchat/onjob_transfer", [chat.chat_id], chat.owner) == [(chat.chat_id, 90504)]
    assert _group_transfer(client, "groupchat/onjob_transfer", [chat.chat_id], heir) == []
    after = client.post("externalcontact/groupchat/get", {"chat_id": chat.chat_id})["group_chat"]
    assert after["owner"] == heir
    assert chat.owner in [m["userid"] for m in after["member_list"]]  # the former owner stays a member
    listed = client.post("externalcontact/groupchat/list", {"limit": 1000})["group_chat_list"]
    assert next(c["status"] for c in listed if c["chat_id"] == chat.chat_id) == 0
    client.admin("simulate/member/resign", {"userid": heir})
    assert _group_transfer(client, "groupchat/onjob_transfer", [chat.chat_id], chat.owner) == [(chat.chat_id, 90502)]
    body = {"chat_id_list": [], "new_owner": chat.owner}
    assert client.post("externalcontact/groupchat/onjob_transfer", body)["errcode"] == 40063
    body = {"chat_id_list": ["x"] * 101, "new_owner": chat.owner}
    assert client.post("externalcontact/groupchat/onjob_transfer", body)["errcode"] == 40058
    body = {"chat_id_list": [chat.chat_id], "new_owner": "nobody"}
    assert client.post("externalcontact/groupchat/onjob_transfer", body)["errcode"] == 40003
    body = {"chat_id_list": [chat.chat_id], "new_owner": heir}  # resigned: cannot take a group
    assert client.post("externalcontact/groupchat/onjob_transfer", body)["errcode"] == 40003
