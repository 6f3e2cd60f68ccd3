"""Customers' privacy rights (PIPL 个人信息保护法): consents, export of everything held, erasure.

Consents follow the customer's scope (a guide records what their customer agreed to); exports and erasures are
HQ's, audited with the reason. Handlers call one service or selector.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, StrictBool

from siyu.api.auth import actor_of
from siyu.api.schemas import TRIMMED_PATTERN, BodyIn, Id, PageOut, PageParams, Trimmed, error_responses, str_enum
from siyu.api.selectors import Page, page_of
from siyu.privacy import selectors, services
from siyu.privacy.models import Consent, ConsentChannel, ConsentPurpose, PrivacyRequest

router = Router(tags=["privacy"])

ConsentPurposeEnum = str_enum("ConsentPurpose", ConsentPurpose)
ConsentChannelEnum = str_enum("ConsentChannel", ConsentChannel)
PrivacyRequestKindEnum = str_enum("PrivacyRequestKind", PrivacyRequest.Kind)

Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=services.MAX_REASON,
        json_schema_extra={"pattern": TRIMMED_PATTERN},
        description="Why (the customer's request, a ticket number): kept in the audit log.",
    ),
    Trimmed,
]
TextVersion = Annotated[
    str,
    Field(
        min_length=1,
        max_length=services.MAX_TEXT_VERSION,
        json_schema_extra={"pattern": TRIMMED_PATTERN},
        description="Which version of the consent text the customer saw.",
    ),
    Trimmed,
]


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only (X-Forwarded-For is client-controlled); validated because the column is an inet on PostgreSQL.
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return None


class ConsentIn(BodyIn):
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]
    granted: StrictBool = Field(description="true: granted; false: withdrawn.")
    channel: ConsentChannelEnum  # type: ignore[valid-type]
    text_version: TextVersion


class ConsentOut(Schema):
    id: int
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]
    granted: bool
    channel: ConsentChannelEnum  # type: ignore[valid-type]
    text_version: str
    recorded_at: dt.datetime


class ConsentStateOut(Schema):
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]
    granted: bool | None = Field(description="null: never asked.")
    channel: str
    text_version: str
    recorded_at: dt.datetime | None


class ConsentsOut(Schema):
    current: list[ConsentStateOut]
    history: list[ConsentOut] = Field(description="Every decision, newest first.")


class ReasonIn(BodyIn):
    reason: Reason


class PrivacyRequestOut(Schema):
    id: int
    kind: PrivacyRequestKindEnum  # type: ignore[valid-type]
    customer_id: int
    customer_ids: list[int] = Field(description="Every customer row covered: the customer and those merged into it.")
    reason: str
    requested_by: str | None
    counts: dict[str, int] = Field(description='Rows changed per "context.what" (erasures).')
    created_at: dt.datetime


class PrivacyExportOut(Schema):
    request: PrivacyRequestOut
    document: dict[str, Any] = Field(description="Everything held on the customer, personal data decrypted.")


class ErasureStatusOut(Schema):
    customer_id: int
    erased: bool
    erased_at: dt.datetime | None
    request: PrivacyRequestOut | None


class PrivacyRequestFilters(PageParams):
    kind: PrivacyRequestKindEnum | None = None  # type: ignore[valid-type]


def _consent(row: Consent) -> dict[str, Any]:
    return {
        "id": row.id,
        "purpose": row.purpose,
        "granted": row.granted,
        "channel": row.channel,
        "text_version": row.text_version,
        "recorded_at": row.recorded_at,
    }


def _request(row: PrivacyRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "customer_id": row.customer_id,
        "customer_ids": row.customer_ids,
        "reason": row.reason,
        "requested_by": row.requested_by.get_username() if row.requested_by else None,
        "counts": row.counts,
        "created_at": row.created_at,
    }


def _consents(request: HttpRequest, customer_id: int) -> dict[str, Any]:
    actor = actor_of(request)
    return {
        "current": [
            {
                "purpose": s.purpose,
                "granted": s.granted,
                "channel": s.channel,
                "text_version": s.text_version,
                "recorded_at": s.recorded_at,
            }
            for s in selectors.consent_state(actor=actor, customer_id=customer_id)
        ],
        "history": [_consent(c) for c in selectors.consent_history(actor=actor, customer_id=customer_id)],
    }


@router.get(
    "/customers/{customer_id}/consents",
    response={200: ConsentsOut, **error_responses(401, 404, 422)},
    operation_id="consent_list",
    summary="A customer's consents: the current state per purpose and the full history",
)
def consent_list_api(request: HttpRequest, customer_id: Path[Id]) -> dict[str, Any]:
    return _consents(request, customer_id)


@router.post(
    "/customers/{customer_id}/consents",
    response={201: ConsentOut, **error_responses(400, 401, 404, 409, 422)},
    operation_id="consent_record",
    summary="Record that a customer granted or withdrew consent for a purpose (history is kept)",
)
def consent_record_api(request: HttpRequest, customer_id: Path[Id], payload: ConsentIn) -> Status[dict[str, Any]]:
    """409 naming `customer_id` when the customer was erased."""
    consent = services.consent_record(
        actor=actor_of(request),
        customer_id=customer_id,
        purpose=payload.purpose.value,
        granted=payload.granted,
        channel=payload.channel.value,
        text_version=payload.text_version,
    )
    return Status(201, _consent(consent))


@router.post(
    "/customers/{customer_id}/privacy-export",
    response={200: PrivacyExportOut, **error_responses(400, 401, 403, 404, 422)},
    operation_id="privacy_export",
    summary="Everything held on a customer as one JSON document, personal data decrypted (HQ only; audited)",
)
def privacy_export_api(request: HttpRequest, customer_id: Path[Id], payload: ReasonIn) -> dict[str, Any]:
    row, document = services.privacy_export(
        actor=actor_of(request), customer_id=customer_id, reason=payload.reason, ip=_client_ip(request)
    )
    return {"request": _request(row), "document": document}


@router.post(
    "/customers/{customer_id}/erasure",
    response={200: PrivacyRequestOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="privacy_erase",
    summary="Erase a customer's personal data everywhere; irreversible (HQ only; audited)",
)
def privacy_erase_api(request: HttpRequest, customer_id: Path[Id], payload: ReasonIn) -> dict[str, Any]:
    """The customer row stays as an anonymised tombstone so counts stay right. 409 naming `customer_id` when the
    customer was already erased: nothing changes."""
    row = services.privacy_erase(
        actor=actor_of(request), customer_id=customer_id, reason=payload.reason, ip=_client_ip(request)
    )
    return _request(row)


@router.get(
    "/customers/{customer_id}/erasure",
    response={200: ErasureStatusOut, **error_responses(401, 403, 404, 422)},
    operation_id="privacy_erasure_status",
    summary="Whether a customer was erased, when and by which request (HQ only)",
)
def privacy_erasure_status_api(request: HttpRequest, customer_id: Path[Id]) -> dict[str, Any]:
    erased = selectors.erasure_status(actor=actor_of(request), customer_id=customer_id)
    return {
        "customer_id": customer_id,
        "erased": erased is not None,
        "erased_at": erased.erased_at if erased else None,
        "request": _request(erased.request) if erased else None,
    }


@router.get(
    "/privacy/requests",
    response={200: PageOut[PrivacyRequestOut], **error_responses(401, 403, 422)},
    operation_id="privacy_request_list",
    summary="The brand's export and erasure log, newest first (HQ only)",
)
def privacy_request_list_api(request: HttpRequest, filters: Query[PrivacyRequestFilters]) -> Page[dict[str, Any]]:
    qs = selectors.privacy_request_list(actor=actor_of(request), kind=filters.kind.value if filters.kind else "")
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_request(r) for r in rows])
