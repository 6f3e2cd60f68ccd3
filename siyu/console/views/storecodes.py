"""门店活码 Store codes: stores' coordinates, weekly hours and closures, whether each has a guide and a group code,
a scatter chart of their locations, a page per store, CSV import (a background job with progress and a report),
the locator's settings and a preview of the public landing page.

HQ, region and store managers edit their stores; franchisees look; guides have no store-code pages. Settings
(radius, time zone, fallback code) are brand-wide: HQ only. Views parse, call one service or selector, render.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.hours import MAX_TEXT, format_hours
from siyu.core.selectors import region_list
from siyu.storecodes import codes
from siyu.storecodes.display import week_rows, week_summary
from siyu.storecodes.models import MAX_RADIUS_M
from siyu.storecodes.selectors import (
    Located,
    access_geo_store,
    access_store_import,
    can_edit,
    geo_store_list,
    latest_store_import,
    require_editor,
    require_hq,
    require_viewer,
    store_cities,
    store_points,
)
from siyu.storecodes.services import (
    MAX_IMPORT_ROWS,
    MIN_RADIUS_M,
    ImportRow,
    clean_geo,
    store_code_settings_ensure,
    store_code_settings_update,
    store_code_token_rotate,
    store_geo_update,
    store_import_request,
)

PAGE = 50
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# The import's columns: `code` and at least one other; a column the file leaves out keeps the stores' values.
CSV_COLUMNS = ("code", "latitude", "longitude", "hours", "temporarily_closed")
HOURS_EXAMPLE = "mon-fri 10:00-22:00; sat-sun 09:00-23:00"


class StoreFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    city = forms.ChoiceField(label=_("City"), required=False)
    region = forms.TypedChoiceField(label=_("Region"), required=False, coerce=int, empty_value=None)
    located = forms.ChoiceField(
        label=_("Location"),
        required=False,
        choices=[(Located.ALL, _("All stores")), (Located.YES, _("Located")), (Located.NO, _("Not located"))],
    )

    def __init__(self, data: Any, *, cities: list[str], regions: list[tuple[int, str]]) -> None:
        super().__init__(data)
        self.fields["city"].choices = [("", _("All cities")), *((c, c) for c in cities)]
        self.fields["region"].choices = [("", _("All regions")), *regions]
        self.fields["q"].widget.attrs["placeholder"] = _("Code, name or address")

    def valid_data(self) -> dict[str, Any]:
        # A stale or hand-edited filter value is ignored rather than an error page.
        return self.cleaned_data if self.is_valid() else {}


class StoreGeoForm(forms.Form):
    latitude = forms.DecimalField(label=_("Latitude"), required=False, max_digits=9, decimal_places=6)
    longitude = forms.DecimalField(label=_("Longitude"), required=False, max_digits=9, decimal_places=6)
    hours = forms.CharField(
        label=_("Opening hours"),
        required=False,
        max_length=MAX_TEXT,
        widget=forms.TextInput(attrs={"placeholder": HOURS_EXAMPLE, "size": 60, "spellcheck": "false"}),
        help_text=_(
            "Days then hours, separated by semicolons, e.g. mon-fri 10:00-22:00; sat-sun 09:00-23:00. Days not "
            "named are closed; write sun closed to be explicit, 24h for round the clock, two intervals as "
            "10:00-14:00, 17:00-22:00. A closing time before the opening time is the next day (18:00-02:00). "
            "Empty: hours not set (the locator treats the store as open)."
        ),
    )
    temporarily_closed = forms.BooleanField(
        label=_("Temporarily closed"),
        required=False,
        help_text=_("The locator skips the store whatever its hours, until this is unticked."),
    )


class SettingsForm(forms.Form):
    radius_m = forms.IntegerField(
        label=_("Search radius (metres)"),
        min_value=MIN_RADIUS_M,
        max_value=MAX_RADIUS_M,
        help_text=_("Shoppers farther than this from every open store see the fallback code."),
    )
    time_zone = forms.CharField(
        label=_("Time zone of the opening hours"),
        required=False,
        max_length=64,
        help_text=_("Empty: the server's time zone (e.g. Asia/Shanghai)."),
    )
    fallback_live_code_id = forms.TypedChoiceField(
        label=_("Fallback code"), required=False, coerce=int, empty_value=None
    )

    def __init__(self, data: Any = None, *, choices: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["fallback_live_code_id"].choices = [("", _("None")), *choices]


def _form_error(form: forms.Form, exc: SiyuError, fields: dict[str, str]) -> None:
    form.add_error(fields.get(exc.field or ""), exc.message)


@require_GET
@console_view
def store_codes(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    require_viewer(actor)
    regions = [(r.id, r.name) for r in region_list(actor=actor)]
    form = StoreFilterForm(request.GET, cities=store_cities(actor=actor), regions=regions)
    data = form.valid_data()
    stores = geo_store_list(
        actor=actor,
        q=(data.get("q") or "").strip(),
        city=data.get("city") or "",
        region_id=data.get("region"),
        located=data.get("located") or "",
    )
    page = Paginator(stores, PAGE).get_page(request.GET.get("page"))
    flags = codes.store_code_flags(actor=actor, store_ids=[s.id for s in page.object_list])
    rows = [(s, week_summary(s.hours), flags[s.id]) for s in page.object_list]
    landing = store_code_settings_ensure(tenant_id=actor.tenant_id)
    query = {k: v for k, v in request.GET.items() if k != "page" and v}
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "filter_query": urlencode(query),
        "points": [[lng, lat, code, name] for lng, lat, code, name in store_points(actor=actor)],
        "landing_path": reverse("storecodes:landing", args=[landing.public_token]),
        "can_edit": can_edit(actor),
        "is_hq": actor.is_brand_wide,
    }
    return render(request, "console/storecodes/list.html", context)


@require_GET
@console_view
def store_code_detail(request: ConsoleRequest, store_id: int) -> HttpResponse:
    """One store: location, the week's hours, and its codes with the guides and groups behind them in scope."""
    actor = request.actor
    require_viewer(actor)
    store = access_geo_store(actor=actor, store_id=store_id)
    landing = store_code_settings_ensure(tenant_id=actor.tenant_id)
    context = {
        "store": store,
        "week": week_rows(store.hours),
        "detail": codes.store_code_detail(actor=actor, store_id=store.id),
        "landing_path": reverse("storecodes:landing", args=[landing.public_token]),
        "can_edit": can_edit(actor),
    }
    return render(request, "console/storecodes/detail.html", context)


