"""概览 Overview: the actor's headline numbers and weekly trends."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from siyu.console.decorators import ConsoleRequest, console_view
from siyu.console.selectors import overview_for


@require_GET
@console_view
def home(request: ConsoleRequest) -> HttpResponse:
    overview = overview_for(actor=request.actor)
    chart = {
        "weeks": overview.series.weeks,
        "customers": overview.series.customers,
        "orders": overview.series.orders,
    }
    return render(request, "console/overview.html", {"overview": overview, "chart": chart})
