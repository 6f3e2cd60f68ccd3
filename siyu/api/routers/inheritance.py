"""Customer inheritance (客户继承): on-job transfers and resigned inheritance, their per-customer status, the brand
IP as heir of departed guides, and WeCom's list of unassigned customers. Handlers call one service or selector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, StrictBool, field_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    NO_NUL_PATTERN,
    BodyId,
    BodyIn,
    Id,
    NoNul,
    NotNull,
    PageOut,
    PageParams,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.core.models import Guide
from siyu.inheritance.models import Transfer, TransferGroupItem, TransferItem, UnassignedCustomer, UnassignedFetch
from siyu.inheritance.selectors import (
    transfer_detail,
    transfer_list,
    transfer_rows,
    unassigned_fetch_state,
    unassigned_list,
)
from siyu.inheritance.services import (
    MAX_MESSAGE,
    transfer_refresh,
    transfer_start,
    transfer_to_brand_ip,
    unassigned_refresh,
)

router = Router(tags=["inheritance"])


TransferKindEnum = str_enum("TransferKind", Transfer.Kind)
TransferStatusEnum = str_enum("TransferStatus", Transfer.Status)
TransferItemStatusEnum = str_enum("TransferItemStatus", TransferItem.Status)
TransferGroupStatusEnum = str_enum("TransferGroupStatus", TransferGroupItem.Status)
MAX_CUSTOMERS = 10_000  # one guide's whole book, and then some; WeCom is called 100 at a time

Message = Annotated[
    str,
    Field(
        max_length=MAX_MESSAGE,
        json_schema_extra={"pattern": NO_NUL_PATTERN},
        description="On-job only: what the customer reads about the new guide (WeCom's default text when empty).",
    ),
    NoNul,
]


class TransferStartIn(BodyIn):
    kind: TransferKindEnum  # type: ignore[valid-type]
    handover_guide_id: BodyId
    takeover_guide_id: BodyId
    customer_ids: Annotated[list[BodyId] | None, NotNull] = Field(
        None,
        min_length=1,
        max_length=MAX_CUSTOMERS,
        description="Customers of the handover guide to transfer; leave out for every customer the guide follows.",
    )
    include_groups: StrictBool = Field(False, description="Also hand over the guide's customer groups (群主).")
    message: Message = ""

    @field_validator("customer_ids", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Only an absent field means "every customer": an explicit null is a mistake, not a wish to move them all.
        if value is None:
            raise ValueError("must be a list of customer ids; leave it out to transfer every customer")
        return value


class BrandIpIn(BodyIn):
    handover_guide_id: BodyId = Field(description="A departed guide in your scope.")
    include_groups: StrictBool = True


class TransferFilters(PageParams):
    status: Annotated[TransferStatusEnum | None, NotNull] = None  # type: ignore[valid-type]
    kind: Annotated[TransferKindEnum | None, NotNull] = None  # type: ignore[valid-type]
    handover_guide_id: Annotated[Id | None, NotNull] = None


class GuideRefOut(Schema):
    id: int
    name: str
    wecom_userid: str
    status: str


class TransferOut(Schema):
    id: int
    kind: TransferKindEnum  # type: ignore[valid-type]
    status: TransferStatusEnum  # type: ignore[valid-type]
    handover: GuideRefOut
    takeover: GuideRefOut
    message: str
    last_error: str = Field(description="The last failure talking to WeCom; empty when the last call went well.")
    last_polled_at: dt.datetime | None
    created_at: dt.datetime
    customers: dict[str, int] = Field(description="How many customers are in each status.")
    groups: dict[str, int] = Field(description="How many group chats are in each status.")


class TransferItemOut(Schema):
    customer_id: int | None
    name_masked: str
    external_userid: str
    status: TransferItemStatusEnum  # type: ignore[valid-type]
    errcode: int = Field(description="WeCom's errcode when the transfer could not start (e.g. 40128).")
    errmsg: str
    due_at: dt.datetime | None = Field(description="While waiting: when WeCom takes the customer over.")
    takeover_at: dt.datetime | None


class TransferGroupOut(Schema):
    group_id: int | None
    chat_id: str
    name: str
    status: TransferGroupStatusEnum  # type: ignore[valid-type]
    errcode: int
    errmsg: str


class TransferDetailOut(TransferOut):
    items: list[TransferItemOut]
    group_items: list[TransferGroupOut]


class UnassignedOut(Schema):
    handover_userid: str
    handover_guide_id: int | None
    handover_name: str
    external_userid: str
    customer_id: int | None
    dimission_time: dt.datetime


class UnassignedFetchOut(Schema):
    fetched_at: dt.datetime | None = Field(description="When the list was last read from WeCom successfully.")
    attempted_at: dt.datetime | None
    error: str
    count: int


class UnassignedPageOut(PageOut[UnassignedOut]):
    fetched_at: dt.datetime | None = Field(description="The list is WeCom's as of this time (refresh to update).")


def _guide(guide: Guide) -> dict[str, Any]:
    return {"id": guide.id, "name": guide.name, "wecom_userid": guide.wecom_userid, "status": guide.status}


def _transfer(transfer: Transfer, customers: dict[str, int], groups: dict[str, int]) -> dict[str, Any]:
    return {
        "id": transfer.id,
        "kind": transfer.kind,
        "status": transfer.status,
        "handover": _guide(transfer.handover),
        "takeover": _guide(transfer.takeover),
        "message": transfer.message,
        "last_error": transfer.last_error,
        "last_polled_at": transfer.last_polled_at,
        "created_at": transfer.created_at,
        "customers": customers,
        "groups": groups,
    }


def _detail(request: HttpRequest, transfer_id: int) -> dict[str, Any]:
    detail = transfer_detail(actor=actor_of(request), transfer_id=transfer_id)
    groups: dict[str, int] = {}
    for g in detail.groups:
        groups[g.status] = groups.get(g.status, 0) + 1
    return {
        **_transfer(detail.transfer, detail.counts, groups),
        "items": [
            {
                "customer_id": row.item.customer_id,
                "name_masked": row.customer.name_masked if row.customer else "",
                "external_userid": row.item.external_userid,
                "status": row.item.status,
                "errcode": row.item.errcode,
                "errmsg": row.item.errmsg,
                "due_at": row.item.due_at,
                "takeover_at": row.item.takeover_at,
            }
            for row in detail.items
        ],
        "group_items": [
            {
                "group_id": g.group_id,
                "chat_id": g.chat_id,
                "name": g.group.name if g.group else "",
                "status": g.status,
                "errcode": g.errcode,
                "errmsg": g.errmsg,
            }
            for g in detail.groups
        ],
    }


def _transfer_page(rows: Sequence[Transfer]) -> list[dict[str, Any]]:
    return [_transfer(r.transfer, r.counts, r.group_counts) for r in transfer_rows(list(rows))]


@router.post(
    "/transfers",
    response={201: TransferDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="transfer_start",
    summary="Hand customers of one guide to another (on-job transfer or resigned inheritance)",
)
def transfer_start_api(request: HttpRequest, payload: TransferStartIn) -> Status[dict[str, Any]]:
    """HQ, region and store managers only, for a handover guide in their scope, to a guide in their scope or the
    brand IP. Up to 200 customers are sent to WeCom at once and the answer shows WeCom's errcode per customer
    (e.g. 40128: already moved twice in 90 days); larger transfers are sent by a job (status `submitting`).
    Customers then have 24 hours to refuse; follow them with GET or refresh.

    409 (naming the field) when the guides or customers do not allow it: the same guide on both sides, a takeover
    guide who left, an on-job transfer of a departed guide or a resigned one of a guide still working, customers
    the handover guide does not follow or that are already being transferred, or a message on a resigned
    inheritance."""
    transfer = transfer_start(
        actor=actor_of(request),
        kind=payload.kind.value,
        handover_guide_id=payload.handover_guide_id,
        takeover_guide_id=payload.takeover_guide_id,
        customer_ids=payload.customer_ids,
        include_groups=payload.include_groups,
        message=payload.message,
    )
    return Status(201, _detail(request, transfer.id))


@router.post(
    "/transfers/to-brand-ip",
    response={201: TransferDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="transfer_to_brand_ip",
    summary="Hand every customer (and group) of a departed guide to the brand IP account",
)
def transfer_to_brand_ip_api(request: HttpRequest, payload: BrandIpIn) -> Status[dict[str, Any]]:
    transfer = transfer_to_brand_ip(
        actor=actor_of(request), handover_guide_id=payload.handover_guide_id, include_groups=payload.include_groups
    )
    return Status(201, _detail(request, transfer.id))


@router.get(
    "/transfers",
    response={200: PageOut[TransferOut], **error_responses(401, 422)},
    operation_id="transfer_list",
    summary="Transfers whose handover guide is in scope, newest first, with counts per status",
)
def transfer_list_api(request: HttpRequest, filters: Query[TransferFilters]) -> Page[dict[str, Any]]:
    qs = transfer_list(
        actor=actor_of(request),
        status=filters.status.value if filters.status else "",
        kind=filters.kind.value if filters.kind else "",
        handover_guide_id=filters.handover_guide_id,
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=_transfer_page)


@router.get(
    "/transfers/{transfer_id}",
    response={200: TransferDetailOut, **error_responses(401, 404, 422)},
    operation_id="transfer_get",
    summary="One transfer with the status of each customer and group",
)
def transfer_get_api(request: HttpRequest, transfer_id: Path[Id]) -> dict[str, Any]:
    return _detail(request, transfer_id)


@router.post(
    "/transfers/{transfer_id}/refresh",
    response={200: TransferDetailOut, **error_responses(401, 403, 404, 422)},
    operation_id="transfer_refresh",
    summary="Send what is still pending and ask WeCom for the outcome of waiting customers",
)
def transfer_refresh_api(request: HttpRequest, transfer_id: Path[Id]) -> dict[str, Any]:
    """A WeCom failure does not fail the request: it is reported in `last_error`."""
    transfer = transfer_refresh(actor=actor_of(request), transfer_id=transfer_id)
    return _detail(request, transfer.id)


def _unassigned_row(row: UnassignedCustomer) -> dict[str, Any]:
    return {
        "handover_userid": row.handover_userid,
        "handover_guide_id": row.handover_id,
        "handover_name": row.handover.name if row.handover else "",
        "external_userid": row.external_userid,
        "customer_id": row.customer_id,
        "dimission_time": row.dimission_time,
    }


@router.get(
    "/unassigned-customers",
    response={200: UnassignedPageOut, **error_responses(401, 422)},
    operation_id="unassigned_customer_list",
    summary="Departed guides' customers not yet handed to anyone (WeCom's list, as of the last refresh)",
)
def unassigned_list_api(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    actor = actor_of(request)
    rows = page_of(
        unassigned_list(actor=actor),
        limit=page.limit,
        offset=page.offset,
        build=lambda rows: [_unassigned_row(r) for r in rows],
    )
    state = unassigned_fetch_state(actor=actor)
    return {
        "items": rows.items,
        "count": rows.count,
        "limit": rows.limit,
        "offset": rows.offset,
        "fetched_at": state.fetched_at if state else None,
    }


@router.post(
    "/unassigned-customers/refresh",
    response={200: UnassignedFetchOut, **error_responses(401, 403)},
    operation_id="unassigned_customer_refresh",
    summary="Read the unassigned customers from WeCom again (get_unassigned_list)",
)
def unassigned_refresh_api(request: HttpRequest) -> UnassignedFetch:
    """A WeCom failure keeps the previous list and is reported in `error`."""
    return unassigned_refresh(actor=actor_of(request))
