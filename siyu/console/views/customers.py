"""客户 Customers: the list with filters, the 360 page, revealing personal data, CSV exports, and OneID: the review
queue of likely duplicates (疑似重复), the merges with their unmerge, and merging two customers by hand (HQ only)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.selectors import timeline_for_customer
from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.console.forms import CustomerFilterForm, ExportForm, TimelineFilterForm
from siyu.console.selectors import (
    TIMELINE_PAGE,
    TimelineEntry,
    customer_360,
    customer_count,
    customer_page,
    describe_event,
)
from siyu.core.errors import SiyuError
from siyu.core.selectors import guide_list, store_list
from siyu.customers import identity as oneid
from siyu.customers import lifecycle
from siyu.customers import selectors as customer_selectors
from siyu.customers.models import LifecycleStage, MergeCandidate
from siyu.customers.selectors import access_customer, customer_export_get, follow_relations_for
from siyu.customers.services import customer_export_download, customer_export_request, customer_reveal
from siyu.groups.selectors import groups_of_customer
from siyu.tags.selectors import tag_list


def _client_ip(request: ConsoleRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _filter_form(request: ConsoleRequest, data: QueryDict) -> CustomerFilterForm:
    actor = request.actor
    return CustomerFilterForm(
        data,
        tags=tag_list(actor=actor).order_by("-group__order", "group_id", "-order", "id"),
        stores=store_list(actor=actor),
        guides=guide_list(actor=actor),
    )


def _list_url(form: CustomerFilterForm, page: int = 1) -> str:
    params = form.canonical()
    if page > 1:
        params["page"] = page
    query = urlencode(params, doseq=True)
    return reverse("console:customer_list") + (f"?{query}" if query else "")


@require_GET
@console_view
def customer_list(request: ConsoleRequest) -> HttpResponse:
    form = _filter_form(request, request.GET)
    page, rows = customer_page(
        actor=request.actor,
        filters=form.selector_kwargs(),
        page=request.GET.get("page"),
        per_page=settings.SIYU_PAGE_SIZE,
    )
    context: dict[str, Any] = {
        "form": form,
        "page": page,
        "rows": rows,
        "filter_errors": form.error_messages_by_field(),
        "filter_query": form.query(),
        "export_form": ExportForm(),
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "console/customers/_results.html", context)
        # The address bar shows the valid, non-empty filters only, so the link is short and shareable.
        response["HX-Push-Url"] = _list_url(form, page.number)
        return response
    return render(request, "console/customers/list.html", context)


@require_GET
@console_view
def customer_total(request: ConsoleRequest) -> HttpResponse:
    """How many customers match the filters; loaded after the table so counting never delays a page."""
    form = _filter_form(request, request.GET)
    total = customer_count(actor=request.actor, filters=form.selector_kwargs())
    return render(request, "console/customers/_total.html", {"total": total})


def _day(value: str | None) -> dt.date | None:
    try:
        return parse_date(value or "")
    except ValueError:
        return None


def _stage_detail(props: dict[str, Any]) -> str:
    labels = dict(LifecycleStage.choices)
    by = gettext("by hand") if props.get("by") == "hand" else gettext("by rule")
    return f"{labels.get(props.get('from'), '?')} → {labels.get(props.get('to'), '?')} · {by}"


def _timeline_context(
    request: ConsoleRequest, customer_id: int, guide_names: dict[int, str] | None = None
) -> dict[str, Any]:
    """One page of the timeline, filtered by event type and by a date range (since/until, days inclusive)."""
    actor = request.actor
    form = TimelineFilterForm(request.GET)
    event_type = form.valid_data().get("type") or ""
    since, until = _day(request.GET.get("since")), _day(request.GET.get("until"))
    customer = access_customer(actor=actor, customer_id=customer_id)
    if guide_names is None:
        guide_names = {r.guide_id: r.guide.name for r in follow_relations_for(actor=actor, customer_id=customer.id)}
    events = timeline_for_customer(actor=actor, customer_id=customer.id, types=[event_type] if event_type else None)
    tz = timezone.get_current_timezone()
    if since:
        events = events.filter(occurred_at__gte=dt.datetime.combine(since, dt.time.min, tzinfo=tz))
    if until:
        events = events.filter(
            occurred_at__lt=dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        )
    page = Paginator(events, TIMELINE_PAGE).get_page(request.GET.get("page"))
    entries = [
        TimelineEntry(
            event=e,
            label=str(EVENT_TYPES[e.type].label) if e.type in EVENT_TYPES else e.type,
            detail=_stage_detail(e.properties or {})
            if e.type == "customer.stage_changed"
            else describe_event(e, guide_names),
        )
        for e in page.object_list
    ]
    query = {k: v for k, v in (("type", event_type), ("since", since), ("until", until)) if v}
    return {
        "customer_id": customer_id,
        "timeline_form": form,
        "timeline_errors": form.error_messages_by_field(),
        "timeline_query": urlencode(query),
        "timeline_since": since,
        "timeline_until": until,
        "page": page,
        "entries": entries,
    }


@require_GET
@console_view
def customer_detail(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    actor = request.actor
    view = customer_360(actor=actor, customer_id=customer_id)
    context = _timeline_context(request, customer_id, guide_names=view.guide_names)
    config = lifecycle.lifecycle_config_get(tenant_id=actor.tenant_id)
    names = {st.stage: st.name for st in lifecycle.stage_settings(config)}
    held = view.customer.stage_held_until
    extra = {
        "groups": list(groups_of_customer(actor=actor, customer_id=customer_id).select_related("owner")),
        "stage_name": names.get(view.customer.lifecycle_stage, view.customer.get_lifecycle_stage_display()),
        "stage_held_until": held if held and held > timezone.now() else None,
        "last_order": view.orders[0] if view.orders else None,
    }
    return render(
        request, "console/customers/detail.html", {**context, **extra, "view": view, "customer": view.customer}
    )


@require_GET
@console_view
def customer_timeline(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    return render(request, "console/customers/_timeline.html", _timeline_context(request, customer_id))


@require_POST
@console_view
def customer_reveal_view(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    revealed = customer_reveal(actor=request.actor, customer_id=customer_id, ip=_client_ip(request))
    return render(request, "console/customers/_pii.html", {"customer_id": customer_id, "revealed": revealed})


@require_POST
@console_view
def customer_export(request: ConsoleRequest) -> HttpResponse:
    """Start a background export of the customers matching the list's current filters."""
    export_form = ExportForm(request.POST)
    export_form.is_valid()
    reveal = bool(export_form.cleaned_data.get("reveal"))
    form = _filter_form(request, QueryDict(export_form.cleaned_data.get("query") or ""))
    filters = {k: v for k, v in form.selector_kwargs().items() if v not in (None, "", [])}
    try:
        export = customer_export_request(actor=request.actor, filters=filters, reveal=reveal, ip=_client_ip(request))
    except SiyuError as exc:
        # 200 on purpose: htmx swaps only successful responses, and the message must replace the button's result.
        return render(request, "console/customers/_export.html", {"error": exc.message})
    return render(request, "console/customers/_export.html", {"export": export})


