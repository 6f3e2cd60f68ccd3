"""客户继承 Inheritance: hand a guide's customers (and groups) to another guide — on-job transfer (在职继承) or
resigned inheritance (离职继承) — follow each customer through WeCom's 24-hour window, hand a departed guide's
whole book to the brand IP in one click, and see WeCom's list of unassigned customers.

Managers (HQ, region, store) start transfers for guides in their scope; franchisees see their stores' transfers;
guides see none. The services decide; these views parse, call one service or selector, and render.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.console.inheritance_forms import SERVICE_FIELDS, TransferForm
from siyu.core.errors import NotFound, SiyuError
from siyu.core.models import Guide
from siyu.customers.selectors import customer_card
from siyu.inheritance.models import Transfer, TransferItem
from siyu.inheritance.selectors import (
    brand_ip_guide,
    can_start_transfers,
    handover_choices,
    handover_relations,
    require_manager,
    takeover_choices,
    transfer_detail,
    transfer_list,
    transfer_rows,
    unassigned_fetch_state,
    unassigned_list,
)
from siyu.inheritance.services import (
    transfer_refresh,
    transfer_start,
    transfer_to_brand_ip,
    unassigned_refresh,
)

PAGE = 25
CUSTOMERS_SHOWN = 500  # a longer book is handed over whole ("all customers") rather than ticked one by one

# What WeCom's per-customer errcodes mean, in the console's language (wecom-api.md §4.8).
REASONS = {
    40003: _("The guide is not a valid WeCom member."),
    40096: _("Not a valid WeCom customer."),
    40097: _("WeCom does not show the handover guide as departed yet."),
    40128: _("Already transferred twice within 90 days."),
    40129: _("Already being transferred to another guide."),
    40131: _("Not a customer of the handover guide in WeCom."),
    90500: _("The group owner has not left WeCom."),
    90501: _("Not a customer group (dismissed?)."),
    90502: _("The group owner has left: use resigned inheritance."),
    90504: _("The takeover guide already owns this group."),
    610004: _("Customer contact is not enabled for the guide."),
}
ITEM_STATES = [
    TransferItem.Status.PENDING,
    TransferItem.Status.WAITING,
    TransferItem.Status.SUCCEEDED,
    TransferItem.Status.REFUSED,
    TransferItem.Status.LIMIT_EXCEEDED,
    TransferItem.Status.NO_RECORD,
    TransferItem.Status.FAILED,
]
ITEM_LABELS = dict(TransferItem.Status.choices)


def reason(errcode: int, errmsg: str) -> str:
    if not errcode:
        return ""
    text = REASONS.get(errcode)
    return f"{text} ({errcode})" if text else f"{errmsg} ({errcode})"


def _counts(counts: dict[str, int]) -> list[tuple[str, Any, int]]:
    """(status, label, count) in the life-cycle order, the statuses that occur only."""
    return [(s, ITEM_LABELS[s], counts[s]) for s in ITEM_STATES if counts.get(s)]


@require_GET
@console_view
def inheritance(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    page = Paginator(transfer_list(actor=actor), PAGE).get_page(request.GET.get("page"))
    rows = [(row, _counts(row.counts)) for row in transfer_rows(list(page.object_list))]
    manager = can_start_transfers(actor)
    departed = (
        [c for c in handover_choices(actor=actor) if c.guide.status == Guide.Status.DEPARTED and c.customers]
        if manager
        else []
    )
    context = {
        "tab": "transfers",
        "page": page,
        "rows": rows,
        "departed": departed,
        "can_start": manager,
        "brand_ip": brand_ip_guide(tenant_id=actor.tenant_id) if manager else None,
    }
    return render(request, "console/inheritance/list.html", context)


def _customer_rows(request: ConsoleRequest, handover_id: int | None) -> list[dict[str, Any]]:
    if not handover_id:
        return []
    relations = handover_relations(actor=request.actor, guide_id=handover_id).select_related("customer")
    return [{"relation": r, "customer": customer_card(r.customer)} for r in relations[:CUSTOMERS_SHOWN]]


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@require_http_methods(["GET", "POST"])
@console_view
def inheritance_new(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    require_manager(actor)
    handovers = handover_choices(actor=actor)
    in_scope = {c.guide.id for c in handovers}
    source = request.POST if request.method == "POST" else request.GET
    handover_id = _int(source.get("handover"))
    handover_id = handover_id if handover_id in in_scope else None
    customers = _customer_rows(request, handover_id)
    form = TransferForm(
        request.POST if request.method == "POST" else None,
        handovers=handovers,
        takeovers=takeover_choices(actor=actor),
        customer_ids=[row["relation"].customer_id for row in customers],
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            transfer = transfer_start(
                actor=actor,
                kind=form.kind(),
                handover_guide_id=data["handover"],
                takeover_guide_id=data["takeover"],
                customer_ids=form.customer_ids(),
                include_groups=bool(data.get("include_groups")),
                message=data.get("message") or "",
            )
        except SiyuError as exc:
            reraise_refusal(exc)
            form.add_error(SERVICE_FIELDS.get(exc.field or ""), exc.message)
        else:
            return redirect("console:inheritance_detail", transfer_id=transfer.id)
    context = {
        "tab": "new",
        "form": form,
        "handover_id": handover_id,
        "customers": customers,
        "chosen": {_int(v) for v in form["customers"].value() or []} if form.is_bound else set(),
        "shown_limit": CUSTOMERS_SHOWN,
    }
    status = 422 if form.is_bound and form.errors else 200
    return render(request, "console/inheritance/new.html", context, status=status)


@require_GET
@console_view
def inheritance_customers(request: ConsoleRequest) -> HttpResponse:
    """The handover guide's customers to tick (swapped into the form when the guide changes)."""
    require_manager(request.actor)
    handover_id = _int(request.GET.get("handover"))
    customers = _customer_rows(request, handover_id)
    context = {"customers": customers, "handover_id": handover_id, "chosen": set(), "shown_limit": CUSTOMERS_SHOWN}
    return render(request, "console/inheritance/_customers.html", context)


