"""Writes of the store-code context (门店活码): stores' coordinates, hours and closures, their CSV imports, the
brand's settings, visits.

Every change is audited. A visit of the landing page (or a locate call) is an analytics event; the shopper's
position is kept only rounded to 0.01° (about 1 km), enough to see where demand is not served by a store and
too coarse to find a person's home: a precise position is personal data the brand does not need.
"""

from __future__ import annotations

import logging
import secrets
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError, ValidationFailed
from siyu.core.hours import WeeklyHours, clean_hours_input, format_hours
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Store
from siyu.core.scopes import Actor
from siyu.core.selectors import membership_for, store_list
from siyu.core.services import audit_record
from siyu.storecodes import codes
from siyu.storecodes.geo import Point, parse_coordinate, to_decimal
from siyu.storecodes.models import MAX_RADIUS_M, StoreCodeSettings, StoreImport
from siyu.storecodes.selectors import LocateResult, access_geo_store, require_editor, require_hq, settings_for

MIN_RADIUS_M = 100
MAX_IMPORT_ROWS = 20_000
VISIT_SOURCES = frozenset({"geo", "params", "picker", "api"})

logger = logging.getLogger(__name__)


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
    """Coordinates, weekly hours and the temporarily-closed mark of one store; both coordinates or neither."""

    latitude: float | None
    longitude: float | None
    hours: WeeklyHours
    temporarily_closed: bool = False


_YES = frozenset({"1", "y", "yes", "true", "是", "暂停", "暂停营业"})
_NO = frozenset({"", "0", "n", "no", "false", "否"})


def _flag(value: object, *, field: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValidationFailed(f"{field} must be yes or no, got {text[:20]!r}", field=field)


def clean_geo(
    *, latitude: object, longitude: object, hours: object, temporarily_closed: object = False
) -> StoreGeoInput:
    """Validate one store's input; errors name the field (latitude, longitude, hours, temporarily_closed).

    `hours` is text (`mon-fri 10:00-22:00; sat-sun 09:00-23:00`) or data (`{"mon": [["10:00", "22:00"]]}`);
    None or "" clears it. Malformed values are ValidationFailed (422); well-formed values that break a rule
    (half a pair, 0,0, overlapping hours) are Conflict (409), so API clients tell "fix the format" from "the
    combination is not allowed".
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
    schedule = clean_hours_input(hours, field="hours")
    return StoreGeoInput(lat, lng, schedule, _flag(temporarily_closed, field="temporarily_closed"))


GEO_FIELDS = ("latitude", "longitude", "hours", "temporarily_closed")


def _shown(name: str, value: object) -> object:
    """A field's value as the audit log keeps it: hours as the text people write, coordinates as text."""
    if name == "hours":
        return format_hours(value)  # type: ignore[arg-type]
    if name == "temporarily_closed":
        return value
    return None if value is None else str(value)


def _apply(store: Store, geo: StoreGeoInput) -> dict[str, list[object]]:
    """Set the store's fields; return what changed ({field: [before, after]}), empty when nothing did."""
    new: dict[str, object] = {
        "latitude": to_decimal(geo.latitude) if geo.latitude is not None else None,
        "longitude": to_decimal(geo.longitude) if geo.longitude is not None else None,
        "hours": geo.hours,
        "temporarily_closed": geo.temporarily_closed,
    }
    changed: dict[str, list[object]] = {}
    for name, value in new.items():
        old = getattr(store, name)
        if old != value:
            changed[name] = [_shown(name, old), _shown(name, value)]
            setattr(store, name, value)
    return changed


@transaction.atomic
def store_geo_update(*, actor: Actor, store_id: int, geo: StoreGeoInput) -> Store:
    """Set a store's coordinates, hours and mark (HQ, or a region or store manager for their stores)."""
    require_editor(actor)
    store = access_geo_store(actor=actor, store_id=store_id)
    store = Store.objects.select_for_update().get(id=store.id, tenant_id=actor.tenant_id)
    changed = _apply(store, geo)
    if changed:
        store.save(update_fields=sorted(changed))
        audit_record(actor=actor, action="store.geo_update", target_type="store", target_id=store.id, detail=changed)
    return store


# --- imports ------------------------------------------------------------------------------------------------

IMPORT_BATCH = 500


@dataclass(frozen=True)
class ImportRow:
    """One row of an import: `line` is its line number in the file (header = line 1), or its index in an API
    body. A field that is None was not given (the file has no such column): the store keeps its value; an empty
    value clears it."""

    line: int
    code: str
    latitude: object = None
    longitude: object = None
    hours: object = None
    temporarily_closed: object = None

    def as_json(self) -> list[object]:
        return [self.line, self.code, self.latitude, self.longitude, self.hours, self.temporarily_closed]

    @classmethod
    def from_json(cls, row: list[Any]) -> ImportRow:
        return cls(*row)


@dataclass
class ImportReport:
    rows: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, field, message): rows not saved

    @property
    def ok(self) -> bool:
        return not self.errors


