"""The brand's tag catalogue: tag groups and their tags (every role reads it; only HQ changes it), and the
automatic tagging rules (HQ only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import Field, StrictBool, ValidationInfo, field_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    TRIMMED_PATTERN,
    BodyId,
    BodyIn,
    Id,
    NotNull,
    Order,
    PageOut,
    PageParams,
    TagCreateIn,
    TagGroupCreateIn,
    TagGroupOut,
    TagName,
    TagOut,
    Trimmed,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.core.errors import Conflict, ValidationFailed
from siyu.tags import rules
from siyu.tags.models import Tag, TagGroup, TagRule
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


# -- automatic tagging rules (自动打标规则) -----------------------------------------------------------------------

TagRuleKindEnum = str_enum("TagRuleKind", TagRule.Kind)
RuleName = Annotated[
    str,
    Field(min_length=1, max_length=rules.MAX_NAME, json_schema_extra={"pattern": TRIMMED_PATTERN}),
    Trimmed,
]
PARAMS_HELP = (
    "behaviour: {event_type, min_count ≥ 1, within_days ≥ 1}; purchase: {product_series, min_count (default 1), "
    "within_days (optional)}; tier: {tier}; rfm: {metric: recency|frequency|monetary, bands: [{tag_id, min, max}], "
    "within_days (optional)} — recency in days since the last paid order, monetary in yuan, max exclusive."
)


@contextmanager
def _params_conflict() -> Iterator[None]:
    """`params` is a free-form object in the schema (its keys depend on `kind`), so a well-formed body whose
    parameters don't make a rule — a missing key, n ≤ 0, bands out of order — is a 409 naming the parameter, as
    a segment's rule tree is; 422 stays for bodies the schema itself refuses."""
    try:
        yield
    except ValidationFailed as exc:
        raise Conflict(exc.message, field=exc.field) from exc


class TagRuleIn(BodyIn):
    name: RuleName
    kind: TagRuleKindEnum  # type: ignore[valid-type]
    tag_id: BodyId | None = Field(None, description="The tag applied (every kind but rfm, whose bands name theirs).")
    params: dict[str, Any] = Field(description=PARAMS_HELP)
    enabled: StrictBool = True


class TagRulePatch(_Patch):
    """Any subset of the fields; the others stay. The kind is fixed."""

    name: Annotated[RuleName | None, NotNull] = None
    tag_id: Annotated[BodyId | None, NotNull] = None
    params: Annotated[dict[str, Any] | None, NotNull] = Field(None, description=PARAMS_HELP)
    enabled: Annotated[StrictBool | None, NotNull] = None


class TagRuleTagOut(Schema):
    id: int
    name: str
    group: str


class TagRuleOut(Schema):
    id: int
    name: str
    kind: TagRuleKindEnum  # type: ignore[valid-type]
    tag: TagRuleTagOut | None
    params: dict[str, Any]
    enabled: bool
    next_run_at: dt.datetime | None = Field(description="When the nightly recompute runs it next.")
    last_run_at: dt.datetime | None
    last_matched: int = Field(description="Customers carrying its tags after the last run.")
    last_added: int
    last_removed: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @staticmethod
    def resolve_tag(obj: TagRule) -> dict[str, Any] | None:
        tag = obj.tag
        return None if tag is None else {"id": tag.id, "name": tag.name, "group": tag.group.name}


class TagRuleRunOut(Schema):
    matched: int
    added: int
    removed: int


@router.get(
    "/tag-rules",
    response={200: PageOut[TagRuleOut], **error_responses(401, 403, 422)},
    operation_id="tag_rule_list",
    summary="The brand's automatic tagging rules, oldest first (HQ only)",
)
def tag_rule_list_api(request: HttpRequest, filters: Query[PageParams]) -> Page[TagRule]:
    qs = rules.tag_rule_list(actor=actor_of(request))
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=list)


@router.post(
    "/tag-rules",
    response={201: TagRuleOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="tag_rule_create",
    summary="Create an automatic tagging rule (HQ only); it runs nightly and on run-now",
)
def tag_rule_create_api(request: HttpRequest, payload: TagRuleIn) -> Status[TagRule]:
    """404 naming `tag_id` (or `bands`) for a tag the brand does not have; 409 naming the parameter at fault."""
    actor = actor_of(request)
    with _params_conflict():
        rule = rules.tag_rule_create(
            actor=actor,
            name=payload.name,
            kind=payload.kind.value,
            tag_id=payload.tag_id,
            params=payload.params,
            enabled=payload.enabled,
        )
    return Status(201, rules.access_tag_rule(actor=actor, rule_id=rule.id))


@router.get(
    "/tag-rules/{rule_id}",
    response={200: TagRuleOut, **error_responses(401, 403, 404, 422)},
    operation_id="tag_rule_get",
    summary="One automatic tagging rule with its last run's counts (HQ only)",
)
def tag_rule_get_api(request: HttpRequest, rule_id: Path[Id]) -> TagRule:
    return rules.access_tag_rule(actor=actor_of(request), rule_id=rule_id)


@router.patch(
    "/tag-rules/{rule_id}",
    response={200: TagRuleOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="tag_rule_update",
    summary="Change an automatic tagging rule, enable or disable it (HQ only)",
)
def tag_rule_update_api(request: HttpRequest, rule_id: Path[Id], payload: TagRulePatch) -> TagRule:
    with _params_conflict():
        return rules.tag_rule_update(
            actor=actor_of(request),
            rule_id=rule_id,
            name=payload.name,
            tag_id=payload.tag_id,
            params=payload.params,
            enabled=payload.enabled,
        )


@router.delete(
    "/tag-rules/{rule_id}",
    response={204: None, **error_responses(401, 403, 404, 422)},
    operation_id="tag_rule_delete",
    summary="Delete an automatic tagging rule (HQ only); the tags it applied stay",
)
def tag_rule_delete_api(request: HttpRequest, rule_id: Path[Id]) -> Status[None]:
    rules.tag_rule_delete(actor=actor_of(request), rule_id=rule_id)
    return Status(204, None)


@router.post(
    "/tag-rules/{rule_id}/run",
    response={200: TagRuleRunOut, **error_responses(401, 403, 404, 422)},
    operation_id="tag_rule_run",
    summary="Run an automatic tagging rule now (HQ only): tag who matches, untag who no longer does",
)
def tag_rule_run_api(request: HttpRequest, rule_id: Path[Id]) -> rules.RuleRun:
    return rules.tag_rule_run_now(actor=actor_of(request), rule_id=rule_id)
