"""The store-code rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Each check gets the matrix's context (world, persona, an API client with the persona's token) and asserts
exactly what that persona may see or change; refused writes must leave stores and the audit log untouched.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from siyu.core.models import AuditLog, Store
from siyu.storecodes.models import StoreCodeSettings
from siyu.testing import World

STORES_IN_SCOPE = {
    "hq": ["S1", "S2", "S3"],
    "region1": ["S1", "S2"],
    "store1": ["S1"],
    "franchisee1": ["S1", "S3"],
    "outsider": ["B1"],
}
EDITORS = {"hq", "region1", "store1"}
HQ = {"hq", "outsider"}
LOCATE = "/store-codes/locate?lat=30.2701&lng=120.1501"
WEEKDAYS_ONLY = {day: [["09:00", "21:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


def _state() -> tuple[list[tuple[Any, ...]], int]:
    stores = list(
        Store.objects.order_by("id").values_list("id", "latitude", "longitude", "hours", "temporarily_closed")
    )
    return stores, AuditLog.objects.count()


def check_locate(ctx: Ctx) -> None:
    answer = ctx.client.get(LOCATE)
    assert answer.status == 200, answer.body
    if ctx.persona == "outsider":  # brand B's store has no coordinates: the fallback, never brand A's stores
        assert (answer.body["store"], answer.body["fallback"]) == (None, True)
    else:  # every store of brand A whatever the scope (S1..S3 share a point: the smaller code wins)
        assert answer.body["store"]["id"] == ctx.world.stores["S1"].id


def check_store_list(ctx: Ctx) -> None:
    answer = ctx.client.get("/store-codes/stores")
    if ctx.persona == "guide1":
        assert answer.status == 403
        return
    ids = [s["id"] for s in answer.body["items"]]
    assert ids == [ctx.world.stores[k].id for k in STORES_IN_SCOPE[ctx.persona]]


def check_store_get(ctx: Ctx) -> None:
    for key, store in sorted(ctx.world.stores.items()):
        answer = ctx.client.get(f"/store-codes/stores/{store.id}")
        if ctx.persona == "guide1":
            assert answer.status == 403
        elif key in STORES_IN_SCOPE[ctx.persona]:
            assert (answer.status, answer.body["id"]) == (200, store.id)
        else:
            assert (answer.status, answer.body["field"]) == (404, "store_id")


def check_store_update(ctx: Ctx) -> None:
    for key, store in sorted(ctx.world.stores.items()):
        before = _state()
        answer = ctx.client.patch(f"/store-codes/stores/{store.id}", {"hours": WEEKDAYS_ONLY})
        in_scope = key in STORES_IN_SCOPE.get(ctx.persona, [])
        if ctx.persona in EDITORS | {"outsider"} and in_scope:
            assert (answer.status, answer.body["hours"]["mon"], answer.body["hours"]["sat"]) == (
                200,
                [["09:00", "21:00"]],
                [],
            )
            continue
        if ctx.persona in {"guide1", "franchisee1"}:
            assert answer.status == 403
        else:
            assert (answer.status, answer.body["field"]) == (404, "store_id")
        assert _state() == before


def check_store_import(ctx: Ctx) -> None:
    before = _state()
    answer = ctx.client.post(
        "/store-codes/stores/import", {"rows": [{"code": "S1", "latitude": 31.0, "longitude": 121.0}]}
    )
    if ctx.persona in {"guide1", "franchisee1"}:
        assert answer.status == 403
        assert _state() == before
        return
    assert answer.body == {"rows": 1, "updated": 1, "unchanged": 0}
    # The code "S1" names the persona's own brand's store: brand B's outsider moves B1, never brand A's S1.
    moved = ctx.world.stores["B1" if ctx.persona == "outsider" else "S1"]
    other = ctx.world.stores["S1" if ctx.persona == "outsider" else "B1"]
    assert Store.objects.get(id=moved.id).latitude == Decimal("31")
    assert Store.objects.get(id=other.id).latitude != Decimal("31")


def check_settings_get(ctx: Ctx) -> None:
    answer = ctx.client.get("/store-codes/settings")
    if ctx.persona == "guide1":
        assert answer.status == 403
        return
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    assert answer.body["landing_path"] == f"/s/{StoreCodeSettings.objects.get(tenant=tenant).public_token}/"


def check_settings_update(ctx: Ctx) -> None:
    before = AuditLog.objects.count()
    answer = ctx.client.call("PUT", "/store-codes/settings", body={"radius_m": 3000})
    if ctx.persona in HQ:
        assert (answer.status, answer.body["radius_m"]) == (200, 3000)
        tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
        other = ctx.world.tenant_a if ctx.persona == "outsider" else ctx.world.tenant_b
        assert StoreCodeSettings.objects.get(tenant=tenant).radius_m == 3000
        assert not StoreCodeSettings.objects.filter(tenant=other, radius_m=3000).exists()
    else:
        assert answer.status == 403
        assert AuditLog.objects.count() == before
        assert not StoreCodeSettings.objects.filter(radius_m=3000).exists()


# operationId → (method, path as the OpenAPI document spells it, check)
STORE_CODE_CHECKS = {
    "store_code_locate": ("get", "/api/v1/store-codes/locate", check_locate),
    "store_code_store_list": ("get", "/api/v1/store-codes/stores", check_store_list),
    "store_code_store_get": ("get", "/api/v1/store-codes/stores/{store_id}", check_store_get),
    "store_code_store_update": ("patch", "/api/v1/store-codes/stores/{store_id}", check_store_update),
    "store_code_store_import": ("post", "/api/v1/store-codes/stores/import", check_store_import),
    "store_code_settings_get": ("get", "/api/v1/store-codes/settings", check_settings_get),
    "store_code_settings_update": ("put", "/api/v1/store-codes/settings", check_settings_update),
}


def store_code_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    method, path, _check = STORE_CODE_CHECKS[operation_id]
    url = path.format(store_id=world.stores["S1"].id)
    bodies: dict[str, Any] = {
        "store_code_store_update": {"hours": WEEKDAYS_ONLY},
        "store_code_store_import": {"rows": [{"code": "S1", "latitude": 31.0, "longitude": 121.0}]},
        "store_code_settings_update": {"radius_m": 3000},
    }
    if operation_id == "store_code_locate":
        url += "?lat=30.27&lng=120.15"
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((STORE_CODE_CHECKS, store_code_request),)
