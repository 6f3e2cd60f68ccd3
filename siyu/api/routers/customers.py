"""Customers: list, detail, create, update, reveal, timeline and tagging; OneID merges, unmerges and the review
queue of likely duplicates (HQ only). Each handler calls one selector or service."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import AfterValidator, Field

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    BodyId,
    BodyIn,
    CustomerCreateIn,
    CustomerDetailOut,
    CustomerFilters,
    CustomerOut,
    CustomerTagIn,
    CustomerUpdateIn,
    Id,
    NotNull,
    PageOut,
    PageParams,
    PiiOut,
    TimelineEventOut,
    TimelineFilters,
    error_responses,
    str_enum,
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
    page_of,
)
from siyu.customers import identity as oneid
from siyu.customers import selectors as customer_selectors
from siyu.customers.models import CustomerMerge, MergeCandidate
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


# --- OneID: merges and the review queue --------------------------------------------------------------------

MergeRuleEnum = str_enum("CustomerMergeRule", CustomerMerge.Rule)
MergeStatusEnum = str_enum("CustomerMergeStatus", CustomerMerge.Status)
CandidateReasonEnum = str_enum("MergeCandidateReason", MergeCandidate.Reason)
CandidateStatusEnum = str_enum("MergeCandidateStatus", MergeCandidate.Status)


def _two_customers(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise ValueError("a customer cannot be merged into itself")
    return ids


class MergeIn(BodyIn):
    customer_ids: Annotated[list[BodyId], AfterValidator(_two_customers)] = Field(
        min_length=2,
        max_length=2,
        json_schema_extra={"uniqueItems": True},
        description="Two different customers; the older (by created_at, then id) survives.",
    )


class MergeFilters(PageParams):
    customer_id: Annotated[Id | None, NotNull] = Field(None, description="Only merges this customer took part in.")


class MergeOut(Schema):
    id: int
    survivor_id: int
    merged_id: int
    rule: MergeRuleEnum  # type: ignore[valid-type]
    identity_kind: str = Field(description="The identity kind that triggered a rule merge; empty otherwise.")
    status: MergeStatusEnum  # type: ignore[valid-type]
    moved: dict[str, int] = Field(description='Rows moved to the survivor, per table ("app.Model.field").')
    kept: dict[str, int] = Field(description="Rows left with the merged customer (the survivor had the same).")
    filled: list[str] = Field(description="Profile fields of the survivor filled from the merged customer.")
    restored: dict[str, int] = Field(description="Rows the unmerge gave back to the merged customer, per table.")
    merged_at: dt.datetime
    unmerged_at: dt.datetime | None


class CandidateFilters(PageParams):
    status: CandidateStatusEnum = Field(  # type: ignore[valid-type]
        CandidateStatusEnum("pending"), description="pending (the queue), approved or rejected."
    )


class CandidateSideOut(Schema):
    id: int
    name_masked: str
    phone_masked: str
    city: str
    created_at: str
    identity_kinds: list[str]


class CandidateOut(Schema):
    id: int
    reason: CandidateReasonEnum  # type: ignore[valid-type]
    score: int = Field(description="0-100: how likely the two are one person.")
    status: CandidateStatusEnum  # type: ignore[valid-type]
    customer_a: CandidateSideOut
    customer_b: CandidateSideOut
    created_at: dt.datetime
    decided_at: dt.datetime | None
    merge_id: int | None


def _merge_out(merge: CustomerMerge) -> dict[str, Any]:
    fields = {attname: name for name, attnames in oneid.FILLABLE for attname in attnames}
    return {
        "id": merge.id,
        "survivor_id": merge.survivor_id,
        "merged_id": merge.merged_id,
        "rule": merge.rule,
        "identity_kind": merge.identity_kind,
        "status": merge.status,
        "moved": {label: len(ids) for label, ids in merge.moved.items()},
        "kept": {label: len(ids) for label, ids in merge.kept.items()},
        "filled": sorted({fields[a] for a in merge.filled if a in fields}),
        "restored": {label: len(ids) for label, ids in merge.restored.items()},
        "merged_at": merge.merged_at,
        "unmerged_at": merge.unmerged_at,
    }


def _candidates_out(candidates: list[MergeCandidate]) -> list[dict[str, Any]]:
    def side(card: customer_selectors.CustomerCard, kinds: list[str]) -> dict[str, Any]:
        return {
            "id": card.id,
            "name_masked": card.name_masked,
            "phone_masked": card.phone_masked,
            "city": card.city,
            "created_at": card.created_at,
            "identity_kinds": kinds,
        }

    return [
        {
            "id": row.candidate.id,
            "reason": row.candidate.reason,
            "score": row.candidate.score,
            "status": row.candidate.status,
            "customer_a": side(row.a, row.a_kinds),
            "customer_b": side(row.b, row.b_kinds),
            "created_at": row.candidate.created_at,
            "decided_at": row.candidate.decided_at,
            "merge_id": row.candidate.merge_id,
        }
        for row in customer_selectors.candidate_rows(candidates)
    ]


def _candidate(request: HttpRequest, candidate_id: int) -> dict[str, Any]:
    candidate = customer_selectors.access_merge_candidate(actor=actor_of(request), candidate_id=candidate_id)
    return _candidates_out([candidate])[0]


@router.get(
    "/customer-merges",
    response={200: PageOut[MergeOut], **error_responses(401, 403, 422)},
    operation_id="customer_merge_list",
    summary="Customer merges, newest first (HQ only)",
)
def customer_merge_list_api(request: HttpRequest, filters: Query[MergeFilters]) -> Page[dict[str, Any]]:
    qs = customer_selectors.merge_list(actor=actor_of(request), customer_id=filters.customer_id)
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_merge_out(m) for m in rows])


@router.post(
    "/customer-merges",
    response={201: MergeOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="customer_merge",
    summary="Merge two customers of the brand into one (HQ only; the older survives)",
)
def customer_merge_api(request: HttpRequest, payload: MergeIn) -> Status[dict[str, Any]]:
    """Every row pointing at the merged customer moves to the survivor, and the merge records which, so
    `POST /customer-merges/{merge_id}/unmerge` can put both back. The same customer twice is a 422; a customer of
    another brand, or one merged already, is a 404."""
    merge = oneid.customer_merge(actor=actor_of(request), customer_ids=payload.customer_ids)
    return Status(201, _merge_out(merge))


@router.get(
    "/customer-merges/{merge_id}",
    response={200: MergeOut, **error_responses(401, 403, 404, 422)},
    operation_id="customer_merge_get",
    summary="One merge: what moved, what stayed, what was filled in (HQ only)",
)
def customer_merge_get_api(request: HttpRequest, merge_id: Path[Id]) -> dict[str, Any]:
    return _merge_out(customer_selectors.access_merge(actor=actor_of(request), merge_id=merge_id))


@router.post(
    "/customer-merges/{merge_id}/unmerge",
    response={200: MergeOut, **error_responses(401, 403, 404, 409, 422)},
    operation_id="customer_unmerge",
    summary="Take a merge back: both customers as they were (HQ only)",
)
def customer_unmerge_api(request: HttpRequest, merge_id: Path[Id]) -> dict[str, Any]:
    """A merge already undone, or one whose survivor was merged again since, is a 409 and changes nothing."""
    return _merge_out(oneid.customer_unmerge(actor=actor_of(request), merge_id=merge_id))


@router.get(
    "/customer-merge-candidates",
    response={200: PageOut[CandidateOut], **error_responses(401, 403, 422)},
    operation_id="merge_candidate_list",
    summary="The review queue of likely duplicate customers, most likely first; personal data masked (HQ only)",
)
def merge_candidate_list_api(request: HttpRequest, filters: Query[CandidateFilters]) -> Page[dict[str, Any]]:
    qs = customer_selectors.merge_candidate_list(actor=actor_of(request), status=filters.status.value)
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=_candidates_out)


@router.post(
    "/customer-merge-candidates/{candidate_id}/approve",
    response={200: CandidateOut, **error_responses(401, 403, 404, 409, 422)},
    operation_id="merge_candidate_approve",
    summary="They are one person: merge them (HQ only)",
)
def merge_candidate_approve_api(request: HttpRequest, candidate_id: Path[Id]) -> dict[str, Any]:
    oneid.merge_candidate_approve(actor=actor_of(request), candidate_id=candidate_id)
    return _candidate(request, candidate_id)


@router.post(
    "/customer-merge-candidates/{candidate_id}/reject",
    response={200: CandidateOut, **error_responses(401, 403, 404, 409, 422)},
    operation_id="merge_candidate_reject",
    summary="They are different people: never propose or merge them again (HQ only)",
)
def merge_candidate_reject_api(request: HttpRequest, candidate_id: Path[Id]) -> dict[str, Any]:
    oneid.merge_candidate_reject(actor=actor_of(request), candidate_id=candidate_id)
    return _candidate(request, candidate_id)
