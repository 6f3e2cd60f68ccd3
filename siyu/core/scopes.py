"""Data scopes (数据权限): who inside a brand sees which stores, guides and customers.

HQ admin → the whole brand; region manager → the region's stores; store manager → one store;
franchisee → the stores it owns; guide → only the guide itself. Every selector starts from an `Actor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from siyu.core.models import Guide, Membership, Role, Store


@dataclass(frozen=True)
class Actor:
    """The acting user inside one tenant, with the role and anchor of their data scope."""

    user_id: int | None
    tenant_id: int
    role: str
    region_id: int | None = None
    store_id: int | None = None
    franchisee_id: int | None = None
    guide_id: int | None = None

    @classmethod
    def from_membership(cls, membership: Membership) -> Actor:
        return cls(
            user_id=membership.user_id,
            tenant_id=membership.tenant_id,
            role=membership.role,
            region_id=membership.region_id,
            store_id=membership.store_id,
            franchisee_id=membership.franchisee_id,
            guide_id=membership.guide_id,
        )

    @classmethod
    def system(cls, tenant_id: int) -> Actor:
        """The actor jobs and loaders use: sees the whole tenant, is never a person."""
        return cls(user_id=None, tenant_id=tenant_id, role=Role.HQ_ADMIN)

    @property
    def is_brand_wide(self) -> bool:
        return self.role == Role.HQ_ADMIN

    @cached_property
    def store_ids(self) -> frozenset[int] | None:
        """Stores in scope; None means every store of the tenant."""
        stores = Store.objects.filter(tenant_id=self.tenant_id)
        match self.role:
            case Role.HQ_ADMIN:
                return None
            case Role.REGION_MANAGER:
                stores = stores.filter(region_id=self.region_id)
            case Role.STORE_MANAGER:
                stores = stores.filter(id=self.store_id)
            case Role.FRANCHISEE:
                stores = stores.filter(franchisee_id=self.franchisee_id)
            case _:
                # A guide sees customers through its own follow relations, not through a store.
                return frozenset()
        return frozenset(stores.values_list("id", flat=True))

    @cached_property
    def guide_ids(self) -> frozenset[int] | None:
        """Guides in scope; None means every guide of the tenant (the brand IP included)."""
        if self.role == Role.HQ_ADMIN:
            return None
        if self.role == Role.GUIDE:
            return frozenset({self.guide_id}) if self.guide_id else frozenset()
        store_ids = self.store_ids or frozenset()
        return frozenset(
            Guide.objects.filter(tenant_id=self.tenant_id, store_id__in=store_ids).values_list("id", flat=True)
        )
