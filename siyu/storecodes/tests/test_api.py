"""The store-code API: locate for mini-programs, stores' geo data (scoped), import, settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


def test_update_sets_coordinates_hours_and_closure_and_audits(placed: World, tokens: dict[str, str]) -> None:
    s1 = placed.stores["S1"]
    hours = {"mon": [], "tue": [["10:00", "22:00"]], "thu": [["18:00", "02:00"]], "sat": [["00:00", "24:00"]]}
    answer = client(tokens, "store1").patch(
        f"/store-codes/stores/{s1.id}", {"latitude": 30.25, "longitude": 120.14, "hours": hours}
    )
    assert answer.status == 200, answer.body
    stored = {
        "mon": [],
        "tue": [["10:00", "22:00"]],
        "wed": [],
        "thu": [["18:00", "02:00"]],
        "fri": [],
        "sat": [["00:00", "00:00"]],  # 24:00 is kept as the next midnight, 00:00
        "sun": [],
    }
    assert (answer.body["latitude"], answer.body["hours"], answer.body["temporarily_closed"]) == (30.25, stored, False)
    s1.refresh_from_db()
    assert (s1.latitude, s1.longitude, s1.hours) == (Decimal("30.25"), Decimal("120.14"), stored)
    audit = AuditLog.objects.get(action="store.geo_update")
    assert audit.detail["latitude"] == ["30.259000", "30.250000"]
    assert audit.detail["hours"] == [
        "",
        "mon closed; tue 10:00-22:00; wed closed; thu 18:00-02:00; fri closed; sat 00:00-24:00; sun closed",
    ]
    # Only the mark: coordinates and hours stay; then null clears the hours.
    answer = client(tokens, "store1").patch(f"/store-codes/stores/{s1.id}", {"temporarily_closed": True})
    assert (answer.body["latitude"], answer.body["hours"], answer.body["temporarily_closed"]) == (30.25, stored, True)
    answer = client(tokens, "store1").patch(f"/store-codes/stores/{s1.id}", {"hours": None})
    assert (answer.body["latitude"], answer.body["hours"], answer.body["temporarily_closed"]) == (30.25, None, True)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"latitude": 30.1}, "longitude", 409),  # half a pair: a rule about the data
        ({"latitude": 0, "longitude": 0}, "latitude", 409),
        ({"hours": {"mon": [["10:00", "22:00"], ["21:00", "23:00"]]}}, "hours", 409),  # overlapping
        ({"hours": {"sun": [["20:00", "04:00"]], "mon": [["03:00", "09:00"]]}}, "hours", 409),  # Sunday night
        ({"hours": {"mon": []}}, "hours", 409),  # every day closed: that is the temporarily-closed mark
        ({"latitude": 95, "longitude": 120}, "latitude", 422),  # malformed: the schema refuses it
        ({"latitude": "30.1", "longitude": 120}, "latitude", 422),
        ({"hours": {"mon": [["25:00", "10:00"]]}}, "hours.mon.0.0", 422),
        ({"hours": {"mon": [["10:00", "24:30"]]}}, "hours.mon.0.1", 422),
        ({"hours": {"funday": [["10:00", "22:00"]]}}, "hours.funday", 422),
        ({"hours": {"mon": [["10:00"]]}}, "hours.mon.0.1", 422),  # the closing time is missing
        ({"hours": {"mon": [["24:00", "02:00"]]}}, "hours.mon.0.0", 422),  # 24:00 only closes
        ({"hours": "mon-fri 10:00-22:00"}, "hours", 422),
        ({"temporarily_closed": "yes"}, "temporarily_closed", 422),
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
    assert (s2.latitude, s2.hours, s2.temporarily_closed) == (None, {}, False)
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
    weekend = {"sat": [["09:00", "23:00"]], "sun": [["09:00", "23:00"]]}
    rows = [
        {"code": "S1", "latitude": 31.23, "longitude": 121.47, "hours": weekend},
        {"code": "S9", "latitude": 31.0, "longitude": 121.0},
        {"code": "S2", "latitude": 31.1, "longitude": None},
        {"code": "S3", "hours": {"fri": [["18:00", "02:00"]], "sat": [["01:00", "03:00"]]}},
    ]
    answer = hq.post("/store-codes/stores/import", {"rows": rows})
    assert answer.status == 409
    assert [(e["field"], e["message"]) for e in answer.body["errors"]] == [
        ("rows.1.code", "unknown store code 'S9'"),
        ("rows.2.longitude", "give both latitude and longitude, or neither"),
        ("rows.3.hours", "hours: fri 18:00-02:00 overlaps sat 01:00-03:00"),
    ]
    assert Store.objects.get(id=placed.stores["S1"].id).latitude == Decimal("30.259")
    answer = hq.post("/store-codes/stores/import", {"rows": [rows[0], {"code": "S3", "temporarily_closed": True}]})
    assert answer.body == {"rows": 2, "updated": 2, "unchanged": 0}
    s1, s3 = (Store.objects.get(id=placed.stores[k].id) for k in ("S1", "S3"))
    assert (s1.latitude, s1.hours["sat"], s1.hours["mon"], s1.temporarily_closed) == (
        Decimal("31.23"),
        [["09:00", "23:00"]],
        [],
        False,
    )
    # Fields a row leaves out keep their value: S3 keeps its coordinates, only its mark changed.
    assert (s3.latitude, s3.hours, s3.temporarily_closed) == (Decimal("30.246"), {}, True)
    # The same rows again change nothing, and leave no audit row.
    audits = AuditLog.objects.filter(action="store.geo_import").count()
    answer = hq.post("/store-codes/stores/import", {"rows": [rows[0], {"code": "S3", "temporarily_closed": True}]})
    assert answer.body == {"rows": 2, "updated": 0, "unchanged": 2}
    assert AuditLog.objects.filter(action="store.geo_import").count() == audits
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


def _more_stores(world: World, give_codes: GiveCodes, count: int) -> None:
    """`count` more stores in region R1 of brand A, each with a guide code and a group code."""
    from siyu.core import services as core_services

    for i in range(count):
        store = core_services.store_create(
            tenant=world.tenant_a, region=world.regions["R1"], name=f"门店X{i}", code=f"X{i:02d}", hours="daily 24h"
        )
        give_codes(store)


@pytest.mark.parametrize(("persona", "queries"), [("hq", 6), ("region1", 8)])
def test_store_list_reads_the_same_queries_for_any_page_size(
    placed: World,
    tokens: dict[str, str],
    give_codes: GiveCodes,
    django_assert_num_queries: Any,
    persona: str,
    queries: int,
) -> None:
    # token lookup, last_used update, (the scope's stores and guides,) count, page, guide codes, group codes:
    # never a query per store
    api = client(tokens, persona)
    give_codes(placed.stores["S1"])
    with django_assert_num_queries(queries):
        small = api.get("/store-codes/stores", limit="50")
    _more_stores(placed, give_codes, 12)
    with django_assert_num_queries(queries):
        large = api.get("/store-codes/stores", limit="50")
    assert len(large.body["items"]) == len(small.body["items"]) + 12
    flags = {s["code"]: (s["has_guide_code"], s["has_group_code"]) for s in large.body["items"]}
    assert flags["S1"] == flags["X11"] == (True, True)
    assert flags["S2"] == (False, False)