def _row_geo(store: Store, row: ImportRow) -> StoreGeoInput:
    """The row's values, with the store's own for the fields the row does not give."""
    given = {
        "latitude": row.latitude,
        "longitude": row.longitude,
        "hours": row.hours,
        "temporarily_closed": row.temporarily_closed,
    }
    kept = {name: getattr(store, name) for name in GEO_FIELDS}
    return clean_geo(**{name: kept[name] if given[name] is None else given[name] for name in GEO_FIELDS})


def _import_batch(
    *, actor: Actor, rows: Sequence[ImportRow], seen: dict[str, int], report: ImportReport
) -> list[tuple[Store, dict[str, list[object]]]]:
    """Check `rows` against the stores they name (locked until the caller's transaction ends) and apply the good
    ones to those stores in memory; returns the changed stores (not saved). Errors and counts go to `report`.

    Stores outside the actor's scope are "unknown store code", like codes that do not exist; `seen` (code →
    line) carries over from batch to batch, so a code given twice in a file is refused wherever it repeats.
    """
    wanted = sorted({row.code.strip() for row in rows if row.code.strip()})
    # Locked in id order, as every writer of stores locks them, so two imports cannot deadlock each other.
    scoped = store_list(actor=actor).select_related(None).filter(code__in=wanted).order_by("id")
    stores = {s.code: s for s in scoped.select_for_update()}
    changed = []
    for row in rows:
        code = row.code.strip()
        if not code:
            report.errors.append((row.line, "code", "store code is empty"))
            continue
        if code in seen:
            report.errors.append((row.line, "code", f"store {code[:32]} already on line {seen[code]}"))
            continue
        seen[code] = row.line
        store = stores.get(code)
        if store is None:
            report.errors.append((row.line, "code", f"unknown store code {code[:32]!r}"))
            continue
        try:
            geo = _row_geo(store, row)
        except (ValidationFailed, Conflict) as exc:
            report.errors.append((row.line, exc.field or "", exc.message))
            continue
        diff = _apply(store, geo)
        if diff:
            changed.append((store, diff))
            report.updated += 1
        else:
            report.unchanged += 1
    return changed


def _save(stores: list[Store]) -> None:
    Store.objects.bulk_update(stores, fields=list(GEO_FIELDS), batch_size=IMPORT_BATCH)


@transaction.atomic
def store_geo_import(*, actor: Actor, rows: Sequence[ImportRow]) -> ImportReport:
    """Set many stores by code at once (the API's import): every row is checked first; any error and nothing is
    saved, so a client fixes its batch and sends it again. The console's CSV import is a job instead
    (`store_import_request`): there a file's bad rows are skipped and reported, its good rows saved.
    """
    require_editor(actor)
    report = ImportReport(rows=len(rows))
    if len(rows) > MAX_IMPORT_ROWS:
        report.errors.append((0, "file", f"at most {MAX_IMPORT_ROWS} rows per import, got {len(rows)}"))
        return report
    seen: dict[str, int] = {}
    changed = []
    for start in range(0, len(rows), IMPORT_BATCH):
        changed += _import_batch(actor=actor, rows=rows[start : start + IMPORT_BATCH], seen=seen, report=report)
    if report.errors:
        report.updated = report.unchanged = 0
        return report
    _save([store for store, _diff in changed])
    if changed:
        audit_record(
            actor=actor,
            action="store.geo_import",
            target_type="store",
            detail={"rows": report.rows, "updated": report.updated, "codes": [s.code for s, _d in changed][:200]},
        )
    return report


