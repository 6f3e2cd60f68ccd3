"""The store-code API: locate for mini-programs, stores' geo data (scoped), import, settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from siyu.analytics.models import Event
from siyu.api.tests.conftest import Answer, ApiClient
from siyu.core.models import AuditLog, Store
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.tests.conftest import GiveCodes, brand_ip_code
from siyu.testing import World

PLACES = {
    "S1": ("30.259000", "120.130000"),  # 西湖边
    "S2": ("30.274100", "120.155100"),  # 武林广场
    "S3": ("30.246000", "120.210000"),  # 钱江新城
    "B1": ("30.259500", "120.130500"),  # brand B, right next to S1
}


@pytest.fixture
def placed(world: World) -> World:
    for key, (lat, lng) in PLACES.items():
        Store.objects.filter(id=world.stores[key].id).update(latitude=Decimal(lat), longitude=Decimal(lng))
    return world


def put(api: ApiClient, path: str, body: object) -> Answer:
    return api.call("PUT", path, body=body)


def client(tokens: dict[str, str], persona: str) -> ApiClient:
    return ApiClient(tokens[persona])


def test_locate_returns_the_nearest_store_with_its_codes(
    placed: World,
    tokens: dict[str, str],
    give_codes: GiveCodes,
) -> None:
    give_codes(placed.stores["S1"])
    answer = client(tokens, "hq").get("/store-codes/locate", lat="30.2600", lng="120.1352")
    assert answer.status == 200, answer.body
    body = answer.body
    assert (body["store"]["code"], body["store"]["distance_m"], body["fallback"]) == ("S1", 512, False)
    assert body["guide_code"]["name"] == "门店S1导购码"
    assert body["guide_code"]["qr_url"].endswith(".png")
    assert body["group_code"]["qr_url"] == f"https://wework.example/join/{placed.stores['S1'].id}"
    assert body["fallback_code"] is None
    event = Event.objects.get(type="storecode.visited")
    assert (event.tenant_id, event.properties["source"], event.properties["area"]) == (
        placed.tenant_a.id,
        "api",
        [30.26, 120.14],
    )


def test_locate_searches_the_whole_brand_but_never_another_brand(placed: World, tokens: dict[str, str]) -> None:
    # A store manager's token still finds S2 (what any shopper is shown); brand B's B1 is next door but not ours.
    answer = client(tokens, "store1").get("/store-codes/locate", lat="30.2745", lng="120.1555")
    assert answer.body["store"]["code"] == "S2"
    outsider = client(tokens, "outsider").get("/store-codes/locate", lat="30.2600", lng="120.1352")
    assert outsider.body["store"]["code"] == "S1"
    assert outsider.body["store"]["id"] == placed.stores["B1"].id


def test_locate_with_no_store_near_names_the_fallback_code(placed: World, tokens: dict[str, str]) -> None:
    code_id = brand_ip_code(placed.tenant_a)
    hq = client(tokens, "hq")
    assert put(hq, "/store-codes/settings", {"radius_m": 3000, "fallback_live_code_id": code_id}).status == 200
    answer = hq.get("/store-codes/locate", lat="39.9042", lng="116.4074")
    assert (answer.body["store"], answer.body["fallback"], answer.body["radius_m"]) == (None, True, 3000)
    assert answer.body["fallback_code"]["id"] == code_id
    # A wider radius for this request only.
    assert hq.get("/store-codes/locate", lat="30.30", lng="120.13", radius_m="6000").body["store"]["code"] == "S2"
    assert hq.get("/store-codes/locate", lat="30.30", lng="120.13").body["fallback"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": "abc", "lng": "120"}, "lat"),
        ({"lat": "91", "lng": "120"}, "lat"),
        ({"lat": "-90.5", "lng": "120"}, "lat"),
        ({"lat": "NaN", "lng": "120"}, "lat"),
        ({"lat": "30", "lng": "180.01"}, "lng"),
        ({"lat": "30", "lng": "inf"}, "lng"),
        ({"lat": "30"}, "lng"),
        ({"lat": "30", "lng": "120", "radius_m": "0"}, "radius_m"),
    ],
)
def test_invalid_coordinates_are_422_naming_the_field(
    placed: World,
    tokens: dict[str, str],
    params: dict[str, str],
    field: str,
) -> None:
    answer = client(tokens, "hq").get("/store-codes/locate", **params)
    assert answer.status == 422
    assert answer.body["field"] == field
    assert Event.objects.filter(type="storecode.visited").count() == 0


@pytest.mark.parametrize(
    ("persona", "codes"),
    [
        ("hq", ["S1", "S2", "S3"]),
        ("region1", ["S1", "S2"]),
        ("store1", ["S1"]),
        ("franchisee1", ["S1", "S3"]),
        ("outsider", ["S1"]),
    ],
)
def test_store_list_follows_the_scope(
    placed: World,
    tokens: dict[str, str],
    give_codes: GiveCodes,
    persona: str,
    codes: list[str],
) -> None:
    give_codes(placed.stores["S1"], group=False)
    answer = client(tokens, persona).get("/store-codes/stores")
    assert [s["code"] for s in answer.body["items"]] == codes
    if persona == "hq":
        s1 = answer.body["items"][0]
        assert (s1["latitude"], s1["longitude"], s1["has_guide_code"], s1["has_group_code"]) == (
            30.259,
            120.13,
            True,
            False,
        )


def test_guides_do_not_manage_store_codes(placed: World, tokens: dict[str, str]) -> None:
    guide = client(tokens, "guide1")
    assert guide.get("/store-codes/stores").status == 403
    assert guide.get("/store-codes/settings").status == 403
    assert guide.get("/store-codes/locate", lat="30.26", lng="120.13").status == 200


def test_update_sets_coordinates_and_hours_and_audits(placed: World, tokens: dict[str, str]) -> None:
    s1 = placed.stores["S1"]
    answer = client(tokens, "store1").patch(
        f"/store-codes/stores/{s1.id}",
        {"latitude": 30.25, "longitude": 120.14, "opens_at": "18:00", "closes_at": "02:00"},
    )
    assert answer.status == 200, answer.body
    assert (answer.body["latitude"], answer.body["opens_at"], answer.body["closes_at"]) == (30.25, "18:00", "02:00")
    s1.refresh_from_db()
    assert (s1.latitude, s1.longitude, str(s1.opens_at)) == (Decimal("30.25"), Decimal("120.14"), "18:00:00")
    audit = AuditLog.objects.get(action="store.geo_update")
    assert audit.detail["latitude"] == ["30.259000", "30.250000"]
    # Only the hours: coordinates stay.
    answer = client(tokens, "store1").patch(f"/store-codes/stores/{s1.id}", {"opens_at": None, "closes_at": None})
    assert (answer.body["latitude"], answer.body["opens_at"]) == (30.25, None)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"latitude": 30.1}, "longitude", 409),  # half a pair: a rule about the data
        ({"latitude": 0, "longitude": 0}, "latitude", 409),
        ({"opens_at": "10:00"}, "closes_at", 409),
        ({"latitude": 95, "longitude": 120}, "latitude", 422),  # malformed: the schema refuses it
        ({"latitude": "30.1", "longitude": 120}, "latitude", 422),
        ({"opens_at": "25:00", "closes_at": "10:00"}, "opens_at", 422),
    ],
)
def test_bad_geo_input_names_the_field_and_changes_nothing(
    placed: World,
    tokens: dict[str, str],
    body: dict[str, object],
    field: str,
    status: int,
) -> None:
    s2 = placed.stores["S2"]
    Store.objects.filter(id=s2.id).update(latitude=None, longitude=None)
    answer = client(tokens, "hq").patch(f"/store-codes/stores/{s2.id}", body)
    assert answer.status == status
    assert answer.body["field"] == field
    s2.refresh_from_db()
    assert (s2.latitude, s2.opens_at) == (None, None)
    assert not AuditLog.objects.filter(action="store.geo_update").exists()


def test_update_outside_the_scope_is_not_found_and_franchisees_cannot_edit(
    placed: World,
    tokens: dict[str, str],
) -> None:
    body = {"latitude": 30.0, "longitude": 120.0}
    assert client(tokens, "store1").patch(f"/store-codes/stores/{placed.stores['S2'].id}", body).status == 404
    assert client(tokens, "outsider").patch(f"/store-codes/stores/{placed.stores['S1'].id}", body).status == 404
    assert client(tokens, "franchisee1").patch(f"/store-codes/stores/{placed.stores['S1'].id}", body).status == 403
    assert Store.objects.filter(latitude=Decimal("30.0")).count() == 0


def test_import_is_all_or_nothing_with_row_errors(placed: World, tokens: dict[str, str]) -> None:
    hq = client(tokens, "hq")
    rows = [
        {"code": "S1", "latitude": 31.23, "longitude": 121.47, "opens_at": "10:00", "closes_at": "22:00"},
        {"code": "S9", "latitude": 31.0, "longitude": 121.0},
        {"code": "S2", "latitude": 31.1},
    ]
    answer = hq.post("/store-codes/stores/import", {"rows": rows})
    assert answer.status == 409
    assert [(e["field"], e["message"]) for e in answer.body["errors"]] == [
        ("rows.1.code", "unknown store code 'S9'"),
        ("rows.2.longitude", "give both latitude and longitude, or neither"),
    ]
    assert Store.objects.get(id=placed.stores["S1"].id).latitude == Decimal("30.259")
    answer = hq.post("/store-codes/stores/import", {"rows": rows[:1]})
    assert answer.body == {"rows": 1, "updated": 1, "unchanged": 0}
    assert Store.objects.get(id=placed.stores["S1"].id).latitude == Decimal("31.23")
    # A store manager's import cannot reach another store: S2 is an unknown code for them.
    answer = client(tokens, "store1").post("/store-codes/stores/import", {"rows": [{"code": "S2"}]})
    assert answer.body["errors"] == [{"field": "rows.0.code", "message": "unknown store code 'S2'"}]


def test_settings_are_hq_only_and_validate_the_fallback_code(placed: World, tokens: dict[str, str]) -> None:
    theirs = brand_ip_code(placed.tenant_b, "远山官方")
    ours = brand_ip_code(placed.tenant_a)
    hq = client(tokens, "hq")
    initial = hq.get("/store-codes/settings").body
    assert (initial["radius_m"], initial["time_zone"], initial["fallback_live_code_id"]) == (5000, "", None)
    token = StoreCodeSettings.objects.get(tenant=placed.tenant_a).public_token
    assert initial["landing_path"] == f"/s/{token}/"
    refused = put(hq, "/store-codes/settings", {"radius_m": 2000, "fallback_live_code_id": theirs})
    assert (refused.status, refused.body["field"]) == (404, "fallback_live_code_id")
    assert (
        put(hq, "/store-codes/settings", {"radius_m": 2000, "time_zone": "Mars/Olympus"}).body["field"] == "time_zone"
    )
    assert put(hq, "/store-codes/settings", {"radius_m": 50}).body["field"] == "radius_m"
    ok = put(hq, "/store-codes/settings", {"radius_m": 2000, "time_zone": "Asia/Urumqi", "fallback_live_code_id": ours})
    assert (ok.status, ok.body["radius_m"], ok.body["fallback_live_code_id"]) == (200, 2000, ours)
    assert put(client(tokens, "region1"), "/store-codes/settings", {"radius_m": 9000}).status == 403
    assert client(tokens, "region1").get("/store-codes/settings").body["radius_m"] == 2000
    assert AuditLog.objects.filter(action="storecode.settings_update").count() == 1
