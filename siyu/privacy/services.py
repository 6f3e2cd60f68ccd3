"""Writes of the privacy context (PIPL 个人信息保护法): consent records, data exports and erasures.

Exports and erasures walk every context that holds customer data through its `privacy` module
(siyu.privacy.registry); these services check the actor, log the request and audit it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers.privacy import merged_customer_ids
from siyu.customers.selectors import access_customer
from siyu.privacy.models import Consent, ConsentChannel, ConsentPurpose, ErasedCustomer, PrivacyRequest
from siyu.privacy.registry import privacy_contexts
from siyu.privacy.selectors import erasure_of, require_privacy_officer

MAX_REASON = 200
MAX_TEXT_VERSION = 32
EXPORT_FORMAT = "siyu.customer-export/1"


def _clean_reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise ValidationFailed("a reason is required", field="reason")
    if len(cleaned) > MAX_REASON or "\x00" in cleaned:
        raise ValidationFailed(f"reason must be at most {MAX_REASON} characters of text", field="reason")
    return cleaned


def _refuse_erased(*, tenant_id: int, customer_id: int) -> None:
    erased = erasure_of(tenant_id=tenant_id, customer_id=customer_id)
    if erased is not None:
        raise Conflict(
            f"customer {customer_id} was already erased on {erased.erased_at:%Y-%m-%d %H:%M} UTC; nothing to do",
            field="customer_id",
        )


@transaction.atomic
def consent_record(
    *,
    actor: Actor,
    customer_id: int,
    purpose: str,
    granted: bool,
    channel: str,
    text_version: str,
    recorded_at: dt.datetime | None = None,
) -> Consent:
    """Record that a customer in scope granted or withdrew consent (同意/撤回) for a purpose; history is kept."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    if purpose not in ConsentPurpose.values:
        raise ValidationFailed(f"unknown purpose {purpose!r}", field="purpose")
    if channel not in ConsentChannel.values:
        raise ValidationFailed(f"unknown channel {channel!r}", field="channel")
    version = (text_version or "").strip()
    if not version or len(version) > MAX_TEXT_VERSION or "\x00" in version:
        raise ValidationFailed(f"text_version must be 1-{MAX_TEXT_VERSION} characters", field="text_version")
    _refuse_erased(tenant_id=actor.tenant_id, customer_id=customer.id)
    consent = Consent.objects.create(
        tenant_id=actor.tenant_id,
        customer_id=customer.id,
        purpose=purpose,
        granted=granted,
        channel=channel,
        text_version=version,
        recorded_at=recorded_at or timezone.now(),
        recorded_by_id=actor.user_id,
    )
    # On the timeline too, and in the warehouse: segments and SOPs must know who may be messaged.
    event_record(
        tenant_id=actor.tenant_id,
        type="consent.granted" if granted else "consent.withdrawn",
        customer_id=customer.id,
        actor_id=actor.user_id,
        occurred_at=consent.recorded_at,
        properties={"purpose": purpose, "channel": channel, "text_version": version},
    )
    audit_record(
        actor=actor,
        action="consent.grant" if granted else "consent.withdraw",
        target_type="customer",
        target_id=customer.id,
        detail={"purpose": purpose, "channel": channel, "text_version": version},
    )
    return consent


def _consents(tenant_id: int, customer_ids: list[int]) -> list[dict[str, Any]]:
    rows = Consent.objects.filter(tenant_id=tenant_id, customer_id__in=customer_ids).order_by("recorded_at", "id")
    return [
        {
            "purpose": c.purpose,
            "granted": c.granted,
            "channel": c.channel,
            "text_version": c.text_version,
            "recorded_at": c.recorded_at.isoformat(),
        }
        for c in rows
    ]


@transaction.atomic
def privacy_export(
    *, actor: Actor, customer_id: int, reason: str, ip: str | None = None
) -> tuple[PrivacyRequest, dict[str, Any]]:
    """Everything siyu holds on a customer, personal data decrypted, as one JSON-ready document (right of access,
    查阅复制权). HQ only; logged and audited with the reason, like a reveal."""
    require_privacy_officer(actor)
    customer = access_customer(actor=actor, customer_id=customer_id)
    cleaned = _clean_reason(reason)
    now = timezone.now()
    ids = merged_customer_ids(tenant_id=actor.tenant_id, customer_id=customer.id)
    data: dict[str, Any] = {}
    merged: list[dict[str, Any]] = []
    for customer_row in ids:
        part: dict[str, Any] = {}
        for context in privacy_contexts():
            part.update(context.export_customer(tenant_id=actor.tenant_id, customer_id=customer_row))
        if customer_row == customer.id:
            data = part
        else:
            merged.append({"customer_id": customer_row, **part})
    erased = erasure_of(tenant_id=actor.tenant_id, customer_id=customer.id)
    document = {
        "format": EXPORT_FORMAT,
        "customer_id": customer.id,
        "exported_at": now.isoformat(),
        "erased_at": erased.erased_at.isoformat() if erased else None,
        **data,
        "consents": _consents(actor.tenant_id, ids),
        "merged_customers": merged,
    }
    request = PrivacyRequest.objects.create(
        tenant_id=actor.tenant_id,
        kind=PrivacyRequest.Kind.EXPORT,
        customer_id=customer.id,
        customer_ids=ids,
        reason=cleaned,
        requested_by_id=actor.user_id,
        ip=ip,
        created_at=now,
    )
    audit_record(
        actor=actor,
        action="privacy.export",
        target_type="customer",
        target_id=customer.id,
        detail={"reason": cleaned, "request_id": request.id},
        ip=ip,
    )
    return request, document


@transaction.atomic
def privacy_erase(*, actor: Actor, customer_id: int, reason: str, ip: str | None = None) -> PrivacyRequest:
    """Erase a customer's personal data everywhere (right to delete, 删除权): irreversible. HQ only.

    The customer and every customer merged into it stay as tombstones, emptied of personal data and identities, so
    aggregate counts stay right and the same person coming back becomes a new customer. 409 when already erased.
    """
    require_privacy_officer(actor)
    customer = access_customer(actor=actor, customer_id=customer_id, for_update=True)
    cleaned = _clean_reason(reason)
    _refuse_erased(tenant_id=actor.tenant_id, customer_id=customer.id)
    now = timezone.now()
    ids = merged_customer_ids(tenant_id=actor.tenant_id, customer_id=customer.id)
    counts: dict[str, int] = {}
    for customer_row in ids:
        for context in privacy_contexts():
            for what, n in context.erase_customer(tenant_id=actor.tenant_id, customer_id=customer_row).items():
                key = f"{context.name}.{what}"
                counts[key] = counts.get(key, 0) + n
    request = PrivacyRequest.objects.create(
        tenant_id=actor.tenant_id,
        kind=PrivacyRequest.Kind.ERASURE,
        customer_id=customer.id,
        customer_ids=ids,
        reason=cleaned,
        requested_by_id=actor.user_id,
        ip=ip,
        counts=counts,
        created_at=now,
    )
    ErasedCustomer.objects.bulk_create(
        ErasedCustomer(tenant_id=actor.tenant_id, customer_id=i, request=request, erased_at=now) for i in ids
    )
    audit_record(
        actor=actor,
        action="privacy.erase",
        target_type="customer",
        target_id=customer.id,
        detail={"reason": cleaned, "request_id": request.id, "customer_ids": ids, "counts": counts},
        ip=ip,
    )
    return request