def store_import_request(
    *, actor: Actor, file_name: str, columns: Sequence[str], rows: Sequence[ImportRow]
) -> StoreImport:
    """Queue a CSV import of stores' coordinates and hours; a background job applies it after commit.

    Follow it with `selectors.access_store_import`. Nothing is checked here beyond the caller's role and the
    file's size: every row is checked by the job, against the stores as they are when it runs.
    """
    from siyu.storecodes.tasks import store_import_run  # tasks import this module: import late, no cycle

    require_editor(actor)
    if actor.user_id is None:
        raise ValidationFailed("an import needs a requesting user to scope it and show them its report", field="actor")
    if not rows:
        raise ValidationFailed("the file has no rows below its header", field="file")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ValidationFailed(f"at most {MAX_IMPORT_ROWS} rows per import, got {len(rows)}", field="file")
    job = StoreImport.objects.create(
        tenant_id=actor.tenant_id,
        requested_by_id=actor.user_id,
        file_name=file_name[:200],
        columns=list(columns),
        rows=[row.as_json() for row in rows],
        total=len(rows),
    )
    enqueue_on_commit(store_import_run, job.id)
    return job


def _requester(job: StoreImport) -> Actor:
    """The requester as they are now: a role or scope changed while the import waited applies to it."""
    membership = membership_for(user_id=job.requested_by_id, tenant_id=job.tenant_id) if job.requested_by_id else None
    if membership is None:
        raise PermissionDenied("the requester no longer belongs to this brand", field="requested_by")
    actor = Actor.from_membership(membership)
    require_editor(actor)
    return actor


def store_import_execute(*, import_id: int, batch_size: int = IMPORT_BATCH) -> StoreImport | None:
    """Run a pending import: apply its rows batch by batch, each batch in its own transaction with its progress
    and audit row, skipping bad rows with their line and reason; then mark it done (or failed, with why).

    Claims the import first, so a job delivered twice (or run by two workers) applies it once; returns None
    when there was nothing to claim. Applying a row sets values, never increments, so the same file imported
    again changes nothing (every row "unchanged", no audit row).
    """
    claimed = StoreImport.objects.filter(id=import_id, status=StoreImport.Status.PENDING).update(
        status=StoreImport.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("store import %s is not pending; nothing to do", import_id)
        return None
    job = StoreImport.objects.get(id=import_id)
    rows = [ImportRow.from_json(row) for row in job.rows]
    seen: dict[str, int] = {}
    try:
        actor = _requester(job)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            report = ImportReport(rows=len(batch))
            with transaction.atomic():
                changed = _import_batch(actor=actor, rows=batch, seen=seen, report=report)
                _save([store for store, _diff in changed])
                if changed:
                    audit_record(
                        actor=actor,
                        action="store.geo_import",
                        target_type="store_import",
                        target_id=job.id,
                        detail={
                            "rows": len(batch),
                            "updated": report.updated,
                            "codes": [s.code for s, _d in changed][:200],
                        },
                    )
                room = max(0, StoreImport.MAX_PROBLEMS - job.skipped)
                job.processed += len(batch)
                job.updated += report.updated
                job.unchanged += report.unchanged
                job.skipped += len(report.errors)
                job.problems = [*job.problems, *[list(e) for e in report.errors[:room]]]
                job.save(update_fields=["processed", "updated", "unchanged", "skipped", "problems"])
        # The rows have been applied: the report is what is kept.
        job.status, job.rows, job.finished_at = StoreImport.Status.DONE, [], timezone.now()
        job.save(update_fields=["status", "rows", "finished_at"])
    except Exception as exc:
        logger.exception("store import %s failed", job.id)
        message = exc.message if isinstance(exc, SiyuError) else "an unexpected error stopped the import"
        job.status, job.error, job.finished_at = StoreImport.Status.FAILED, message, timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
    return job


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
