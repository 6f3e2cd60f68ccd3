"""The group code API: scopes per persona across two brands, clear 4xx answers naming the field, and nothing
written when a request is refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from siyu.api.tests.conftest import ApiClient
from siyu.core.models import AuditLog
from siyu.groups.models import CustomerGroup, GroupCode, GroupMember
from siyu.groups.tests.conftest import CODES_VISIBLE
from siyu.testing import World


@pytest.mark.parametrize("persona", sorted(CODES_VISIBLE))
def test_each_persona_sees_the_codes_of_its_scope_and_nothing_else(
    codes: dict[str, GroupCode], tokens: dict[str, str], persona: str
) -> None:
    api = ApiClient(tokens[persona])
    listed = api.get("/group-codes")
    assert listed.status == 200
    by_id = {c.id: key for key, c in codes.items()}
    assert {by_id[item["id"]] for item in listed.body["items"]} == CODES_VISIBLE[persona]
    for key, code in codes.items():
        answer = api.get(f"/group-codes/{code.id}")
        assert answer.status == (200 if key in CODES_VISIBLE[persona] else 404), key
        assert api.get(f"/group-codes/{code.id}/stats").status == answer.status


def test_detail_shows_groups_with_their_counts(
    world: World, codes: dict[str, GroupCode], tokens: dict[str, str]
) -> None:
    code = codes["S1"]
    group = CustomerGroup.objects.get(chat_id="wrS1")
    # One customer joined after the group became part of the code, another left.
    GroupMember.objects.filter(group=group, userid="wmwrS10").update(join_time=timezone.now())
    GroupMember.objects.filter(group=group, userid="wmwrS11").update(left_at=timezone.now())
    body = ApiClient(tokens["store1"]).get(f"/group-codes/{code.id}").body
    assert body["qr_code"] == "https://qr.example/s1.png"
    assert [
        (g["chat_id"], g["joins"], g["leaves"], g["net"], g["members"], g["in_way"], g["full"]) for g in body["groups"]
    ] == [("wrS1", 1, 1, 0, 4, True, False)]
    stats = ApiClient(tokens["store1"]).get(f"/group-codes/{code.id}/stats", days=7).body
    assert (len(stats["daily"]["days"]), stats["daily"]["joins"][-1], stats["daily"]["leaves"][-1]) == (7, 1, 1)


def body(group_id: int, **extra: Any) -> dict[str, Any]:
    return {"name": "新活码", "state": "new-code", "groups": [{"group_id": group_id}], **extra}


@pytest.mark.parametrize(
    ("persona", "payload", "status", "field"),
    [
        ("guide1", {}, 403, None),
        ("franchisee1", {}, 403, None),
        ("hq", {"state": "x" * 31}, 422, "state"),
        ("hq", {"state": "春季"}, 422, "state"),
        ("hq", {"groups": [{"group_id": 0}]}, 422, "groups.0.group_id"),
        ("hq", {"groups": [{"threshold": 201}]}, 422, "groups.0.threshold"),
        ("hq", {"groups": [{"active_from": "2026-03-01T10:00:00"}]}, 422, "groups.0.active_from"),
        ("hq", {"groups": []}, 422, "groups"),
        ("hq", {"state": "s1"}, 409, "state"),
        ("store1", {"store_id": "S2"}, 404, "store_id"),
        ("store1", {}, 422, "store_id"),
        ("store1", {"store_id": "S1", "groups": [{"group_id": "wrS2"}]}, 404, "group_id"),
        ("hq", {}, 409, None),  # everything valid, but the brand has no WeCom connection yet
    ],
)
def test_bad_requests_answer_4xx_naming_the_field_and_write_nothing(
    world: World,
    codes: dict[str, GroupCode],
    tokens: dict[str, str],
    persona: str,
    payload: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    group = CustomerGroup.objects.get(chat_id="wrS1")
    data = body(group.id, **payload)
    if isinstance(data.get("store_id"), str):
        data["store_id"] = world.stores[data["store_id"]].id
    groups = []
    for slot in data["groups"]:
        slot = {"group_id": group.id, **slot}
        if isinstance(slot["group_id"], str):
            slot["group_id"] = CustomerGroup.objects.get(chat_id=slot["group_id"]).id
        groups.append(slot)
    data["groups"] = groups
    before = (GroupCode.objects.count(), AuditLog.objects.count())
    answer = ApiClient(tokens[persona]).post("/group-codes", data)
    assert answer.status == status, answer.body
    assert answer.body["field"] == field
    assert answer.body["detail"]
    assert (GroupCode.objects.count(), AuditLog.objects.count()) == before


def test_a_full_group_is_refused_with_a_clear_message(codes: dict[str, GroupCode], tokens: dict[str, str]) -> None:
    group = CustomerGroup.objects.get(chat_id="wrS1")  # 4 members
    answer = ApiClient(tokens["hq"]).post(
        "/group-codes", body(group.id, groups=[{"group_id": group.id, "threshold": 4}])
    )
    assert (answer.status, answer.body["field"]) == (409, "group_ids")
    assert "is full (4 of 4 members)" in answer.body["detail"]


def test_pause_and_resume_in_scope_only(world: World, codes: dict[str, GroupCode], tokens: dict[str, str]) -> None:
    code = codes["S1"]
    assert ApiClient(tokens["guide1"]).post(f"/group-codes/{code.id}/pause").status == 403
    assert ApiClient(tokens["store1"]).post(f"/group-codes/{codes['S2'].id}/pause").status == 404
    assert ApiClient(tokens["outsider"]).post(f"/group-codes/{code.id}/pause").status == 404
    paused = ApiClient(tokens["store1"]).post(f"/group-codes/{code.id}/pause")
    assert (paused.status, paused.body["status"]) == (200, "paused")
    assert ApiClient(tokens["store1"]).post(f"/group-codes/{code.id}/resume").body["status"] == "active"
    actions = list(
        AuditLog.objects.filter(target_type="group_code", target_id=str(code.id))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["group_code.pause", "group_code.resume"]


def test_invite_rules_are_hq_only_and_one_per_tag(
    world: World, codes: dict[str, GroupCode], tokens: dict[str, str]
) -> None:
    rule = {"tag_id": world.tags["护肤"].id, "code_id": codes["S1"].id}
    assert ApiClient(tokens["store1"]).post("/group-invite-rules", rule).status == 403
    assert ApiClient(tokens["outsider"]).post("/group-invite-rules", rule).status == 404
    created = ApiClient(tokens["hq"]).post("/group-invite-rules", rule)
    assert (created.status, created.body["tag_name"], created.body["code_id"]) == (201, "护肤", codes["S1"].id)
    again = ApiClient(tokens["hq"]).post("/group-invite-rules", {**rule, "code_id": codes["S2"].id})
    assert (again.status, again.body["field"]) == (409, "tag_id")
    assert [r["id"] for r in ApiClient(tokens["store1"]).get("/group-invite-rules").body] == [created.body["id"]]
    assert ApiClient(tokens["outsider"]).get("/group-invite-rules").body == []


def test_migration_needs_dates_in_order_and_a_code_in_scope(
    world: World, codes: dict[str, GroupCode], tokens: dict[str, str]
) -> None:
    data = {"name": "迁移", "code_id": codes["S2"].id, "starts_on": "2026-03-01", "ends_on": "2026-02-01",
            "sources": [{"name": "个微群", "member_count": 100}]}  # fmt: skip
    assert ApiClient(tokens["store1"]).post("/group-migrations", data).status == 404  # S2's code
    data["code_id"] = codes["S1"].id
    answer = ApiClient(tokens["store1"]).post("/group-migrations", data)
    assert (answer.status, answer.body["field"]) in {(409, None), (422, "ends_on")}
    answer = ApiClient(tokens["store1"]).post("/group-migrations", {**data, "sources": [{"name": "个微群"}]})
    assert answer.status in (409, 422)
