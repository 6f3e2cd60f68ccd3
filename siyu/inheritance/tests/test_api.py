"""The inheritance API: a transfer started and followed over HTTP against the emulator, and bad input answered with
a 4xx naming the field (never a 500, never a half-written transfer). Per-persona scoping is in the API's
authorisation matrix (siyu/api/tests/test_authorization.py)."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.api.services import api_token_create
from siyu.api.tests.conftest import ApiClient
from siyu.core import services as core_services
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.inheritance.models import Transfer
from siyu.inheritance.tests.conftest import DAY, Synced
from siyu.testing import World


def test_start_and_follow_a_transfer_over_the_api(synced: Synced) -> None:
    tenant = synced.brand.tenant
    user = core_services.user_create(username="api-hq", password="x-api-hq-1")
    membership = core_services.membership_create(tenant=tenant, user=user, role=Role.HQ_ADMIN)
    secret = api_token_create(actor=Actor.system(tenant.id), membership_id=membership.id, name="t").secret
    api = ApiClient(secret)
    handover, takeover, customers = synced.pair(2)
    body = {
        "kind": "on_job",
        "handover_guide_id": synced.guide(handover).id,
        "takeover_guide_id": synced.guide(takeover).id,
        "customer_ids": [synced.customer(c).id for c in customers],
        "message": "您好",
    }
    answer = api.post("/transfers", body)
    assert answer.status == 201, answer.body
    transfer_id = answer.body["id"]
    assert (answer.body["status"], answer.body["customers"], answer.body["last_error"]) == (
        "in_progress",
        {"waiting": 2},
        "",
    )
    assert [(i["external_userid"], i["status"], i["errcode"]) for i in answer.body["items"]] == [
        (c, "waiting", 0) for c in customers
    ]
    assert all(i["due_at"] for i in answer.body["items"])

    synced.advance(DAY + 1)
    refreshed = api.post(f"/transfers/{transfer_id}/refresh")
    assert refreshed.status == 200
    assert (refreshed.body["status"], refreshed.body["customers"]) == ("done", {"succeeded": 2})
    assert api.get(f"/transfers/{transfer_id}").body == refreshed.body
    listed = api.get("/transfers", status="done")
    assert [(t["id"], t["customers"]) for t in listed.body["items"]] == [(transfer_id, {"succeeded": 2})]
    assert all(takeover in synced.follows(c) and handover not in synced.follows(c) for c in customers)


@pytest.fixture
def hq(world: World) -> ApiClient:
    membership = world.memberships["hq"]
    secret = api_token_create(actor=Actor.system(membership.tenant_id), membership_id=membership.id, name="t").secret
    return ApiClient(secret)


def _body(world: World, **changes: Any) -> dict[str, Any]:
    body = {
        "kind": "on_job",
        "handover_guide_id": world.guides["G1"].id,
        "takeover_guide_id": world.guides["G2"].id,
        "customer_ids": [world.customers["c1"].id],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"kind": ...}, 422, "kind"),
        ({"kind": "sideways"}, 422, "kind"),
        ({"handover_guide_id": ...}, 422, "handover_guide_id"),
        ({"handover_guide_id": "1"}, 422, "handover_guide_id"),
        ({"takeover_guide_id": 0}, 422, "takeover_guide_id"),
        ({"customer_ids": []}, 422, "customer_ids"),
        ({"customer_ids": [1, "x"]}, 422, "customer_ids.1"),
        ({"customer_ids": None}, 422, "customer_ids"),
        ({"message": "字" * 201}, 422, "message"),
        ({"message": "a\x00b"}, 422, "message"),
        ({"include_groups": "yes"}, 422, "include_groups"),
        ({"colour": "red"}, 422, "colour"),
        ({"handover_guide_id": 2**62}, 404, "handover_guide_id"),
        ({"takeover_guide_id": "G1"}, 422, "takeover_guide_id"),
    ],
)
def test_bad_input_names_the_field(
    world: World, hq: ApiClient, changes: dict[str, Any], status: int, field: str
) -> None:
    answer = hq.post("/transfers", _body(world, **changes))
    assert (answer.status, answer.body["field"]) == (status, field), answer.body
    assert not Transfer.objects.exists()


@pytest.mark.parametrize(
    ("case", "field", "detail"),
    [
        ("same guide", "takeover_guide_id", "the takeover guide must differ from the handover guide"),
        ("stranger", "customer_ids", "not customers of 导购1 on WeCom: "),
        ("departed takeover", "takeover_guide_id", "导购2 has left and cannot take over customers"),
        ("resigned but working", "handover_guide_id", "导购1 has not left: use an on-job transfer"),
        ("message when resigned", "message", "only on-job transfers carry a message to the customer"),
        ("already moving", "customer_ids", "already being transferred: "),
    ],
)
def test_what_the_guides_and_customers_do_not_allow_is_a_409(
    world: World, hq: ApiClient, case: str, field: str, detail: str
) -> None:
    body = _body(world)
    if case == "same guide":
        body["takeover_guide_id"] = body["handover_guide_id"]
    elif case == "stranger":
        body["customer_ids"] = [world.customers["c2"].id]
        detail += str(world.customers["c2"].id)
    elif case == "departed takeover":
        Guide.objects.filter(id=world.guides["G2"].id).update(status=Guide.Status.DEPARTED)
    elif case == "resigned but working":
        body["kind"] = "resigned"
    elif case == "already moving":
        assert hq.post("/transfers", body).status == 201
        detail += str(world.customers["c1"].id)
    else:
        Guide.objects.filter(id=world.guides["G1"].id).update(status=Guide.Status.DEPARTED)
        body.update(kind="resigned", message="您好")
    before = Transfer.objects.count()
    answer = hq.post("/transfers", body)
    assert answer.body == {"detail": detail, "field": field}
    assert answer.status == 409
    assert Transfer.objects.count() == before


def test_unknown_ids_and_filters(world: World, hq: ApiClient) -> None:
    assert hq.get("/transfers/999999").body == {"detail": "transfer 999999 not found", "field": "transfer_id"}
    assert hq.post("/transfers/999999/refresh").status == 404
    assert hq.get("/transfers", status="sideways").body["field"] == "status"
    assert hq.get("/transfers", handover_guide_id=0).body["field"] == "handover_guide_id"
    answer = hq.post("/transfers/to-brand-ip", {"handover_guide_id": world.guides["G1"].id, "include_groups": 1})
    assert (answer.status, answer.body["field"]) == (422, "include_groups")
    answer = hq.post("/transfers/to-brand-ip", {"handover_guide_id": world.guides["G1"].id})
    assert (answer.status, answer.body["field"]) == (409, "handover_guide_id")
    assert not Transfer.objects.exists()
