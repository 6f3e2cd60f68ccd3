"""订单 Orders, 标签 Tags, 导购 Guides & org, 数据 Analytics, 审计 Audit log, and the not-yet-built sections."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from siyu.console.decorators import ConsoleRequest, console_view
from siyu.console.forms import AuditFilterForm, OrderFilterForm
from siyu.console.navigation import UPCOMING
from siyu.console.selectors import analytics_report, order_page, org_tree, yuan
from siyu.core.selectors import audit_list

AUDIT_PAGE = 50


@require_GET
@console_view
def order_list(request: ConsoleRequest) -> HttpResponse:
    form = OrderFilterForm(request.GET)
    data = form.valid_data()
    page, rows = order_page(
        actor=request.actor,
        shop=data.get("shop") or "",
        status=data.get("status") or "",
        page=request.GET.get("page"),
        per_page=settings.SIYU_PAGE_SIZE,
    )
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "filter_errors": form.error_messages_by_field(),
        "filter_query": form.query(),
    }
    template = "console/orders/_results.html" if request.htmx else "console/orders/list.html"
    return render(request, template, context)


@require_GET
@console_view
def org(request: ConsoleRequest) -> HttpResponse:
    return render(request, "console/org.html", {"tree": org_tree(actor=request.actor)})


@require_GET
@console_view
def analytics(request: ConsoleRequest) -> HttpResponse:
    report = analytics_report(actor=request.actor)
    charts = {
        "stages": {"labels": [s for s, _ in report.stages], "values": [n for _, n in report.stages]},
        "shops": {
            "labels": [s for s, _ in report.gmv_by_shop],
            # Yuan as numbers for the chart axis; the table beside it shows exact amounts.
            "values": [round(c / 100, 2) for _, c in report.gmv_by_shop],
        },
        "weeks": report.series.weeks,
        "customers": report.series.customers,
        "orders": report.series.orders,
    }
    shops = [(label, yuan(cents)) for label, cents in report.gmv_by_shop]
    return render(request, "console/analytics.html", {"report": report, "charts": charts, "shops": shops})


@require_GET
@console_view
def audit(request: ConsoleRequest) -> HttpResponse:
    entries = audit_list(actor=request.actor)
    form = AuditFilterForm(
        request.GET, actions=entries.order_by("action").values_list("action", flat=True).distinct()
    )
    action = form.valid_data().get("action") or None
    page = Paginator(
        audit_list(actor=request.actor, action=action).select_related("actor"), AUDIT_PAGE
    ).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "filter_errors": form.error_messages_by_field(),
        "filter_query": form.query(),
    }
    template = "console/audit/_results.html" if request.htmx else "console/audit/list.html"
    return render(request, template, context)


@require_GET
@console_view
def upcoming(request: ConsoleRequest, key: str) -> HttpResponse:
    return render(request, "console/upcoming.html", {"section": UPCOMING[key]})
