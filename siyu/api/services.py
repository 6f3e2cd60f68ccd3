"""Writes of the api context: issuing, revoking and touching API tokens."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from siyu.api.models import APIToken
from siyu.api.selectors import hash_secret
from siyu.core.errors import NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import Membership
from siyu.core.scopes import Actor
from siyu.core.services import audit_record

MAX_TOKEN_NAME = 100
PREFIX_LENGTH = 8
# Writing last_used_at on every request would turn each read into a write; a minute's precision is enough.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token and its secret: the only moment the secret exists outside the client."""

    token: APIToken
    secret: str


@transaction.atomic
def api_token_create(*, actor: Actor, membership_id: int, name: str) -> IssuedToken:
    """Issue a token that acts as the member `membership_id` of the actor's brand. Only HQ (or the system) may."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins can issue API tokens")
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME:
        raise ValidationFailed(f"name must be 1 to {MAX_TOKEN_NAME} characters", field="name")
    membership = Membership.objects.filter(tenant_id=actor.tenant_id, id=membership_id).first()
    if membership is None:
        raise NotFound(f"membership {membership_id} not found", field="membership_id")
    secret = secrets.token_urlsafe(32)
    token = APIToken.objects.create(
        tenant_id=actor.tenant_id,
        membership=membership,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        token_hash=hash_secret(secret),
    )
    audit_record(
        actor=actor,
        action="api_token.create",
        target_type="api_token",
        target_id=token.id,
        detail={"name": name, "prefix": token.prefix, "membership_id": membership.id, "role": membership.role},
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, actor: Actor, token_id: int) -> APIToken:
    """Revoke a token of the actor's brand at once; revoking twice keeps the first time and audits once."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins can revoke API tokens")
    token = APIToken.objects.select_for_update().filter(tenant_id=actor.tenant_id, id=token_id).first()
    if token is None:
        raise NotFound(f"API token {token_id} not found", field="token_id")
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="api_token.revoke",
        target_type="api_token",
        target_id=token.id,
        detail={"name": token.name, "prefix": token.prefix},
    )
    return token


def api_token_mark_used(*, token_id: int, at: dt.datetime | None = None) -> None:
    """Record that a token authenticated a request, at most once per LAST_USED_PRECISION (one UPDATE, no read)."""
    now = at or timezone.now()
    APIToken.objects.filter(id=token_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ).update(last_used_at=now)
