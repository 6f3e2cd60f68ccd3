"""The OneID API: every operation × every persona (the matrix rows of api_matrix.py), the credential check, and
bad input answered with a clear 4xx that changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from siyu.api.api import api
from siyu.api.tests.conftest import PERSONAS, ApiClient
from siyu.customers.models import Customer, CustomerMerge
from siyu.customers.tests.api_matrix import ONEID_CHECKS, _state, fixture, oneid_request
from siyu.testing import World


@dataclass
class Ctx:
    world: World
    persona: str
    client: ApiClient


def test_the_rows_cover_every_oneid_operation() -> None:
    schema = api.get_openapi_schema(path_prefix="/api/v1/")
    registered = {
        op["operationId"]: (method, path)
        for path, methods in schema["paths"].items()
        if "/customer-merge" in path
        for method, op in methods.items()
    }
    assert registered == {op: (method, path) for op, (method, path, _check) in ONEID_CHECKS.items()}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("operation_id", sorted(ONEID_CHECKS))
def test_persona_sees_and_changes_exactly_its_scope(
    world: World, tokens: dict[str, str], operation_id: str, persona: str
) -> None:
    check = ONEID_CHECKS[operation_id][2]
    check(Ctx(world=world, persona=persona, client=ApiClient(tokens[persona])))


def test_every_request_needs_a_token_and_succeeds_with_hq_s(world: World, tokens: dict[str, str]) -> None:
    hq = ApiClient(tokens["hq"])
    for operation_id in sorted(ONEID_CHECKS):
        method, url, body = oneid_request(world, operation_id)
        before = _state()
        answer = ApiClient().call(method, url, body=body)
        assert answer.status == 401, operation_id
        assert _state() == before
        assert hq.call(method, url, body=body).status in {200, 201}, operation_id


@pytest.fixture
def hq(world: World, tokens: dict[str, str]) -> ApiClient:
    fixture(world)
    return ApiClient(tokens["hq"])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"customer_ids": ["c1", "c1"]}, 422, "customer_ids"),
        ({"customer_ids": ["c1", "b1"]}, 404, "customer_ids"),
        ({"customer_ids": ["c1"]}, 422, "customer_ids"),
        ({"customer_ids": ["c1", "c2", "c3"]}, 422, "customer_ids"),
        ({"customer_ids": ["c1", 0]}, 422, "customer_ids.1"),
        ({"customer_ids": ["c1", "1"]}, 422, "customer_ids.1"),
        ({"customer_ids": ["c1", "c2"], "survivor": 1}, 422, "survivor"),
    ],
)
def test_bad_merges_are_4xx_and_change_nothing(
    world: World, hq: ApiClient, body: dict[str, Any], status: int, field: str
) -> None:
    ids = [world.customers[v].id if isinstance(v, str) and v in world.customers else v for v in body["customer_ids"]]
    before = _state()
    answer = hq.post("/customer-merges", {**body, "customer_ids": ids})
    assert (answer.status, answer.body["field"]) == (status, field), answer.body
    assert _state() == before


def test_merging_into_itself_and_across_brands_say_why(world: World, hq: ApiClient) -> None:
    c1, b1 = world.customers["c1"], world.customers["b1"]
    itself = hq.post("/customer-merges", {"customer_ids": [c1.id, c1.id]})
    assert (itself.status, itself.body["field"]) == (422, "customer_ids")
    assert "a customer cannot be merged into itself" in itself.body["detail"]
    other = hq.post("/customer-merges", {"customer_ids": [c1.id, b1.id]})
    assert (other.status, other.body["detail"]) == (404, f"customer {b1.id} not found")


def test_unmerging_what_is_not_merged_is_409(world: World, hq: ApiClient) -> None:
    c1, c2 = world.customers["c1"], world.customers["c2"]
    merged = hq.post("/customer-merges", {"customer_ids": [c1.id, c2.id]})
    assert merged.status == 201
    merge_id = merged.body["id"]
    assert hq.post(f"/customer-merges/{merge_id}/unmerge").status == 200
    before = _state()
    answer = hq.post(f"/customer-merges/{merge_id}/unmerge")
    assert answer.status == 409
    assert answer.body["detail"] == f"merge {merge_id} was already undone; the customers are not merged"
    assert _state() == before
    assert hq.post("/customer-merges/999999/unmerge").status == 404
    # The merged customer's id no longer answers while merged, and does again after the unmerge.
    assert hq.get(f"/customers/{c2.id}").status == 200


def test_a_merge_answers_what_moved_and_the_merged_customer_disappears(world: World, hq: ApiClient) -> None:
    c1, c3 = world.customers["c1"], world.customers["c3"]
    answer = hq.post("/customer-merges", {"customer_ids": [c3.id, c1.id]})
    assert answer.status == 201
    body = answer.body
    assert (body["survivor_id"], body["merged_id"], body["status"], body["filled"]) == (c1.id, c3.id, "merged", [])
    # c3's follow relation (G3) moved; its tag 护肤 stayed, as c1 carries it already.
    assert body["moved"]["customers.FollowRelation.customer"] == 1
    assert body["kept"] == {"tags.CustomerTag.customer": 1}
    assert "tags.CustomerTag.customer" not in body["moved"]
    assert hq.get(f"/customers/{c3.id}").status == 404
    assert c3.id not in {c["id"] for c in hq.get("/customers", limit=100).body["items"]}
    assert Customer.objects.get(id=c3.id).merged_into_id == c1.id
    listed = hq.get("/customer-merges", customer_id=c3.id).body
    assert [m["id"] for m in listed["items"]] == [CustomerMerge.objects.get(merged=c3).id]
