"""Reads of the store-code context (门店活码): the locator, the stores' geo data, the brand's settings.

The locator searches every store of the brand: it is what the public landing page (and a mini-program through
the API) shows any shopper, so an actor's org scope does not narrow it. The console's and the API's store
lists are scoped like every other list (HQ → region → store; franchisee → its stores; guides see none).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import or_

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.hours import WeeklyHours, is_open
from siyu.core.models import Role, Store
from siyu.core.scopes import Actor
from siyu.core.selectors import store_list
from siyu.storecodes.geo import Box, Point, bounding_boxes, haversine_m, to_decimal
from siyu.storecodes.models import DEFAULT_RADIUS_M, MAX_RADIUS_M, StoreCodeSettings, StoreImport

VIEWERS = frozenset({Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER, Role.FRANCHISEE})
EDITORS = frozenset({Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER})
# The first ring the locator searches; each next ring is 4× wider, up to the radius. Most shoppers stand
# within a kilometre or two of a store, so most lookups read only the handful of stores of the first ring.
FIRST_RING_M = 1_000
RING_FACTOR = 4

_FIELDS = ("id", "code", "name", "city", "address", "latitude", "longitude", "hours")


# --- settings -----------------------------------------------------------------------------------------------


def settings_for(*, tenant_id: int) -> StoreCodeSettings | None:
    return StoreCodeSettings.objects.filter(tenant_id=tenant_id).first()


def settings_by_token(*, token: str) -> StoreCodeSettings | None:
    """The brand behind a landing-page token; None for an unknown one (the page answers 404)."""
    if not token or len(token) > 32:
        return None
    return StoreCodeSettings.objects.filter(public_token=token).select_related("tenant").first()


def radius_of(row: StoreCodeSettings | None) -> int:
    return row.radius_m if row is not None else DEFAULT_RADIUS_M


def time_zone_of(row: StoreCodeSettings | None) -> zoneinfo.ZoneInfo:
    name = (row.time_zone if row is not None else "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # Validated when saved; a zone later dropped from the tz database must not break the landing page.
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


# --- the locator --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NearbyStore:
    """A store as the locator returns it, with its distance from the shopper in metres."""

    id: int
    code: str
    name: str
    city: str
    address: str
    latitude: float
    longitude: float
    hours: WeeklyHours
    distance_m: float
    temporarily_closed: bool = False  # never True for a store the locator returns; here so pages treat both alike


@dataclass(frozen=True)
class LocateResult:
    """The nearest open store within the radius, or none (`fallback`: show the brand IP's code)."""

    store: NearbyStore | None
    radius_m: int
    local_time: dt.datetime  # when the hours were read, in the brand's time zone

    @property
    def fallback(self) -> bool:
        return self.store is None


def _in_box(box: Box) -> Q:
    # Decimal bounds: compared with the NUMERIC columns exactly, and the composite index stays usable.
    return Q(
        latitude__gte=to_decimal(box.lat_min),
        latitude__lte=to_decimal(box.lat_max),
        longitude__gte=to_decimal(box.lng_min),
        longitude__lte=to_decimal(box.lng_max),
    )


def _candidates(*, tenant_id: int, point: Point, radius_m: float, local: dt.datetime) -> list[NearbyStore]:
    """Stores open at `local` within `radius_m`, read through the (tenant, latitude, longitude) index.

    The weekly hours are tested here rather than in SQL: a schedule is a list of intervals per weekday (JSON),
    and the box holds only the few stores around the shopper, so reading the closed ones too costs little.
    """
    boxes = reduce(or_, (_in_box(b) for b in bounding_boxes(point, radius_m)))
    rows = Store.objects.filter(boxes, tenant_id=tenant_id, temporarily_closed=False).order_by().values_list(*_FIELDS)
    weekday, minute = local.weekday(), local.hour * 60 + local.minute
    found = []
    for sid, code, name, city, address, lat, lng, hours in rows:
        if not is_open(hours, weekday, minute):
            continue
        distance = haversine_m(point.latitude, point.longitude, float(lat), float(lng))
        if distance <= radius_m:
            found.append(NearbyStore(sid, code, name, city, address, float(lat), float(lng), hours, distance))
    return found


def nearest_key(store: NearbyStore) -> tuple[float, str, int]:
    """Nearest first; equal distances go to the smaller store code, then the older row: the same every time."""
    return (store.distance_m, store.code, store.id)


def store_locate(
    *,
    tenant_id: int,
    point: Point,
    at: dt.datetime | None = None,
    radius_m: float | None = None,
    row: StoreCodeSettings | None = None,
) -> LocateResult:
    """The nearest store open at `at` (default now) within the radius, great-circle distance.

    Open means: not temporarily closed, and inside an interval of its weekly hours (or no hours set) at the
    wall-clock weekday and time of `at` in the brand's time zone; yesterday's hours past midnight count.

    `radius_m` narrows or widens the brand's radius for one request (capped at MAX_RADIUS_M). Rings of 1 km,
    4 km, 16 km ... up to the radius are searched in turn: a ring that holds an open store holds the nearest
    one (any nearer store lies inside the same ring), so dense cities read only the stores around the shopper
    and the wider rings are read only when the near ones are empty or closed.
    """
    row = row if row is not None else settings_for(tenant_id=tenant_id)
    limit = float(min(radius_m if radius_m is not None else radius_of(row), MAX_RADIUS_M))
    local = timezone.localtime(at or timezone.now(), time_zone_of(row))
    ring = min(float(FIRST_RING_M), limit)
    while True:
        found = _candidates(tenant_id=tenant_id, point=point, radius_m=ring, local=local)
        if found:
            return LocateResult(store=min(found, key=nearest_key), radius_m=round(limit), local_time=local)
        if ring >= limit:
            return LocateResult(store=None, radius_m=round(limit), local_time=local)
        ring = min(ring * RING_FACTOR, limit)


def store_for_landing(*, tenant_id: int, store_id: int) -> Store | None:
    """A store a shopper picked from the landing page's list (any store of the brand)."""
    return Store.objects.filter(tenant_id=tenant_id, id=store_id).first()


def landing_cities(*, tenant_id: int) -> list[str]:
    """Cities with at least one located store, for the landing page's picker."""
    qs = Store.objects.filter(tenant_id=tenant_id, latitude__isnull=False, longitude__isnull=False)
    return sorted({c for c in qs.values_list("city", flat=True).distinct() if c})


def landing_stores_in(*, tenant_id: int, city: str) -> QuerySet[Store]:
    return Store.objects.filter(tenant_id=tenant_id, city=city, latitude__isnull=False).order_by("code")


# --- the stores' geo data (console and API) -----------------------------------------------------------------


def require_viewer(actor: Actor) -> None:
    if actor.role not in VIEWERS:
        raise PermissionDenied("store codes are managed by HQ, region and store managers and franchisees")


def can_edit(actor: Actor) -> bool:
    return actor.role in EDITORS


def require_editor(actor: Actor) -> None:
    if not can_edit(actor):
        raise PermissionDenied("only HQ, region and store managers can change stores' locations and hours")


def require_hq(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins can change the store-code settings")


class Located:
    ALL, YES, NO = "", "yes", "no"


def geo_store_list(
    *, actor: Actor, q: str = "", city: str = "", region_id: int | None = None, located: str = Located.ALL
) -> QuerySet[Store]:
    """Stores in the actor's scope with their coordinates and hours, by code; filters combine."""
    require_viewer(actor)
    qs = store_list(actor=actor).select_related(None)
    if q:
        qs = qs.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(address__icontains=q))
    if city:
        qs = qs.filter(city=city)
    if region_id:
        qs = qs.filter(region_id=region_id)
    if located == Located.YES:
        qs = qs.filter(latitude__isnull=False, longitude__isnull=False)
    elif located == Located.NO:
        qs = qs.filter(Q(latitude__isnull=True) | Q(longitude__isnull=True))
    return qs


def access_geo_store(*, actor: Actor, store_id: int) -> Store:
    store = geo_store_list(actor=actor).filter(id=store_id).first()
    if store is None:
        raise NotFound(f"store {store_id} not found", field="store_id")
    return store


def store_points(*, actor: Actor) -> list[tuple[float, float, str, str]]:
    """(longitude, latitude, code, name) of every located store in scope, for the scatter chart."""
    rows = geo_store_list(actor=actor, located=Located.YES).values_list("longitude", "latitude", "code", "name")
    return [(float(lng), float(lat), code, name) for lng, lat, code, name in rows]


def store_cities(*, actor: Actor) -> list[str]:
    return sorted({c for c in geo_store_list(actor=actor).values_list("city", flat=True).distinct() if c})


# --- imports ------------------------------------------------------------------------------------------------


def _own_imports(actor: Actor) -> QuerySet[StoreImport]:
    # Only the requester's: a report lists codes of the stores in their scope, which another user may not see.
    return StoreImport.objects.filter(tenant_id=actor.tenant_id, requested_by_id=actor.user_id).defer("rows")


def access_store_import(*, actor: Actor, import_id: int) -> StoreImport:
    """One of the actor's own imports; anyone else's (or another brand's) is not found."""
    require_editor(actor)
    job = _own_imports(actor).filter(id=import_id).first() if actor.user_id is not None else None
    if job is None:
        raise NotFound(f"import {import_id} not found", field="import_id")
    return job


def latest_store_import(*, actor: Actor) -> StoreImport | None:
    """The actor's most recent import, so the import page shows it again after the user has looked elsewhere."""
    if actor.user_id is None:
        return None
    return _own_imports(actor).order_by("-created_at", "-id").first()


def decimal_or_none(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None