@require_GET
@console_view
def customer_export_status(request: ConsoleRequest, export_id: int) -> HttpResponse:
    export = customer_export_get(actor=request.actor, export_id=export_id)
    return render(request, "console/customers/_export.html", {"export": export})


@require_GET
@console_view
def customer_export_file(request: ConsoleRequest, export_id: int) -> HttpResponse:
    try:
        file = customer_export_download(actor=request.actor, export_id=export_id, ip=_client_ip(request))
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        return render(request, "console/message.html", {"message": exc.message}, status=exc.status_code)
    return FileResponse(file.path.open("rb"), as_attachment=True, filename=file.download_name, content_type="text/csv")


# -- OneID: the review queue, merges and unmerges (HQ only; the services refuse everyone else with a 403) ----------

ONEID_PAGE = 25


@require_GET
@console_view
def customer_duplicates(request: ConsoleRequest) -> HttpResponse:
    """The review queue: pairs of likely duplicates, both sides masked, most likely first."""
    status = request.GET.get("status") or MergeCandidate.Status.PENDING
    if status not in MergeCandidate.Status.values:
        status = MergeCandidate.Status.PENDING
    qs = customer_selectors.merge_candidate_list(actor=request.actor, status=status)
    page = Paginator(qs, ONEID_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": customer_selectors.candidate_rows(list(page.object_list)),
        "status": status,
        "statuses": MergeCandidate.Status.choices,
    }
    return render(request, "console/customers/duplicates.html", context)


