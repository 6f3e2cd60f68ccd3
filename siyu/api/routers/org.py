"""The org tree in the token's data scope: regions, stores, franchisees and guides (paginated)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from siyu.api.auth import actor_of
from siyu.api.schemas import FranchiseeOut, GuideOut, PageOut, PageParams, RegionOut, StoreOut, error_responses
from siyu.api.selectors import Page, rows_page
from siyu.core.selectors import franchisee_list, guide_list, region_list, store_list

router = Router(tags=["org"])


@router.get(
    "/regions",
    response={200: PageOut[RegionOut], **error_responses(401, 422)},
    operation_id="region_list",
    summary="Regions with stores in scope",
)
def region_list_api(request: HttpRequest, page: Query[PageParams]) -> Page[Any]:
    return rows_page(region_list(actor=actor_of(request)), limit=page.limit, offset=page.offset)


@router.get(
    "/stores",
    response={200: PageOut[StoreOut], **error_responses(401, 422)},
    operation_id="store_list",
    summary="Stores in scope",
)
def store_list_api(request: HttpRequest, page: Query[PageParams]) -> Page[Any]:
    return rows_page(store_list(actor=actor_of(request)), limit=page.limit, offset=page.offset)


@router.get(
    "/franchisees",
    response={200: PageOut[FranchiseeOut], **error_responses(401, 422)},
    operation_id="franchisee_list",
    summary="Franchisees owning stores in scope",
)
def franchisee_list_api(request: HttpRequest, page: Query[PageParams]) -> Page[Any]:
    return rows_page(franchisee_list(actor=actor_of(request)), limit=page.limit, offset=page.offset)


@router.get(
    "/guides",
    response={200: PageOut[GuideOut], **error_responses(401, 422)},
    operation_id="guide_list",
    summary="Guides in scope (the brand IP account included for HQ)",
)
def guide_list_api(request: HttpRequest, page: Query[PageParams]) -> Page[Any]:
    return rows_page(guide_list(actor=actor_of(request)), limit=page.limit, offset=page.offset)
