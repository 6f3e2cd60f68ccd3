"""Customer endpoints beyond authorisation: filters, pagination, detail contents, updates, timeline."""

from __future__ import annotations

import pytest
from django.utils import translation

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event
from siyu.api.tests.conftest import ApiClient
from siyu.core.models import AuditLog
from siyu.customers.models import Customer
from siyu.testing import World


@pytest.fixture
def hq(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["hq"])


def keys(world: World, answer: object) -> list[str]:
    by_id = {c.id: k for k, c in world.customers.items()}
    return [by_id[item["id"]] for item in answer.body["items"]]  # type: ignore[attr-defined]


def test_pages_are_newest_first_with_a_total(world: World, hq: ApiClient) -> None:
    first = hq.get("/customers", limit=2)
    second = hq.get("/customers", limit=2, offset=2)
    beyond = hq.get("/customers", limit=2, offset=50)
    assert keys(world, first) == ["c5", "c4"]
    assert keys(world, second) == ["c3", "c2"]
    assert (beyond.body["items"], beyond.body["count"], beyond.body["offset"]) == ([], 5, 50)
    assert (first.body["count"], first.body["limit"]) == (5, 2)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "王小明"}, ["c1"]),
        ({"q": "小"}, ["c1"]),
        ({"q": "13800000002"}, ["c2"]),
        ({"q": "+86 138-0000-0003"}, ["c3"]),
        ({"q": "union-c4"}, ["c4"]),
        ({"q": "wmc1"}, ["c1"]),
        ({"q": "nobody"}, []),
        ({"lifecycle_stage": "new"}, ["c5", "c4", "c3", "c2", "c1"]),
        ({"lifecycle_stage": "repeat"}, []),
    ],
)
def test_filters(world: World, hq: ApiClient, params: dict[str, str], expected: list[str]) -> None:
    assert keys(world, hq.get("/customers", **params)) == expected


def test_tag_filters_combine_with_and(world: World, hq: ApiClient) -> None:
    skin, makeup = world.tags["护肤"].id, world.tags["彩妆"].id
    assert keys(world, hq.get("/customers", tag=[skin])) == ["c3", "c1"]
    hq.post(f"/customers/{world.customers['c3'].id}/tags", {"tag_id": makeup})
    assert keys(world, hq.get("/customers", tag=[skin, makeup])) == ["c3"]
    assert keys(world, hq.get("/customers", tag=[skin, skin])) == ["c3", "c1"]


def test_store_and_guide_filters(world: World, hq: ApiClient) -> None:
    assert keys(world, hq.get("/customers", store_id=world.stores["S2"].id)) == ["c2"]
    assert keys(world, hq.get("/customers", guide_id=world.guides["IP"].id)) == ["c4"]


def test_list_items_are_masked_with_tags(world: World, hq: ApiClient) -> None:
    item = hq.get("/customers", q="王小明").body["items"][0]
    assert item == {
        "id": world.customers["c1"].id,
        "name_masked": "王**",
        "phone_masked": "138****0001",
        "gender": 0,
        "city": "杭州",
        "lifecycle_stage": "new",
        "intent_level": 0,
        "source": "test",
        "owner_guide_id": None,
        "owner_guide_name": "",
        "created_at": "2026-01-05T10:00:00Z",
        "tags": [
            {
                "id": world.tags["护肤"].id,
                "name": "护肤",
                "group_id": world.tags["护肤"].group_id,
                "group_name": "兴趣",
                "source": "manual",
                "applied_at": item["tags"][0]["applied_at"],
            }
        ],
    }


def test_detail_shows_relations_and_identities_but_never_the_phone(world: World, hq: ApiClient) -> None:
    body = hq.get(f"/customers/{world.customers['c1'].id}").body
    assert body["follow_relations"] == [
        {
            "guide_id": world.guides["G1"].id,
            "guide_name": "导购1",
            "store_id": world.stores["S1"].id,
            "status": "active",
            "add_way": 1,
            "state": "store-S1",
            "added_at": "2026-01-05T10:05:00Z",
            "deleted_at": None,
        }
    ]
    assert [(i["kind"], i["value"]) for i in body["identities"]] == [
        ("phone", None),
        ("unionid", "union-c1"),
        ("wecom_external_userid", "wmc1"),
    ]
    assert "13800000001" not in str(body)


def test_update_applies_only_the_fields_sent(world: World, hq: ApiClient) -> None:
    c1 = world.customers["c1"]
    answer = hq.patch(
        f"/customers/{c1.id}",
        {"lifecycle_stage": "repeat", "gender": 2, "owner_guide_id": world.guides["G1"].id, "name": "王大明"},
    )
    assert answer.status == 200
    assert (answer.body["lifecycle_stage"], answer.body["gender"], answer.body["owner_guide_name"]) == (
        "repeat",
        2,
        "导购1",
    )
    assert answer.body["name_masked"] == "王**"
    assert answer.body["city"] == "杭州"
    event = Event.objects.get(customer_id=c1.id, type="customer.updated")
    assert event.properties == {"fields": ["gender", "lifecycle_stage", "name", "owner_guide_id"]}
    assert AuditLog.objects.get(action="customer.update").detail == event.properties

    cleared = hq.patch(f"/customers/{c1.id}", {"owner_guide_id": None, "phone": None})
    assert (cleared.body["owner_guide_id"], cleared.body["phone_masked"]) == (None, "")
    assert Customer.objects.get(id=c1.id).phone_hash == ""


def test_empty_update_changes_nothing_but_records_it(world: World, hq: ApiClient) -> None:
    c2 = world.customers["c2"]
    answer = hq.patch(f"/customers/{c2.id}", {})
    assert answer.status == 200
    assert Event.objects.get(customer_id=c2.id, type="customer.updated").properties == {"fields": []}


def test_create_returns_the_masked_customer(world: World, hq: ApiClient) -> None:
    answer = hq.post(
        "/customers",
        {
            "name": "陈晨",
            "phone": "13912345678",
            "city": "宁波",
            "lifecycle_stage": "engaged",
            "identities": [{"kind": "member_no", "value": "M-0001"}],
        },
    )
    assert answer.status == 201
    assert (answer.body["name_masked"], answer.body["phone_masked"], answer.body["source"]) == (
        "陈*",
        "139****5678",
        "api",
    )
    detail = hq.get(f"/customers/{answer.body['id']}").body
    assert sorted((i["kind"], i["value"]) for i in detail["identities"]) == [("member_no", "M-0001"), ("phone", None)]
    assert hq.get("/customers", q="M-0001").body["count"] == 1


def test_timeline_filters_by_type_and_pages(world: World, hq: ApiClient) -> None:
    c1 = world.customers["c1"]
    everything = hq.get(f"/customers/{c1.id}/timeline").body
    assert [e["type"] for e in everything["items"]] == ["tag.added", "contact.added", "customer.created"]
    only = hq.get(f"/customers/{c1.id}/timeline", type=["contact.added", "customer.created"], limit=1).body
    assert ([e["type"] for e in only["items"]], only["count"]) == (["contact.added"], 2)
    # Labels follow the request's language: Simplified Chinese unless the client chose otherwise.
    with translation.override("zh-hans"):
        assert only["items"][0]["label"] == str(EVENT_TYPES["contact.added"].label)
