"""Store codes (门店活码, LBS): locate the nearest open store (for mini-programs), stores' coordinates and hours,
their import, and the brand's locator settings. Handlers parse, call one service or selector, and shape."""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import AfterValidator, BeforeValidator, Field, StrictBool

from siyu.api.auth import actor_of
from siyu.api.schemas import NO_NUL_PATTERN, BodyId, BodyIn, Id, NoNul, NotNull, PageOut, PageParams, error_responses
from siyu.api.selectors import Page, page_of
from siyu.core.models import Store
from siyu.core.scopes import Actor
from siyu.storecodes import codes
from siyu.storecodes.geo import Point
from siyu.storecodes.models import MAX_RADIUS_M, StoreCodeSettings
from siyu.storecodes.selectors import (
    NearbyStore,
    access_geo_store,
    geo_store_list,
    require_editor,
    require_viewer,
    settings_for,
    store_locate,
)
from siyu.storecodes.services import (
    MAX_IMPORT_ROWS,
    MIN_RADIUS_M,
    ImportRow,
    clean_geo,
    fallback_for,
    store_code_settings_ensure,
    store_code_settings_update,
    store_code_visit_record,
    store_geo_import,
    store_geo_update,
)

router = Router(tags=["storecodes"])

HHMM_PATTERN = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
CLOSING_PATTERN = r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


def _json_number(value: Any) -> Any:
    """A JSON number (never true, "30.5" or NaN): query strings are parsed before, bodies must be typed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


JsonNumber = BeforeValidator(_json_number)
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="Degrees, WGS-84 / GCJ-02.")]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
BodyLatitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False), JsonNumber]
BodyLongitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False), JsonNumber]


def _hhmm_check(value: str) -> str:
    if re.fullmatch(HHMM_PATTERN, value) is None:
        raise ValueError("must be a time like 09:30 (00:00 to 23:59)")
    return value


def _closing_check(value: str) -> str:
    if re.fullmatch(CLOSING_PATTERN, value) is None:
        raise ValueError("must be a time like 22:00 (00:00 to 24:00)")
    return value


Hhmm = Annotated[
    str, Field(json_schema_extra={"pattern": HHMM_PATTERN}, description='"09:30"'), AfterValidator(_hhmm_check)
]
ClosingHhmm = Annotated[
    str,
    Field(json_schema_extra={"pattern": CLOSING_PATTERN}, description='"22:00"; "24:00" is midnight'),
    AfterValidator(_closing_check),
]
HOURS_DESCRIPTION = (
    "Weekly opening hours in the brand's time zone, per weekday a list of [opens, closes] intervals (at most 4): "
    '{"mon": [["10:00", "22:00"]], "sat": [["09:00", "14:00"], ["17:00", "02:00"]]}. An interval belongs to the '
    'day it opens on; a closing time not after the opening time is the next day ("18:00"-"02:00"), equal times '
    "are 24 hours. Null: not set (the locator treats the store as open)."
)
# [opens, closes]: a pair (prefixItems in the document), so only the closing time may be "24:00".
Interval = tuple[Hhmm, ClosingHhmm]
DayIn = Annotated[list[Interval], Field(max_length=4)]


class HoursIn(BodyIn):
    """Days left out are closed; intervals may not overlap (one past midnight included)."""

    mon: DayIn = []
    tue: DayIn = []
    wed: DayIn = []
    thu: DayIn = []
    fri: DayIn = []
    sat: DayIn = []
    sun: DayIn = []


class HoursOut(Schema):
    mon: list[list[str]]
    tue: list[list[str]]
    wed: list[list[str]]
    thu: list[list[str]]
    fri: list[list[str]]
    sat: list[list[str]]
    sun: list[list[str]]


class Located(StrEnum):
    YES = "yes"
    NO = "no"


class LocateParams(Schema):
    lat: Latitude
    lng: Longitude
    radius_m: Annotated[int | None, NotNull] = Field(
        None, ge=1, le=MAX_RADIUS_M, description="This request's search radius; default the brand's setting."
    )


class CodeOut(Schema):
    id: int
    name: str
    qr_url: str


class NearbyStoreOut(Schema):
    id: int
    code: str
    name: str
    city: str
    address: str
    latitude: float
    longitude: float
    hours: HoursOut | None = Field(description=HOURS_DESCRIPTION)
    distance_m: int


class LocateOut(Schema):
    store: NearbyStoreOut | None = Field(description="The nearest store open now within the radius; null if none.")
    fallback: bool = Field(description="True when no open store is within the radius: show fallback_code.")
    radius_m: int
    local_time: dt.datetime = Field(description="When the opening hours were read, in the brand's time zone.")
    guide_code: CodeOut | None
    group_code: CodeOut | None
    fallback_code: CodeOut | None = Field(description="The brand IP's code, when set (and always on fallback).")


class StoreGeoFilters(PageParams):
    q: Annotated[str, Field(max_length=100, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul] = ""
    city: Annotated[str, Field(max_length=50, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul] = ""
    located: Annotated[Located | None, NotNull] = None


class StoreGeoOut(Schema):
    id: int
    code: str
    name: str
    city: str
    address: str
    region_id: int
    latitude: float | None
    longitude: float | None
    hours: HoursOut | None = Field(description=HOURS_DESCRIPTION)
    temporarily_closed: bool = Field(description="Closed whatever the hours say, until unmarked (暂停营业).")
    has_guide_code: bool
    has_group_code: bool


class StoreGeoIn(BodyIn):
    """Coordinates (both of the pair, or null for both), weekly hours (null clears them) and the temporarily-closed
    mark. Fields left out keep their value."""

    latitude: BodyLatitude | None = None
    longitude: BodyLongitude | None = None
    hours: HoursIn | None = Field(None, description=HOURS_DESCRIPTION)
    temporarily_closed: Annotated[StrictBool | None, NotNull] = None


class ImportRowIn(BodyIn):
    """One store by code; fields left out keep the store's value, null clears it."""

    code: Annotated[str, Field(min_length=1, max_length=32, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul]
    latitude: BodyLatitude | None = None
    longitude: BodyLongitude | None = None
    hours: HoursIn | None = Field(None, description=HOURS_DESCRIPTION)
    temporarily_closed: Annotated[StrictBool | None, NotNull] = None


class ImportIn(BodyIn):
    rows: list[ImportRowIn] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)


