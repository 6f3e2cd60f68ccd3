"""The public store-code landing page (门店活码落地页): /s/<token>/, for shoppers' phones, no login.

Without a position the page asks the browser for one (navigator.geolocation) and reloads itself with
?lat=&lng=&src=geo, rounded to 4 decimals (about 10 m: plenty to pick a store, and the precise position never
reaches the server or its access log). Refused or failed geolocation shows a city → store picker and the brand
IP's code. Invalid coordinates answer 400 with the reason on the page, never a server error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from siyu.core.errors import ValidationFailed
from siyu.core.hours import is_open
from siyu.core.models import Store
from siyu.storecodes import codes
from siyu.storecodes.display import DayRow, today_label, week_rows
from siyu.storecodes.geo import parse_point
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.selectors import (
    NearbyStore,
    landing_cities,
    landing_stores_in,
    settings_by_token,
    store_for_landing,
    store_locate,
    time_zone_of,
)
from siyu.storecodes.services import fallback_for, store_code_visit_record


def distance_label(metres: float) -> str:
    if metres < 1000:
        return _("%(m)s m") % {"m": round(metres)}
    return _("%(km)s km") % {"km": f"{metres / 1000:.1f}"}


@dataclass(frozen=True)
class StoreCard:
    """The chosen store as the page shows it."""

    id: int
    name: str
    city: str
    address: str
    distance: str  # "" when picked from the list (no position)
    hours: str  # today's
    week: list[DayRow]  # every day's, today marked
    open_now: bool
    temporarily_closed: bool
    codes: codes.StoreCodes


def _card(row: StoreCodeSettings, store: Store | NearbyStore, distance_m: float | None) -> StoreCard:
    # Today, and whether the store is open now, are the brand's: its stores' hours are its wall-clock times.
    local = timezone.localtime(timezone.now(), time_zone_of(row))
    weekday = local.weekday()
    return StoreCard(
        id=store.id,
        name=store.name,
        city=store.city,
        address=store.address,
        distance=distance_label(distance_m) if distance_m is not None else "",
        hours=today_label(store.hours, weekday, temporarily_closed=store.temporarily_closed),
        week=week_rows(store.hours, today=weekday),
        open_now=not store.temporarily_closed and is_open(store.hours, weekday, local.hour * 60 + local.minute),
        temporarily_closed=store.temporarily_closed,
        codes=codes.store_codes_for(tenant_id=row.tenant_id, store_id=store.id),
    )


def _int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if 0 < number < 2**63 else None


@require_GET
@never_cache
def landing(request: HttpRequest, token: str) -> HttpResponse:
    row = settings_by_token(token=token)
    if row is None:
        raise Http404("unknown store-code page")
    tenant_id = row.tenant_id
    params = request.GET
    # A preview from the console shows the page without counting a shopper's visit.
    preview = params.get("preview") == "1"
    context: dict[str, Any] = {"brand": row.tenant.name, "token": token, "radius_km": f"{row.radius_m / 1000:g}"}
    status = 200
    if "store" in params:
        store = store_for_landing(tenant_id=tenant_id, store_id=_int(params.get("store")) or 0)
        if store is None:
            context.update(state="error", error=_("This store does not exist (any more)."))
            status = 404
        else:
            context.update(state="store", card=_card(row, store, None))
            if not preview:
                store_code_visit_record(
                    tenant_id=tenant_id, result=None, point=None, source="picker", store_id=store.id
                )
    elif "lat" in params or "lng" in params:
        try:
            point = parse_point(params.get("lat"), params.get("lng"))
        except ValidationFailed as exc:
            message = (
                _("Latitude must be a number from -90 to 90.")
                if exc.field == "lat"
                else _("Longitude must be a number from -180 to 180.")
            )
            context.update(state="error", error=message)
            status = 400
        else:
            result = store_locate(tenant_id=tenant_id, point=point, row=row)
            if not preview:
                source = "geo" if params.get("src") == "geo" else "params"
                store_code_visit_record(tenant_id=tenant_id, result=result, point=point, source=source)
            if result.store is not None:
                context.update(state="store", card=_card(row, result.store, result.store.distance_m))
            else:
                context.update(state="fallback")
    else:
        context["state"] = "locate"
    if context["state"] != "store" or not (context["card"].codes.guide or context["card"].codes.group):
        context["fallback_code"] = fallback_for(tenant_id=tenant_id, row=row)
    city = params.get("city", "")[:50]
    context["cities"] = landing_cities(tenant_id=tenant_id)
    if city:
        context["city"] = city
        context["city_stores"] = list(landing_stores_in(tenant_id=tenant_id, city=city)[:200])
    return render(request, "storecodes/landing.html", context, status=status)
