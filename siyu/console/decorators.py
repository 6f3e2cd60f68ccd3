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

from siyu.core.errors import NotFound, PermissionDenied, SiyuError
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


def reraise_refusal(exc: SiyuError, *, include_not_found: bool = False) -> None:
    """Re-raise a service's refusal for `console_view` to answer with the 403 page (and, with `include_not_found`,
    a NotFound with the 404 page); return for any other error, which the user can fix and the view shows.

    Call it first thing in `except SiyuError as exc:`. A guide's forbidden action must not come back as a red line
    in a form that invites a retry. NotFound is the user's to fix by default: an id picked in the form that has
    gone (or is out of scope) is shown in the form, which keeps what was typed; pass `include_not_found` where the
    missing row is the page's own, so there is nothing left to show a message on.
    """
    if exc.status_code == PermissionDenied.status_code:
        raise exc
    if include_not_found and exc.status_code == NotFound.status_code:
        raise exc