def _detail_context(request: ConsoleRequest, transfer_id: int) -> dict[str, Any]:
    detail = transfer_detail(actor=request.actor, transfer_id=transfer_id)
    return {
        "detail": detail,
        "transfer": detail.transfer,
        "counts": _counts(detail.counts),
        "items": [(row, reason(row.item.errcode, row.item.errmsg)) for row in detail.items],
        "groups": [(g, reason(g.errcode, g.errmsg)) for g in detail.groups],
        "can_refresh": can_start_transfers(request.actor),
        # A job is sending a large transfer: watch it. After a failure nothing happens until someone refreshes.
        "polling": detail.transfer.status == Transfer.Status.SUBMITTING and not detail.transfer.last_error,
    }


@require_GET
@console_view
def inheritance_detail(request: ConsoleRequest, transfer_id: int) -> HttpResponse:
    context = _detail_context(request, transfer_id)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "console/inheritance/_transfer.html", context)
    return render(request, "console/inheritance/detail.html", {**context, "tab": "transfers"})


@require_POST
@console_view
def inheritance_refresh(request: ConsoleRequest, transfer_id: int) -> HttpResponse:
    """Send what is pending and ask WeCom how waiting customers are doing; the panel is swapped in place."""
    transfer_refresh(actor=request.actor, transfer_id=transfer_id)
    context = {**_detail_context(request, transfer_id), "refreshed": True}
    if request.htmx:
        return render(request, "console/inheritance/_transfer.html", context)
    return redirect("console:inheritance_detail", transfer_id=transfer_id)


@require_POST
@console_view
def inheritance_brand_ip(request: ConsoleRequest) -> HttpResponse:
    """One click: every customer and group of a departed guide goes to the brand IP account."""
    guide_id = _int(request.POST.get("guide"))
    if guide_id is None:
        raise NotFound("guide not found", field="guide")
    try:
        transfer = transfer_to_brand_ip(actor=request.actor, handover_guide_id=guide_id)
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        messages.error(request, exc.message)
        return redirect("console:inheritance")
    return redirect("console:inheritance_detail", transfer_id=transfer.id)


@require_GET
@console_view
def inheritance_unassigned(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    page = Paginator(unassigned_list(actor=actor), PAGE).get_page(request.GET.get("page"))
    context = {
        "tab": "unassigned",
        "page": page,
        "state": unassigned_fetch_state(actor=actor),
        "can_refresh": can_start_transfers(actor),
    }
    return render(request, "console/inheritance/unassigned.html", context)


@require_POST
@console_view
def inheritance_unassigned_refresh(request: ConsoleRequest) -> HttpResponse:
    state = unassigned_refresh(actor=request.actor)
    if state.error:
        messages.error(request, gettext("Could not read the list from WeCom: %(error)s") % {"error": state.error})
    else:
        messages.success(request, gettext("Read %(n)s unassigned customers from WeCom.") % {"n": state.count})
    return redirect("console:inheritance_unassigned")
