"""Reads of the leads context, scoped by the actor: HQ sees every lead; a manager the leads of guides in scope; a
guide its own; everyone in the brand sees the public pool (公海), where guides claim leads."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from siyu.core import pii
from siyu.core.errors import NotFound
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.leads.models import Lead, LeadSettings

DEFAULT_POOL_AFTER_DAYS = 7


def lead_scope(*, actor: Actor) -> QuerySet[Lead]:
    qs = Lead.objects.filter(tenant_id=actor.tenant_id)
    if actor.is_brand_wide:
        return qs
    if actor.role == Role.GUIDE:
        return qs.filter(Q(owner_guide__isnull=True) | Q(owner_guide_id=actor.guide_id or 0))
    return qs.filter(Q(owner_guide__isnull=True) | Q(owner_guide_id__in=sorted(actor.guide_ids or ())))


def lead_list(*, actor: Actor, pool: bool | None = None, status: str = "") -> QuerySet[Lead]:
    """Leads in scope, newest first; `pool` True: only the pool, False: only owned leads."""
    qs = lead_scope(actor=actor)
    if pool is not None:
        qs = qs.filter(owner_guide__isnull=pool)
    if pool:
        # The pool is where guides claim leads: a converted or invalid lead is nobody's to claim.
        qs = qs.exclude(status__in=(Lead.Status.CONVERTED, Lead.Status.INVALID))
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("owner_guide").order_by("-created_at", "-id")


def access_lead(*, actor: Actor, lead_id: int, for_update: bool = False) -> Lead:
    qs = lead_scope(actor=actor).filter(id=lead_id)
    if for_update:
        qs = qs.select_for_update(of=("self",))
    lead = qs.select_related("owner_guide").first()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found", field="lead_id")
    return lead


def pool_after_days(*, tenant_id: int) -> int:
    days = LeadSettings.objects.filter(tenant_id=tenant_id).values_list("pool_after_days", flat=True).first()
    return days or DEFAULT_POOL_AFTER_DAYS


@dataclass(frozen=True)
class LeadCard:
    """What lists and the API show of a lead: name and phone masked."""

    id: int
    name_masked: str
    phone_masked: str
    source: str
    intent_level: int
    status: str
    owner_guide_id: int | None
    owner_guide_name: str
    in_pool: bool
    assigned_at: object
    last_followup_at: object
    pool_due_at: object
    created_at: object
    customer_id: int | None = None  # the customer the lead became (转客户)
    converted_at: object = None


def lead_card(lead: Lead) -> LeadCard:
    return LeadCard(
        id=lead.id,
        name_masked=pii.mask_name(pii.decrypt(lead.name_enc, field="name")),
        phone_masked=pii.mask_phone(pii.decrypt(lead.phone_enc, field="phone")) if lead.phone_enc else "",
        source=lead.source,
        intent_level=lead.intent_level,
        status=lead.status,
        owner_guide_id=lead.owner_guide_id,
        owner_guide_name=lead.owner_guide.name if lead.owner_guide else "",
        in_pool=lead.owner_guide_id is None,
        assigned_at=lead.assigned_at,
        last_followup_at=lead.last_followup_at,
        pool_due_at=lead.pool_due_at,
        created_at=lead.created_at,
        customer_id=lead.customer_id,
        converted_at=lead.converted_at,
    )