class ImportOut(Schema):
    rows: int
    updated: int
    unchanged: int


class SettingsOut(Schema):
    radius_m: int
    time_zone: str = Field(description="Empty: the server's time zone.")
    fallback_live_code_id: int | None
    landing_path: str = Field(description="The public landing page, /s/<token>/ (add ?lat=&lng= to preview).")


# Every IANA zone this server knows, so the document says exactly which names are accepted ("" = the server's).
TimeZoneEnum = StrEnum(  # type: ignore[misc]
    "TimeZone",
    {
        "DEFAULT": "",
        **{
            z.upper().replace("/", "__").replace("-", "_").replace("+", "PLUS"): z
            for z in sorted(zoneinfo.available_timezones())
        },
    },
)


class SettingsIn(BodyIn):
    radius_m: Annotated[int, Field(ge=MIN_RADIUS_M, le=MAX_RADIUS_M), BeforeValidator(_json_number)]
    time_zone: TimeZoneEnum = TimeZoneEnum("")  # type: ignore[valid-type]
    fallback_live_code_id: BodyId | None = None


def _code(image: codes.CodeImage | None) -> dict[str, Any] | None:
    return {"id": image.id, "name": image.name, "qr_url": image.qr_url} if image else None


def _nearby(store: NearbyStore) -> dict[str, Any]:
    return {
        "id": store.id,
        "code": store.code,
        "name": store.name,
        "city": store.city,
        "address": store.address,
        "latitude": store.latitude,
        "longitude": store.longitude,
        "hours": store.hours or None,
        "distance_m": round(store.distance_m),
    }


