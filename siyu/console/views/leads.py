"""线索 Leads: the leads in scope and the brand's public pool (公海); guides claim from the pool, record
follow-ups and convert leads into customers (转客户); HQ sets after how many days without a follow-up a lead
returns to the pool.

The services decide and audit; these views parse the form, call one service or selector, and render.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError, ValidationFailed
from siyu.core.models import Guide, Role
from siyu.core.selectors import guide_list
from siyu.leads import selectors, services
from siyu.leads.models import Lead

PAGE_SIZE = 50


@require_GET
@console_view
def lead_list(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    pool = request.GET.get("pool") == "1"
    rows = selectors.lead_list(actor=actor, pool=True if pool else None)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "cards": [selectors.lead_card(lead) for lead in page.object_list],
        "pool": pool,
        "base_query": "pool=1" if pool else "",
        "is_guide": actor.role == Role.GUIDE,
        "guide_id": actor.guide_id,
        "is_hq": actor.is_brand_wide,
        "pool_after_days": selectors.pool_after_days(tenant_id=actor.tenant_id),
        "statuses": dict(Lead.Status.choices),
        # Managers and HQ assign to the active guides of their scope; guides claim from the pool instead.
        "assignable": []
        if actor.role == Role.GUIDE
        else list(guide_list(actor=actor).filter(status=Guide.Status.ACTIVE).order_by("name").values("id", "name")),
    }
    return render(request, "console/leads/list.html", context)


@require_POST
@console_view
def lead_action(request: ConsoleRequest, lead_id: int, action: str) -> HttpResponse:
    """claim / follow-up / convert / invalid: one service call each; errors come back as a message."""
    actor = request.actor
    try:
        if action == "claim":
            services.lead_claim(actor=actor, lead_id=lead_id)
            done = gettext("Lead claimed: it is yours to follow up.")
        elif action in ("follow-up", "converted", "invalid"):
            status = Lead.Status.FOLLOWING if action == "follow-up" else action
            services.lead_follow_up(actor=actor, lead_id=lead_id, status=status)
            done = gettext("Follow-up recorded.")
        else:
            raise SiyuError(gettext("Unknown action."))
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("console:lead_list")


@require_POST
@console_view
def lead_new(request: ConsoleRequest) -> HttpResponse:
    """A lead typed in by hand (a walk-in, a call): a guide's is their own, anyone else's starts in the pool."""
    form = request.POST
    raw_intent = form.get("intent_level", "0")
    try:
        services.lead_create(
            actor=request.actor,
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            unionid=form.get("unionid", ""),
            source=form.get("source", ""),
            intent_level=int(raw_intent) if raw_intent.isdigit() else -1,
        )
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Lead added."))
    return redirect("console:lead_list")


@require_POST
@console_view
def lead_assign(request: ConsoleRequest, lead_id: int) -> HttpResponse:
    """Assign or reassign a lead to a guide in scope (managers and HQ)."""
    raw = request.POST.get("guide_id", "")
    try:
        services.lead_assign(actor=request.actor, lead_id=lead_id, guide_id=int(raw) if raw.isdigit() else 0)
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Lead assigned."))
    return redirect("console:lead_list")


@require_POST
@console_view
def lead_convert(request: ConsoleRequest, lead_id: int) -> HttpResponse:
    """Convert a lead into a customer (转客户): the customer numbered in the form, or, left empty, the brand's
    customer with the lead's phone or unionid."""
    raw = request.POST.get("customer_id", "").strip().lstrip("#")
    try:
        if raw and not raw.isdigit():
            raise ValidationFailed(gettext("Customer number must be a number."), field="customer_id")
        lead = services.lead_convert(actor=request.actor, lead_id=lead_id, customer_id=int(raw) if raw else None)
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Lead converted into customer #%(id)s.") % {"id": lead.customer_id})
    return redirect("console:lead_list")


@require_POST
@console_view
def lead_settings(request: ConsoleRequest) -> HttpResponse:
    raw = request.POST.get("pool_after_days", "")
    try:
        services.lead_settings_update(actor=request.actor, pool_after_days=int(raw) if raw.isdigit() else 0)
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Lead settings saved."))
    return redirect("console:lead_list")


urlpatterns: list[URLPattern] = [
    path("leads/", lead_list, name="lead_list"),
    path("leads/settings/", lead_settings, name="lead_settings"),
    path("leads/new/", lead_new, name="lead_new"),
    path("leads/<int:lead_id>/assign/", lead_assign, name="lead_assign"),
    path("leads/<int:lead_id>/convert/", lead_convert, name="lead_convert"),
    path("leads/<int:lead_id>/<slug:action>/", lead_action, name="lead_action"),
]
