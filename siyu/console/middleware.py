"""Console request set-up: the brand and role of the signed-in user, and the interface language."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from siyu.core.scopes import Actor
from siyu.core.selectors import membership_for

SESSION_TENANT = "siyu_tenant_id"


class ConsoleTenantMiddleware:
    """Resolves the signed-in user's brand and role into `request.membership` and `request.actor` once."""

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


class ConsoleLocaleMiddleware(LocaleMiddleware):
    """Chinese unless the user picked another language with the switcher (stored in the language cookie).

    Django's own middleware would follow the browser's Accept-Language, so an operator on an English-language
    laptop would get an English console that none of their colleagues see; the brand's working language wins.
    """

    def process_request(self, request: HttpRequest) -> None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        language = settings.LANGUAGE_CODE
        if chosen:
            try:
                language = translation.get_supported_language_variant(chosen)
            except LookupError:
                language = settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
