"""个人信息权利 Privacy rights (PIPL): the brand's log of data exports and erasures (HQ only), and the customer page's
privacy panel: consent state and history, recording a consent decision, downloading everything held on the customer
(audited, with a reason) and erasing the customer (irreversible: a typed confirmation of the customer's id).

The services decide and audit; these views parse the form, call one service or selector, and render.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.customers.selectors import access_customer
from siyu.privacy import selectors, services
from siyu.privacy.models import ConsentChannel, ConsentPurpose, PrivacyRequest

PAGE_SIZE = 50


def _client_ip(request: ConsoleRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@require_GET
@console_view
def privacy_requests(request: ConsoleRequest) -> HttpResponse:
    kind = request.GET.get("kind", "")
    kind = kind if kind in PrivacyRequest.Kind.values else ""
    rows = selectors.privacy_request_list(actor=request.actor, kind=kind)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [(row, sum(row.counts.values())) for row in page.object_list],
        "kind": kind,
        "kinds": PrivacyRequest.Kind.choices,
        "base_query": urlencode({"kind": kind}) if kind else "",
    }
    return render(request, "console/privacy/requests.html", context)


def _panel(request: ConsoleRequest, customer_id: int, *, error: str = "", status: int = 200) -> HttpResponse:
    actor = request.actor
    customer = access_customer(actor=actor, customer_id=customer_id)
    erased = selectors.erasure_of(tenant_id=actor.tenant_id, customer_id=customer.id)
    context: dict[str, Any] = {
        "customer": customer,
        "states": selectors.consent_state(actor=actor, customer_id=customer.id),
        "history": list(selectors.consent_history(actor=actor, customer_id=customer.id)[:20]),
        "purposes": ConsentPurpose.choices,
        "channels": ConsentChannel.choices,
        "erased": erased,
        "is_officer": actor.is_brand_wide,
        "error": error,
    }
    return render(request, "console/privacy/_customer_panel_body.html", context, status=status)


@require_GET
@console_view
def privacy_customer_panel(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    return _panel(request, customer_id)


@require_POST
@console_view
def privacy_consent_record(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    post = request.POST
    try:
        services.consent_record(
            actor=request.actor,
            customer_id=customer_id,
            purpose=post.get("purpose", ""),
            granted=post.get("granted") == "yes",
            channel=post.get("channel", ""),
            text_version=post.get("text_version", ""),
        )
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        # 200 on purpose: htmx swaps only successful responses, and the message belongs in the panel.
        return _panel(request, customer_id, error=exc.message)
    return _panel(request, customer_id)


@require_POST
@console_view
def privacy_export_download(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    """The JSON document as a download; the service audits it with the reason."""
    try:
        _row, document = services.privacy_export(
            actor=request.actor, customer_id=customer_id, reason=request.POST.get("reason", ""), ip=_client_ip(request)
        )
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        messages.error(request, exc.message)
        return redirect("console:customer_detail", customer_id=customer_id)
    body = json.dumps(document, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="customer-{customer_id}-export.json"'
    return response


@require_http_methods(["GET", "POST"])
@console_view
def privacy_erase(request: ConsoleRequest, customer_id: int) -> HttpResponse:
    """A page of its own: what erasure does, a reason, and the customer's id typed again to confirm."""
    selectors.require_privacy_officer(request.actor)
    customer = access_customer(actor=request.actor, customer_id=customer_id)
    erased = selectors.erasure_of(tenant_id=request.actor.tenant_id, customer_id=customer.id)
    errors: dict[str, str] = {}
    values = {"reason": "", "confirm": ""}
    if request.method == "POST" and erased is None:
        values = {"reason": request.POST.get("reason", ""), "confirm": request.POST.get("confirm", "").strip()}
        if values["confirm"] != str(customer.id):
            errors["confirm"] = gettext("Type the customer id exactly to confirm.")
        else:
            try:
                row = services.privacy_erase(
                    actor=request.actor, customer_id=customer.id, reason=values["reason"], ip=_client_ip(request)
                )
            except SiyuError as exc:
                reraise_refusal(exc, include_not_found=True)
                errors[exc.field if exc.field == "reason" else "form"] = exc.message
            else:
                messages.success(
                    request,
                    gettext("Customer %(id)s erased: %(rows)s rows changed.")
                    % {"id": customer.id, "rows": sum(row.counts.values())},
                )
                return redirect("console:privacy_requests")
    context = {"customer": customer, "erased": erased, "values": values, "errors": errors}
    return render(request, "console/privacy/erase.html", context, status=422 if errors else 200)


urlpatterns: list[URLPattern] = [
    path("privacy/", privacy_requests, name="privacy_requests"),
    path("customers/<int:customer_id>/privacy/", privacy_customer_panel, name="privacy_customer_panel"),
    path("customers/<int:customer_id>/privacy/consents/", privacy_consent_record, name="privacy_consent_record"),
    path("customers/<int:customer_id>/privacy/export/", privacy_export_download, name="privacy_export"),
    path("customers/<int:customer_id>/privacy/erase/", privacy_erase, name="privacy_erase"),
]
