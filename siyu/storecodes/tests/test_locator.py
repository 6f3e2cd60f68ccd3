"""The locator's answers on hand-made cases with known answers, and against brute force on random data.

Times are given in UTC and read in the brand's time zone (Asia/Shanghai, UTC+8, unless a test sets another).
2026-03-02 is a Monday: `local(h, day=7)` is Saturday, `day=8` Sunday.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.core import services as core_services
from siyu.core.hours import daily_hours, is_open, parse_hours
from siyu.core.models import Region, Store, Tenant
from siyu.storecodes.geo import Point, bounding_boxes, haversine_m
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.selectors import NearbyStore, nearest_key, store_locate
from siyu.storecodes.tests.conftest import AddStore

UTC = dt.UTC


def local(hour: int, minute: int = 0, *, day: int = 2) -> dt.datetime:
    """2026-03-<day> hour:minute in Shanghai, as a UTC instant."""
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(UTC)


def locate(tenant: Tenant, lat: float, lng: float, **kwargs: object) -> NearbyStore | None:
    return store_locate(tenant_id=tenant.id, point=Point(lat, lng), **kwargs).store  # type: ignore[arg-type]


NOON = local(12)


def test_nearest_store_in_the_same_city(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.2741, 120.1551, code="WULIN")  # 武林广场
    add_store(30.2590, 120.1300, code="LAKE")  # 西湖边
    add_store(30.2460, 120.2100, code="EAST")  # 钱江新城
    found = locate(tenant, 30.2600, 120.1350, at=NOON)
    assert found is not None
    assert found.code == "LAKE"
    assert found.distance_m == pytest.approx(haversine_m(30.26, 120.135, 30.259, 120.13))
    assert 480 < found.distance_m < 500


def test_southern_and_western_hemispheres(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(-23.5505, -46.6333, code="SAOPAULO")
    add_store(-23.5605, -46.6560, code="PAULISTA")
    add_store(-33.8688, 151.2093, code="SYDNEY")
    add_store(-33.8600, 151.2100, code="ROCKS")
    assert locate(tenant, -23.5610, -46.6550, at=NOON).code == "PAULISTA"  # type: ignore[union-attr]
    assert locate(tenant, -33.8610, 151.2095, at=NOON).code == "ROCKS"  # type: ignore[union-attr]
    # Sydney's latitude mirrored north of the equator has no store.
    assert locate(tenant, 33.8610, 151.2095, at=NOON) is None


def test_across_the_equator_and_the_prime_meridian(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(-0.002, 10.0, code="SOUTH")  # 222 m south, across the equator
    add_store(0.003, 10.0, code="NORTH")  # 334 m north
    add_store(51.5, 0.004, code="EAST")  # 277 m east of Greenwich
    add_store(51.5, -0.003, code="WEST")  # 208 m west, negative longitude
    assert locate(tenant, 0.0, 10.0, at=NOON).code == "SOUTH"  # type: ignore[union-attr]
    assert locate(tenant, 51.5, 0.0, at=NOON).code == "WEST"  # type: ignore[union-attr]


def test_a_closer_closed_store_loses_to_an_open_one_further_away(
    brand: tuple[Tenant, Region], add_store: AddStore
) -> None:
    tenant, _ = brand
    add_store(30.2600, 120.1300, code="NEAR", hours=("10:00", "22:00"))  # 500 m
    add_store(30.2800, 120.1300, code="FAR", hours=("07:00", "23:30"))  # 2.2 km
    point = (30.2600, 120.1352)
    assert locate(tenant, *point, at=local(21, 59)).code == "NEAR"  # type: ignore[union-attr]
    assert locate(tenant, *point, at=local(22, 0)).code == "FAR"  # type: ignore[union-attr]  # closing time: closed
    assert locate(tenant, *point, at=local(9, 59)).code == "FAR"  # type: ignore[union-attr]
    assert locate(tenant, *point, at=local(23, 45)) is None  # both closed: fallback


def test_nothing_open_within_the_radius_falls_back(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.3140, 120.1300, code="SIXKM")  # 6 km north
    result = store_locate(tenant_id=tenant.id, point=Point(30.26, 120.13), at=NOON)
    assert (result.store, result.fallback, result.radius_m) == (None, True, 5000)
    wider = store_locate(tenant_id=tenant.id, point=Point(30.26, 120.13), at=NOON, radius_m=7000)
    assert wider.store is not None
    assert wider.store.code == "SIXKM"
    # The brand's own radius setting counts too.
    StoreCodeSettings.objects.create(tenant=tenant, public_token="t1", radius_m=6500)
    assert locate(tenant, 30.26, 120.13, at=NOON).code == "SIXKM"  # type: ignore[union-attr]


def test_the_radius_is_inclusive_at_its_exact_boundary(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.3000, 120.1300, code="EDGE")
    distance = haversine_m(30.26, 120.13, 30.30, 120.13)
    assert locate(tenant, 30.26, 120.13, at=NOON, radius_m=distance).code == "EDGE"  # type: ignore[union-attr]
    assert locate(tenant, 30.26, 120.13, at=NOON, radius_m=distance - 0.01) is None


@pytest.mark.parametrize(
    ("hour", "minute", "open_"),
    [(17, 59, False), (18, 0, True), (23, 59, True), (0, 0, True), (1, 59, True), (2, 0, False), (12, 0, False)],
)
def test_overnight_hours_run_past_midnight(
    brand: tuple[Tenant, Region], add_store: AddStore, hour: int, minute: int, open_: bool
) -> None:
    tenant, _ = brand
    add_store(30.26, 120.13, code="BAR", hours=("18:00", "02:00"))
    found = locate(tenant, 30.26, 120.131, at=local(hour, minute))
    assert (found is not None) is open_


def test_round_the_clock_and_unknown_hours_count_as_open(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.26, 120.13, code="ALLDAY", hours=("00:00", "00:00"))
    add_store(30.30, 120.13, code="UNKNOWN")
    assert locate(tenant, 30.26, 120.131, at=local(3)).code == "ALLDAY"  # type: ignore[union-attr]
    assert locate(tenant, 30.30, 120.131, at=local(3)).code == "UNKNOWN"  # type: ignore[union-attr]


def test_hours_are_read_in_the_brands_time_zone(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(48.8566, 2.3522, code="PARIS", hours=("10:00", "19:00"))
    at = dt.datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # 17:30 in Shanghai, 10:30 in Paris
    assert locate(tenant, 48.857, 2.353, at=at) is not None  # Shanghai: 17:30, open
    StoreCodeSettings.objects.create(tenant=tenant, public_token="t2", time_zone="Europe/Paris")
    assert locate(tenant, 48.857, 2.353, at=at) is not None  # Paris: 10:30, open
    assert locate(tenant, 48.857, 2.353, at=at.replace(hour=8)) is None  # Paris: 09:00, closed


def test_ties_go_to_the_smaller_store_code_whatever_the_insertion_order(
    brand: tuple[Tenant, Region], add_store: AddStore
) -> None:
    tenant, _ = brand
    # Longitudes exactly representable in binary, so both distances are bit-for-bit equal.
    add_store(30.5, 120.75, code="B-EAST")
    add_store(30.5, 120.25, code="A-WEST")
    east = haversine_m(30.5, 120.5, 30.5, 120.75)
    assert east == haversine_m(30.5, 120.5, 30.5, 120.25)
    for _ in range(3):
        assert locate(tenant, 30.5, 120.5, at=NOON, radius_m=30_000).code == "A-WEST"  # type: ignore[union-attr]


def test_stores_without_coordinates_and_other_brands_stores_are_ignored(
    brand: tuple[Tenant, Region], add_store: AddStore
) -> None:
    tenant, _ = brand
    other = core_services.tenant_create(name="别家", slug="other-brand")
    other_region = core_services.region_create(tenant=other, name="全国", code="R")
    add_store(30.2600, 120.1300, code="THEIRS", tenant_region=(other, other_region))
    add_store(None, None, code="NOWHERE")
    assert locate(tenant, 30.26, 120.13, at=NOON) is None
    mine = add_store(30.2700, 120.1300, code="MINE")
    assert locate(tenant, 30.26, 120.13, at=NOON).id == mine.id  # type: ignore[union-attr]


# --- weekly hours ---------------------------------------------------------------------------------------------


def test_weekend_hours_differ_from_weekdays(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.26, 120.13, code="MALL", hours="mon-fri 10:00-22:00; sat-sun 09:00-23:00")
    point = (30.26, 120.131)
    assert locate(tenant, *point, at=local(9, 30, day=6)) is None  # Friday 09:30: not yet
    assert locate(tenant, *point, at=local(9, 30, day=7)).code == "MALL"  # type: ignore[union-attr]  # Saturday
    assert locate(tenant, *point, at=local(22, 30, day=8)).code == "MALL"  # type: ignore[union-attr]  # Sunday
    assert locate(tenant, *point, at=local(22, 30, day=2)) is None  # Monday 22:30: closed since 22:00
    assert locate(tenant, *point, at=local(23, 0, day=7)) is None  # Saturday's closing minute is closed


def test_hours_past_midnight_belong_to_the_day_they_open(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    # A bar: Thursday to Saturday until 2 a.m. the next morning; Sunday to Wednesday until midnight; Monday shut.
    add_store(30.26, 120.13, code="BAR", hours="mon closed; tue-wed 18:00-24:00; thu-sat 18:00-02:00; sun 18:00-24:00")
    point = (30.26, 120.131)
    assert locate(tenant, *point, at=local(1, 30, day=7)).code == "BAR"  # type: ignore[union-attr]  # Sat 01:30: Fri's
    assert locate(tenant, *point, at=local(1, 30, day=8)).code == "BAR"  # type: ignore[union-attr]  # Sun 01:30: Sat's
    assert locate(tenant, *point, at=local(2, 0, day=8)) is None  # Sunday 02:00: Saturday's closing minute
    assert locate(tenant, *point, at=local(0, 30, day=2)) is None  # Monday 00:30: Sunday closed at midnight
    assert locate(tenant, *point, at=local(19, day=2)) is None  # Monday evening: closed all day
    assert locate(tenant, *point, at=local(23, 59, day=3)).code == "BAR"  # type: ignore[union-attr]  # Tuesday
    assert locate(tenant, *point, at=local(0, 30, day=4)) is None  # Wednesday 00:30: Tuesday ended at midnight


def test_sunday_night_hours_run_into_monday_morning(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.26, 120.13, code="LATE", hours="sun 20:00-04:00")
    point = (30.26, 120.131)
    assert locate(tenant, *point, at=local(3, 59, day=9)).code == "LATE"  # type: ignore[union-attr]  # Monday 03:59
    assert locate(tenant, *point, at=local(3, 59, day=2)).code == "LATE"  # type: ignore[union-attr]  # the week before
    assert locate(tenant, *point, at=local(4, 0, day=9)) is None
    assert locate(tenant, *point, at=local(21, day=3)) is None  # Tuesday evening: no hours


def test_a_closed_day_sends_shoppers_to_the_next_open_store(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.2600, 120.1300, code="NEAR", hours="mon closed; tue-sun 10:00-22:00")  # 500 m
    add_store(30.2800, 120.1300, code="FAR", hours=("10:00", "22:00"))  # 2.2 km
    point = (30.2600, 120.1352)
    assert locate(tenant, *point, at=local(12, day=2)).code == "FAR"  # type: ignore[union-attr]  # Monday
    assert locate(tenant, *point, at=local(12, day=3)).code == "NEAR"  # type: ignore[union-attr]  # Tuesday


def test_a_temporarily_closed_store_is_never_chosen(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    near = add_store(30.2600, 120.1300, code="NEAR", hours=("00:00", "00:00"))
    add_store(30.2800, 120.1300, code="FAR")
    add_store(30.2610, 120.1300, code="SHUT", closed=True)  # closest of all, no hours (= open) but closed
    point = (30.2600, 120.1352)
    assert locate(tenant, *point, at=NOON).code == "NEAR"  # type: ignore[union-attr]
    Store.objects.filter(id=near.id).update(temporarily_closed=True)
    assert locate(tenant, *point, at=NOON).code == "FAR"  # type: ignore[union-attr]


def test_the_weekday_is_the_brands_not_utcs(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    add_store(30.26, 120.13, code="WEEKEND", hours="sat-sun 00:00-24:00")
    at = dt.datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # Friday 17:00 UTC = Saturday 01:00 in Shanghai
    assert locate(tenant, 30.26, 120.131, at=at).code == "WEEKEND"  # type: ignore[union-attr]
    StoreCodeSettings.objects.create(tenant=tenant, public_token="t3", time_zone="Europe/London")
    assert locate(tenant, 30.26, 120.131, at=at) is None  # Friday 17:00 in London


def test_migrated_daily_hours_answer_as_the_old_pair_did() -> None:
    # What migration 0003 writes for a pair (the same interval every day) keeps the old reading of the pair.
    overnight = parse_hours("daily 18:00-02:00")
    assert overnight == daily_hours("18:00", "02:00")
    assert [is_open(overnight, 2, m) for m in (17 * 60 + 59, 18 * 60, 60, 120)] == [False, True, True, False]
    around = daily_hours("08:00", "08:00")  # opens = closes: round the clock
    assert all(is_open(around, d, m) for d in range(7) for m in range(0, 24 * 60, 7))


# --- against brute force ------------------------------------------------------------------------------------

CENTRES = [(30.26, 120.15), (-23.55, -46.63), (0.0, 0.0), (-33.87, 151.21), (64.15, -21.94), (52.0, 179.97)]


def brute_force(stores: list[Store], point: Point, local: dt.datetime, radius_m: float) -> NearbyStore | None:
    minute = local.hour * 60 + local.minute
    hits = [
        NearbyStore(
            s.id,
            s.code,
            s.name,
            s.city,
            s.address,
            float(s.latitude),  # type: ignore[arg-type]
            float(s.longitude),  # type: ignore[arg-type]
            s.hours,
            haversine_m(point.latitude, point.longitude, float(s.latitude), float(s.longitude)),  # type: ignore[arg-type]
        )
        for s in stores
        if not s.temporarily_closed and is_open(s.hours, local.weekday(), minute)
    ]
    hits = [h for h in hits if h.distance_m <= radius_m]
    return min(hits, key=nearest_key) if hits else None


def test_agrees_with_brute_force_on_random_stores(brand: tuple[Tenant, Region], add_store: AddStore) -> None:
    tenant, _ = brand
    rng = random.Random(20260302)
    hours = [
        None,
        ("10:00", "22:00"),
        ("18:00", "02:00"),
        ("00:00", "00:00"),
        "mon-fri 09:30-21:30; sat-sun 09:00-23:00",
        "mon closed; tue-thu 10:00-22:00; fri-sat 10:00-02:00; sun 10:00-20:00",
        "sat-sun 22:00-06:00",
        "daily 07:00-11:00, 16:00-23:00",
        "sun 20:00-04:00; wed 12:00-13:00",
    ]
    stores = []
    for i in range(240):
        lat0, lng0 = rng.choice(CENTRES)
        lat = round(max(-90.0, min(90.0, lat0 + rng.gauss(0, 0.05))), 6)
        lng = round(lng0 + rng.gauss(0, 0.05), 6)
        lng = round(lng - 360 if lng > 180 else lng + 360 if lng < -180 else lng, 6)
        closed = rng.random() < 0.05
        stores.append(add_store(lat, lng, code=f"R{i:03d}", hours=rng.choice(hours), closed=closed))
    # Equal distances must resolve the same way: duplicate a few locations under other codes.
    for i, twin in enumerate(rng.sample(stores, 10)):
        stores.append(add_store(float(twin.latitude), float(twin.longitude), code=f"Q{i:03d}"))  # type: ignore[arg-type]
    found = 0
    for _ in range(300):
        lat0, lng0 = rng.choice(CENTRES)
        point = Point(lat0 + rng.gauss(0, 0.06), ((lng0 + rng.gauss(0, 0.06) + 180) % 360) - 180)
        at = dt.datetime(2026, 3, 2, tzinfo=UTC) + dt.timedelta(minutes=rng.randrange(7 * 24 * 60))
        radius = rng.choice([500, 2000, 5000, 12000])
        result = store_locate(tenant_id=tenant.id, point=point, at=at, radius_m=radius)
        expected = brute_force(stores, point, result.local_time, radius)
        assert (result.store.id if result.store else None) == (expected.id if expected else None), (point, at, radius)
        if expected is not None:
            found += 1
            assert result.store.distance_m == pytest.approx(expected.distance_m)  # type: ignore[union-attr]
    assert 60 < found < 290  # the data exercises both answers


@given(
    lat=st.floats(-89.9, 89.9),
    lng=st.floats(-180, 180),
    radius=st.floats(1, 50_000),
    bearing=st.floats(0, 360),
    fraction=st.floats(0, 1),
)
def test_bounding_boxes_contain_every_point_within_the_radius(
    lat: float, lng: float, radius: float, bearing: float, fraction: float
) -> None:
    import math

    # The point at `fraction` of the radius along `bearing` (spherical destination formula).
    delta = radius * fraction / 6_371_008.8
    phi1, lmb1, theta = math.radians(lat), math.radians(lng), math.radians(bearing)
    phi2 = math.asin(math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta))
    lmb2 = lmb1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1), math.cos(delta) - math.sin(phi1) * math.sin(phi2)
    )
    lat2, lng2 = math.degrees(phi2), (math.degrees(lmb2) + 540) % 360 - 180
    boxes = bounding_boxes(Point(lat, lng), radius)
    assert any(b.lat_min <= lat2 <= b.lat_max and b.lng_min <= lng2 <= b.lng_max for b in boxes)


@given(
    opens=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    closes=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    at=st.times(),
    weekday=st.integers(0, 6),
)
def test_daily_hours_are_open_inside_the_opening_interval(
    opens: dt.time, closes: dt.time, at: dt.time, weekday: int
) -> None:
    minutes = (at.hour * 60 + at.minute - (opens.hour * 60 + opens.minute)) % (24 * 60)
    length = (closes.hour * 60 + closes.minute - (opens.hour * 60 + opens.minute)) % (24 * 60) or 24 * 60
    assert is_open(daily_hours(opens, closes), weekday, at.hour * 60 + at.minute) is (minutes < length)
