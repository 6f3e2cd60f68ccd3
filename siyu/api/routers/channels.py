"""Channel live codes (渠道活码) and welcome messages (欢迎语): CRUD, pause/resume, stats, QR pictures and welcome
sends. Handlers call one service or selector."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router, Schema, Status
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    NO_NUL_PATTERN,
    TRIMMED_PATTERN,
    BodyId,
    BodyIn,
    Id,
    NoNul,
    NotNull,
    PageOut,
    PageParams,
    Trimmed,
    _matches,
    error_responses,
    str_enum,
)
from siyu.api.selectors import Page, page_of
from siyu.channels import selectors as sel
from siyu.channels import services
from siyu.channels.models import LiveCode, WelcomeMessage, WelcomeSend
from siyu.channels.qr import qr_png, qr_svg
from siyu.channels.welcome import TEXT_MAX_CHARS, TEXT_PATTERN

router = Router(tags=["channels"])


LiveCodePurposeEnum = str_enum("LiveCodePurpose", LiveCode.Purpose)
LiveCodeStrategyEnum = str_enum("LiveCodeStrategy", LiveCode.Strategy)
LiveCodeStatusEnum = str_enum("LiveCodeStatus", LiveCode.Status)
WelcomeSendStatusEnum = str_enum("WelcomeSendStatus", WelcomeSend.Status)
WelcomeScopeEnum = StrEnum("WelcomeScope", {"DEFAULT": "default", "GUIDE": "guide"})  # type: ignore[misc]
QrFormatEnum = StrEnum("QrFormat", {"PNG": "png", "SVG": "svg"})  # type: ignore[misc]
PNG = QrFormatEnum("png")

STATE_PATTERN = r"^[A-Za-z0-9_.:-]{1,30}$"
TIME_PATTERN = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"

CodeName = Annotated[str, Field(min_length=1, max_length=100, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed]
State = Annotated[
    str,
    Field(
        max_length=30,
        pattern=STATE_PATTERN,
        description="The attribution key WeCom echoes with every add: 1–30 of A–Z a–z 0–9 _ . : -.",
    ),
]
WelcomeText = Annotated[
    str,
    Field(
        max_length=TEXT_MAX_CHARS,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description="Placeholders {客户昵称}/{nickname}, {导购}/{guide}, {门店}/{store}; {{ and }} for literal braces.",
    ),
    _matches(TEXT_PATTERN, "has a lone brace or an unknown placeholder (known: {客户昵称} {导购} {门店})"),
]
# No control characters and no spaces of any kind, spelt out: `\s` differs between Python's regex engine (which
# validates) and JSON Schema's ECMA one (which the API's clients read), e.g. on U+0085.
_URL_BAD = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
URL_PATTERN = rf"^https?://[^/?#{_URL_BAD}]+[^{_URL_BAD}]*$"
Url = Annotated[str, Field(max_length=2000, pattern=URL_PATTERN)]
Plain = Annotated[str, Field(max_length=128, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed]


class _In(BodyIn):
    """A body whose optional fields may be left out but are never null (null is not a value clients send here),
    except those a model names in `_nullable` (a PATCH clearing a value)."""

    _nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls._nullable:
            raise ValueError("must not be null; leave it out instead")
        return value


class ImageIn(BodyIn):
    # Exactly one source, said in the schema too (clients and generated tests see the rule, not only the 422).
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["asset_id"]}, {"required": ["pic_url"]}]})

    msgtype: Literal["image"]
    asset_id: Annotated[BodyId | None, NotNull] = Field(
        None, description="An uploaded image (console: welcome page); give this or pic_url."
    )
    pic_url: Annotated[str | None, Field(max_length=2000, pattern=URL_PATTERN), NotNull] = Field(
        None, description="An image on the web (http/https), as WeCom's welcome message takes it; or asset_id."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImageIn:
        if (self.asset_id is None) == (self.pic_url is None):
            raise ValueError("give exactly one of asset_id and pic_url")
        return self


class LinkIn(BodyIn):
    msgtype: Literal["link"]
    title: Plain = Field(description="Cut to WeCom's 128 bytes.")
    url: Url
    desc: Annotated[str, Field(max_length=512, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul] = ""
    picurl: Annotated[str, Field(max_length=2000, pattern=r"^$|" + URL_PATTERN)] = ""


class MiniprogramIn(BodyIn):
    msgtype: Literal["miniprogram"]
    title: Annotated[str, Field(max_length=64, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed]
    appid: Annotated[str, Field(max_length=64, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed]
    page: Annotated[str, Field(max_length=500, json_schema_extra={"pattern": TRIMMED_PATTERN}), Trimmed]
    asset_id: BodyId = Field(description="The cover image (an uploaded image).")


class FileIn(BodyIn):
    msgtype: Literal["file"]
    asset_id: BodyId


Attachment = Annotated[ImageIn | LinkIn | MiniprogramIn | FileIn, Field(discriminator="msgtype")]


def _attachments(rows: list[Any] | None) -> list[dict[str, Any]] | None:
    return None if rows is None else [r.model_dump(exclude_none=True) for r in rows]


class WindowIn(_In):
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1, max_length=7, description="0 = Monday")
    start: str = Field(pattern=TIME_PATTERN)
    end: str = Field(pattern=TIME_PATTERN)


class GuideOptionIn(_In):
    guide_id: BodyId
    daily_cap: Annotated[int | None, Field(ge=1, le=services.DAILY_CAP_MAX), NotNull] = None
    schedule: list[WindowIn] = Field(default_factory=list, max_length=14)


class LiveCodeIn(_In):
    name: CodeName
    guide_ids: list[BodyId] = Field(min_length=1, max_length=services.MAX_GUIDES)
    state: Annotated[State | None, NotNull] = None
    purpose: LiveCodePurposeEnum = LiveCodePurposeEnum("channel")  # type: ignore[valid-type]
    store_id: Annotated[BodyId | None, NotNull] = None
    strategy: LiveCodeStrategyEnum = LiveCodeStrategyEnum("round_robin")  # type: ignore[valid-type]
    guide_options: list[GuideOptionIn] = Field(default_factory=list, max_length=services.MAX_GUIDES)
    fallback_guide_id: Annotated[BodyId | None, NotNull] = None
    tag_ids: list[BodyId] = Field(default_factory=list, max_length=services.MAX_TAGS)
    welcome_text: WelcomeText = ""
    welcome_attachments: list[Attachment] = Field(default_factory=list, max_length=9)


class LiveCodePatch(_In):
    _nullable = frozenset({"fallback_guide_id"})
    name: Annotated[CodeName | None, NotNull] = None
    guide_ids: Annotated[list[BodyId] | None, NotNull] = Field(None, min_length=1, max_length=services.MAX_GUIDES)
    state: Annotated[State | None, NotNull] = None
    strategy: Annotated[LiveCodeStrategyEnum | None, NotNull] = None  # type: ignore[valid-type]
    guide_options: Annotated[list[GuideOptionIn] | None, NotNull] = Field(None, max_length=services.MAX_GUIDES)
    fallback_guide_id: BodyId | None = Field(None, description="null clears it (the brand IP account then)")
    tag_ids: Annotated[list[BodyId] | None, NotNull] = Field(None, max_length=services.MAX_TAGS)
    welcome_text: Annotated[WelcomeText | None, NotNull] = None
    welcome_attachments: Annotated[list[Attachment] | None, NotNull] = Field(None, max_length=9)


class LiveCodeGuideOut(Schema):
    guide_id: int
    name: str
    wecom_userid: str
    daily_cap: int | None
    schedule: list[dict[str, Any]]


class WelcomeOut(Schema):
    text: str
    attachments: list[dict[str, Any]]


class LiveCodeOut(Schema):
    id: int
    name: str
    purpose: LiveCodePurposeEnum  # type: ignore[valid-type]
    store_id: int | None
    strategy: LiveCodeStrategyEnum  # type: ignore[valid-type]
    state: str
    status: LiveCodeStatusEnum  # type: ignore[valid-type]
    config_id: str = Field(description="WeCom's contact way; empty while WeCom has not confirmed it (retry).")
    qr_code: str = Field(description="WeCom's own picture URL.")
    qr_png_url: str = Field(description="siyu's QR picture (public, unguessable), PNG.")
    qr_svg_url: str
    wecom_users: list[str] = Field(description="The member WeCom sends the next scan to (if in the caller's scope).")
    fallback_guide_id: int | None
    tag_ids: list[int]
    guides: list[LiveCodeGuideOut] = Field(description="The code's guides in the caller's scope.")
    welcome: WelcomeOut | None
    created_at: dt.datetime


class DayStatOut(Schema):
    day: dt.date
    adds: int
    deletes: int
    net: int


class GuideStatOut(Schema):
    guide_id: int
    name: str
    adds: int
    deletes: int
    active: int


class LiveCodeStatsOut(Schema):
    adds: int
    deletes: int
    net: int
    retention_7d: float | None = Field(description="Share of adds ≥ 7 days old still following 7 days on.")
    retention_base: int
    by_day: list[DayStatOut]
    by_guide: list[GuideStatOut]
    sends: dict[str, int]


class WelcomeSendOut(Schema):
    id: int
    live_code_id: int | None
    guide_id: int | None
    customer_id: int | None
    status: WelcomeSendStatusEnum  # type: ignore[valid-type]
    errcode: int
    error: str
    text: str
    latency_ms: int | None = Field(description="From receiving the add callback to WeCom accepting the message.")
    created_at: dt.datetime
    sent_at: dt.datetime | None


class LiveCodeFilters(PageParams):
    status: Annotated[LiveCodeStatusEnum | None, NotNull] = None  # type: ignore[valid-type]
    purpose: Annotated[LiveCodePurposeEnum | None, NotNull] = None  # type: ignore[valid-type]
    q: Annotated[str, Field(max_length=50, json_schema_extra={"pattern": NO_NUL_PATTERN}), NoNul] = ""


class SendFilters(PageParams):
    status: Annotated[WelcomeSendStatusEnum | None, NotNull] = None  # type: ignore[valid-type]
    live_code_id: Annotated[Id | None, NotNull] = None


class WelcomeMessageIn(_In):
    scope: WelcomeScopeEnum  # type: ignore[valid-type]
    guide_id: Annotated[BodyId | None, NotNull] = None
    text: WelcomeText = ""
    attachments: list[Attachment] = Field(default_factory=list, max_length=9)


class WelcomeMessageOut(Schema):
    id: int
    scope: str
    guide_id: int | None
    text: str
    attachments: list[dict[str, Any]]
    updated_at: dt.datetime


def _options(rows: list[GuideOptionIn] | None) -> dict[int, dict[str, Any]] | None:
    if rows is None:
        return None
    return {r.guide_id: {"daily_cap": r.daily_cap, "schedule": [w.model_dump() for w in r.schedule]} for r in rows}


def _code(request: HttpRequest, code: LiveCode) -> dict[str, Any]:
    # Guides (and the members the next scan reaches) as far as the caller sees: a code shared by two stores shows
    # each store's manager its own guides only.
    actor = actor_of(request)
    welcome = sel.welcome_for_code(code)
    usable = bool(code.config_id) and code.status != LiveCode.Status.DELETED
    return {
        "id": code.id,
        "name": code.name,
        "purpose": code.purpose,
        "store_id": code.store_id,
        "strategy": code.strategy,
        "state": code.state,
        "status": code.status,
        "config_id": code.config_id,
        "qr_code": code.qr_code,
        "qr_png_url": sel.live_code_qr_url(code, "png") if usable else "",
        "qr_svg_url": sel.live_code_qr_url(code, "svg") if usable else "",
        "wecom_users": sel.live_code_next_users(actor=actor, code=code),
        "fallback_guide_id": code.fallback_guide_id,
        "tag_ids": sorted(code.tags.values_list("id", flat=True)),
        "guides": [
            {
                "guide_id": m.guide_id,
                "name": m.guide.name,
                "wecom_userid": m.guide.wecom_userid,
                "daily_cap": m.daily_cap,
                "schedule": m.schedule,
            }
            for m in sel.live_code_members(actor=actor, code=code)
        ],
        "welcome": {"text": welcome.text, "attachments": welcome.attachments} if welcome else None,
        "created_at": code.created_at,
    }


def _fresh(request: HttpRequest, live_code_id: int) -> dict[str, Any]:
    return _code(request, sel.access_live_code(actor=actor_of(request), live_code_id=live_code_id))


@router.post(
    "/live-codes",
    response={201: LiveCodeOut, **error_responses(400, 401, 403, 404, 409, 422, 503)},
    operation_id="live_code_create",
    summary="Create a channel live code and its WeCom contact way",
)
def live_code_create_api(request: HttpRequest, payload: LiveCodeIn) -> Status[dict[str, Any]]:
    """HQ, region and store managers, for guides in their scope. 409 naming `state` when another code uses it, or
    `wecom` when the brand has not connected WeCom; 503 when WeCom did not answer (run it again: the way is found
    by its state, never created twice)."""
    code = services.live_code_create(
        actor=actor_of(request),
        name=payload.name,
        guide_ids=payload.guide_ids,
        state=payload.state or "",
        purpose=payload.purpose.value,
        store_id=payload.store_id,
        tag_ids=payload.tag_ids,
        strategy=payload.strategy.value,
        welcome_text=payload.welcome_text,
        welcome_attachments=_attachments(payload.welcome_attachments) or [],
        guide_options=_options(payload.guide_options),
        fallback_guide_id=payload.fallback_guide_id,
    )
    return Status(201, _fresh(request, code.id))


@router.get(
    "/live-codes",
    response={200: PageOut[LiveCodeOut], **error_responses(401, 422)},
    operation_id="live_code_list",
    summary="Live codes in scope, newest first",
)
def live_code_list_api(request: HttpRequest, filters: Query[LiveCodeFilters]) -> Page[dict[str, Any]]:
    qs = sel.live_code_list(
        actor=actor_of(request),
        status=filters.status.value if filters.status else "",
        purpose=filters.purpose.value if filters.purpose else "",
        q=filters.q,
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_code(request, c) for c in rows])


@router.get(
    "/live-codes/{live_code_id}",
    response={200: LiveCodeOut, **error_responses(401, 404, 422)},
    operation_id="live_code_get",
    summary="One live code",
)
def live_code_get_api(request: HttpRequest, live_code_id: Path[Id]) -> dict[str, Any]:
    return _fresh(request, live_code_id)


@router.patch(
    "/live-codes/{live_code_id}",
    response={200: LiveCodeOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="live_code_update",
    summary="Change a live code; its WeCom way follows",
)
def live_code_update_api(request: HttpRequest, live_code_id: Path[Id], payload: LiveCodePatch) -> dict[str, Any]:
    fields = payload.model_fields_set
    services.live_code_update(
        actor=actor_of(request),
        live_code_id=live_code_id,
        name=payload.name,
        guide_ids=payload.guide_ids,
        guide_options=_options(payload.guide_options),
        strategy=payload.strategy.value if payload.strategy else None,
        state=payload.state,
        tag_ids=payload.tag_ids,
        fallback_guide_id=payload.fallback_guide_id if "fallback_guide_id" in fields else False,
        welcome_text=payload.welcome_text,
        welcome_attachments=_attachments(payload.welcome_attachments),
    )
    return _fresh(request, live_code_id)


@router.delete(
    "/live-codes/{live_code_id}",
    response={200: LiveCodeOut, **error_responses(401, 403, 404, 409, 422, 503)},
    operation_id="live_code_delete",
    summary="Delete a live code (its WeCom way too; its stats stay)",
)
def live_code_delete_api(request: HttpRequest, live_code_id: Path[Id]) -> dict[str, Any]:
    code = services.live_code_delete(actor=actor_of(request), live_code_id=live_code_id)
    return _code(request, code)


@router.post(
    "/live-codes/{live_code_id}/pause",
    response={200: LiveCodeOut, **error_responses(401, 403, 404, 422)},
    operation_id="live_code_pause",
    summary="Pause: scans reach the fallback guide, without the code's tags and welcome",
)
def live_code_pause_api(request: HttpRequest, live_code_id: Path[Id]) -> dict[str, Any]:
    services.live_code_pause(actor=actor_of(request), live_code_id=live_code_id)
    return _fresh(request, live_code_id)


@router.post(
    "/live-codes/{live_code_id}/resume",
    response={200: LiveCodeOut, **error_responses(401, 403, 404, 422)},
    operation_id="live_code_resume",
    summary="Resume a paused live code",
)
def live_code_resume_api(request: HttpRequest, live_code_id: Path[Id]) -> dict[str, Any]:
    services.live_code_resume(actor=actor_of(request), live_code_id=live_code_id)
    return _fresh(request, live_code_id)


@router.get(
    "/live-codes/{live_code_id}/stats",
    response={200: LiveCodeStatsOut, **error_responses(401, 404, 422)},
    operation_id="live_code_stats",
    summary="Adds, deletes, net adds, 7-day retention, per day (30 days) and per guide",
)
def live_code_stats_api(request: HttpRequest, live_code_id: Path[Id]) -> Any:
    return sel.live_code_stats(actor=actor_of(request), live_code_id=live_code_id)


@router.get(
    "/live-codes/{live_code_id}/qr",
    response={200: None, **error_responses(401, 404, 422)},
    operation_id="live_code_qr",
    summary="The QR picture with the brand logo, as PNG or SVG",
    openapi_extra={
        "responses": {
            "200": {
                "description": "The picture",
                "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/svg+xml": {"schema": {"type": "string"}},
                },
            }
        }
    },
)
def live_code_qr_api(
    request: HttpRequest,
    live_code_id: Path[Id],
    format: Query[QrFormatEnum] = PNG,  # type: ignore[valid-type]
) -> HttpResponse:
    code = sel.access_live_code(actor=actor_of(request), live_code_id=live_code_id)
    if not code.config_id or code.status == LiveCode.Status.DELETED:
        from siyu.core.errors import NotFound

        raise NotFound("the live code has no QR (not created in WeCom, or deleted)", field="live_code_id")
    branding = sel.qr_branding(tenant_id=code.tenant_id)
    logo = bytes(branding.logo) if branding and branding.logo else None
    link = sel.live_code_link(code)
    if format.value == "svg":
        response = HttpResponse(qr_svg(link, logo=logo), content_type="image/svg+xml")
    else:
        response = HttpResponse(qr_png(link, logo=logo), content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="live-code-{code.id}.{format.value}"'
    return response


def _send(send: WelcomeSend) -> dict[str, Any]:
    return {
        "id": send.id,
        "live_code_id": send.live_code_id,
        "guide_id": send.guide_id,
        "customer_id": send.customer_id,
        "status": send.status,
        "errcode": send.errcode,
        "error": send.error,
        # The message as written (its placeholders unfilled): the sent text holds the customer's name.
        "text": send.welcome_message.text if send.welcome_message else "",
        "latency_ms": send.latency_ms,
        "created_at": send.created_at,
        "sent_at": send.sent_at,
    }


@router.get(
    "/welcome-sends",
    response={200: PageOut[WelcomeSendOut], **error_responses(401, 404, 422)},
    operation_id="welcome_send_list",
    summary="Welcome messages sent (or failed: 41050 expired code, 41051 already used), newest first",
    description="`live_code_id` outside the caller's scope, or another brand's, answers 404 naming it.",
)
def welcome_send_list_api(request: HttpRequest, filters: Query[SendFilters]) -> Page[dict[str, Any]]:
    qs = sel.welcome_send_list(
        actor=actor_of(request),
        live_code_id=filters.live_code_id,
        status=filters.status.value if filters.status else "",
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_send(s) for s in rows])


@router.get(
    "/welcome-messages",
    response={200: list[WelcomeMessageOut], **error_responses(401)},
    operation_id="welcome_message_list",
    summary="The brand's default and per-guide welcome messages",
)
def welcome_message_list_api(request: HttpRequest) -> list[WelcomeMessage]:
    return list(sel.welcome_messages(actor=actor_of(request)))


@router.put(
    "/welcome-messages",
    response={200: WelcomeMessageOut, 204: None, **error_responses(400, 401, 403, 404, 422)},
    operation_id="welcome_message_save",
    summary="Set the default (HQ) or a guide's welcome message; empty text and no attachments removes it",
)
def welcome_message_save_api(request: HttpRequest, payload: WelcomeMessageIn) -> Any:
    message = services.welcome_message_save(
        actor=actor_of(request),
        scope=payload.scope.value,
        guide_id=payload.guide_id,
        text=payload.text,
        attachments=_attachments(payload.attachments) or [],
    )
    if message is None:
        return Status(204, None)
    return message
