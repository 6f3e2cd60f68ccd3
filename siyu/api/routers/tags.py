"""The brand's tag catalogue: tag groups and their tags (every role reads it; only HQ changes it)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Path, Router, Status

from siyu.api.auth import actor_of
from siyu.api.schemas import Id, TagCreateIn, TagGroupCreateIn, TagGroupOut, TagOut, error_responses
from siyu.tags.models import Tag, TagGroup
from siyu.tags.selectors import tag_group_list
from siyu.tags.services import tag_create, tag_group_create

router = Router(tags=["tags"])


@router.get(
    "/tag-groups",
    response={200: list[TagGroupOut], **error_responses(401)},
    operation_id="tag_group_list",
    summary="Tag groups with their tags",
)
def tag_group_list_api(request: HttpRequest) -> QuerySet[TagGroup]:
    return tag_group_list(actor=actor_of(request))


@router.post(
    "/tag-groups",
    response={201: TagGroupOut, **error_responses(400, 401, 403, 409, 422)},
    operation_id="tag_group_create",
    summary="Create a tag group, optionally with tags (HQ only)",
)
def tag_group_create_api(request: HttpRequest, payload: TagGroupCreateIn) -> Status[TagGroup]:
    group = tag_group_create(actor=actor_of(request), name=payload.name, order=payload.order, tags=payload.tags)
    return Status(201, group)


@router.post(
    "/tag-groups/{group_id}/tags",
    response={201: TagOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="tag_create",
    summary="Add a tag to a group (HQ only)",
)
def tag_create_api(request: HttpRequest, group_id: Path[Id], payload: TagCreateIn) -> Status[Tag]:
    return Status(201, tag_create(actor=actor_of(request), group_id=group_id, name=payload.name, order=payload.order))
