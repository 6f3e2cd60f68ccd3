"""Input and output shapes of the REST API, shared by the routers.

Constraints here mirror the services' own checks so the OpenAPI document tells clients (and schemathesis)
what is valid; the services still validate everything, because the console calls them too.

Inputs are strict where JSON has a type: a body integer must be a JSON integer (not `true`, not `"3"`), a
body must be a JSON object, and unknown body fields are refused (a typo in a PATCH must not be a silent
no-op). Query parameters arrive as text, so they keep pydantic's lax parsing.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Generic, TypeVar

from django.db import models
from ninja import Schema
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.fields import FieldInfo

from siyu.analytics.events import EVENT_TYPES
from siyu.core.models import Guide, Role
from siyu.customers.models import FollowRelation, Gender, Identity, LifecycleStage
from siyu.customers.services import MAX_CITY, MAX_NAME
from siyu.tags.models import TagSource
from siyu.tags.services import MAX_TAG_NAME

T = TypeVar("T")

# Ids are BIGINT columns: anything outside 1..2^63-1 cannot name a row and would overflow the database driver.
MAX_ID = 2**63 - 1
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# OFFSET beyond this is never a real page of a brand's data; bounding it keeps the value inside every
# database's integer range.
MAX_OFFSET = 10_000_000
MAX_TAG_FILTERS = 10
# Orders are PositiveIntegerField (a 32-bit column on PostgreSQL).
MAX_ORDER = 2**31 - 1

# Control characters other than tab/newline are refused by the services (siyu.core.validation.clean_text):
# PostgreSQL text columns and WeCom refuse NUL, and the rest only come from broken clients. The pattern
# documents the same rule in the OpenAPI document.
_CTRL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
NO_NUL_PATTERN = rf"^[^{_CTRL}]*$"
# Names the services strip: the API takes them already trimmed, not blank. `\s` differs between the engines
# involved (Python's re and str.strip() add \x1c-\x1f and \x85, ECMAScript adds \ufeff, which clients and
# schemathesis use), so the edge class names the union: every engine then reads the pattern alike.
_EDGE = rf"[^\s{_CTRL}\x85\ufeff]"
TRIMMED_PATTERN = rf"^{_EDGE}(?:[^{_CTRL}]*{_EDGE})?$"
# What siyu.core.pii.normalize_phone + the services accept: an optional 86/+86/0086 prefix and 11 digits
# starting with 1, with optional single spaces or hyphens; or nothing at all (no phone).
PHONE_PATTERN = r"^(?:(?:(?:\+|00)?86[ -]?)?1(?:[ -]?[0-9]){10})?$"


# --- enums -------------------------------------------------------------------------------------------------
# The OpenAPI document names each enum by its class name, so Django's nested `Identity.Kind` and `Guide.Kind`
# (or `Guide.Status` and `FollowRelation.Status`) would collide as "Kind"/"Status"; each gets its own name.


def str_enum(name: str, choices: type[models.TextChoices]) -> type[StrEnum]:
    """A TextChoices as a named StrEnum for the OpenAPI document (one name per enum, see above)."""
    return StrEnum(name, {value.upper(): value for value in choices.values})  # type: ignore[return-value]


def _int_enum(name: str, choices: type[models.IntegerChoices]) -> type[IntEnum]:
    return IntEnum(name, {label.upper(): value for label, value in zip(choices.names, choices.values, strict=True)})


GenderEnum = _int_enum("Gender", Gender)
LifecycleStageEnum = str_enum("LifecycleStage", LifecycleStage)
IdentityKindEnum = str_enum("IdentityKind", Identity.Kind)
# Phones have their own field (validated, encrypted, masked); as an identity they would bypass all that.
IdentityInKindEnum = StrEnum(  # type: ignore[misc]
    "IdentityInKind", {k.upper(): k for k in Identity.Kind.values if k != Identity.Kind.PHONE}
)
FollowStatusEnum = str_enum("FollowRelationStatus", FollowRelation.Status)
GuideKindEnum = str_enum("GuideKind", Guide.Kind)
GuideStatusEnum = str_enum("GuideStatus", Guide.Status)
TagSourceEnum = str_enum("TagSource", TagSource)
RoleEnum = str_enum("Role", Role)
EventTypeEnum = StrEnum("EventType", {name.replace(".", "_").upper(): name for name in EVENT_TYPES})  # type: ignore[misc]


# --- field types -------------------------------------------------------------------------------------------


def _matches(pattern: str, message: str) -> AfterValidator:
    """Enforce the pattern the field documents, with a message people can act on.

    Python's `re` with fullmatch: `$` would otherwise accept a trailing newline.
    """
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("tag names in a group must be unique")
    return values


def _json_integer(value: Any) -> Any:
    """A JSON integer: 3 or 3.0 (JSON Schema counts both), never true, "3" or 3.5 (pydantic's lax mode would)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not int and not isinstance(value, IntEnum):
        raise ValueError("must be an integer")
    return value


def _text(
    max_length: int, *, min_length: int = 0, pattern: str = NO_NUL_PATTERN, description: str | None = None
) -> FieldInfo:
    """Field constraints of a text input; combine with NoNul (pydantic already refuses unpaired surrogates)."""
    return Field(
        min_length=min_length,
        max_length=max_length,
        description=description,
        json_schema_extra={"pattern": pattern},
    )


def _drop_null(schema: dict[str, Any]) -> None:
    """Document an optional field as not nullable: absent means "not given", null is not a value clients send."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    if schema.get("default", "") is None:
        del schema["default"]


NoNul = _matches(NO_NUL_PATTERN, "must not contain NUL characters")
Trimmed = _matches(TRIMMED_PATTERN, "must not be blank, contain NUL characters, or start or end with spaces")
PhoneFormat = _matches(PHONE_PATTERN, "must be an 11-digit mainland mobile number")
# `X | None` (rather than a union with SkipJsonSchema) keeps pydantic's error locations clean: ("gender",),
# not ("gender", "int-enum[Gender]").
NotNull = Field(json_schema_extra=_drop_null)

# In the query string and the path, ids arrive as text; in a JSON body they must be JSON integers.
JsonInt = BeforeValidator(_json_integer)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# Constraints before the validator: after it, pydantic could no longer fold them into the integer schema.
BodyId = Annotated[int, Field(ge=1, le=MAX_ID), JsonInt]
Order = Annotated[int, Field(ge=0, le=MAX_ORDER), JsonInt]
IntentLevel = Annotated[int, Field(ge=0, le=5), JsonInt]
BodyGender = Annotated[GenderEnum, JsonInt]  # type: ignore[valid-type]

Name = Annotated[str, _text(MAX_NAME, description="Plain text; stored encrypted."), NoNul]
Phone = Annotated[
    str,
    _text(32, pattern=PHONE_PATTERN, description='A mainland mobile number such as "+86 139-0000-1234"; "" for none.'),
    PhoneFormat,
]
City = Annotated[str, _text(MAX_CITY), NoNul]
Source = Annotated[str, _text(64), NoNul]
IdentityValue = Annotated[str, _text(128, min_length=1, pattern=TRIMMED_PATTERN), Trimmed]
SearchText = Annotated[
    str, _text(100, description="A phone number (exact), an identity value, or part of a name."), NoNul
]
TagName = Annotated[
    str,
    _text(
        MAX_TAG_NAME,
        min_length=1,
        pattern=TRIMMED_PATTERN,
        description="1 to 30 characters (WeCom's limit), without leading or trailing spaces.",
    ),
    Trimmed,
]


class BodyIn(BaseModel):
    """Base of every JSON body: a plain pydantic model (no ORM getter), so a non-object body is a 422."""

    model_config = ConfigDict(extra="forbid")


# --- errors and pages --------------------------------------------------------------------------------------


class FieldErrorOut(Schema):
    field: str | None
    message: str


class ErrorOut(Schema):
    """Every error: a message and the offending field when there is one; 422s also list every field error."""

    detail: str
    field: str | None = None
    errors: list[FieldErrorOut] = Field(default_factory=list, description="Present on 422 answers.")


def error_responses(*codes: int) -> dict[int, type[ErrorOut]]:
    """The `response=` entries documenting which errors an operation can answer.

    An operation taking a body (400: malformed JSON) may also get 413 for one over DATA_UPLOAD_MAX_MEMORY_SIZE.
    """
    return dict.fromkeys((*codes, 413) if 400 in codes else codes, ErrorOut)


class PageParams(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class PageOut(Schema, Generic[T]):
    items: list[T]
    count: int = Field(description="Total matching rows, across all pages.")
    limit: int
    offset: int


# --- me ----------------------------------------------------------------------------------------------------


class TenantOut(Schema):
    id: int
    slug: str
    name: str


class ScopeOut(Schema):
    region_id: int | None
    store_id: int | None
    franchisee_id: int | None
    guide_id: int | None


class MeOut(Schema):
    tenant: TenantOut
    user_id: int | None
    username: str
    role: RoleEnum  # type: ignore[valid-type]
    scope: ScopeOut


# --- customers ---------------------------------------------------------------------------------------------


class CustomerFilters(PageParams):
    q: SearchText = ""
    # Bounded: each tag adds a nested subquery (and SQLite caps expression depth).
    tag: list[Id] = Field(
        default_factory=list, max_length=MAX_TAG_FILTERS, description="Tag ids; a customer must carry all of them."
    )
    lifecycle_stage: Annotated[LifecycleStageEnum | None, NotNull] = None  # type: ignore[valid-type]
    store_id: Annotated[Id | None, NotNull] = None
    guide_id: Annotated[Id | None, NotNull] = None


class AppliedTagOut(Schema):
    id: int
    name: str
    group_id: int
    group_name: str
    source: TagSourceEnum  # type: ignore[valid-type]
    applied_at: dt.datetime


class CustomerOut(Schema):
    id: int
    name_masked: str
    phone_masked: str
    gender: GenderEnum  # type: ignore[valid-type]
    city: str
    lifecycle_stage: LifecycleStageEnum  # type: ignore[valid-type]
    intent_level: int
    source: str
    owner_guide_id: int | None
    owner_guide_name: str
    created_at: dt.datetime
    tags: list[AppliedTagOut]


class FollowRelationOut(Schema):
    guide_id: int
    guide_name: str
    store_id: int | None
    status: FollowStatusEnum  # type: ignore[valid-type]
    add_way: int
    state: str
    added_at: dt.datetime
    deleted_at: dt.datetime | None


class IdentityOut(Schema):
    kind: IdentityKindEnum  # type: ignore[valid-type]
    value: str | None = Field(description="Null for phone identities: phones are only shown through reveal.")
    created_at: dt.datetime


class CustomerDetailOut(CustomerOut):
    follow_relations: list[FollowRelationOut]
    identities: list[IdentityOut]


class IdentityIn(BodyIn):
    kind: IdentityInKindEnum  # type: ignore[valid-type]
    value: IdentityValue


class CustomerCreateIn(BodyIn):
    name: Name = ""
    phone: Phone = ""
    gender: BodyGender = GenderEnum.UNKNOWN  # type: ignore[attr-defined]
    city: City = ""
    source: Source = "api"
    lifecycle_stage: LifecycleStageEnum = LifecycleStageEnum.NEW  # type: ignore[valid-type, attr-defined]
    owner_guide_id: BodyId | None = Field(None, description="Required for every role but HQ admin.")
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)


class CustomerUpdateIn(BodyIn):
    """Only the fields sent are changed. Null clears name, phone, city and the owner guide."""

    name: Name | None = None
    phone: Phone | None = None
    city: City | None = None
    # Not nullable in the document: these fields have no "empty" value (an explicit null is a 422).
    gender: Annotated[BodyGender | None, NotNull] = None
    lifecycle_stage: Annotated[LifecycleStageEnum | None, NotNull] = None  # type: ignore[valid-type]
    intent_level: Annotated[IntentLevel | None, NotNull] = None
    owner_guide_id: BodyId | None = None


class PiiOut(Schema):
    name: str
    phone: str
    address: str


class TimelineFilters(PageParams):
    type: list[EventTypeEnum] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(EVENT_TYPES), description="Only events of these types."
    )


class TimelineEventOut(Schema):
    id: int
    type: str
    label: str
    occurred_at: dt.datetime
    guide_id: int | None
    properties: dict[str, Any]


class CustomerTagIn(BodyIn):
    tag_id: BodyId


# --- tags --------------------------------------------------------------------------------------------------


class TagOut(Schema):
    id: int
    group_id: int
    name: str
    order: int
    wecom_tag_id: str


class TagGroupOut(Schema):
    id: int
    name: str
    order: int
    wecom_group_id: str
    tags: list[TagOut]

    @staticmethod
    def resolve_tags(obj: Any) -> list[Any]:
        return list(obj.tags.all())


class TagGroupCreateIn(BodyIn):
    name: TagName
    order: Order = 0
    tags: Annotated[list[TagName], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=100, json_schema_extra={"uniqueItems": True}
    )


class TagCreateIn(BodyIn):
    name: TagName
    order: Order = 0


# --- org ---------------------------------------------------------------------------------------------------


class RegionOut(Schema):
    id: int
    code: str
    name: str


class FranchiseeOut(Schema):
    id: int
    code: str
    name: str


class StoreOut(Schema):
    id: int
    code: str
    name: str
    region_id: int
    franchisee_id: int | None
    city: str
    address: str
    latitude: float | None
    longitude: float | None
    hours: dict[str, list[list[str]]] = Field(
        description='Weekly opening hours, {"mon": [["10:00", "22:00"]], ...}; [] a closed day, {} not set.'
    )
    temporarily_closed: bool


class GuideOut(Schema):
    id: int
    name: str
    wecom_userid: str
    kind: GuideKindEnum  # type: ignore[valid-type]
    status: GuideStatusEnum  # type: ignore[valid-type]
    store_id: int | None
