"""Writes of the core context: tenants, org tree, memberships, audit rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.models import AuditLog, Franchisee, Guide, Membership, Region, Role, Store, Tenant
from siyu.core.scopes import Actor


def audit_record(
    *,
    actor: Actor,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Append one audit row. Called by services, in the same transaction as the change it records."""
    return AuditLog.objects.create(
        tenant_id=actor.tenant_id,
        actor_id=actor.user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
        ip=ip,
    )


def tenant_create(*, name: str, slug: str, wecom_corp_id: str = "") -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"a brand with slug {slug!r} already exists", field="slug")
    return Tenant.objects.create(name=name, slug=slug, wecom_corp_id=wecom_corp_id)


def region_create(*, tenant: Tenant, name: str, code: str) -> Region:
    return Region.objects.create(tenant=tenant, name=name, code=code)


def franchisee_create(*, tenant: Tenant, name: str, code: str) -> Franchisee:
    return Franchisee.objects.create(tenant=tenant, name=name, code=code)


def store_create(
    *,
    tenant: Tenant,
    region: Region,
    name: str,
    code: str,
    franchisee: Franchisee | None = None,
    city: str = "",
    address: str = "",
    latitude: Decimal | None = None,
    longitude: Decimal | None = None,
    opens_at: dt.time | None = None,
    closes_at: dt.time | None = None,
) -> Store:
    if region.tenant_id != tenant.id or (franchisee is not None and franchisee.tenant_id != tenant.id):
        raise ValidationFailed("region and franchisee must belong to the same brand", field="region")
    return Store.objects.create(
        tenant=tenant,
        region=region,
        franchisee=franchisee,
        name=name,
        code=code,
        city=city,
        address=address,
        latitude=latitude,
        longitude=longitude,
        opens_at=opens_at,
        closes_at=closes_at,
    )


def guide_create(
    *,
    tenant: Tenant,
    name: str,
    wecom_userid: str,
    store: Store | None = None,
    kind: str = Guide.Kind.GUIDE,
    joined_at: dt.datetime | None = None,
) -> Guide:
    if store is not None and store.tenant_id != tenant.id:
        raise ValidationFailed("store belongs to another brand", field="store")
    return Guide.objects.create(
        tenant=tenant, name=name, wecom_userid=wecom_userid, store=store, kind=kind, joined_at=joined_at
    )


def user_create(*, username: str, password: str, email: str = "") -> AbstractBaseUser:
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise Conflict(f"user {username!r} already exists", field="username")
    return user_model.objects.create_user(username=username, password=password, email=email)


@transaction.atomic
def membership_create(
    *,
    tenant: Tenant,
    user: AbstractBaseUser,
    role: str,
    region: Region | None = None,
    store: Store | None = None,
    franchisee: Franchisee | None = None,
    guide: Guide | None = None,
) -> Membership:
    """Give `user` a role in `tenant`; the anchor the role needs (region, store, ...) must be present."""
    required = {
        Role.REGION_MANAGER: ("region", region),
        Role.STORE_MANAGER: ("store", store),
        Role.FRANCHISEE: ("franchisee", franchisee),
        Role.GUIDE: ("guide", guide),
    }
    if role not in Role.values:
        raise ValidationFailed(f"unknown role {role!r}", field="role")
    if role in required and required[Role(role)][1] is None:
        field = required[Role(role)][0]
        raise ValidationFailed(f"role {role} needs a {field}", field=field)
    for field, anchor in (("region", region), ("store", store), ("franchisee", franchisee), ("guide", guide)):
        if anchor is not None and anchor.tenant_id != tenant.id:
            raise ValidationFailed(f"{field} belongs to another brand", field=field)
    return Membership.objects.create(
        tenant=tenant, user=user, role=role, region=region, store=store, franchisee=franchisee, guide=guide
    )
