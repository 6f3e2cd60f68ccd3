"""Customers: list, detail, create, update, reveal, timeline and tagging; each handler calls one selector or service."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    CustomerCreateIn,
    CustomerDetailOut,
    CustomerFilters,
    CustomerOut,
    CustomerTagIn,
    CustomerUpdateIn,
    Id,
    PageOut,
    PiiOut,
    TimelineEventOut,
    TimelineFilters,
    error_responses,
)
from siyu.api.selectors import (
    CustomerDetail,
    CustomerSummary,
    Page,
    TimelineEvent,
    customer_detail,
    customer_page,
    customer_summary,
    customer_timeline_page,
)
from siyu.customers.services import IdentityInput, customer_create, customer_reveal, customer_update
from siyu.tags.services import customer_tag_add, customer_tag_remove

router = Router(tags=["customers"])


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it, and an audit
    # row must not record an address the caller chose. Validated because the column is an inet on PostgreSQL.
    raw = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


@router.get(
    "/customers",
    response={200: PageOut[CustomerOut], **error_responses(401, 404, 422)},
    operation_id="customer_list",
    summary="List customers in scope (personal data masked)",
)
def customer_list_api(request: HttpRequest, filters: Query[CustomerFilters]) -> Page[CustomerSummary]:
    """Newest first. Filtering by a store, guide or tag outside your scope answers 404."""
    return customer_page(
        actor=actor_of(request),
        q=filters.q,
        tag_ids=filters.tag,
        lifecycle_stage=filters.lifecycle_stage.value if filters.lifecycle_stage else "",
        store_id=filters.store_id,
        guide_id=filters.guide_id,
        limit=filters.limit,
        offset=filters.offset,
    )


@router.get(
    "/customers/{customer_id}",
    response={200: CustomerDetailOut, **error_responses(401, 404, 422)},
    operation_id="customer_get",
    summary="One customer with follow relations, identities and tags",
)
def customer_get_api(request: HttpRequest, customer_id: Path[Id]) -> CustomerDetail:
    return customer_detail(actor=actor_of(request), customer_id=customer_id)


@router.post(
    "/customers",
    response={201: CustomerOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="customer_create",
    summary="Create a customer",
)
def customer_create_api(request: HttpRequest, payload: CustomerCreateIn) -> Status[CustomerSummary]:
    """A phone or identity another customer of the brand holds is a 409, and nothing is written."""
    actor = actor_of(request)
    customer = customer_create(
        actor=actor,
        name=payload.name,
        phone=payload.phone,
        gender=payload.gender.value,
        city=payload.city,
        source=payload.source,
        lifecycle_stage=payload.lifecycle_stage.value,
        owner_guide_id=payload.owner_guide_id,
        identities=[IdentityInput(kind=i.kind.value, value=i.value) for i in payload.identities],
    )
    return Status(201, customer_summary(actor=actor, customer_id=customer.id))


@router.patch(
    "/customers/{customer_id}",
    response={200: CustomerOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="customer_update",
    summary="Update a customer (only the fields sent)",
)
def customer_update_api(request: HttpRequest, customer_id: Path[Id], payload: CustomerUpdateIn) -> CustomerSummary:
    actor = actor_of(request)
    customer_update(actor=actor, customer_id=customer_id, changes=payload.model_dump(exclude_unset=True, mode="json"))
    return customer_summary(actor=actor, customer_id=customer_id)


@router.post(
    "/customers/{customer_id}/reveal",
    response={200: PiiOut, **error_responses(401, 404, 422)},
    operation_id="customer_reveal",
    summary="Decrypt a customer's personal data (audited)",
)
def customer_reveal_api(request: HttpRequest, customer_id: Path[Id]) -> dict[str, str]:
    """Every call writes a `pii.reveal` audit row naming the token's user and the client address."""
    return customer_reveal(actor=actor_of(request), customer_id=customer_id, ip=_client_ip(request))


@router.get(
    "/customers/{customer_id}/timeline",
    response={200: PageOut[TimelineEventOut], **error_responses(401, 404, 422)},
    operation_id="customer_timeline",
    summary="A customer's events, newest first",
)
def customer_timeline_api(
    request: HttpRequest, customer_id: Path[Id], filters: Query[TimelineFilters]
) -> Page[TimelineEvent]:
    return customer_timeline_page(
        actor=actor_of(request),
        customer_id=customer_id,
        types=[t.value for t in filters.type],
        limit=filters.limit,
        offset=filters.offset,
    )


@router.post(
    "/customers/{customer_id}/tags",
    response={200: CustomerOut, **error_responses(400, 401, 404, 422)},
    operation_id="customer_tag_add",
    summary="Tag a customer (idempotent)",
)
def customer_tag_add_api(request: HttpRequest, customer_id: Path[Id], payload: CustomerTagIn) -> CustomerSummary:
    actor = actor_of(request)
    customer_tag_add(actor=actor, customer_id=customer_id, tag_id=payload.tag_id)
    return customer_summary(actor=actor, customer_id=customer_id)


@router.delete(
    "/customers/{customer_id}/tags/{tag_id}",
    response={204: None, **error_responses(401, 404, 422)},
    operation_id="customer_tag_remove",
    summary="Untag a customer (idempotent)",
)
def customer_tag_remove_api(request: HttpRequest, customer_id: Path[Id], tag_id: Path[Id]) -> Status[None]:
    customer_tag_remove(actor=actor_of(request), customer_id=customer_id, tag_id=tag_id)
    return Status(204, None)
