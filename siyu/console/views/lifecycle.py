"""生命周期看板 Lifecycle kanban: one column per enabled stage with counts, cards moved by drag and drop (HTMX), the
brand's stage settings and "run the rules now" (HQ), and 流失客户 the lost-customers list.

Every role sees the board of its own data scope; moving a customer outside it is "not found". The services decide;
these views parse the request, call one service or selector, and render.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.dateparse import parse_date
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.selectors import guide_list, store_list
from siyu.customers import alerts, lifecycle
from siyu.customers.models import LifecycleStage

LOST_PAGE = 25


def _board_context(request: ConsoleRequest, error: str = "") -> dict[str, Any]:
    config = lifecycle.lifecycle_config_get(tenant_id=request.actor.tenant_id)
    return {
        "columns": lifecycle.lifecycle_board(actor=request.actor),
        "config": config,
        "hold_note": lifecycle.hold_note(config),
        "error": error,
    }


@require_GET
@console_view
def lifecycle_board(request: ConsoleRequest) -> HttpResponse:
    return render(request, "console/lifecycle/board.html", _board_context(request))


@require_GET
@console_view
def lifecycle_column(request: ConsoleRequest, stage: str) -> HttpResponse:
    """The next page of one column's cards ("more")."""
    if stage not in LifecycleStage.values:
        raise Http404("unknown stage")
    offset = int(request.GET["offset"]) if request.GET.get("offset", "").isdigit() else 0
    cards = lifecycle.stage_cards(actor=request.actor, stage=stage, offset=offset)
    count = lifecycle.stage_counts(actor=request.actor)[stage]
    context = {"cards": cards, "stage": stage, "next_offset": offset + len(cards), "more": offset + len(cards) < count}
    return render(request, "console/lifecycle/_cards.html", context)


@require_POST
@console_view
def lifecycle_move(request: ConsoleRequest) -> HttpResponse:
    """A card dropped on another column: move the customer by hand, answer the board with fresh counts."""
    customer_id = request.POST.get("customer_id", "")
    if not customer_id.isdigit():
        raise Http404("unknown customer")
    error = ""
    try:
        lifecycle.customer_stage_move(
            actor=request.actor, customer_id=int(customer_id), stage=request.POST.get("stage", "")
        )
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        error = exc.message  # 200 on purpose: htmx swaps only successful answers, and the board must say why
    return render(request, "console/lifecycle/_board.html", _board_context(request, error))


@require_POST
@console_view
def lifecycle_run(request: ConsoleRequest) -> HttpResponse:
    lifecycle.lifecycle_run_request(actor=request.actor)
    messages.success(request, gettext("The lifecycle rules are running: refresh in a moment to see the moves."))
    return redirect("console:lifecycle")


def _settings_values(request: ConsoleRequest) -> dict[str, Any]:
    post = request.POST
    rows = []
    for stage in LifecycleStage.values:
        order = post.get(f"order_{stage}", "")
        rows.append(
            (
                int(order) if order.lstrip("-").isdigit() else 99,
                {
                    "stage": stage,
                    "name": post.get(f"name_{stage}", ""),
                    "color": post.get(f"color_{stage}", ""),
                    "enabled": post.get(f"enabled_{stage}") == "on",
                },
            )
        )
    changes: dict[str, Any] = {"stages": [row for _, row in sorted(rows, key=lambda r: r[0])]}
    for field in ("engaged_days", "dormant_days", "lost_days", "hold_days"):
        value = post.get(field, "").strip()
        changes[field] = int(value) if value.isdigit() else value
    return changes


@require_http_methods(["GET", "POST"])
@console_view
def lifecycle_settings(request: ConsoleRequest) -> HttpResponse:
    """HQ's stage settings: order, names, colours, enabled, and the rules' thresholds."""
    if not request.actor.is_brand_wide:
        return render(request, "console/forbidden.html", {"message": gettext("Only HQ configures the lifecycle.")},
                      status=403)  # fmt: skip
    error = ""
    if request.method == "POST":
        try:
            lifecycle.lifecycle_config_update(actor=request.actor, changes=_settings_values(request))
        except SiyuError as exc:
            error = exc.message
        else:
            messages.success(request, gettext("Lifecycle settings saved."))
            return redirect("console:lifecycle")
    config = lifecycle.lifecycle_config_get(tenant_id=request.actor.tenant_id)
    context = {"config": config, "stages": lifecycle.stage_settings(config), "error": error,
               "hold_note": lifecycle.hold_note(config)}  # fmt: skip
    return render(request, "console/lifecycle/settings.html", context, status=422 if error else 200)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@require_GET
@console_view
def lost_customers(request: ConsoleRequest) -> HttpResponse:
    """流失客户: who, when, which guide, how, and the last interaction before; filters by date, store, guide."""
    actor = request.actor
    since = parse_date(request.GET.get("since") or "") if request.GET.get("since") else None
    until = parse_date(request.GET.get("until") or "") if request.GET.get("until") else None
    filters = {
        "since": since if isinstance(since, dt.date) else None,
        "until": until if isinstance(until, dt.date) else None,
        "store_id": _int(request.GET.get("store")),
        "guide_id": _int(request.GET.get("guide")),
    }
    page = Paginator(alerts.loss_alert_list(actor=actor, **filters), LOST_PAGE).get_page(request.GET.get("page"))
    query = {k: v for k, v in {"since": filters["since"], "until": filters["until"], "store": filters["store_id"],
                               "guide": filters["guide_id"]}.items() if v}  # fmt: skip
    context = {
        "page": page,
        "rows": alerts.loss_rows(list(page.object_list)),
        "filters": filters,
        "stores": store_list(actor=actor),
        "guides": guide_list(actor=actor),
        "base_query": urlencode(query),
    }
    return render(request, "console/lifecycle/lost.html", context)


# Included by siyu/console/urls.py.
urlpatterns: list[URLPattern] = [
    path("customers/lifecycle/", lifecycle_board, name="lifecycle"),
    path("customers/lifecycle/move/", lifecycle_move, name="lifecycle_move"),
    path("customers/lifecycle/run/", lifecycle_run, name="lifecycle_run"),
    path("customers/lifecycle/settings/", lifecycle_settings, name="lifecycle_settings"),
    path("customers/lifecycle/<slug:stage>/", lifecycle_column, name="lifecycle_column"),
    path("customers/lost/", lost_customers, name="lost_customers"),
]
