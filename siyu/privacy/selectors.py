"""Reads of the privacy context: consents (history and current state), erasure marks and the request log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from siyu.core.errors import PermissionDenied
from siyu.core.scopes import Actor
from siyu.customers.selectors import access_customer
from siyu.privacy.models import Consent, ConsentPurpose, ErasedCustomer, PrivacyRequest


def require_privacy_officer(actor: Actor) -> None:
    """Exports decrypt everything and erasures cannot be undone: HQ only (the brand's privacy officer sits there)."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ handles customers' privacy requests")


def consent_history(*, actor: Actor, customer_id: int) -> QuerySet[Consent]:
    """Every consent decision of a customer in scope, newest first."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    return Consent.objects.filter(tenant_id=actor.tenant_id, customer_id=customer.id).order_by("-recorded_at", "-id")


@dataclass(frozen=True)
class ConsentState:
    """The current decision for one purpose; `granted` None when the customer was never asked."""

    purpose: str
    label: str
    granted: bool | None
    channel: str
    text_version: str
    recorded_at: dt.datetime | None


def consent_state(*, actor: Actor, customer_id: int) -> list[ConsentState]:
    latest: dict[str, Consent] = {}
    for row in consent_history(actor=actor, customer_id=customer_id):
        latest.setdefault(row.purpose, row)
    states = []
    for purpose, label in ConsentPurpose.choices:
        row = latest.get(purpose)
        states.append(
            ConsentState(
                purpose=purpose,
                label=str(label),
                granted=row.granted if row else None,
                channel=row.channel if row else "",
                text_version=row.text_version if row else "",
                recorded_at=row.recorded_at if row else None,
            )
        )
    return states


def erasure_of(*, tenant_id: int, customer_id: int) -> ErasedCustomer | None:
    return ErasedCustomer.objects.filter(tenant_id=tenant_id, customer_id=customer_id).select_related("request").first()


def erasure_status(*, actor: Actor, customer_id: int) -> ErasedCustomer | None:
    """Whether a customer in the brand was erased (HQ only); None when not."""
    require_privacy_officer(actor)
    customer = access_customer(actor=actor, customer_id=customer_id)
    return erasure_of(tenant_id=actor.tenant_id, customer_id=customer.id)


def privacy_request_list(*, actor: Actor, kind: str = "") -> QuerySet[PrivacyRequest]:
    """The brand's export and erasure log, newest first (HQ only)."""
    require_privacy_officer(actor)
    qs = PrivacyRequest.objects.filter(tenant_id=actor.tenant_id)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.select_related("requested_by").order_by("-created_at", "-id")
