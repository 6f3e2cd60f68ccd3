"""GET /me: who the token acts as."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from siyu.api.auth import actor_of
from siyu.api.schemas import MeOut, error_responses
from siyu.api.selectors import Me, me_for

router = Router(tags=["me"])


@router.get("/me", response={200: MeOut, **error_responses(401)}, operation_id="me_get", summary="The token's member")
def me_get(request: HttpRequest) -> Me:
    """The brand, user, role and data-scope anchor the token acts with."""
    return me_for(actor=actor_of(request))
