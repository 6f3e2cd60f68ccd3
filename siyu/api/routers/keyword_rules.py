"""Chat keyword rules (关键词打标规则): customers who say a rule's keywords in a chat get its tags. HQ only.

Handlers call one service or selector; the rules are applied by the archive pull job (siyu.tags.services).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

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
    PageOut,
    PageParams,
    Trimmed,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.tags import selectors, services
from siyu.tags.keywords import MAX_KEYWORD, MAX_WORDS
from siyu.tags.models import KeywordRule

router = Router(tags=["keyword rules"])

KeywordRuleModeEnum = str_enum("KeywordRuleMode", KeywordRule.Mode)
KeywordRuleScopeEnum = str_enum("KeywordRuleScope", KeywordRule.Scope)

RuleName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=services.MAX_RULE_NAME,
        json_schema_extra={"pattern": TRIMMED_PATTERN},
        description="Unique in the brand.",
    ),
    Trimmed,
]
Word = Annotated[
    str,
    Field(min_length=1, max_length=MAX_KEYWORD, json_schema_extra={"pattern": TRIMMED_PATTERN}),
    Trimmed,
]
Words = Annotated[
    list[Word],
    Field(
        max_length=MAX_WORDS,
        description="Matched case-insensitively, full-width and half-width forms alike; duplicates are dropped.",
    ),
]
TagIds = Annotated[list[BodyId], Field(min_length=1, max_length=services.MAX_RULE_TAGS)]

MODE_HELP = (
    "any: a keyword appears; all: every keyword appears; exact: a keyword appears as a word of its own (not inside a "
    "run of letters, digits or Chinese characters); whole: the whole message, less surrounding punctuation, is one."
)
SCOPE_HELP = "Which chats the rule reads: one-to-one (direct), customer groups (group) or both."
CUSTOMER_ONLY_HELP = (
    "Only what customers say (default). Off: a guide's words in a one-to-one chat tag the customer spoken to."
)


class KeywordRuleIn(BodyIn):
    name: RuleName
    keywords: Words = Field(min_length=1)
    exclusions: Words = Field(default_factory=list, description="A message with any of these words never matches.")
    tag_ids: TagIds = Field(description="The brand's tags a match applies.")
    mode: KeywordRuleModeEnum = Field(KeywordRuleModeEnum("any"), description=MODE_HELP)  # type: ignore[valid-type]
    scope: KeywordRuleScopeEnum = Field(KeywordRuleScopeEnum("both"), description=SCOPE_HELP)  # type: ignore[valid-type]
    customer_only: StrictBool = Field(True, description=CUSTOMER_ONLY_HELP)
    enabled: StrictBool = True


class KeywordRulePatch(BodyIn):
    """Any subset of the fields; the others stay. Null is not a value: leave a field out instead."""

    name: Annotated[RuleName | None, NotNull] = None
    keywords: Annotated[Words | None, NotNull] = Field(None, min_length=1)
    exclusions: Annotated[Words | None, NotNull] = None
    tag_ids: Annotated[TagIds | None, NotNull] = None
    mode: Annotated[KeywordRuleModeEnum | None, NotNull] = None  # type: ignore[valid-type]
    scope: Annotated[KeywordRuleScopeEnum | None, NotNull] = None  # type: ignore[valid-type]
    customer_only: Annotated[StrictBool | None, NotNull] = Field(None, description=CUSTOMER_ONLY_HELP)
    enabled: Annotated[StrictBool | None, NotNull] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must not be null; leave it out instead")
        return value


class KeywordRuleTagOut(Schema):
    id: int
    name: str
    group: str


class KeywordRuleOut(Schema):
    id: int
    name: str
    keywords: list[str]
    exclusions: list[str]
    mode: KeywordRuleModeEnum  # type: ignore[valid-type]
    scope: KeywordRuleScopeEnum  # type: ignore[valid-type]
    customer_only: bool
    enabled: bool
    tags: list[KeywordRuleTagOut]
    tagged: int = Field(description="Customer tags this rule applied that are still on the customers.")
    created_at: dt.datetime
    updated_at: dt.datetime


def _out(rule: KeywordRule, counts: dict[int, int]) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "keywords": rule.keywords,
        "exclusions": rule.exclusions,
        "mode": rule.mode,
        "scope": rule.scope,
        "customer_only": rule.customer_only,
        "enabled": rule.enabled,
        "tags": [{"id": t.id, "name": t.name, "group": t.group.name} for t in rule.tags.all()],
        "tagged": counts.get(rule.id, 0),
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def _fresh(request: HttpRequest, rule_id: int) -> dict[str, Any]:
    actor = actor_of(request)
    rule = selectors.access_keyword_rule(actor=actor, rule_id=rule_id)
    return _out(rule, selectors.keyword_rule_tagged_counts(actor=actor))


@router.get(
    "/keyword-rules",
    response={200: PageOut[KeywordRuleOut], **error_responses(401, 403, 422)},
    operation_id="keyword_rule_list",
    summary="The brand's chat keyword rules, oldest first (HQ only)",
)
def keyword_rule_list_api(request: HttpRequest, filters: Query[PageParams]) -> Page[dict[str, Any]]:
    actor = actor_of(request)
    qs = selectors.keyword_rule_list(actor=actor)
    counts = selectors.keyword_rule_tagged_counts(actor=actor)
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_out(r, counts) for r in rows])


@router.post(
    "/keyword-rules",
    response={201: KeywordRuleOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="keyword_rule_create",
    summary="Create a chat keyword rule (HQ only)",
)
def keyword_rule_create_api(request: HttpRequest, payload: KeywordRuleIn) -> Status[dict[str, Any]]:
    """404 naming `tag_ids` for a tag the brand does not have; 409 naming `name` when another rule has the name, or
    `exclusions` when a word is both a keyword and an exclusion."""
    rule = services.keyword_rule_create(
        actor=actor_of(request),
        name=payload.name,
        keywords=payload.keywords,
        exclusions=payload.exclusions,
        tag_ids=payload.tag_ids,
        mode=payload.mode.value,
        scope=payload.scope.value,
        customer_only=payload.customer_only,
        enabled=payload.enabled,
    )
    return Status(201, _fresh(request, rule.id))


@router.get(
    "/keyword-rules/{rule_id}",
    response={200: KeywordRuleOut, **error_responses(401, 403, 404, 422)},
    operation_id="keyword_rule_get",
    summary="One chat keyword rule (HQ only)",
)
def keyword_rule_get_api(request: HttpRequest, rule_id: Path[Id]) -> dict[str, Any]:
    return _fresh(request, rule_id)


@router.patch(
    "/keyword-rules/{rule_id}",
    response={200: KeywordRuleOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="keyword_rule_update",
    summary="Change a chat keyword rule, enable or disable it (HQ only); tags it applied stay",
)
def keyword_rule_update_api(request: HttpRequest, rule_id: Path[Id], payload: KeywordRulePatch) -> dict[str, Any]:
    services.keyword_rule_update(
        actor=actor_of(request),
        rule_id=rule_id,
        name=payload.name,
        keywords=payload.keywords,
        exclusions=payload.exclusions,
        tag_ids=payload.tag_ids,
        mode=payload.mode.value if payload.mode else None,
        scope=payload.scope.value if payload.scope else None,
        customer_only=payload.customer_only,
        enabled=payload.enabled,
    )
    return _fresh(request, rule_id)


@router.delete(
    "/keyword-rules/{rule_id}",
    response={204: None, **error_responses(401, 403, 404, 422)},
    operation_id="keyword_rule_delete",
    summary="Delete a chat keyword rule (HQ only); tags it applied stay on the customers",
)
def keyword_rule_delete_api(request: HttpRequest, rule_id: Path[Id]) -> Status[None]:
    services.keyword_rule_delete(actor=actor_of(request), rule_id=rule_id)
    return Status(204, None)
