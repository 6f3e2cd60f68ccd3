"""Writes of the core context: tenants, org tree, memberships, audit rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from siyu.core.errors import Conflict, PermissionDenied, ValidationFailed
from siyu.core.hours import WeeklyHours, clean_hours_input
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
    hours: WeeklyHours | str | None = None,
    temporarily_closed: bool = False,
) -> Store:
    """A store; `hours` is a weekly schedule as data or text (siyu.core.hours), None for "not set"."""
    if region.tenant_id != tenant.id or (franchisee is not None and franchisee.tenant_id != tenant.id):
        raise ValidationFailed("region and franchisee must belong to the same brand", field="region")
    schedule = clean_hours_input(hours)
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
        hours=schedule,
        temporarily_closed=temporarily_closed,
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


# -- mirroring WeCom members (通讯录同步) ----------------------------------------------------------------------


@dataclass(frozen=True)
class WeComMemberInput:
    """A WeCom member as user/list reports it: its userid, name, and whether it is still active there."""

    wecom_userid: str
    name: str
    active: bool = True


@dataclass
class GuideSyncCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _require_brand_wide(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ or the WeCom connector may change guides")


@transaction.atomic
def guides_upsert_wecom(*, actor: Actor, members: Sequence[WeComMemberInput]) -> GuideSyncCounts:
    """Create or update the guides mirroring WeCom members, matched by userid; idempotent.

    Only the name and the status follow WeCom: store, kind and login stay as siyu set them. A member WeCom
    reports as resigned or disabled is departed; one reported active again (re-hired) is active again.
    """
    _require_brand_wide(actor)
    counts = GuideSyncCounts()
    by_userid = {m.wecom_userid: m for m in members if m.wecom_userid}
    existing = {
        g.wecom_userid: g
        for g in Guide.objects.filter(tenant_id=actor.tenant_id, wecom_userid__in=list(by_userid))
    }
    created: list[Guide] = []
    changed: list[Guide] = []
    for userid, member in by_userid.items():
        status = Guide.Status.ACTIVE if member.active else Guide.Status.DEPARTED
        name = (member.name.strip() or userid)[:100]
        guide = existing.get(userid)
        if guide is None:
            created.append(Guide(tenant_id=actor.tenant_id, name=name, wecom_userid=userid, status=status))
        elif (guide.name, guide.status) != (name, status):
            guide.name, guide.status = name, status
            changed.append(guide)
        else:
            counts.unchanged += 1
    Guide.objects.bulk_create(created)
    Guide.objects.bulk_update(changed, fields=["name", "status"])
    counts.created, counts.updated = len(created), len(changed)
    if created or changed:
        audit_record(
            actor=actor,
            action="guide.sync_wecom",
            target_type="guide",
            detail={
                "created": sorted(g.wecom_userid for g in created)[:200],
                "updated": sorted(g.wecom_userid for g in changed)[:200],
            },
        )
    return counts


@transaction.atomic
def guides_depart_missing_wecom(*, actor: Actor, present: Collection[str]) -> int:
    """Mark departed every active guide whose WeCom userid is not in `present` (the full member list).

    Never deleted: their follow relations, groups and history stay, and inheritance can hand customers on.
    """
    _require_brand_wide(actor)
    present_set = set(present)
    gone = [
        g
        for g in Guide.objects.filter(tenant_id=actor.tenant_id, status=Guide.Status.ACTIVE).only("id", "wecom_userid")
        if g.wecom_userid not in present_set
    ]
    Guide.objects.filter(id__in=[g.id for g in gone]).update(status=Guide.Status.DEPARTED)
    if gone:
        audit_record(
            actor=actor,
            action="guide.depart_wecom",
            target_type="guide",
            detail={"departed": sorted(g.wecom_userid for g in gone)[:200], "count": len(gone)},
        )
    return len(gone)


@transaction.atomic
def guides_ensure_wecom(*, actor: Actor, userids: Collection[str]) -> dict[str, int]:
    """userid → guide id for WeCom members, creating a placeholder (named after the userid) for unknown ones.

    For events and pages that name a member before the member sync has: the sync later fills in the name.
    Existing guides are never changed. Safe against a concurrent creator (the unique userid decides).
    """
    _require_brand_wide(actor)
    wanted = {u for u in userids if u}
    found = dict(
        Guide.objects.filter(tenant_id=actor.tenant_id, wecom_userid__in=list(wanted)).values_list("wecom_userid", "id")
    )
    missing = sorted(wanted - set(found))
    if missing:
        Guide.objects.bulk_create(
            [Guide(tenant_id=actor.tenant_id, name=u[:100], wecom_userid=u) for u in missing], ignore_conflicts=True
        )
        found.update(
            Guide.objects.filter(tenant_id=actor.tenant_id, wecom_userid__in=missing).values_list("wecom_userid", "id")
        )
        audit_record(actor=actor, action="guide.placeholder_wecom", target_type="guide", detail={"created": missing})
    return found
