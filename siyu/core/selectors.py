"""Reads of the core context, always scoped by the acting user's tenant and data scope."""

from __future__ import annotations

from django.db.models import QuerySet

from siyu.core.errors import NotFound
from siyu.core.models import AuditLog, Franchisee, Guide, Membership, Region, Store, Tenant
from siyu.core.scopes import Actor


def membership_for(*, user_id: int, tenant_id: int | None = None) -> Membership | None:
    """The user's membership in `tenant_id`, or in their first brand when none is named."""
    qs = Membership.objects.select_related("tenant").filter(user_id=user_id).order_by("tenant_id")
    if tenant_id is not None:
        qs = qs.filter(tenant_id=tenant_id)
    return qs.first()


def tenants_for_user(*, user_id: int) -> QuerySet[Tenant]:
    return Tenant.objects.filter(id__in=Membership.objects.filter(user_id=user_id).values("tenant_id")).order_by("id")


def region_list(*, actor: Actor) -> QuerySet[Region]:
    qs = Region.objects.filter(tenant_id=actor.tenant_id)
    if actor.store_ids is not None:
        qs = qs.filter(stores__id__in=actor.store_ids).distinct()
    return qs.order_by("code")


def franchisee_list(*, actor: Actor) -> QuerySet[Franchisee]:
    qs = Franchisee.objects.filter(tenant_id=actor.tenant_id)
    if actor.store_ids is not None:
        qs = qs.filter(stores__id__in=actor.store_ids).distinct()
    return qs.order_by("code")


def store_list(*, actor: Actor) -> QuerySet[Store]:
    qs = Store.objects.filter(tenant_id=actor.tenant_id).select_related("region", "franchisee")
    if actor.store_ids is not None:
        qs = qs.filter(id__in=actor.store_ids)
    return qs.order_by("code")


def guide_list(*, actor: Actor) -> QuerySet[Guide]:
    qs = Guide.objects.filter(tenant_id=actor.tenant_id).select_related("store")
    if actor.guide_ids is not None:
        qs = qs.filter(id__in=actor.guide_ids)
    return qs.order_by("wecom_userid")


def access_guide(*, actor: Actor, guide_id: int) -> Guide:
    guide = guide_list(actor=actor).filter(id=guide_id).first()
    if guide is None:
        raise NotFound(f"guide {guide_id} not found", field="guide_id")
    return guide


def access_store(*, actor: Actor, store_id: int) -> Store:
    store = store_list(actor=actor).filter(id=store_id).first()
    if store is None:
        raise NotFound(f"store {store_id} not found", field="store_id")
    return store


def audit_list(*, actor: Actor, action: str | None = None) -> QuerySet[AuditLog]:
    qs = AuditLog.objects.filter(tenant_id=actor.tenant_id)
    if not actor.is_brand_wide:
        qs = qs.filter(actor_id=actor.user_id)
    if action:
        qs = qs.filter(action=action)
    return qs
