"""Reads of the demo loader: the state of a load and the logins it created."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from siyu.core.models import Membership, Role, Tenant
from siyu.demo import reference as ref
from siyu.demo.models import DemoLoad, DemoLoadState


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str  # the role's display label
    scope: str  # what the role sees, e.g. the region's or store's name


def demo_load_get(*, slug: str) -> DemoLoad | None:
    return DemoLoad.objects.filter(slug=slug).first()


def demo_tenant(*, slug: str = ref.BRAND_SLUG) -> Tenant | None:
    """The demo brand once its load has finished, else None."""
    load = DemoLoad.objects.filter(slug=slug, finished_at__isnull=False).select_related("tenant").first()
    return load.tenant if load is not None else None


def demo_load_states(*, load: DemoLoad) -> QuerySet[DemoLoadState]:
    return load.states.order_by("position")


def demo_logins(*, load: DemoLoad) -> list[DemoLogin]:
    """The demo logins that are members of the loaded brand, in the order of `reference.LOGINS`."""
    if load.tenant_id is None:
        return []
    memberships = {
        m.user.get_username(): m
        for m in Membership.objects.filter(
            tenant_id=load.tenant_id, user__username__in=[u for u, _ in ref.LOGINS]
        ).select_related("user", "region", "store", "franchisee", "guide__store")
    }
    result = []
    for username, _role in ref.LOGINS:
        m = memberships.get(username)
        if m is None:
            continue
        match m.role:
            case Role.REGION_MANAGER:
                scope = m.region.name if m.region else ""
            case Role.STORE_MANAGER:
                scope = m.store.name if m.store else ""
            case Role.GUIDE:
                scope = f"{m.guide.name} @ {m.guide.store.name}" if m.guide and m.guide.store else ""
            case Role.FRANCHISEE:
                scope = m.franchisee.name if m.franchisee else ""
            case _:
                scope = "whole brand"
        result.append(DemoLogin(username=username, role=str(Role(m.role).label), scope=scope))
    return result
