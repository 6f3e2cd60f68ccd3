"""Group live codes (群活码), tag invitations and group migrations (社群迁移). Handlers call one service or selector.

Codes of a store are seen by the managers, franchisees and guides of that store; brand-wide codes by HQ. HQ,
region and store managers change them; WeCom must be connected first (409 otherwise).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from pydantic import AwareDatetime, Field, StrictBool

from siyu.api.auth import actor_of
from siyu.api.schemas import (
    NO_NUL_PATTERN,
    TRIMMED_PATTERN,
    BodyId,
    BodyIn,
    Id,
    JsonInt,
    NoNul,
    NotNull,
    PageOut,
    PageParams,
    Trimmed,
    error_responses,
)
from siyu.api.selectors import Page, page_of
from siyu.customers.selectors import customer_card
from siyu.groups.models import WECOM_ROOM_LIMIT, GroupCode, GroupInvite, GroupInviteRule, GroupMigration
from siyu.groups.selectors import (
    access_group_code,
    group_chats_in_scope,
    group_code_list,
    group_code_stats,
    group_invite_list,
    group_invite_rule_list,
    group_migration_list,
    group_migration_stats,
    require_code_manager,
)
from siyu.groups.services import (
    GroupCodeInput,
    GroupSlotInput,
    MigrationSourceInput,
    group_code_create,
    group_code_delete,
    group_code_set_status,
    group_code_sync,
    group_code_update,
    group_invite_rule_create,
    group_invite_rule_delete,
    group_migration_create,
)

router = Router(tags=["group_codes"])

CodeStatusEnum = StrEnum("GroupCodeStatus", {v.upper(): v for v in GroupCode.Status.values})  # type: ignore[misc]
SwitchModeEnum = StrEnum("GroupCodeSwitchMode", {v.upper(): v for v in GroupCode.SwitchMode.values})  # type: ignore[misc]
InviteStatusEnum = StrEnum("GroupInviteStatus", {v.upper(): v for v in GroupInvite.Status.values})  # type: ignore[misc]


def _text(max_length: int, min_length: int = 0, pattern: str = NO_NUL_PATTERN) -> Any:
    return Field(min_length=min_length, max_length=max_length, json_schema_extra={"pattern": pattern})


Threshold = Annotated[int, Field(ge=2, le=WECOM_ROOM_LIMIT), JsonInt]
# Names the services strip: taken already trimmed and not blank, as tag names are.
Title = Annotated[str, _text(100, 1, TRIMMED_PATTERN), Trimmed]


class GroupSlotIn(BodyIn):
    group_id: BodyId
    threshold: Annotated[Threshold | None, NotNull] = Field(None, description="Members at which the code moves on.")
    active_from: Annotated[AwareDatetime | None, NotNull] = None
    active_until: Annotated[AwareDatetime | None, NotNull] = None


class GroupCodeIn(BodyIn):
    name: Title
    state: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,30}$", description="≤30 letters, digits, - _ .")]
    groups: list[GroupSlotIn] = Field(min_length=1, max_length=100)
    store_id: Annotated[BodyId | None, NotNull] = Field(None, description="Required for every role but HQ admin.")
    switch_mode: SwitchModeEnum = SwitchModeEnum.THRESHOLD  # type: ignore[valid-type, attr-defined]
    default_threshold: Threshold = 180
    auto_create: StrictBool = True
    room_base_name: Annotated[str, _text(40), NoNul] = ""
    room_base_id: Annotated[int, Field(ge=0, le=1_000_000), JsonInt] = 1
    invite_text: Annotated[str, _text(500), NoNul] = ""


class GroupSlotOut(Schema):
    group_id: int
    chat_id: str
    name: str
    position: int
    threshold: int
    members: int
    joins: int = Field(description="Customers who joined since the group became part of the code.")
    leaves: int
    net: int
    in_way: bool = Field(description="The join way sends newcomers to this group now.")
    full: bool
    auto_created: bool
    active_from: dt.datetime | None
    active_until: dt.datetime | None


class GroupCodeOut(Schema):
    id: int
    name: str
    state: str
    store_id: int | None
    status: CodeStatusEnum  # type: ignore[valid-type]
    switch_mode: SwitchModeEnum  # type: ignore[valid-type]
    default_threshold: int
    auto_create: bool
    room_base_name: str
    room_base_id: int
    invite_text: str
    qr_code: str = Field(description="The QR picture of the WeCom join way; stable for the code's life.")
    way_chat_ids: list[str] = Field(description="The groups the join way sends newcomers to now, of those in scope.")
    is_full: bool = Field(description="Every group is full and WeCom will not open another.")
    sync_error: str
    synced_at: dt.datetime | None
    created_at: dt.datetime


class GroupCodeDetailOut(GroupCodeOut):
    groups: list[GroupSlotOut] = Field(description="The code's groups whose owner is in the caller's scope.")


class CodeFilters(PageParams):
    status: Annotated[CodeStatusEnum | None, NotNull] = None  # type: ignore[valid-type]
    q: Annotated[str, _text(100), NoNul] = ""


class StatsParams(Schema):
    days: int = Field(30, ge=1, le=366)


class DailyOut(Schema):
    days: list[str]
    joins: list[int]
    leaves: list[int]


class CodeStatsOut(Schema):
    """Counted over the code's groups in the caller's scope (a store manager's are its own store's)."""

    joins: int
    leaves: int
    net: int
    members: int
    groups: list[GroupSlotOut]
    daily: DailyOut


class InviteFilters(PageParams):
    status: Annotated[InviteStatusEnum | None, NotNull] = None  # type: ignore[valid-type]


class InviteOut(Schema):
    id: int
    code_id: int
    customer_id: int
    customer_name_masked: str
    guide_id: int | None
    status: InviteStatusEnum  # type: ignore[valid-type]
    msgid: str
    error: str
    created_at: dt.datetime
    invited_at: dt.datetime | None
    joined_at: dt.datetime | None


class InviteRuleIn(BodyIn):
    tag_id: BodyId
    code_id: BodyId


class InviteRuleOut(Schema):
    id: int
    tag_id: int
    tag_name: str
    code_id: int
    code_name: str
    enabled: bool
    created_at: dt.datetime


class MigrationSourceIn(BodyIn):
    name: Title
    member_count: Annotated[int, Field(ge=1, le=100_000), JsonInt]
    members: Annotated[str, _text(200_000), NoNul] = Field(
        "", description="Nicknames, one a line (stored encrypted); when given, their number is the member count."
    )


class MigrationIn(BodyIn):
    name: Title
    code_id: BodyId
    starts_on: dt.date
    ends_on: dt.date
    caption: Annotated[str, _text(200), NoNul] = ""
    sources: list[MigrationSourceIn] = Field(min_length=1, max_length=50)


class MigrationSourceOut(Schema):
    id: int
    name: str
    member_count: int
    state: str
    qr_code: str
    migrated: int
    rate: float


class MigrationOut(Schema):
    id: int
    name: str
    code_id: int
    caption: str
    starts_on: dt.date
    ends_on: dt.date
    created_at: dt.datetime


class MigrationDetailOut(MigrationOut):
    migrated: int
    source_members: int
    rate: float = Field(description="Migrated people / members of the source groups.")
    sources: list[MigrationSourceOut]
    daily: DailyOut


def _codes(request: HttpRequest, codes: Sequence[GroupCode]) -> list[dict[str, Any]]:
    fields = (
        "id", "name", "state", "store_id", "status", "switch_mode", "default_threshold", "auto_create",
        "room_base_name", "room_base_id", "invite_text", "qr_code", "is_full", "sync_error", "synced_at",
        "created_at",
    )  # fmt: skip
    # Where joiners go, as far as the caller sees: a store's code may also hold other stores' groups.
    seen = group_chats_in_scope(actor=actor_of(request), chat_ids=[c for code in codes for c in code.way_chat_ids])
    return [
        {**{name: getattr(code, name) for name in fields}, "way_chat_ids": [c for c in code.way_chat_ids if c in seen]}
        for code in codes
    ]


def _code(request: HttpRequest, code: GroupCode) -> dict[str, Any]:
    return _codes(request, [code])[0]


def _slots(request: HttpRequest, code: GroupCode, days: int = 30) -> dict[str, Any]:
    stats = group_code_stats(actor=actor_of(request), code_id=code.id, days=days)
    groups = [
        {
            "group_id": g.slot.group_id,
            "chat_id": g.slot.group.chat_id,
            "name": g.slot.group.name,
            "position": g.slot.position,
            "threshold": g.slot.threshold,
            "members": g.members,
            "joins": g.joins,
            "leaves": g.leaves,
            "net": g.net,
            "in_way": g.in_way,
            "full": g.full,
            "auto_created": g.slot.auto_created,
            "active_from": g.slot.active_from,
            "active_until": g.slot.active_until,
        }
        for g in stats.groups
    ]
    daily = {"days": stats.daily.days, "joins": stats.daily.joins, "leaves": stats.daily.leaves}
    return {"groups": groups, "daily": daily, "joins": stats.joins, "leaves": stats.leaves, "net": stats.net,
            "members": stats.members}  # fmt: skip


def _detail(request: HttpRequest, code: GroupCode) -> dict[str, Any]:
    return {**_code(request, code), "groups": _slots(request, code)["groups"]}


def _input(payload: GroupCodeIn) -> GroupCodeInput:
    return GroupCodeInput(
        name=payload.name,
        state=payload.state,
        groups=[GroupSlotInput(g.group_id, g.threshold, g.active_from, g.active_until) for g in payload.groups],
        store_id=payload.store_id,
        switch_mode=payload.switch_mode.value,
        default_threshold=payload.default_threshold,
        auto_create=payload.auto_create,
        room_base_name=payload.room_base_name,
        room_base_id=payload.room_base_id,
        invite_text=payload.invite_text,
    )


@router.get(
    "/group-codes",
    response={200: PageOut[GroupCodeOut], **error_responses(401, 422)},
    operation_id="group_code_list",
    summary="Group codes (群活码) in scope, newest first",
)
def group_code_list_api(request: HttpRequest, filters: Query[CodeFilters]) -> Page[dict[str, Any]]:
    qs = group_code_list(actor=actor_of(request), status=filters.status.value if filters.status else "", q=filters.q)
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: _codes(request, rows))


@router.post(
    "/group-codes",
    response={201: GroupCodeDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="group_code_create",
    summary="Create a group code over groups in scope, with its WeCom join way",
)
def group_code_create_api(request: HttpRequest, payload: GroupCodeIn) -> Status[dict[str, Any]]:
    """409 when WeCom is not connected, the state is taken, or a group is full or dismissed (naming the field).
    A WeCom failure after the code is saved shows in `sync_error`; POST .../sync retries it."""
    code = group_code_create(actor=actor_of(request), data=_input(payload))
    return Status(201, _detail(request, code))


@router.get(
    "/group-codes/{code_id}",
    response={200: GroupCodeDetailOut, **error_responses(401, 404, 422)},
    operation_id="group_code_get",
    summary="A group code with its groups and their counts",
)
def group_code_get_api(request: HttpRequest, code_id: Path[Id]) -> dict[str, Any]:
    return _detail(request, access_group_code(actor=actor_of(request), code_id=code_id))


@router.put(
    "/group-codes/{code_id}",
    response={200: GroupCodeDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="group_code_update",
    summary="Replace a group code's settings and groups (the QR stays the same)",
)
def group_code_update_api(request: HttpRequest, code_id: Path[Id], payload: GroupCodeIn) -> dict[str, Any]:
    code = group_code_update(actor=actor_of(request), code_id=code_id, data=_input(payload))
    return _detail(request, code)


@router.delete(
    "/group-codes/{code_id}",
    response={204: None, **error_responses(401, 403, 404, 409, 422)},
    operation_id="group_code_delete",
    summary="Delete a group code and its WeCom join way",
)
def group_code_delete_api(request: HttpRequest, code_id: Path[Id]) -> Status[None]:
    group_code_delete(actor=actor_of(request), code_id=code_id)
    return Status(204, None)


def _set_status(request: HttpRequest, code_id: int, status: str) -> dict[str, Any]:
    return _code(request, group_code_set_status(actor=actor_of(request), code_id=code_id, status=status))


@router.post(
    "/group-codes/{code_id}/pause",
    response={200: GroupCodeOut, **error_responses(401, 403, 404, 422)},
    operation_id="group_code_pause",
    summary="Pause a code: no invitations, no QR on its landing page (the WeCom way keeps working)",
)
def group_code_pause_api(request: HttpRequest, code_id: Path[Id]) -> dict[str, Any]:
    return _set_status(request, code_id, GroupCode.Status.PAUSED)


@router.post(
    "/group-codes/{code_id}/resume",
    response={200: GroupCodeOut, **error_responses(401, 403, 404, 422)},
    operation_id="group_code_resume",
    summary="Resume a paused code",
)
def group_code_resume_api(request: HttpRequest, code_id: Path[Id]) -> dict[str, Any]:
    return _set_status(request, code_id, GroupCode.Status.ACTIVE)


@router.post(
    "/group-codes/{code_id}/sync",
    response={200: GroupCodeOut, **error_responses(401, 403, 404, 422)},
    operation_id="group_code_sync",
    summary="Write the code's current groups to WeCom again (after a failure)",
)
def group_code_sync_api(request: HttpRequest, code_id: Path[Id]) -> dict[str, Any]:
    actor = actor_of(request)
    code = access_group_code(actor=actor, code_id=code_id)
    require_code_manager(actor)
    return _code(request, group_code_sync(tenant_id=actor.tenant_id, code_id=code.id) or code)


@router.get(
    "/group-codes/{code_id}/stats",
    response={200: CodeStatsOut, **error_responses(401, 404, 422)},
    operation_id="group_code_stats",
    summary="Joins, leaves, net and members per group and by day",
)
def group_code_stats_api(request: HttpRequest, code_id: Path[Id], params: Query[StatsParams]) -> dict[str, Any]:
    code = access_group_code(actor=actor_of(request), code_id=code_id)
    return _slots(request, code, days=params.days)


def _invites(rows: Sequence[GroupInvite]) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "code_id": i.code_id,
            "customer_id": i.customer_id,
            "customer_name_masked": customer_card(i.customer).name_masked,
            "guide_id": i.guide_id,
            "status": i.status,
            "msgid": i.msgid,
            "error": i.error,
            "created_at": i.created_at,
            "invited_at": i.invited_at,
            "joined_at": i.joined_at,
        }
        for i in rows
    ]


@router.get(
    "/group-codes/{code_id}/invites",
    response={200: PageOut[InviteOut], **error_responses(401, 404, 422)},
    operation_id="group_code_invites",
    summary="Invitations to the code sent by tag rules, newest first",
)
def group_code_invites_api(
    request: HttpRequest, code_id: Path[Id], filters: Query[InviteFilters]
) -> Page[dict[str, Any]]:
    qs = group_invite_list(
        actor=actor_of(request), code_id=code_id, status=filters.status.value if filters.status else ""
    )
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=_invites)


def _rule(rule: GroupInviteRule) -> dict[str, Any]:
    return {"id": rule.id, "tag_id": rule.tag_id, "tag_name": rule.tag.name, "code_id": rule.code_id,
            "code_name": rule.code.name, "enabled": rule.enabled, "created_at": rule.created_at}  # fmt: skip


@router.get(
    "/group-invite-rules",
    response={200: list[InviteRuleOut], **error_responses(401)},
    operation_id="group_invite_rule_list",
    summary="Tag → group code invitation rules",
)
def group_invite_rule_list_api(request: HttpRequest) -> list[dict[str, Any]]:
    return [_rule(r) for r in group_invite_rule_list(actor=actor_of(request))]


@router.post(
    "/group-invite-rules",
    response={201: InviteRuleOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="group_invite_rule_create",
    summary="Invite customers who get a tag to a group code (HQ only; one rule per tag)",
)
def group_invite_rule_create_api(request: HttpRequest, payload: InviteRuleIn) -> Status[dict[str, Any]]:
    rule = group_invite_rule_create(actor=actor_of(request), tag_id=payload.tag_id, code_id=payload.code_id)
    return Status(201, _rule(rule))


@router.delete(
    "/group-invite-rules/{rule_id}",
    response={204: None, **error_responses(401, 403, 404, 422)},
    operation_id="group_invite_rule_delete",
    summary="Stop inviting by this tag (invitations already sent stay)",
)
def group_invite_rule_delete_api(request: HttpRequest, rule_id: Path[Id]) -> Status[None]:
    group_invite_rule_delete(actor=actor_of(request), rule_id=rule_id)
    return Status(204, None)


def _migration(m: GroupMigration) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "code_id": m.code_id, "caption": m.caption, "starts_on": m.starts_on,
            "ends_on": m.ends_on, "created_at": m.created_at}  # fmt: skip


def _migration_detail(request: HttpRequest, migration_id: int) -> dict[str, Any]:
    stats = group_migration_stats(actor=actor_of(request), migration_id=migration_id)
    return {
        **_migration(stats.migration),
        "migrated": stats.migrated,
        "source_members": stats.source_members,
        "rate": stats.rate,
        "sources": [
            {
                "id": s.source.id,
                "name": s.source.name,
                "member_count": s.source.member_count,
                "state": s.source.state,
                "qr_code": s.source.qr_code,
                "migrated": s.migrated,
                "rate": s.rate,
            }
            for s in stats.sources
        ],
        "daily": {"days": stats.daily.days, "joins": stats.daily.joins, "leaves": stats.daily.leaves},
    }


@router.get(
    "/group-migrations",
    response={200: PageOut[MigrationOut], **error_responses(401, 422)},
    operation_id="group_migration_list",
    summary="Group migrations (社群迁移) whose target code is in scope",
)
def group_migration_list_api(request: HttpRequest, filters: Query[PageParams]) -> Page[dict[str, Any]]:
    qs = group_migration_list(actor=actor_of(request))
    return page_of(qs, limit=filters.limit, offset=filters.offset, build=lambda rows: [_migration(m) for m in rows])


@router.post(
    "/group-migrations",
    response={201: MigrationDetailOut, **error_responses(400, 401, 403, 404, 409, 422)},
    operation_id="group_migration_create",
    summary="Migrate personal-WeChat groups to a code's WeCom groups, one poster per source group",
)
def group_migration_create_api(request: HttpRequest, payload: MigrationIn) -> Status[dict[str, Any]]:
    migration = group_migration_create(
        actor=actor_of(request),
        name=payload.name,
        code_id=payload.code_id,
        starts_on=payload.starts_on,
        ends_on=payload.ends_on,
        caption=payload.caption,
        sources=[MigrationSourceInput(s.name, s.member_count, s.members) for s in payload.sources],
    )
    return Status(201, _migration_detail(request, migration.id))


@router.get(
    "/group-migrations/{migration_id}",
    response={200: MigrationDetailOut, **error_responses(401, 404, 422)},
    operation_id="group_migration_get",
    summary="A migration with its rate per source group and arrivals by day",
)
def group_migration_get_api(request: HttpRequest, migration_id: Path[Id]) -> dict[str, Any]:
    return _migration_detail(request, migration_id)
