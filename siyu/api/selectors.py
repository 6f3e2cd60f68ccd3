"""Reads of the api context: API tokens, and the read models the REST API returns.

The read models compose other contexts' selectors (every one scoped by the actor) into the shapes the
endpoints serialise, so each handler calls exactly one function here or in a context's selectors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event
from siyu.analytics.selectors import timeline_for_customer
from siyu.api.models import APIToken
from siyu.core.errors import NotFound
from siyu.core.models import Membership, Tenant
from siyu.core.scopes import Actor
from siyu.core.selectors import access_guide, access_store
from siyu.customers.models import Identity
from siyu.customers.selectors import (
    CustomerCard,
    access_customer,
    customer_card,
    customer_list,
    follow_relations_for,
    identities_for,
)
from siyu.tags.models import CustomerTag
from siyu.tags.selectors import access_tag, tags_for_customers

T = TypeVar("T")
R = TypeVar("R")

# A bearer secret is 43 characters; anything much longer is not one of ours and is not worth hashing.
MAX_SECRET_LENGTH = 256


# --- tokens ------------------------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    """What APIToken.token_hash stores: SHA-256 hex of the secret ("surrogatepass": any header text hashes)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def api_token_resolve(*, secret: str) -> APIToken | None:
    """The live token for `secret` with its member and brand, or None (unknown, revoked, or user deactivated)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    return (
        APIToken.objects.select_related("membership")
        .filter(token_hash=hash_secret(secret), revoked_at__isnull=True, membership__user__is_active=True)
        .first()
    )


def api_token_list(*, actor: Actor, include_revoked: bool = True) -> QuerySet[APIToken]:
    """Tokens, newest first: HQ sees every token of the brand, anyone else only their own."""
    qs = APIToken.objects.filter(tenant_id=actor.tenant_id).select_related("membership__user")
    if not actor.is_brand_wide:
        qs = qs.filter(membership__user_id=actor.user_id or 0)
    if not include_revoked:
        qs = qs.filter(revoked_at__isnull=True)
    return qs.order_by("-created_at", "-id")


def tenant_by_slug(*, slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"brand {slug!r} not found", field="tenant")
    return tenant


def membership_by_username(*, tenant_id: int, username: str) -> Membership:
    user_model = get_user_model()
    membership = (
        Membership.objects.select_related("user")
        .filter(tenant_id=tenant_id, **{f"user__{user_model.USERNAME_FIELD}": username})
        .first()
    )
    if membership is None:
        raise NotFound(f"user {username!r} is not a member of this brand", field="user")
    return membership


# --- pagination --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    count: int
    limit: int
    offset: int


def page_of(qs: QuerySet[Any], *, limit: int, offset: int, build: Callable[[Sequence[Any]], list[R]]) -> Page[R]:
    """One page of `qs` plus its total; `build` turns the page's rows into what the endpoint returns."""
    count = qs.count()
    rows = list(qs[offset : offset + limit]) if offset < count else []
    return Page(items=build(rows), count=count, limit=limit, offset=offset)


def rows_page(qs: QuerySet[Any], *, limit: int, offset: int) -> Page[Any]:
    return page_of(qs, limit=limit, offset=offset, build=list)


# --- me ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRef:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class ScopeRef:
    region_id: int | None
    store_id: int | None
    franchisee_id: int | None
    guide_id: int | None


@dataclass(frozen=True)
class Me:
    tenant: TenantRef
    user_id: int | None
    username: str
    role: str
    scope: ScopeRef


def me_for(*, actor: Actor) -> Me:
    membership = (
        Membership.objects.select_related("tenant", "user")
        .filter(tenant_id=actor.tenant_id, user_id=actor.user_id)
        .first()
    )
    if membership is None:  # the membership went away after the token resolved: it acts for nobody now
        raise NotFound("membership not found")
    tenant = membership.tenant
    return Me(
        tenant=TenantRef(id=tenant.id, slug=tenant.slug, name=tenant.name),
        user_id=membership.user_id,
        username=membership.user.get_username(),
        role=actor.role,
        scope=ScopeRef(
            region_id=actor.region_id,
            store_id=actor.store_id,
            franchisee_id=actor.franchisee_id,
            guide_id=actor.guide_id,
        ),
    )


# --- customers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedTag:
    id: int
    name: str
    group_id: int
    group_name: str
    source: str
    applied_at: dt.datetime


