"""Writes of the store-code context (门店活码): stores' coordinates and hours, the brand's settings, visits.

Every change is audited. A visit of the landing page (or a locate call) is an analytics event; the shopper's
position is kept only rounded to 0.01° (about 1 km), enough to see where demand is not served by a store and
too coarse to find a person's home: a precise position is personal data the brand does not need.
"""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import IntegrityError, transaction

from siyu.analytics.services import event_record
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Store
from siyu.core.scopes import Actor
from siyu.core.selectors import store_list
from siyu.core.services import audit_record
from siyu.storecodes import codes
from siyu.storecodes.geo import Point, parse_coordinate, to_decimal
from siyu.storecodes.models import MAX_RADIUS_M, StoreCodeSettings
from siyu.storecodes.selectors import LocateResult, access_geo_store, require_editor, require_hq, settings_for

MIN_RADIUS_M = 100
MAX_IMPORT_ROWS = 20_000
VISIT_SOURCES = frozenset({"geo", "params", "picker", "api"})


def _new_token() -> str:
    return secrets.token_urlsafe(16)[:22]


def store_code_settings_ensure(*, tenant_id: int) -> StoreCodeSettings:
    """The brand's settings, created with the defaults (and a fresh landing token) on first use; race-safe."""
    row = settings_for(tenant_id=tenant_id)
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return StoreCodeSettings.objects.create(tenant_id=tenant_id, public_token=_new_token())
    except IntegrityError:
        # Another request created it first: the unique tenant constraint decided, take theirs.
        return StoreCodeSettings.objects.get(tenant_id=tenant_id)


def _clean_radius(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_RADIUS_M <= value <= MAX_RADIUS_M:
        raise ValidationFailed(
            f"radius_m must be a whole number of metres from {MIN_RADIUS_M} to {MAX_RADIUS_M}", field="radius_m"
        )
    return value


def _clean_time_zone(value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {value[:64]!r} (e.g. Asia/Shanghai)", field="time_zone") from None
    return value


@transaction.atomic
def store_code_settings_update(
    *, actor: Actor, radius_m: int, time_zone: str = "", fallback_live_code_id: int | None = None
) -> StoreCodeSettings:
    """HQ sets the radius, the hours' time zone and the fallback code (an active live code of the brand)."""
    require_hq(actor)
    radius = _clean_radius(radius_m)
    zone = _clean_time_zone(time_zone)
    if fallback_live_code_id is not None and (
        codes.fallback_code(tenant_id=actor.tenant_id, live_code_id=fallback_live_code_id) is None
    ):
        # Another brand's code is "not found" like a missing one; a paused or deleted one too.
        raise NotFound(
            f"live code {fallback_live_code_id} is not an active live code of this brand",
            field="fallback_live_code_id",
        )
    row = store_code_settings_ensure(tenant_id=actor.tenant_id)
    row = StoreCodeSettings.objects.select_for_update().get(id=row.id)
    before = {"radius_m": row.radius_m, "time_zone": row.time_zone, "fallback_live_code_id": row.fallback_live_code_id}
    row.radius_m, row.time_zone, row.fallback_live_code_id = radius, zone, fallback_live_code_id
    after = {"radius_m": row.radius_m, "time_zone": row.time_zone, "fallback_live_code_id": row.fallback_live_code_id}
    if after != before:
        row.save(update_fields=["radius_m", "time_zone", "fallback_live_code_id", "updated_at"])
        audit_record(
            actor=actor,
            action="storecode.settings_update",
            target_type="storecode_settings",
            target_id=row.id,
            detail={"before": before, "after": after},
        )
    return row


@transaction.atomic
def store_code_token_rotate(*, actor: Actor) -> StoreCodeSettings:
    """A new landing-page token: the old link (and posters printed with it) stop working at once."""
    require_hq(actor)
    row = store_code_settings_ensure(tenant_id=actor.tenant_id)
    row.public_token = _new_token()
    row.save(update_fields=["public_token", "updated_at"])
    audit_record(actor=actor, action="storecode.token_rotate", target_type="storecode_settings", target_id=row.id)
    return row


# --- stores' coordinates and hours --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreGeoInput:
    """Coordinates and hours of one store; both coordinates or neither, both hours or neither."""

    latitude: float | None
    longitude: float | None
    opens_at: dt.time | None
    closes_at: dt.time | None


def clean_geo(
    *,
    latitude: object,
    longitude: object,
    opens_at: dt.time | None,
    closes_at: dt.time | None,
) -> StoreGeoInput:
    """Validate one store's geo input; errors name the field (latitude, longitude, opens_at, closes_at).

    Malformed values are ValidationFailed (422); well-formed values that break a rule (half a pair, 0,0) are
    Conflict (409), so API clients tell "fix the format" from "the combination is not allowed".
    """
    blank = (None, "")
    if (latitude in blank) != (longitude in blank):
        missing = "longitude" if longitude in blank else "latitude"
        raise Conflict("give both latitude and longitude, or neither", field=missing)
    lat = lng = None
    if latitude not in blank:
        lat = parse_coordinate(latitude, field="latitude", limit=90)
        lng = parse_coordinate(longitude, field="longitude", limit=180)
        if lat == 0 and lng == 0:
            # "Null island": what a spreadsheet's empty cells become, never a store.
            raise Conflict("0, 0 is not a store location (empty cells?)", field="latitude")
    if (opens_at is None) != (closes_at is None):
        raise Conflict(
            "give both opening and closing times, or neither", field="closes_at" if closes_at is None else "opens_at"
        )
    return StoreGeoInput(lat, lng, opens_at, closes_at)


def _apply(store: Store, geo: StoreGeoInput) -> dict[str, list[str | None]]:
    """Set the store's fields; return what changed ({field: [before, after]}), empty when nothing did."""
    new = {
        "latitude": to_decimal(geo.latitude) if geo.latitude is not None else None,
        "longitude": to_decimal(geo.longitude) if geo.longitude is not None else None,
        "opens_at": geo.opens_at.replace(second=0, microsecond=0) if geo.opens_at else None,
        "closes_at": geo.closes_at.replace(second=0, microsecond=0) if geo.closes_at else None,
    }
    changed: dict[str, list[str | None]] = {}
    for name, value in new.items():
        old = getattr(store, name)
        if (Decimal(old) if isinstance(old, Decimal) else old) != value:
            changed[name] = [None if old is None else str(old), None if value is None else str(value)]
            setattr(store, name, value)
    return changed


@transaction.atomic
def store_geo_update(*, actor: Actor, store_id: int, geo: StoreGeoInput) -> Store:
    """Set a store's coordinates and hours (HQ, or a region or store manager for their stores)."""
    require_editor(actor)
    store = access_geo_store(actor=actor, store_id=store_id)
    store = Store.objects.select_for_update().get(id=store.id, tenant_id=actor.tenant_id)
    changed = _apply(store, geo)
    if changed:
        store.save(update_fields=sorted(changed))
        audit_record(actor=actor, action="store.geo_update", target_type="store", target_id=store.id, detail=changed)
    return store


@dataclass(frozen=True)
class ImportRow:
    """One row of an import as read from the file; `line` is its line number there (header = line 1)."""

    line: int
    code: str
    latitude: str
    longitude: str
    opens_at: str
    closes_at: str


@dataclass
class ImportReport:
    rows: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, message)

    @property
    def ok(self) -> bool:
        return not self.errors


def _time(text: str, *, field: str) -> dt.time | None:
    text = text.strip()
    if not text:
        return None
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).time()  # noqa: DTZ007 - a wall-clock time, no date
        except ValueError:
            continue
    if text in {"24:00", "24:00:00"}:
        return dt.time(0, 0)  # "until midnight"
    raise ValidationFailed(f"{field} must be a time like 09:30, got {text[:20]!r}", field=field)


