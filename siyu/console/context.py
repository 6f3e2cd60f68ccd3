"""Template context shared by every console page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    return {
        "current_membership": membership,
        "current_tenant": membership.tenant if membership else None,
    }
