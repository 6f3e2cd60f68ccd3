"""Bearer-token authentication: resolves the token into the acting member's `Actor`, once per request.

Every operation of the API requires it (it is the NinjaAPI's default auth), so each handler starts from
`request.auth`, an Actor already bound to one brand and one data scope: tenant scoping is structural.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from siyu.api.selectors import api_token_resolve
from siyu.api.services import api_token_mark_used
from siyu.core.scopes import Actor


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; a missing, unknown or revoked token yields None, which ninja turns into 401."""

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        api_token = api_token_resolve(secret=token.strip())
        if api_token is None:
            return None
        api_token_mark_used(token_id=api_token.id)
        return Actor.from_membership(api_token.membership)


def actor_of(request: HttpRequest) -> Actor:
    """The Actor TokenAuth attached to the request (handlers never see an unauthenticated request)."""
    actor = getattr(request, "auth", None)
    if not isinstance(actor, Actor):
        # Only reachable if an operation were registered with auth=None by mistake: fail closed.
        raise AuthenticationError()
    return actor