@require_http_methods(["GET", "POST"])
@console_view
def store_code_edit(request: ConsoleRequest, store_id: int) -> HttpResponse:
    actor = request.actor
    require_editor(actor)
    store = access_geo_store(actor=actor, store_id=store_id)
    initial = {
        "latitude": store.latitude,
        "longitude": store.longitude,
        "hours": format_hours(store.hours),
        "temporarily_closed": store.temporarily_closed,
    }
    form = StoreGeoForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            geo = clean_geo(
                latitude=data["latitude"],
                longitude=data["longitude"],
                hours=data["hours"],
                temporarily_closed=data["temporarily_closed"],
            )
            store_geo_update(actor=actor, store_id=store.id, geo=geo)
        except SiyuError as exc:
            reraise_refusal(exc)
            _form_error(form, exc, {k: k for k in initial})
        else:
            messages.success(request, gettext("Saved %(store)s.") % {"store": store.name})
            return redirect("console:store_code_detail", store_id=store.id)
    status = 422 if form.is_bound and form.errors else 200
    return render(request, "console/storecodes/edit.html", {"form": form, "store": store}, status=status)


class FileRefused(Exception):
    """The upload as a whole cannot be imported (size, encoding, header); the message says why, translated."""


def _csv_rows(upload: Any) -> tuple[list[str], list[ImportRow]]:
    """The file's optional columns and rows (line numbers as a spreadsheet shows them)."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise FileRefused(gettext("The file is larger than 5 MB."))
    raw = upload.read()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK unless told otherwise
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise FileRefused(gettext("The file is not text (save it as CSV, UTF-8)."))
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    present = [c for c in CSV_COLUMNS if c in header]
    if "code" not in present or len(present) == 1:
        raise FileRefused(
            gettext("The first line must name the column code and at least one of %(columns)s.")
            % {"columns": ", ".join(CSV_COLUMNS[1:])}
        )
    if ("latitude" in present) != ("longitude" in present):
        raise FileRefused(gettext("The columns latitude and longitude come together: the file has only one."))
    index = {c: header.index(c) for c in present}
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        # A column the file has: its cell, "" when the row is short (clears); one it has not: None (keeps).
        cell = {c: (cells[i] if i < len(cells) else "") for c, i in index.items()}
        rows.append(ImportRow(line=line, **cell))
        if len(rows) > MAX_IMPORT_ROWS:
            raise FileRefused(gettext("At most %(max)s rows per file.") % {"max": MAX_IMPORT_ROWS})
    if not rows:
        raise FileRefused(gettext("The file has no rows below its header."))
    return present[1:], rows


def _import_context(job: Any) -> dict[str, Any]:
    return {"job": job, "problems": job.problems[:500] if job is not None else []}


@require_http_methods(["GET", "POST"])
@console_view
def store_code_import(request: ConsoleRequest) -> HttpResponse:
    """Upload a CSV: the file is read here (a whole-file problem answers at once), its rows are applied by a job
    whose progress and report the page polls for (`store_code_import_status`)."""
    actor = request.actor
    require_editor(actor)
    context: dict[str, Any] = {"columns": CSV_COLUMNS, "max_rows": MAX_IMPORT_ROWS, "hours_example": HOURS_EXAMPLE}
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise FileRefused(gettext("Choose a CSV file."))
            columns, rows = _csv_rows(upload)
            job = store_import_request(actor=actor, file_name=upload.name or "", columns=columns, rows=rows)
        except FileRefused as exc:
            context["file_error"] = str(exc)
            status = 422
        else:
            if not request.htmx:
                return redirect("console:store_code_import")  # the page shows the user's latest import
            context.update(_import_context(job))
    else:
        context.update(_import_context(latest_store_import(actor=actor)))
    if request.htmx:
        # htmx swaps only 2xx answers; the partial carries the errors itself.
        return render(request, "console/storecodes/_import_result.html", context)
    return render(request, "console/storecodes/import.html", context, status=status)


@require_GET
@console_view
def store_code_import_status(request: ConsoleRequest, import_id: int) -> HttpResponse:
    """The import's progress, then its report; the partial polls itself until the job has finished."""
    job = access_store_import(actor=request.actor, import_id=import_id)
    return render(request, "console/storecodes/_import_result.html", _import_context(job))