@require_POST
@console_view
def customer_duplicate_action(request: ConsoleRequest, candidate_id: int, action: str) -> HttpResponse:
    """approve (merge the pair) or reject (never again); answers the pair's row, decided, for htmx to swap in."""
    if action not in ("approve", "reject"):
        raise Http404("unknown action")
    actor = request.actor
    error = ""
    try:
        if action == "approve":
            oneid.merge_candidate_approve(actor=actor, candidate_id=candidate_id)
        else:
            oneid.merge_candidate_reject(actor=actor, candidate_id=candidate_id)
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        error = exc.message  # 200 on purpose: htmx swaps only successful answers, and the row must say why
    candidate = customer_selectors.access_merge_candidate(actor=actor, candidate_id=candidate_id)
    row = customer_selectors.candidate_rows([candidate])[0]
    return render(request, "console/customers/_duplicate_row.html", {"row": row, "error": error})


@require_POST
@console_view
def customer_duplicates_scan(request: ConsoleRequest) -> HttpResponse:
    """Look through the whole brand for pairs sharing a fuzzy key (after an import)."""
    found = oneid.merge_candidates_find(actor=request.actor)
    return render(request, "console/customers/_oneid_message.html", {"level": "success", "found": found})


@require_GET
@console_view
def customer_merges(request: ConsoleRequest) -> HttpResponse:
    """Merges, newest first, each with what moved and an unmerge button."""
    qs = customer_selectors.merge_list(actor=request.actor)
    page = Paginator(qs, ONEID_PAGE).get_page(request.GET.get("page"))
    return render(request, "console/customers/merges.html", {"page": page, "merges": list(page.object_list)})


@require_POST
@console_view
def customer_unmerge_view(request: ConsoleRequest, merge_id: int) -> HttpResponse:
    error = ""
    try:
        oneid.customer_unmerge(actor=request.actor, merge_id=merge_id)
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        error = exc.message
    merge = customer_selectors.access_merge(actor=request.actor, merge_id=merge_id)
    return render(request, "console/customers/_merge_row.html", {"merge": merge, "error": error})


@require_POST
@console_view
def customer_merge_view(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    """Merge this customer with another one, by the other's id (the 360 page's form); answers a message."""
    other = (request.POST.get("other_id") or "").strip()
    try:
        if not other.isdigit() or int(other) == 0:
            raise SiyuError(gettext("Enter the id of the other customer."), field="other_id")
        merge = oneid.customer_merge(actor=request.actor, customer_ids=[customer_id, int(other)])
    except SiyuError as exc:
        reraise_refusal(exc)
        return render(request, "console/customers/_oneid_message.html", {"level": "error", "error": exc.message})
    return render(request, "console/customers/_oneid_message.html", {"level": "success", "merge": merge})


# Included by siyu/console/urls.py.
urlpatterns: list[URLPattern] = [
    path("customers/duplicates/", customer_duplicates, name="customer_duplicates"),
    path("customers/duplicates/scan/", customer_duplicates_scan, name="customer_duplicates_scan"),
    path(
        "customers/duplicates/<int:candidate_id>/<slug:action>/",
        customer_duplicate_action,
        name="customer_duplicate_action",
    ),
    path("customers/merges/", customer_merges, name="customer_merges"),
    path("customers/merges/<int:merge_id>/unmerge/", customer_unmerge_view, name="customer_unmerge"),
    path("customers/<int:customer_id>/merge/", customer_merge_view, name="customer_merge"),
]
