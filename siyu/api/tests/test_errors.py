"""Errors name the offending field; malformed input is a 4xx; failed writes leave nothing half-written."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from siyu.analytics.models import Event
from siyu.api.services import api_token_create
from siyu.api.tests.conftest import ApiClient
from siyu.core.models import AuditLog
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing import World


@pytest.fixture
def hq(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["hq"])


def _token_for(world: World, persona: str) -> str:
    membership = world.memberships[persona]
    return api_token_create(actor=world.actor("hq"), membership_id=membership.id, name=persona).secret


def db_state() -> dict[str, int]:
    models = (Customer, Identity, FollowRelation, CustomerTag, Tag, TagGroup, Event, AuditLog)
    return {m.__name__: m.objects.count() for m in models}


def assert_field_error(answer: Any, status: int, field: str | None, message: str) -> None:
    """The error shape every client relies on: detail, the field, and (for 422) every field error."""
    assert answer.status == status, answer.body
    assert answer.body["field"] == field
    assert message in answer.body["detail"]
    if status == 422 and "errors" in answer.body:
        assert answer.body["errors"][0]["field"] == field


# --- field-naming validation errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone", ["12345", "23800000000", "138000000001", "phone", "13800000001\n", "１３８００００００01"]
)
def test_bad_phone_on_create_names_phone(world: World, hq: ApiClient, phone: str) -> None:
    before = db_state()
    answer = hq.post("/customers", {"name": "新客", "phone": phone})
    message = "must be an 11-digit mainland mobile number"
    assert answer.body == {
        "detail": f"phone: {message}",
        "field": "phone",
        "errors": [{"field": "phone", "message": message}],
    }
    assert answer.status == 422
    assert db_state() == before


def test_bad_phone_on_update_names_phone_and_changes_nothing(world: World, hq: ApiClient) -> None:
    c1 = world.customers["c1"]
    answer = hq.patch(f"/customers/{c1.id}", {"city": "苏州", "phone": "999"})
    assert_field_error(answer, 422, "phone", "11-digit")
    assert Customer.objects.get(id=c1.id).city == "杭州"


@pytest.mark.parametrize("phone", ["+86 139-0000-1234", "0086 13900001234", "8613900001234", "139 0000 1234"])
def test_phone_spellings_are_normalised(world: World, hq: ApiClient, phone: str) -> None:
    answer = hq.post("/customers", {"phone": phone})
    assert answer.status == 201
    assert answer.body["phone_masked"] == "139****1234"
    assert hq.post(f"/customers/{answer.body['id']}/reveal").body["phone"] == "13900001234"


def test_integral_float_is_an_integer(world: World, hq: ApiClient) -> None:
    """JSON Schema counts 2.0 as an integer, so the API does too."""
    answer = hq.post(f"/customers/{world.customers['c5'].id}/tags", {"tag_id": float(world.tags["护肤"].id)})
    assert answer.status == 200
    assert [t["id"] for t in answer.body["tags"]] == [world.tags["护肤"].id]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tag-groups", {"name": "标" * 31}, "name"),
        ("/tag-groups", {"name": "季节", "tags": ["春", "夏" * 31]}, "tags.1"),
        ("/tag-groups/{group}/tags", {"name": "x" * 31}, "name"),
    ],
)
def test_too_long_tag_name_names_the_field(world: World, hq: ApiClient, path: str, body: Any, field: str) -> None:
    before = db_state()
    answer = hq.post(path.format(group=world.tags["护肤"].group_id), body)
    assert_field_error(answer, 422, field, "String should have at most 30 characters")
    assert db_state() == before


def test_tag_name_of_exactly_30_characters_is_fine(world: World, hq: ApiClient) -> None:
    answer = hq.post(f"/tag-groups/{world.tags['护肤'].group_id}/tags", {"name": "标" * 30})
    assert answer.status == 201
    assert Tag.objects.get(id=answer.body["id"]).name == "标" * 30


@pytest.mark.parametrize("name", ["   ", " 护肤", "护肤 ", "\x1c"])
def test_blank_or_untrimmed_tag_name_is_refused(world: World, hq: ApiClient, name: str) -> None:
    answer = hq.post("/tag-groups", {"name": name})
    message = "must not be blank, contain NUL characters, or start or end with spaces"
    assert answer.status == 422
    assert answer.body == {
        "detail": f"name: {message}",
        "field": "name",
        "errors": [{"field": "name", "message": message}],
    }


def test_service_errors_have_the_same_shape(world: World) -> None:
    """A 422 raised by a service (here: a scoped role must name an owner guide) reads like a schema 422."""
    message = "owner_guide_id is required for your role"
    store1 = ApiClient(_token_for(world, "store1"))
    answer = store1.post("/customers", {"name": "x"})
    assert answer.body == {
        "detail": message,
        "field": "owner_guide_id",
        "errors": [{"field": "owner_guide_id", "message": message}],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/customers", {"lifecycle_stage": "vip"}, None),
        ("PATCH", "/customers/{c1}", {"lifecycle_stage": "vip"}, None),
        ("PATCH", "/customers/{c1}", {"lifecycle_stage": None}, None),
        ("GET", "/customers", None, {"lifecycle_stage": "vip"}),
    ],
)
def test_unknown_lifecycle_stage_names_the_field(
    world: World, hq: ApiClient, method: str, path: str, body: Any, params: Any
) -> None:
    before = db_state()
    answer = hq.call(method, path.format(c1=world.customers["c1"].id), body=body, params=params)
    assert answer.status == 422
    assert answer.body["field"] == "lifecycle_stage"
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("POST", "/customers", {"gender": "female"}, None, "gender"),
        ("POST", "/customers", {"gender": 7}, None, "gender"),
        ("POST", "/customers", {"name": 12}, None, "name"),
        ("POST", "/customers", {"owner_guide_id": "abc"}, None, "owner_guide_id"),
        ("POST", "/customers", {"owner_guide_id": 0}, None, "owner_guide_id"),
        ("POST", "/customers", {"identities": "union-x"}, None, "identities"),
        ("POST", "/customers", {"identities": [{"kind": "qq", "value": "1"}]}, None, "identities.0.kind"),
        ("POST", "/customers", {"identities": [{"kind": "unionid", "value": ""}]}, None, "identities.0.value"),
        ("POST", "/customers", {"name": "王\x00"}, None, "name"),
        ("POST", "/customers", {"city": "\x00"}, None, "city"),
        ("POST", "/customers", {"city": "城" * 51}, None, "city"),
        ("PATCH", "/customers/{c1}", {"intent_level": "high"}, None, "intent_level"),
        ("PATCH", "/customers/{c1}", {"intent_level": 6}, None, "intent_level"),
        ("PATCH", "/customers/{c1}", {"gender": None}, None, "gender"),
        ("PATCH", "/customers/{c1}", {"owner_guide_id": 2**63}, None, "owner_guide_id"),
        ("POST", "/customers/{c1}/tags", {"tag_id": "护肤"}, None, "tag_id"),
        ("POST", "/customers/{c1}/tags", {}, None, "tag_id"),
        ("POST", "/customers/{c1}/tags", {"tag_id": True}, None, "tag_id"),
        ("POST", "/customers/{c1}/tags", {"tag_id": "1"}, None, "tag_id"),
        ("POST", "/customers/{c1}/tags", {"tag_id": 1.5}, None, "tag_id"),
        ("POST", "/customers/{c1}/tags", {"tag_id": 1, "source": "rfm"}, None, "source"),
        ("POST", "/customers", {"gender": True}, None, "gender"),
        ("POST", "/customers", {"identities": [{"kind": "phone", "value": "13900001111"}]}, None, "identities.0.kind"),
        ("POST", "/customers", {"identities": [{"kind": "unionid", "value": " u1"}]}, None, "identities.0.value"),
        ("PATCH", "/customers/{c1}", {"lifecycle_stag": "repeat"}, None, "lifecycle_stag"),
        ("PATCH", "/customers/{c1}", {"phone": "1380000000"}, None, "phone"),
        ("POST", "/tag-groups", {"name": "季节", "tags": ["春", "春"]}, None, "tags"),
        ("POST", "/tag-groups", {"name": "季节", "order": -1}, None, "order"),
        ("POST", "/tag-groups", {"name": "季节", "order": 2**31}, None, "order"),
        ("POST", "/tag-groups", {"name": "季节", "tags": "春"}, None, "tags"),
        ("GET", "/customers", None, {"limit": 0}, "limit"),
        ("GET", "/customers", None, {"limit": 101}, "limit"),
        ("GET", "/customers", None, {"offset": -1}, "offset"),
        ("GET", "/customers", None, {"limit": "ten"}, "limit"),
        ("GET", "/customers", None, {"tag": ["x"]}, "tag.0"),
        ("GET", "/customers", None, {"tag": list(range(1, 12))}, "tag"),
        ("GET", "/customers", None, {"store_id": "S1"}, "store_id"),
        ("GET", "/customers", None, {"q": "a\x00"}, "q"),
        ("GET", "/customers/{c1}/timeline", None, {"type": "order.shipped"}, "type.0"),
        ("GET", "/customers/abc", None, None, "customer_id"),
        ("GET", "/customers/0", None, None, "customer_id"),
        ("GET", f"/customers/{2**63}", None, None, "customer_id"),
        ("DELETE", "/customers/{c1}/tags/-1", None, None, "tag_id"),
        ("GET", "/stores", None, {"offset": 10**20}, "offset"),
    ],
)
def test_wrong_types_name_the_field(
    world: World, hq: ApiClient, method: str, path: str, body: Any, params: Any, field: str
) -> None:
    before = db_state()
    answer = hq.call(method, path.format(c1=world.customers["c1"].id), body=body, params=params)
    assert answer.status == 422, answer.body
    assert answer.body["field"] == field, answer.body
    assert answer.body["errors"][0]["field"] == field
    assert field in answer.body["detail"]
    assert db_state() == before


def test_every_field_error_is_listed(world: World, hq: ApiClient) -> None:
    answer = hq.post("/customers", {"gender": 9, "city": "城" * 51, "lifecycle_stage": "vip"})
    assert answer.status == 422
    assert [e["field"] for e in answer.body["errors"]] == ["gender", "city", "lifecycle_stage"]


def test_unpaired_surrogate_in_json_is_422(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.call("POST", "/customers", raw='{"name": "\\ud800"}')
    assert_field_error(answer, 422, "name", "valid string")
    assert db_state() == before


# --- malformed requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"name": ', "not json", "\xff\xfe", '{"name": "a",}'])
def test_malformed_json_is_400(world: World, hq: ApiClient, raw: str) -> None:
    before = db_state()
    answer = hq.call("POST", "/customers", raw=raw.encode("latin-1"))
    assert answer.status == 400
    assert answer.body == {"detail": "Cannot parse request body", "field": None}
    assert db_state() == before


@pytest.mark.parametrize("path", ["/tag-groups", "/customers", "/customers/{c1}"])
@pytest.mark.parametrize("raw", ["[]", "[null, null]", '"name"', "42", "true"])
def test_json_that_is_not_an_object_is_422(world: World, hq: ApiClient, raw: str, path: str) -> None:
    before = db_state()
    method = "PATCH" if path.endswith("}") else "POST"
    answer = hq.call(method, path.format(c1=world.customers["c1"].id), raw=raw)
    assert answer.status == 422
    assert answer.body["field"] is None
    assert answer.body["detail"].startswith("request body: Input should be a valid dictionary")
    assert db_state() == before


def test_missing_body_is_422(world: World, hq: ApiClient) -> None:
    answer = hq.call("POST", "/tag-groups")
    assert answer.status == 422
    assert answer.body["detail"] == "request body: Field required"
    assert answer.body["field"] is None


def test_unknown_path_is_json_404(world: World, hq: ApiClient) -> None:
    for path in ["/nothing", "/customers/1/nothing", "/v2/customers"]:
        answer = hq.get(path)
        assert (answer.status, answer.body) == (404, {"detail": "not found", "field": None})


def test_wrong_method_is_405(world: World, hq: ApiClient) -> None:
    response = Client().put("/api/v1/customers", headers={"Authorization": f"Bearer {hq.token}"})
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}


# --- conflicts leave nothing half-written ------------------------------------------------------------------


def test_duplicate_phone_creates_no_customer_identity_or_event(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.post(
        "/customers",
        {"name": "重复", "phone": world.phones["c2"], "identities": [{"kind": "member_no", "value": "M-1"}]},
    )
    assert answer.body == {"detail": "another customer already has this phone or identity", "field": "identities"}
    assert answer.status == 409
    assert db_state() == before
    assert not Identity.objects.filter(value="M-1").exists()


def test_duplicate_identity_creates_nothing(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.post("/customers", {"name": "重复", "identities": [{"kind": "unionid", "value": "union-c1"}]})
    assert answer.status == 409
    assert db_state() == before


def test_same_phone_in_another_brand_is_fine(world: World, tokens: dict[str, str]) -> None:
    answer = ApiClient(tokens["outsider"]).post("/customers", {"phone": world.phones["c2"]})
    assert answer.status == 201


def test_update_with_taken_phone_changes_nothing(world: World, hq: ApiClient) -> None:
    c1 = world.customers["c1"]
    before = db_state()
    answer = hq.patch(f"/customers/{c1.id}", {"city": "苏州", "name": "新名字", "phone": world.phones["c3"]})
    assert answer.body == {"detail": "another customer already has this phone", "field": "phone"}
    assert answer.status == 409
    assert db_state() == before
    reloaded = Customer.objects.get(id=c1.id)
    assert (reloaded.city, reloaded.name_enc, reloaded.phone_hash) == (c1.city, c1.name_enc, c1.phone_hash)


def test_duplicate_tag_group_is_409(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.post("/tag-groups", {"name": "兴趣"})
    assert answer.body == {"detail": "tag group '兴趣' already exists", "field": "name"}
    assert answer.status == 409
    assert db_state() == before


def test_a_bad_second_tag_creates_no_group(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.post("/tag-groups", {"name": "季节", "tags": ["春", " 夏"]})
    assert (answer.status, answer.body["field"]) == (422, "tags.1")
    assert db_state() == before


def test_duplicate_tag_in_group_is_409(world: World, hq: ApiClient) -> None:
    answer = hq.post(f"/tag-groups/{world.tags['护肤'].group_id}/tags", {"name": "护肤"})
    assert (answer.status, answer.body["field"]) == (409, "name")


def test_tagging_twice_is_idempotent(world: World, hq: ApiClient) -> None:
    c1, tag = world.customers["c1"], world.tags["护肤"]
    before = db_state()
    answer = hq.post(f"/customers/{c1.id}/tags", {"tag_id": tag.id})
    assert answer.status == 200
    assert [t["id"] for t in answer.body["tags"]] == [tag.id]
    assert db_state() == before


def test_untagging_an_untagged_customer_is_204_and_writes_nothing(world: World, hq: ApiClient) -> None:
    before = db_state()
    answer = hq.delete(f"/customers/{world.customers['c5'].id}/tags/{world.tags['护肤'].id}")
    assert answer.status == 204
    assert db_state() == before


# --- the last-resort handler -------------------------------------------------------------------------------


def test_unexpected_errors_are_logged_and_answer_a_bare_500(
    world: World, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler exists for bugs only; this test plants one to show it logs and leaks nothing."""

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("planted bug with a secret in its message")

    monkeypatch.setattr("siyu.api.routers.me.me_for", broken)
    with caplog.at_level(logging.ERROR, logger="siyu.api.api"):
        response = Client().get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['hq']}"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "field": None}
    assert "unhandled error in GET /api/v1/me" in caplog.text
    assert "planted bug" in caplog.text


# --- pinned query counts -----------------------------------------------------------------------------------


def test_customer_list_query_count_does_not_grow_with_the_page(
    world: World, hq: ApiClient, django_assert_num_queries: Any
) -> None:
    # token lookup, last_used update, count, page, tags of the page
    with django_assert_num_queries(5):
        answer = hq.get("/customers")
    assert answer.body["count"] == 5