@require_http_methods(["GET", "POST"])
@console_view
def store_code_settings(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    require_hq(actor)
    row = store_code_settings_ensure(tenant_id=actor.tenant_id)
    choices = codes.live_code_choices(tenant_id=actor.tenant_id)
    initial = {"radius_m": row.radius_m, "time_zone": row.time_zone, "fallback_live_code_id": row.fallback_live_code_id}
    form = SettingsForm(request.POST if request.method == "POST" else None, choices=choices, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            store_code_settings_update(
                actor=actor,
                radius_m=data["radius_m"],
                time_zone=data["time_zone"] or "",
                fallback_live_code_id=data["fallback_live_code_id"],
            )
        except SiyuError as exc:
            reraise_refusal(exc)
            _form_error(form, exc, {k: k for k in initial})
        else:
            messages.success(request, gettext("Settings saved."))
            return redirect("console:store_code_settings")
    context = {
        "form": form,
        "landing_url": request.build_absolute_uri(reverse("storecodes:landing", args=[row.public_token])),
    }
    status = 422 if form.is_bound and form.errors else 200
    return render(request, "console/storecodes/settings.html", context, status=status)


@require_POST
@console_view
def store_code_token_rotate_view(request: ConsoleRequest) -> HttpResponse:
    store_code_token_rotate(actor=request.actor)
    messages.success(request, gettext("New link created; the old one no longer opens."))
    return redirect("console:store_code_settings")


urlpatterns = [
    path("acquisition/store-codes/", store_codes, name="store_codes"),
    path("acquisition/store-codes/import/", store_code_import, name="store_code_import"),
    path("acquisition/store-codes/import/<int:import_id>/", store_code_import_status, name="store_code_import_status"),
    path("acquisition/store-codes/settings/", store_code_settings, name="store_code_settings"),
    path("acquisition/store-codes/settings/rotate/", store_code_token_rotate_view, name="store_code_token_rotate"),
    path("acquisition/store-codes/<int:store_id>/", store_code_detail, name="store_code_detail"),
    path("acquisition/store-codes/<int:store_id>/edit/", store_code_edit, name="store_code_edit"),
]
