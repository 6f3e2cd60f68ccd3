"""人群 Segments: the builder (a rule tree editor with a live count), the list with counts, and CSV exports.

Every member of the brand may build and use segments; counts, members and exports are always within the viewer's
own data scope. The services decide; these views parse the form, call one service or selector, and render.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

from django.contrib import messages
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.analytics import selectors, services
from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Segment
from siyu.analytics.segments import ATTRIBUTES, ORDER_SHOPS, rule_validate
from siyu.commerce.models import Shop
from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.models import Store
from siyu.customers.models import LifecycleStage
from siyu.tags.selectors import tag_list


def _client_ip(request: ConsoleRequest) -> str | None:
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return None


def _options(request: ConsoleRequest) -> dict[str, Any]:
    """What the builder offers: the brand's tags, stages, event types, shops and the stores in the viewer's scope."""
    actor = request.actor
    stores = Store.objects.filter(tenant_id=actor.tenant_id).order_by("code")
    if actor.store_ids is not None:
        stores = stores.filter(id__in=actor.store_ids)
    labels = {
        "all": gettext("All of"),
        "any": gettext("Any of"),
        "not": gettext("not"),
        "has": gettext("has tag"),
        "has_not": gettext("has not tag"),
        "add_condition": gettext("Add condition"),
        "add_group": gettext("Add group"),
        "remove": gettext("Remove group"),
        "in_last": gettext("in the last"),
        "days": gettext("days"),
        "any_shop": gettext("any shop"),
    }
    cmp_labels = {
        "eq": gettext("equals"),
        "ne": gettext("is not"),
        "in": gettext("is one of"),
        "contains": gettext("contains"),
        "gt": ">",
        "gte": "≥",
        "lt": "<",
        "lte": "≤",
        "between": gettext("between"),
        "within_days": gettext("within days"),
    }
    attribute_labels = {
        "gender": gettext("Gender"),
        "city": gettext("City"),
        "intent_level": gettext("Intent level"),
        "source": gettext("Source"),
        "created_at": gettext("Added on (date)"),
        "lifecycle_stage": gettext("Lifecycle stage"),
    }
    shops = dict(Shop.choices)
    return {
        "labels": labels,
        "kinds": [
            ["has_tag", gettext("Tag")],
            ["attr", gettext("Attribute")],
            ["lifecycle", gettext("Lifecycle stage")],
            ["event_count", gettext("Behaviour")],
            ["orders", gettext("Orders")],
            ["follow", gettext("Store")],
        ],
        "tags": [[t.id, f"{t.group.name} / {t.name}"] for t in tag_list(actor=actor)],
        "stages": [[v, str(label)] for v, label in LifecycleStage.choices],
        "events": [[name, str(e.label)] for name, e in EVENT_TYPES.items()],
        "attributes": {
            k: ("number" if kind in ("gender", "intent") else "text") for k, (kind, _c) in ATTRIBUTES.items()
        },
        "attribute_choices": [[k, attribute_labels[k]] for k in ATTRIBUTES],
        "cmps": [[k, v] for k, v in cmp_labels.items() if k != "within_days"],
        "count_cmps": [[k, cmp_labels[k]] for k in ("gte", "lte", "eq", "gt", "lt", "between")],
        "date_cmps": [[k, cmp_labels[k]] for k in ("within_days", "gte", "lte", "between")],
        "measures": [
            ["count", gettext("Number of paid orders")],
            ["amount_cents", gettext("Amount paid (fen)")],
            ["last_paid", gettext("Last paid")],
        ],
        "shops": [[s, str(shops.get(s, s))] for s in ORDER_SHOPS],
        "stores": [[s.id, s.name] for s in stores],
    }


def _render_builder(
    request: ConsoleRequest, segment: Segment | None, values: dict[str, Any], error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "segment": segment,
        "values": values,
        "error": error,
        "options": _options(request),
        "schedules": Segment.Schedule.choices,
    }
    return render(request, "console/segments/builder.html", context, status=status)


def _values(request: ConsoleRequest) -> dict[str, Any]:
    post = request.POST
    return {
        "name": post.get("name", ""),
        "rule": post.get("rule", ""),
        "schedule": post.get("schedule", Segment.Schedule.MANUAL),
        "daily_at": post.get("daily_at", ""),
    }


def _parsed(values: dict[str, Any]) -> dict[str, Any]:
    import datetime as dt

    try:
        rule = json.loads(values["rule"] or "null")
    except ValueError:
        rule = None
    try:
        daily_at = dt.time.fromisoformat(values["daily_at"]) if values["daily_at"] else None
    except ValueError:
        daily_at = None
    return {"name": values["name"], "rule": rule, "schedule": values["schedule"], "daily_at": daily_at}


@require_GET
@console_view
def segments(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    rows = []
    for segment in selectors.segment_list(actor=actor)[:100]:
        count = segment.cached_count if actor.is_brand_wide else selectors.segment_count(actor=actor, rule=segment.rule)
        rows.append((segment, count))
    return render(request, "console/segments/list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@console_view
def segment_new(request: ConsoleRequest) -> HttpResponse:
    if request.method == "GET":
        blank = {"name": "", "rule": json.dumps({"op": "and", "rules": []}), "schedule": "manual", "daily_at": ""}
        return _render_builder(request, None, blank)
    values = _values(request)
    try:
        services.segment_create(actor=request.actor, **_parsed(values))
    except SiyuError as exc:
        reraise_refusal(exc)
        return _render_builder(request, None, values, exc.message, status=422)
    messages.success(request, gettext("Segment saved."))
    return redirect("console:segments")


@require_http_methods(["GET", "POST"])
@console_view
def segment_edit(request: ConsoleRequest, segment_id: int) -> HttpResponse:
    segment = selectors.access_segment(actor=request.actor, segment_id=segment_id)
    if request.method == "GET":
        values = {
            "name": segment.name,
            "rule": json.dumps(segment.rule, ensure_ascii=False),
            "schedule": segment.schedule,
            "daily_at": segment.daily_at.strftime("%H:%M") if segment.daily_at else "",
        }
        return _render_builder(request, segment, values)
    values = _values(request)
    parsed = _parsed(values)
    try:
        services.segment_update(
            actor=request.actor,
            segment_id=segment.id,
            name=parsed["name"],
            rule=parsed["rule"],
            schedule=parsed["schedule"],
            daily_at=parsed["daily_at"],
        )
    except SiyuError as exc:
        reraise_refusal(exc)
        return _render_builder(request, segment, values, exc.message, status=422)
    messages.success(request, gettext("Segment saved."))
    return redirect("console:segments")


@require_POST
@console_view
def segment_preview(request: ConsoleRequest) -> HttpResponse:
    """The live count of the tree being edited (htmx, debounced); 200 with the message when the tree is not valid
    yet, so htmx swaps it in."""
    started = time.perf_counter()
    try:
        raw = json.loads(request.POST.get("rule") or "null")
    except ValueError:
        raw = None
    context: dict[str, Any] = {}
    if isinstance(raw, dict) and raw.get("op") in ("and", "or") and raw.get("rules") == []:
        context["empty"] = True
    else:
        try:
            rule = rule_validate(actor=request.actor, rule=raw)
            context["count"] = selectors.segment_count(actor=request.actor, rule=rule)
        except SiyuError as exc:
            context["error"] = exc.message
    context["ms"] = round((time.perf_counter() - started) * 1000)
    return render(request, "console/segments/_count.html", context)


@require_POST
@console_view
def segment_delete(request: ConsoleRequest, segment_id: int) -> HttpResponse:
    try:
        services.segment_delete(actor=request.actor, segment_id=segment_id)
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Segment deleted."))
    return redirect("console:segments")


@require_POST
@console_view
def segment_export(request: ConsoleRequest, segment_id: int) -> HttpResponse:
    """Start a background export of the segment's customers in the viewer's scope (masked)."""
    try:
        export = services.segment_export_request(
            actor=request.actor, segment_id=segment_id, reveal=False, ip=_client_ip(request)
        )
    except SiyuError as exc:
        # 200 on purpose: htmx swaps only successful responses.
        return render(request, "console/segments/_export.html", {"error": exc.message})
    return render(request, "console/segments/_export.html", {"export": export})


@require_GET
@console_view
def segment_export_status(request: ConsoleRequest, export_id: int) -> HttpResponse:
    export = selectors.segment_export_get(actor=request.actor, export_id=export_id)
    return render(request, "console/segments/_export.html", {"export": export})


@require_GET
@console_view
def segment_export_file(request: ConsoleRequest, export_id: int) -> HttpResponse:
    try:
        file = services.segment_export_download(actor=request.actor, export_id=export_id, ip=_client_ip(request))
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        return render(request, "console/message.html", {"message": exc.message}, status=exc.status_code)
    return FileResponse(file.path.open("rb"), as_attachment=True, filename=file.download_name, content_type="text/csv")


urlpatterns: list[URLPattern] = [
    path("customers/segments/", segments, name="segments"),
    path("customers/segments/new/", segment_new, name="segment_new"),
    path("customers/segments/preview/", segment_preview, name="segment_preview"),
    path("customers/segments/<int:segment_id>/", segment_edit, name="segment_edit"),
    path("customers/segments/<int:segment_id>/delete/", segment_delete, name="segment_delete"),
    path("customers/segments/<int:segment_id>/export/", segment_export, name="segment_export"),
    path("customers/segment-exports/<int:export_id>/", segment_export_status, name="segment_export_status"),
    path("customers/segment-exports/<int:export_id>/file/", segment_export_file, name="segment_export_file"),
]
