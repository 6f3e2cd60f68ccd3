"""「联系我」 contact ways, and customers adding members through them."""

from __future__ import annotations

from typing import Any

from siyu.emulator.seed import SeedSpec
from siyu.emulator.tests.conftest import ANCHOR, Running, StartEmulator


def test_add_get_update_delete(emulator: Running) -> None:
    client = emulator.client
    guides = [u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u.startswith("guide")]
    added = client.post(
        "externalcontact/add_contact_way",
        {"type": 1, "scene": 2, "user": [guides[0]], "state": "poster_2024", "remark": "海报", "skip_verify": False},
    )
    assert added["errcode"] == 0, added
    config_id = added["config_id"]
    assert len(config_id) == 32
    assert added["qr_code"] == f"{emulator.server.emulator.config.public_url}/emulator/qr/{config_id}.svg"
    # The picture is served, so the console can show it offline.
    picture = client.request("GET", f"/emulator/qr/{config_id}.svg")
    assert picture.status == 200
    assert picture.headers["Content-Type"] == "image/svg+xml"

    way = client.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
    assert {k: way[k] for k in ("config_id", "type", "scene", "state", "remark", "skip_verify", "user", "party")} == {
        "config_id": config_id,
        "type": 1,
        "scene": 2,
        "state": "poster_2024",
        "remark": "海报",
        "skip_verify": False,
        "user": [guides[0]],
        "party": [],
    }
    assert (
        client.post("externalcontact/update_contact_way", {"config_id": config_id, "user": [guides[1]], "state": "v2"})[
            "errcode"
        ]
        == 0
    )
    way = client.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
    assert (way["user"], way["state"], way["remark"]) == ([guides[1]], "v2", "海报")
    assert client.post("externalcontact/del_contact_way", {"config_id": config_id})["errcode"] == 0
    assert client.post("externalcontact/get_contact_way", {"config_id": config_id})["errcode"] == 41044

    mini = client.post("externalcontact/add_contact_way", {"type": 2, "scene": 1, "party": [3]})
    assert mini["errcode"] == 0
    assert "qr_code" not in mini  # only scene 2 has a QR code


def test_contact_way_errors(emulator: Running) -> None:
    client = emulator.client
    guide = next(u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u.startswith("guide"))

    def add(body: dict[str, Any]) -> int:
        return int(client.post("externalcontact/add_contact_way", body)["errcode"])

    assert add({"scene": 2, "user": [guide]}) == 41037
    assert add({"type": 1, "user": [guide]}) == 41038
    assert add({"type": 3, "scene": 2, "user": [guide]}) == 41039
    assert add({"type": 1, "scene": 3, "user": [guide]}) == 41040
    assert add({"type": 1, "scene": 2, "user": [guide], "style": 0}) == 41042
    assert add({"type": 1, "scene": 2, "user": [guide], "state": "s" * 31}) == 40058
    assert add({"type": 1, "scene": 2, "user": [guide], "state": "s" * 30}) == 0
    assert add({"type": 1, "scene": 2, "user": [guide], "remark": "r" * 31}) == 40058
    assert add({"type": 1, "scene": 2, "user": [guide, "brand_ip"]}) == 40058  # single member means one
    assert add({"type": 1, "scene": 2, "user": ["nobody"]}) == 40003
    assert add({"type": 2, "scene": 2}) == 40063
    assert client.post("externalcontact/get_contact_way", {})["errcode"] == 41043
    assert client.post("externalcontact/del_contact_way", {"config_id": "0" * 32})["errcode"] == 41044
    # A rejected update changes nothing.
    config_id = client.post(
        "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": [guide], "remark": "原"}
    )["config_id"]
    assert (
        client.post("externalcontact/update_contact_way", {"config_id": config_id, "remark": "新", "state": "x" * 31})[
            "errcode"
        ]
        == 40058
    )
    assert client.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]["remark"] == "原"


def test_member_limit_is_100_including_departments(start_emulator: StartEmulator) -> None:
    running = start_emulator(
        SeedSpec(
            seed=5,
            corp_id="wwtest0000000005",
            anchor=ANCHOR,
            regions=1,
            stores_per_region=3,
            guides_per_store=40,
            customers=10,
            group_chats=0,
        )
    )
    client = running.client
    guides = [u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u.startswith("guide")]
    assert len(guides) == 120
    assert client.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": guides[:100]})["errcode"] == 0
    assert (
        client.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": guides[:101]})["errcode"]
        == 41041
    )
    # Two stores of 40 plus 21 named guides: 101 people once departments are expanded.
    stores = sorted({running.corp.members[g].main_department for g in guides})
    third_store = [g for g in guides if running.corp.members[g].main_department == stores[2]]
    body = {"type": 2, "scene": 2, "party": stores[:2], "user": third_store[:21]}
    assert client.post("externalcontact/add_contact_way", body)["errcode"] == 41041
    body["user"] = third_store[:20]
    assert client.post("externalcontact/add_contact_way", body)["errcode"] == 0


def test_list_contact_way_pages_api_created_ways_in_the_window(emulator: Running) -> None:
    client = emulator.client
    guide = next(u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u.startswith("guide"))
    made = [
        client.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": [guide]})["config_id"]
        for _ in range(7)
    ]
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.post("externalcontact/list_contact_way", {"limit": 3, "cursor": cursor})
        assert page["errcode"] == 0
        seen += [w["config_id"] for w in page["contact_way"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # The seeded ways are a year old: outside the default 90-day window.
    assert seen == made
    everything = client.post("externalcontact/list_contact_way", {"start_time": ANCHOR - 400 * 86_400, "limit": 1000})
    assert len(everything["contact_way"]) == len(made) + len(emulator.corp.contact_ways)
    assert client.post("externalcontact/list_contact_way", {"cursor": "bogus"})["errcode"] == 50100


def test_scanning_a_contact_way_adds_the_customer_with_its_state(emulator: Running) -> None:
    client = emulator.client
    guide = next(u for u in client.get("externalcontact/get_follow_user_list")["follow_user"] if u.startswith("guide"))
    config_id = client.post(
        "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": [guide], "state": "门店海报"}
    )["config_id"]
    added = client.admin("simulate/add_contact", {"config_id": config_id, "name": "扫码客户"})
    assert added["userid"] == guide
    data = client.get("externalcontact/get", external_userid=added["external_userid"])
    assert data["external_contact"]["name"] == "扫码客户"
    follow = data["follow_user"][0]
    assert (follow["userid"], follow["state"], follow["add_way"]) == (guide, "门店海报", 1)
    assert follow["oper_userid"] == added["external_userid"]  # the customer initiated the add
    assert added["external_userid"] in client.get("externalcontact/list", userid=guide)["external_userid"]
