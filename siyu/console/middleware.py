"""Console tenant scoping: resolves the signed-in user's brand and role into `request.actor` once."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from siyu.core.scopes import Actor
from siyu.core.selectors import membership_for

SESSION_TENANT = "siyu_tenant_id"


class ConsoleTenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.actor = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership = membership_for(user_id=user.pk, tenant_id=request.session.get(SESSION_TENANT))
            if membership is None and request.session.get(SESSION_TENANT) is not None:
                membership = membership_for(user_id=user.pk)
            if membership is not None:
                request.membership = membership  # type: ignore[attr-defined]
                request.actor = Actor.from_membership(membership)  # type: ignore[attr-defined]
        return self.get_response(request)