@dataclass(frozen=True)
class CustomerSummary(CustomerCard):
    """A masked customer card plus the tags it carries."""

    tags: list[AppliedTag] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class FollowRelationRow:
    guide_id: int
    guide_name: str
    store_id: int | None
    status: str
    add_way: int
    state: str
    added_at: dt.datetime
    deleted_at: dt.datetime | None


@dataclass(frozen=True)
class IdentityRow:
    kind: str
    # None for phone identities: the stored value is a keyed hash, and even that is not for API clients.
    value: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class CustomerDetail(CustomerSummary):
    follow_relations: list[FollowRelationRow] = dataclasses.field(default_factory=list)
    identities: list[IdentityRow] = dataclasses.field(default_factory=list)


def _applied(row: CustomerTag) -> AppliedTag:
    return AppliedTag(
        id=row.tag_id,
        name=row.tag.name,
        group_id=row.tag.group_id,
        group_name=row.tag.group.name,
        source=row.source,
        applied_at=row.created_at,
    )


def _summaries(actor: Actor, customers: Sequence[Any]) -> list[CustomerSummary]:
    tags = tags_for_customers(tenant_id=actor.tenant_id, customer_ids=[c.id for c in customers])
    return [
        CustomerSummary(**dataclasses.asdict(customer_card(c)), tags=[_applied(row) for row in tags.get(c.id, [])])
        for c in customers
    ]


def customer_page(
    *,
    actor: Actor,
    q: str = "",
    tag_ids: Sequence[int] = (),
    lifecycle_stage: str = "",
    store_id: int | None = None,
    guide_id: int | None = None,
    limit: int,
    offset: int,
) -> Page[CustomerSummary]:
    """A page of masked customers in scope. Filtering by a store, guide or tag the actor cannot see is a 404."""
    if store_id is not None:
        access_store(actor=actor, store_id=store_id)
    if guide_id is not None:
        access_guide(actor=actor, guide_id=guide_id)
    unique_tags = list(dict.fromkeys(tag_ids))
    for tag_id in unique_tags:
        access_tag(actor=actor, tag_id=tag_id)
    qs = customer_list(
        actor=actor,
        q=q,
        tag_ids=unique_tags,
        lifecycle_stage=lifecycle_stage,
        store_id=store_id,
        guide_id=guide_id,
    )
    return page_of(qs, limit=limit, offset=offset, build=lambda rows: _summaries(actor, rows))


def customer_summary(*, actor: Actor, customer_id: int) -> CustomerSummary:
    return _summaries(actor, [access_customer(actor=actor, customer_id=customer_id)])[0]


def customer_detail(*, actor: Actor, customer_id: int) -> CustomerDetail:
    summary = customer_summary(actor=actor, customer_id=customer_id)
    relations = [
        FollowRelationRow(
            guide_id=r.guide_id,
            guide_name=r.guide.name,
            store_id=r.guide.store_id,
            status=r.status,
            add_way=r.add_way,
            state=r.state,
            added_at=r.added_at,
            deleted_at=r.deleted_at,
        )
        for r in follow_relations_for(actor=actor, customer_id=customer_id)
    ]
    identities = [
        IdentityRow(kind=i.kind, value=None if i.kind == Identity.Kind.PHONE else i.value, created_at=i.created_at)
        for i in identities_for(actor=actor, customer_id=customer_id)
    ]
    return CustomerDetail(
        **{f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)},
        follow_relations=relations,
        identities=identities,
    )


@dataclass(frozen=True)
class TimelineEvent:
    id: int
    type: str
    label: str
    occurred_at: dt.datetime
    guide_id: int | None
    properties: dict[str, Any]


def _timeline_rows(events: Sequence[Event]) -> list[TimelineEvent]:
    return [
        TimelineEvent(
            id=e.id,
            type=e.type,
            label=str(EVENT_TYPES[e.type].label) if e.type in EVENT_TYPES else e.type,
            occurred_at=e.occurred_at,
            guide_id=e.guide_id,
            properties=e.properties,
        )
        for e in events
    ]


def customer_timeline_page(
    *, actor: Actor, customer_id: int, types: Sequence[str] = (), limit: int, offset: int
) -> Page[TimelineEvent]:
    """The customer's events, newest first, after checking the customer is in the actor's scope."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    qs = timeline_for_customer(actor=actor, customer_id=customer.id, types=list(types) or None)
    return page_of(qs, limit=limit, offset=offset, build=_timeline_rows)
