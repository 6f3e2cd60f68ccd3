"""Template context shared by every console page: the current brand and role, navigation, the brand switcher."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from siyu.console.navigation import navigation_for
from siyu.core.models import Tenant
from siyu.core.selectors import tenants_for_user


def console(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    if membership is None:
        return {"current_membership": None, "current_tenant": None}
    match = getattr(request, "resolver_match", None)

    def user_tenants() -> list[Tenant]:
        # Called by the template only when the top bar renders, so partial (HTMX) responses skip the query.
        return list(tenants_for_user(user_id=membership.user_id))

    return {
        "current_membership": membership,
        "current_tenant": membership.tenant,
        "navigation": lambda: navigation_for(match.view_name if match else ""),
        "user_tenants": user_tenants,
    }