def _stores(actor: Actor, rows: list[Store]) -> list[dict[str, Any]]:
    flags = codes.store_code_flags(actor=actor, store_ids=[s.id for s in rows])
    return [
        {
            "id": s.id,
            "code": s.code,
            "name": s.name,
            "city": s.city,
            "address": s.address,
            "region_id": s.region_id,
            "latitude": float(s.latitude) if s.latitude is not None else None,
            "longitude": float(s.longitude) if s.longitude is not None else None,
            "hours": s.hours or None,
            "temporarily_closed": s.temporarily_closed,
            "has_guide_code": flags[s.id].guide is not None,
            "has_group_code": flags[s.id].group is not None,
        }
        for s in rows
    ]


def _hours(value: HoursIn | None) -> dict[str, list[list[str]]]:
    """The body's hours as the service reads them (null clears: an empty schedule)."""
    if value is None:
        return {}
    return {day: [list(pair) for pair in pairs] for day, pairs in value.model_dump().items()}


def _given(payload: BodyIn, name: str) -> object:
    """A field of the body for the service: None when left out (keep), "" when sent as null (clear)."""
    if name not in payload.model_fields_set:
        return None
    value = getattr(payload, name)
    if name == "hours":
        return _hours(value)
    if name == "temporarily_closed":
        return bool(value)
    return "" if value is None else repr(value)


def _settings(row: StoreCodeSettings) -> dict[str, Any]:
    return {
        "radius_m": row.radius_m,
        "time_zone": row.time_zone,
        "fallback_live_code_id": row.fallback_live_code_id,
        "landing_path": f"/s/{row.public_token}/",
    }


@router.get(
    "/store-codes/locate",
    response={200: LocateOut, **error_responses(401, 422)},
    operation_id="store_code_locate",
    summary="The nearest open store within the radius, its guide and group codes, or the fallback code",
)
def locate_api(request: HttpRequest, params: Query[LocateParams]) -> dict[str, Any]:
    """Searches every store of the brand whatever the token's scope: it answers what the public landing page
    shows any shopper. Latitude beyond ±90, longitude beyond ±180, NaN or text answer 422 naming `lat`/`lng`.
    Each call is recorded as a visit (the position rounded to 0.01°)."""
    actor = actor_of(request)
    row = settings_for(tenant_id=actor.tenant_id)
    point = Point(params.lat, params.lng)
    result = store_locate(tenant_id=actor.tenant_id, point=point, radius_m=params.radius_m, row=row)
    store_code_visit_record(tenant_id=actor.tenant_id, result=result, point=point, source="api")
    found = result.store
    store_codes = codes.store_codes_for(tenant_id=actor.tenant_id, store_id=found.id) if found else None
    return {
        "store": _nearby(found) if found else None,
        "fallback": result.fallback,
        "radius_m": result.radius_m,
        "local_time": result.local_time,
        "guide_code": _code(store_codes.guide if store_codes else None),
        "group_code": _code(store_codes.group if store_codes else None),
        "fallback_code": _code(fallback_for(tenant_id=actor.tenant_id, row=row)),
    }


@router.get(
    "/store-codes/stores",
    response={200: PageOut[StoreGeoOut], **error_responses(401, 403, 422)},
    operation_id="store_code_store_list",
    summary="Stores in scope with their coordinates, hours and whether they have a guide and a group code",
)
def store_list_api(request: HttpRequest, filters: Query[StoreGeoFilters]) -> Page[dict[str, Any]]:
    actor = actor_of(request)
    qs = geo_store_list(
        actor=actor,
        q=filters.q,
        city=filters.city,
        located=filters.located.value if filters.located else "",
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: _stores(actor, list(rows)))