def store_geo_import(*, actor: Actor, rows: Sequence[ImportRow]) -> ImportReport:
    """Import coordinates and hours by store code: every row is checked first; any error and nothing is saved.

    All or nothing so that a file fixed after its errors can simply be imported again; errors carry the
    file's line numbers. Stores outside the actor's scope are "unknown code", like codes that do not exist.
    """
    require_editor(actor)
    report = ImportReport(rows=len(rows))
    if len(rows) > MAX_IMPORT_ROWS:
        report.errors.append((0, "file", f"at most {MAX_IMPORT_ROWS} rows per import, got {len(rows)}"))
        return report
    stores = {s.code: s for s in store_list(actor=actor).select_related(None)}
    seen: dict[str, int] = {}
    parsed: list[tuple[Store, StoreGeoInput]] = []
    for row in rows:
        code = row.code.strip()
        if not code:
            report.errors.append((row.line, "code", "store code is empty"))
            continue
        if code in seen:
            report.errors.append((row.line, "code", f"store {code} already on line {seen[code]}"))
            continue
        seen[code] = row.line
        store = stores.get(code)
        if store is None:
            report.errors.append((row.line, "code", f"unknown store code {code[:32]!r}"))
            continue
        try:
            geo = clean_geo(
                latitude=row.latitude.strip(),
                longitude=row.longitude.strip(),
                opens_at=_time(row.opens_at, field="opens_at"),
                closes_at=_time(row.closes_at, field="closes_at"),
            )
        except (ValidationFailed, Conflict) as exc:
            report.errors.append((row.line, exc.field or "", exc.message))
            continue
        parsed.append((store, geo))
    if report.errors:
        return report
    with transaction.atomic():
        changed_stores = []
        for store, geo in parsed:
            if _apply(store, geo):
                changed_stores.append(store)
        Store.objects.bulk_update(
            changed_stores, fields=["latitude", "longitude", "opens_at", "closes_at"], batch_size=1000
        )
        report.updated, report.unchanged = len(changed_stores), len(parsed) - len(changed_stores)
        audit_record(
            actor=actor,
            action="store.geo_import",
            target_type="store",
            detail={"rows": report.rows, "updated": report.updated, "codes": [s.code for s in changed_stores][:200]},
        )
    return report


# --- visits -------------------------------------------------------------------------------------------------


def _rounded(value: float) -> float:
    return round(value, 2)


def store_code_visit_record(
    *, tenant_id: int, result: LocateResult | None, point: Point | None, source: str, store_id: int | None = None
) -> None:
    """One analytics event per landing-page visit or locate call: which store, how far, or the fallback."""
    if source not in VISIT_SOURCES:
        raise ValidationFailed(f"unknown visit source {source!r}", field="source")
    chosen = result.store if result is not None else None
    properties: dict[str, object] = {
        "source": source,
        "fallback": chosen is None and store_id is None,
        "store_id": chosen.id if chosen is not None else store_id,
        "distance_m": round(chosen.distance_m) if chosen is not None else None,
        "radius_m": result.radius_m if result is not None else None,
    }
    if point is not None:
        properties["area"] = [_rounded(point.latitude), _rounded(point.longitude)]
    event_record(tenant_id=tenant_id, type="storecode.visited", properties=properties)


def fallback_for(*, tenant_id: int, row: StoreCodeSettings | None) -> codes.CodeImage | None:
    return codes.fallback_code(tenant_id=tenant_id, live_code_id=row.fallback_live_code_id if row else None)
