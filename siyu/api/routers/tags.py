"""The brand's tag catalogue: tag groups and their tags (every role reads it; only HQ changes it), and the
automatic tagging rules (HQ only)."""

from __future__ import annotations

from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Path, Router, Schema, Status
from pydantic import Field, ValidationInfo, field_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    BodyIn,
    Id,
    NotNull,
    Order,
    TagCreateIn,
    TagGroupCreateIn,
    TagGroupOut,
    TagName,
    TagOut,
    error_responses,
)
from siyu.tags.models import Tag, TagGroup
from siyu.tags.selectors import tag_group_list
from siyu.tags.services import tag_create, tag_delete, tag_group_create, tag_group_delete, tag_group_update, tag_update

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


class _Patch(BodyIn):
    """Any subset of the fields; the others stay. Null is not a value: leave a field out instead."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value


class TagGroupPatch(_Patch):
    """Any subset of the fields; the others stay."""

    name: Annotated[TagName | None, NotNull] = None
    order: Annotated[Order | None, NotNull] = None


class TagPatch(_Patch):
    """Any subset of the fields; the others stay."""

    name: Annotated[TagName | None, NotNull] = None
    order: Annotated[Order | None, NotNull] = None


class DeletedOut(Schema):
    customer_tags: int = Field(description="How many customers the deleted tag(s) were taken off.")


@router.patch(
    "/tag-groups/{group_id}",
    response={200: TagGroupOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="tag_group_update",
    summary="Rename or reorder a tag group (HQ only); WeCom follows",
)
def tag_group_update_api(request: HttpRequest, group_id: Path[Id], payload: TagGroupPatch) -> TagGroup:
    actor = actor_of(request)
    tag_group_update(actor=actor, group_id=group_id, name=payload.name, order=payload.order)
    return tag_group_list(actor=actor).get(id=group_id)


@router.delete(
    "/tag-groups/{group_id}",
    response={200: DeletedOut, **error_responses(401, 403, 404, 422)},
    operation_id="tag_group_delete",
    summary="Delete a tag group and its tags, taking them off customers (HQ only); WeCom follows",
)
def tag_group_delete_api(request: HttpRequest, group_id: Path[Id]) -> dict[str, int]:
    return {"customer_tags": tag_group_delete(actor=actor_of(request), group_id=group_id)}


@router.patch(
    "/tags/{tag_id}",
    response={200: TagOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="tag_update",
    summary="Rename or reorder a tag (HQ only); WeCom follows",
)
def tag_update_api(request: HttpRequest, tag_id: Path[Id], payload: TagPatch) -> Tag:
    return tag_update(actor=actor_of(request), tag_id=tag_id, name=payload.name, order=payload.order)


@router.delete(
    "/tags/{tag_id}",
    response={200: DeletedOut, **error_responses(401, 403, 404, 422)},
    operation_id="tag_delete",
    summary="Delete a tag, taking it off customers (HQ only); WeCom follows",
)
def tag_delete_api(request: HttpRequest, tag_id: Path[Id]) -> dict[str, int]:
    return {"customer_tags": tag_delete(actor=actor_of(request), tag_id=tag_id)}