# Before the /{store_id} routes: ninja matches paths in order, and "import" would be taken for a store id.
@router.post(
    "/store-codes/stores/import",
    response={200: ImportOut, **error_responses(400, 401, 403, 409, 422)},
    operation_id="store_code_store_import",
    summary="Set coordinates, hours and closures of many stores by code, all or nothing",
)
def store_import_api(request: HttpRequest, payload: ImportIn) -> Status[dict[str, Any]]:
    """Every row is checked first; any error answers 409 listing each one (`rows.<index>.<field>`) and nothing
    is saved. Codes outside the token's scope are unknown codes. Fields a row leaves out keep their value."""
    rows = [
        ImportRow(
            line=i,
            code=r.code,
            latitude=_given(r, "latitude"),
            longitude=_given(r, "longitude"),
            hours=_given(r, "hours"),
            temporarily_closed=_given(r, "temporarily_closed"),
        )
        for i, r in enumerate(payload.rows)
    ]
    report = store_geo_import(actor=actor_of(request), rows=rows)
    if report.errors:
        errors = [
            {"field": f"rows.{line}.{name}" if name else f"rows.{line}", "message": m}
            for line, name, m in report.errors
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:20])
        # The body matched the schema, so what is left are rules about the data (unknown codes, half pairs): 409.
        return Status(409, {"detail": detail, "field": errors[0]["field"], "errors": errors})
    return Status(200, {"rows": report.rows, "updated": report.updated, "unchanged": report.unchanged})


@router.get(
    "/store-codes/stores/{store_id}",
    response={200: StoreGeoOut, **error_responses(401, 403, 404, 422)},
    operation_id="store_code_store_get",
    summary="One store's coordinates, hours and codes",
)
def store_get_api(request: HttpRequest, store_id: Path[Id]) -> dict[str, Any]:
    actor = actor_of(request)
    return _stores(actor, [access_geo_store(actor=actor, store_id=store_id)])[0]


@router.patch(
    "/store-codes/stores/{store_id}",
    response={200: StoreGeoOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="store_code_store_update",
    summary="Set a store's coordinates, weekly opening hours and temporarily-closed mark",
)
def store_update_api(request: HttpRequest, store_id: Path[Id], payload: StoreGeoIn) -> dict[str, Any]:
    """HQ, and region and store managers for their stores. Coordinates come in pairs; null clears; fields left
    out keep their value. Overlapping intervals (a day's, or one past midnight into the next day's) are 409."""
    actor = actor_of(request)
    require_editor(actor)  # a franchisee is refused as such, whichever store it names
    store = access_geo_store(actor=actor, store_id=store_id)
    fields = ("latitude", "longitude", "hours", "temporarily_closed")
    merged = {k: (getattr(store, k) if (v := _given(payload, k)) is None else v) for k in fields}
    geo = clean_geo(**merged)
    store = store_geo_update(actor=actor, store_id=store.id, geo=geo)
    return _stores(actor, [store])[0]


@router.get(
    "/store-codes/settings",
    response={200: SettingsOut, **error_responses(401, 403)},
    operation_id="store_code_settings_get",
    summary="The brand's store-locator settings and landing page",
)
def settings_get_api(request: HttpRequest) -> dict[str, Any]:
    actor = actor_of(request)
    require_viewer(actor)
    return _settings(store_code_settings_ensure(tenant_id=actor.tenant_id))


@router.put(
    "/store-codes/settings",
    response={200: SettingsOut, **error_responses(400, 401, 403, 404, 422)},
    operation_id="store_code_settings_update",
    summary="Set the search radius, the hours' time zone and the fallback live code (HQ only)",
)
def settings_update_api(request: HttpRequest, payload: SettingsIn) -> dict[str, Any]:
    row = store_code_settings_update(
        actor=actor_of(request),
        radius_m=payload.radius_m,
        time_zone=payload.time_zone.value,
        fallback_live_code_id=payload.fallback_live_code_id,
    )
    return _settings(row)
