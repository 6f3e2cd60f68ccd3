"""The one gate every console view goes through: signed in, a member of the current brand, errors mapped."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.models import Membership
from siyu.core.scopes import Actor

P = ParamSpec("P")


class ConsoleRequest(HttpRequest):
    """What a console view receives once `console_view` has let it through (for type checkers only)."""

    actor: Actor
    membership: Membership
    htmx: Any


ConsoleView = Callable[Concatenate[ConsoleRequest, P], HttpResponse]


def console_view(view: ConsoleView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
    """Require a signed-in user with a membership in the current brand; turn NotFound into a 404.

    NotFound is what selectors raise for other tenants' rows *and* for rows outside the actor's scope, so a
    guide probing another store's customer id learns nothing beyond "not found".
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            login_url = reverse("console:login")
            if getattr(request, "htmx", False):
                # An HTMX swap would paste the login page into a table cell: ask htmx for a full navigation.
                current = request.htmx.current_url_abs_path or request.get_full_path()  # type: ignore[attr-defined]
                response = HttpResponse(status=204)
                response["HX-Redirect"] = f"{login_url}?{urlencode({'next': current})}"
                return response
            return redirect_to_login(request.get_full_path(), login_url)
        if getattr(request, "actor", None) is None:
            return render(request, "console/no_membership.html", status=403)
        try:
            return view(request, *args, **kwargs)  # type: ignore[arg-type]
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except PermissionDenied as exc:
            return render(request, "console/forbidden.html", {"message": exc.message}, status=403)

    return wrapper
