"""Writes of the groups context: mirror WeCom customer groups with their members, and dismiss them.

WeCom is the source of truth for groups, so the writes take a group as WeCom reports it now (groupchat/get) and
work out what changed: members who joined, left or re-joined. Each customer's join and leave is appended to their
timeline (group.joined / group.left); a change to the group writes one audit row. Mirroring the same state twice
changes nothing and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_bulk_record, event_record
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.scopes import Actor
from siyu.core.selectors import access_guide, access_store, guide_list
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.customers.models import FollowRelation, Identity
from siyu.customers.selectors import access_customer, customer_ids_by_identity
from siyu.groups.models import (
    DEFAULT_THRESHOLD,
    MAX_WAY_CHATS,
    WECOM_ROOM_LIMIT,
    CustomerGroup,
    GroupCode,
    GroupCodeSlot,
    GroupInvite,
    GroupInviteRule,
    GroupMember,
    GroupMigration,
    MigrationSource,
)
from siyu.groups.selectors import (
    access_group,
    access_group_code,
    group_code_public_url_path,
    group_code_slots,
    group_code_slots_out_of_scope,
    require_code_manager,
)
from siyu.tags.selectors import access_tag
from siyu.wecom.client import WeComClient, WelcomeAttachment
from siyu.wecom.errors import WeComAPIError
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client, connection_for_tenant

logger = logging.getLogger(__name__)

MAX_NAME = 100
MEMBER_FIELDS = ("member_type", "customer_id", "guide_id", "join_time", "join_scene", "invitor", "state", "left_at")


@dataclass(frozen=True)
class GroupMemberInput:
    """One entry of groupchat/get's member_list."""

    userid: str
    member_type: int  # 1 corp member, 2 external contact
    join_time: dt.datetime
    join_scene: int = 0
    invitor: str = ""
    state: str = ""


@dataclass(frozen=True)
class GroupInput:
    """A customer group as WeCom reports it now; the owner is already resolved to a guide."""

    chat_id: str
    name: str
    owner_guide_id: int
    created_at: dt.datetime
    notice: str = ""
    member_version: str = ""
    members: Sequence[GroupMemberInput] = field(default_factory=tuple)


@dataclass(frozen=True)
class GroupUpsertResult:
    group: CustomerGroup
    created: bool
    changed: bool  # the group or any member row changed (always True when created)
    joined: int  # members who joined or re-joined
    left: int


def _require_brand_wide(actor: Actor) -> None:
    # Groups are mirrored from WeCom by the system actor (callbacks, sync); nobody edits them by hand.
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ or the WeCom connector may change customer groups")


def _lock(actor: Actor, chat_id: str) -> CustomerGroup | None:
    return CustomerGroup.objects.select_for_update().filter(tenant_id=actor.tenant_id, chat_id=chat_id).first()


def _group_props(group: CustomerGroup, **extra: Any) -> dict[str, Any]:
    # "group" (the name) is what the timeline shows; the ids let analytics join without the name.
    return {"group": group.name or group.chat_id, "group_id": group.id, "chat_id": group.chat_id, **extra}


def _joined(actor: Actor, group: CustomerGroup, row: GroupMember) -> Event:
    return event_build(
        tenant_id=actor.tenant_id,
        type="group.joined",
        customer_id=row.customer_id,
        guide_id=group.owner_id,
        occurred_at=row.join_time,
        properties=_group_props(group, join_scene=row.join_scene),
    )


def _left(actor: Actor, group: CustomerGroup, row: GroupMember, at: dt.datetime, reason: str) -> Event:
    return event_build(
        tenant_id=actor.tenant_id,
        type="group.left",
        customer_id=row.customer_id,
        guide_id=group.owner_id,
        occurred_at=at,
        properties=_group_props(group, reason=reason),
    )


def _clean(data: GroupInput) -> dict[str, GroupMemberInput]:
    if not data.chat_id or len(data.chat_id) > 64:
        raise ValidationFailed("chat_id must be 1 to 64 characters", field="chat_id")
    members: dict[str, GroupMemberInput] = {}
    for member in data.members:
        if member.member_type not in GroupMember.Type.values:
            raise ValidationFailed(f"unknown member type {member.member_type}", field="members.type")
        if not member.userid or len(member.userid) > 64:
            raise ValidationFailed("member userid must be 1 to 64 characters", field="members.userid")
        members[member.userid] = member  # WeCom never repeats a member; if it did, the last entry wins
    return members


@transaction.atomic
def group_upsert(*, actor: Actor, data: GroupInput, at: dt.datetime | None = None) -> GroupUpsertResult:
    """Mirror a group and its member list as WeCom reports it; `at` is when members not listed any more left.

    External members are linked to the customer holding their external_userid, corp members to their guide.
    A customer gets group.joined when they join (at WeCom's join_time) or when an existing membership is first
    linked to them, and group.left when they leave. The group row is locked, so two jobs mirroring one group
    apply one after the other; a group seen again after being dismissed is active again.
    """
    _require_brand_wide(actor)
    incoming = _clean(data)
    owner = access_guide(actor=actor, guide_id=data.owner_guide_id)
    now = at or timezone.now()
    wanted: dict[str, Any] = {
        "name": data.name.strip()[:MAX_NAME],
        "owner_id": owner.id,
        "notice": data.notice,
        "created_at": data.created_at,
        "member_version": data.member_version[:64],
        "status": CustomerGroup.Status.ACTIVE,
        "dismissed_at": None,
        "member_count": len(incoming),
    }
    group = _lock(actor, data.chat_id)
    created = False
    if group is None:
        try:
            with transaction.atomic():
                group = CustomerGroup.objects.create(
                    tenant_id=actor.tenant_id, chat_id=data.chat_id, updated_at=now, **wanted
                )
            created = True
        except IntegrityError:
            group = _lock(actor, data.chat_id)  # created meanwhile by a concurrent job: update that one
            if group is None:
                raise
    dirty = [] if created else [name for name, value in wanted.items() if getattr(group, name) != value]
    for name in dirty:
        setattr(group, name, wanted[name])

    externals = [u for u, m in incoming.items() if m.member_type == GroupMember.Type.EXTERNAL]
    internals = [u for u, m in incoming.items() if m.member_type == GroupMember.Type.MEMBER]
    customers = customer_ids_by_identity(actor=actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, values=externals)
    guides = dict(guide_list(actor=actor).filter(wecom_userid__in=internals).values_list("wecom_userid", "id"))
    existing = {row.userid: row for row in GroupMember.objects.filter(group=group)}
    new_rows: list[GroupMember] = []
    changed_rows: list[GroupMember] = []
    events: list[Event] = []
    joined = left = 0
    for userid, member in incoming.items():
        values: dict[str, Any] = {
            "member_type": member.member_type,
            "customer_id": customers.get(userid),
            "guide_id": guides.get(userid),
            "join_time": member.join_time,
            "join_scene": member.join_scene,
            "invitor": member.invitor[:64],
            "state": member.state[:30],
            "left_at": None,
        }
        row = existing.get(userid)
        if row is None:
            row = GroupMember(tenant_id=actor.tenant_id, group=group, userid=userid, **values)
            new_rows.append(row)
            joined += 1
            if row.customer_id:
                events.append(_joined(actor, group, row))
            continue
        came_back = row.left_at is not None
        newly_linked = row.customer_id is None and values["customer_id"] is not None
        changes = [name for name, value in values.items() if getattr(row, name) != value]
        if not changes:
            continue
        for name in changes:
            setattr(row, name, values[name])
        changed_rows.append(row)
        joined += came_back
        if row.customer_id and (came_back or newly_linked):
            events.append(_joined(actor, group, row))
    for userid, row in existing.items():
        if userid not in incoming and row.left_at is None:
            row.left_at = now
            changed_rows.append(row)
            left += 1
            if row.customer_id:
                events.append(_left(actor, group, row, now, "left"))

    changed = created or bool(dirty or new_rows or changed_rows)
    if not changed:
        return GroupUpsertResult(group, created=False, changed=False, joined=0, left=0)
    group.updated_at = now
    if not created:
        group.save(update_fields=[*dirty, "updated_at"])
    GroupMember.objects.bulk_create(new_rows)
    GroupMember.objects.bulk_update(changed_rows, fields=list(MEMBER_FIELDS))
    event_bulk_record(events=events)
    audit_record(
        actor=actor,
        action="group.create" if created else "group.update",
        target_type="customer_group",
        target_id=group.id,
        detail={"chat_id": group.chat_id, "fields": dirty, "joined": joined, "left": left},
    )
    _group_changed(actor, group)
    return GroupUpsertResult(group, created=created, changed=True, joined=joined, left=left)


@transaction.atomic
def group_dismiss(*, actor: Actor, chat_id: str, at: dt.datetime | None = None) -> bool:
    """Mark a group dismissed (解散) at `at`: everyone still in it leaves. False when unknown or already dismissed."""
    _require_brand_wide(actor)
    group = _lock(actor, chat_id)
    if group is None or group.status == CustomerGroup.Status.DISMISSED:
        return False
    now = at or timezone.now()
    remaining = list(GroupMember.objects.filter(group=group, left_at__isnull=True))
    for row in remaining:
        row.left_at = now
    GroupMember.objects.bulk_update(remaining, fields=["left_at"])
    event_bulk_record(events=[_left(actor, group, row, now, "dismissed") for row in remaining if row.customer_id])
    group.status = CustomerGroup.Status.DISMISSED
    group.dismissed_at = now
    group.member_count = 0
    group.updated_at = now
    group.save(update_fields=["status", "dismissed_at", "member_count", "updated_at"])
    audit_record(
        actor=actor,
        action="group.dismiss",
        target_type="customer_group",
        target_id=group.id,
        detail={"chat_id": chat_id, "members": len(remaining)},
    )
    _group_changed(actor, group)
    return True


@transaction.atomic
def group_members_link_customer(*, actor: Actor, external_userid: str, customer_id: int) -> int:
    """Link the group memberships of `external_userid` to a customer who just became known (e.g. added a guide).

    Current memberships get their group.joined event now that there is a customer to show it on. Returns how
    many membership rows were linked.
    """
    _require_brand_wide(actor)
    access_customer(actor=actor, customer_id=customer_id)
    rows = list(
        GroupMember.objects.select_related("group")
        .filter(
            tenant_id=actor.tenant_id,
            member_type=GroupMember.Type.EXTERNAL,
            userid=external_userid,
            customer__isnull=True,
        )
        .order_by("id")
    )
    for row in rows:
        row.customer_id = customer_id
    GroupMember.objects.bulk_update(rows, fields=["customer_id"])
    event_bulk_record(events=[_joined(actor, row.group, row) for row in rows if row.left_at is None])
    return len(rows)


# == group live codes (群活码) ======================================================================================
# A code is a WeCom 「加入群聊」 way whose QR never changes while the groups behind it do. siyu decides which groups
# the way holds (the window) from the mirrored member counts; `group_code_sync` writes that window to WeCom. Every
# step is safe to re-run: the window is recomputed from the rows, and WeCom is only written when it differs.

ClientFactory = Callable[[WeComConnection], WeComClient]
STATE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,30}$")
MAX_CODE_GROUPS = 100
MIGRATION_STATE_PREFIX = "mg"  # states of migration posters: "mg<migration id>s<source id>"
SYNC_LOCK_SECONDS = 60


@dataclass(frozen=True)
class GroupSlotInput:
    """One group of a code: its threshold (the code's default when None) and, in schedule mode, its window."""

    group_id: int
    threshold: int | None = None
    active_from: dt.datetime | None = None
    active_until: dt.datetime | None = None


@dataclass(frozen=True)
class GroupCodeInput:
    name: str
    state: str
    groups: Sequence[GroupSlotInput]
    store_id: int | None = None
    switch_mode: str = GroupCode.SwitchMode.THRESHOLD
    default_threshold: int = DEFAULT_THRESHOLD
    auto_create: bool = True
    room_base_name: str = ""
    room_base_id: int = 1
    invite_text: str = ""


def _clean_threshold(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= WECOM_ROOM_LIMIT:
        raise ValidationFailed(
            f"{field} must be a member count from 2 to {WECOM_ROOM_LIMIT} (WeCom's limit for joining by QR code)",
            field=field,
        )
    return value


# Schedules and campaign dates beyond these are typos, and year-1 times cannot even be converted to UTC.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def _clean_when(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        day = value.astimezone(dt.UTC).date() if timezone.is_aware(value) else None
    except (OverflowError, ValueError):
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        raise Conflict(f"{field} must be a time with its time zone between 2000 and 2099", field=field)
    return value


def _clean_state(state: str) -> str:
    if not isinstance(state, str) or not STATE_PATTERN.fullmatch(state):
        raise ValidationFailed(
            "state must be 1 to 30 letters, digits, '-', '_' or '.' (WeCom's limit is 30 characters)", field="state"
        )
    if state.startswith(MIGRATION_STATE_PREFIX):
        raise ValidationFailed(
            f"states starting with {MIGRATION_STATE_PREFIX!r} are kept for migrations", field="state"
        )
    return state


def _require_connection(tenant_id: int) -> WeComConnection:
    connection = connection_for_tenant(tenant_id=tenant_id)
    if connection is None:
        raise Conflict("the brand is not connected to WeCom: set up the connection first", field=None)
    return connection


def _clean_code(actor: Actor, data: GroupCodeInput, code: GroupCode | None) -> dict[str, Any]:
    """Every field checked before anything is written; the groups come back resolved, in order."""
    name = clean_text(data.name, field="name", max_length=100, required=True)
    state = _clean_state(data.state)
    taken = GroupCode.objects.filter(tenant_id=actor.tenant_id, state=state).exclude(id=code.id if code else None)
    if taken.exists():
        raise Conflict(f"state {state!r} is already used by another group code", field="state")
    if data.switch_mode not in GroupCode.SwitchMode.values:
        raise ValidationFailed(
            f"switch_mode must be one of {', '.join(GroupCode.SwitchMode.values)}", field="switch_mode"
        )
    default_threshold = _clean_threshold(data.default_threshold, "default_threshold")
    room_base_name = clean_text(data.room_base_name, field="room_base_name", max_length=40) or name[:40]
    if (
        isinstance(data.room_base_id, bool)
        or not isinstance(data.room_base_id, int)
        or not 0 <= data.room_base_id <= 10**6
    ):
        raise ValidationFailed("room_base_id must be a number from 0 to 1000000", field="room_base_id")
    invite_text = clean_text(data.invite_text, field="invite_text", max_length=500)
    store = None
    if data.store_id is not None:
        store = access_store(actor=actor, store_id=data.store_id)
    elif not actor.is_brand_wide:
        raise ValidationFailed("choose one of your stores: only HQ makes brand-wide group codes", field="store_id")
    if not data.groups:
        raise ValidationFailed("choose at least one customer group", field="group_ids")
    # Groups of the code the editor may not see (HQ put other stores' groups on it) are kept as they are: they
    # count towards the code's size and may carry its schedule.
    hidden = group_code_slots_out_of_scope(actor=actor, code=code) if code else []
    kept_hidden = sum(1 for s in hidden if not s.auto_created)
    if len(data.groups) + kept_hidden > MAX_CODE_GROUPS:
        also = f" ({kept_hidden} of them outside your scope are kept)" if kept_hidden else ""
        raise ValidationFailed(f"a code takes at most {MAX_CODE_GROUPS} groups{also}", field="group_ids")
    ids = [g.group_id for g in data.groups]
    if len(set(ids)) != len(ids):
        raise Conflict("a group is listed twice", field="group_ids")
    kept = {s.group_id for s in GroupCodeSlot.objects.filter(code=code)} if code else set()
    slots: list[tuple[CustomerGroup, GroupSlotInput, int]] = []
    for i, slot in enumerate(data.groups):
        group = access_group(actor=actor, group_id=slot.group_id)
        threshold = _clean_threshold(
            slot.threshold if slot.threshold is not None else default_threshold, f"groups.{i}.threshold"
        )
        if group.status != CustomerGroup.Status.ACTIVE:
            raise Conflict(f"group {group} has been dismissed", field="group_ids")
        if group.id not in kept and group.member_count >= threshold:
            # A full group would be skipped by the code at once: say so instead of silently accepting it.
            raise Conflict(
                f"group {group} is full ({group.member_count} of {threshold} members): choose a group with room",
                field="group_ids",
            )
        start = _clean_when(slot.active_from, f"groups.{i}.active_from")
        end = _clean_when(slot.active_until, f"groups.{i}.active_until")
        if start and end and start >= end:
            raise Conflict("a group's schedule must end after it starts", field=f"groups.{i}.active_until")
        slots.append((group, slot, threshold))
    if data.switch_mode == GroupCode.SwitchMode.SCHEDULE and not any(
        s.active_from or s.active_until for s in [*data.groups, *hidden]
    ):
        raise Conflict("schedule mode needs a start or end time on at least one group", field="groups")
    return {
        "fields": {
            "name": name,
            "state": state,
            "store": store,
            "switch_mode": data.switch_mode,
            "default_threshold": default_threshold,
            "auto_create": bool(data.auto_create),
            "room_base_name": room_base_name,
            "room_base_id": data.room_base_id,
            "invite_text": invite_text,
        },
        "slots": slots,
    }


def _write_slots(
    actor: Actor, code: GroupCode, slots: list[tuple[CustomerGroup, GroupSlotInput, int]], now: dt.datetime
) -> list[int]:
    """Make the editor's configured groups of the code these, in this order; groups WeCom opened for it stay after
    the configured ones.

    Groups the editor may not see (a store manager editing a code HQ also put other stores' groups on) are kept
    as they are, thresholds and schedules untouched, at their places among the configured groups: the editor's
    groups fill the places its own groups held, in the order given, and any more go after them all. HQ sees every
    group, so its list replaces the configured groups. Returns the kept groups' ids, in order."""
    existing = list(GroupCodeSlot.objects.filter(code=code).order_by("position", "id"))
    hidden = {s.id for s in group_code_slots_out_of_scope(actor=actor, code=code)} if existing else set()
    wanted = {group.id for group, _, _ in slots}
    GroupCodeSlot.objects.filter(code=code, auto_created=False).exclude(id__in=hidden).exclude(
        group_id__in=wanted
    ).delete()
    opened = {row.id for row in existing if row.auto_created}
    by_group = {row.group_id: row for row in existing}
    edited: list[GroupCodeSlot] = []
    for group, slot, threshold in slots:
        row = by_group.get(group.id) or GroupCodeSlot(tenant_id=code.tenant_id, code=code, group=group, added_at=now)
        row.threshold, row.active_from, row.active_until = threshold, slot.active_from, slot.active_until
        row.auto_created = False
        edited.append(row)
    queue = iter(edited)
    order: list[GroupCodeSlot] = []
    for row in existing:
        if row.id in opened:
            continue  # after the configured groups (or configured now, when the editor listed it)
        if row.id in hidden:
            order.append(row)
        elif (mine := next(queue, None)) is not None:
            order.append(mine)
    order += queue
    order += [row for row in existing if row.id in opened and row.group_id not in wanted]
    for position, row in enumerate(order):
        if row.id in hidden or (row.id in opened and row.group_id not in wanted):
            if row.position != position:
                GroupCodeSlot.objects.filter(id=row.id).update(position=position)
        else:
            row.position = position
            row.save()
    return [row.group_id for row in order if row.id in hidden and not row.auto_created]


def group_code_create(
    *, actor: Actor, data: GroupCodeInput, client_factory: ClientFactory = connection_client
) -> GroupCode:
    """Create a group code (群活码) and its WeCom join way.

    The rows are committed first, then the way is created; should WeCom fail, the code keeps `sync_error` and
    is retried by `group_code_sync` (the console's "sync" button, the next group change)."""
    require_code_manager(actor)
    cleaned = _clean_code(actor, data, None)
    _require_connection(actor.tenant_id)
    now = timezone.now()
    try:
        with transaction.atomic():
            code = GroupCode.objects.create(
                tenant_id=actor.tenant_id,
                public_token=secrets.token_urlsafe(16)[:22],
                created_by_id=actor.user_id,
                created_at=now,
                updated_at=now,
                **cleaned["fields"],
            )
            _write_slots(actor, code, cleaned["slots"], now)
            audit_record(
                actor=actor,
                action="group_code.create",
                target_type="group_code",
                target_id=code.id,
                detail={"state": code.state, "groups": [g.id for g, _, _ in cleaned["slots"]]},
            )
    except IntegrityError as exc:  # the same state created by a concurrent request
        raise Conflict(f"state {cleaned['fields']['state']!r} is already used", field="state") from exc
    return group_code_sync(tenant_id=actor.tenant_id, code_id=code.id, client_factory=client_factory) or code


def group_code_update(
    *, actor: Actor, code_id: int, data: GroupCodeInput, client_factory: ClientFactory = connection_client
) -> GroupCode:
    """Change a code's settings and groups; the join way (and its QR) stays, holding the new window."""
    require_code_manager(actor)
    code = access_group_code(actor=actor, code_id=code_id)
    cleaned = _clean_code(actor, data, code)
    now = timezone.now()
    with transaction.atomic():
        code = GroupCode.objects.select_for_update().get(id=code.id)
        changed = [name for name, value in cleaned["fields"].items() if getattr(code, name) != value]
        for name in changed:
            setattr(code, name, cleaned["fields"][name])
        code.updated_at = now
        try:
            with transaction.atomic():
                code.save()
        except IntegrityError as exc:
            raise Conflict(f"state {code.state!r} is already used", field="state") from exc
        kept = _write_slots(actor, code, cleaned["slots"], now)
        audit_record(
            actor=actor,
            action="group_code.update",
            target_type="group_code",
            target_id=code.id,
            detail={"fields": changed, "groups": [g.id for g, _, _ in cleaned["slots"]], "kept_out_of_scope": kept},
        )
    return group_code_sync(tenant_id=actor.tenant_id, code_id=code.id, client_factory=client_factory) or code


def group_code_set_status(*, actor: Actor, code_id: int, status: str) -> GroupCode:
    """Pause or resume a code. A paused code sends no invitations and its landing page shows no QR; the WeCom
    way keeps working, so printed posters never strand someone who scans them."""
    require_code_manager(actor)
    if status not in GroupCode.Status.values:
        raise ValidationFailed(f"status must be one of {', '.join(GroupCode.Status.values)}", field="status")
    code = access_group_code(actor=actor, code_id=code_id)
    with transaction.atomic():
        updated = (
            GroupCode.objects.filter(id=code.id).exclude(status=status).update(status=status, updated_at=timezone.now())
        )
        if updated:
            audit_record(
                actor=actor,
                action=f"group_code.{'pause' if status == 'paused' else 'resume'}",
                target_type="group_code",
                target_id=code.id,
            )
    return GroupCode.objects.get(id=code.id)


def group_code_delete(*, actor: Actor, code_id: int, client_factory: ClientFactory = connection_client) -> None:
    """Delete a code and its WeCom join way (its QR stops working). Refused while a migration uses it."""
    require_code_manager(actor)
    code = access_group_code(actor=actor, code_id=code_id)
    if GroupMigration.objects.filter(code=code).exists():
        raise Conflict("a group migration uses this code: delete the migration first", field="code_id")
    connection = connection_for_tenant(tenant_id=actor.tenant_id)
    if code.config_id and connection is not None:
        with client_factory(connection) as client:
            try:
                client.join_way_delete(code.config_id)
            except WeComAPIError as exc:
                if exc.errcode != INVALID_CONFIG_ID:  # already gone in WeCom is what we want
                    raise Conflict(f"WeCom refused to delete the join way: {exc.errmsg}", field=None) from exc
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="group_code.delete",
            target_type="group_code",
            target_id=code.id,
            detail={"state": code.state},
        )
        code.delete()


# -- the window and the WeCom side ---------------------------------------------------------------------------------

INVALID_CONFIG_ID = 41044  # get/update/del_join_way: no such way (deleted in WeCom, or another app's)


def _in_schedule(slot: GroupCodeSlot, now: dt.datetime) -> bool:
    return (slot.active_from is None or slot.active_from <= now) and (
        slot.active_until is None or now < slot.active_until
    )


@dataclass(frozen=True)
class Window:
    chat_ids: list[str]
    full: bool  # every group is at its threshold and WeCom will not open another
    next_change: dt.datetime | None  # schedule mode: when the window changes by time alone


def code_window(code: GroupCode, slots: Sequence[GroupCodeSlot], now: dt.datetime) -> Window:
    """Which chats the join way should hold now (at most five, in order).

    Threshold mode: the first groups below their threshold. Schedule mode: the same among the groups whose
    schedule covers `now` (all groups when none does). When every group is at its threshold the way keeps the
    groups with the most room, so WeCom fills them to its own limit (200) and, with auto-create on, then opens
    the next group (`room_base_name` + number), which siyu adds to the code when it appears.
    """
    live = [s for s in slots if s.group.status == CustomerGroup.Status.ACTIVE]
    candidates = live
    next_change = None
    if code.switch_mode == GroupCode.SwitchMode.SCHEDULE:
        scheduled = [s for s in live if _in_schedule(s, now)]
        candidates = scheduled or live
        edges = [t for s in live for t in (s.active_from, s.active_until) if t is not None and t > now]
        next_change = min(edges, default=None)
    room = [s for s in candidates if s.group.member_count < s.threshold]
    if room:
        return Window([s.group.chat_id for s in room[:MAX_WAY_CHATS]], False, next_change)
    most_room_first = sorted(candidates, key=lambda s: (s.group.member_count, s.position))
    chat_ids = [s.group.chat_id for s in most_room_first[:MAX_WAY_CHATS]]
    return Window(chat_ids, bool(chat_ids) and not code.auto_create, next_change)


def _attach_group(code: GroupCode, group: CustomerGroup, now: dt.datetime) -> GroupCodeSlot:
    """A group WeCom opened for the code (auto_create_room), appended after the code's groups."""
    last = GroupCodeSlot.objects.filter(code=code).aggregate(m=Max("position"))["m"]
    slot, _ = GroupCodeSlot.objects.get_or_create(
        code=code,
        group=group,
        defaults={
            "tenant_id": code.tenant_id,
            "position": (last or 0) + 1,
            "threshold": code.default_threshold,
            "auto_created": True,
            "added_at": now,
        },
    )
    return slot


def _way_owners(code: GroupCode) -> list[GroupCode | MigrationSource]:
    """Everything whose join way shows the code's window: the code itself and its migrations' posters."""
    sources = MigrationSource.objects.filter(tenant_id=code.tenant_id, migration__code=code).order_by("id")
    return [code, *sources.select_related("migration")]


def _sync_way(
    client: WeComClient, code: GroupCode, owner: GroupCode | MigrationSource, window: Window, now: dt.datetime
) -> list[str]:
    """Create or update one join way to hold `window`; returns chats WeCom lists that siyu's code lacks (groups
    WeCom opened through this way)."""
    state = owner.state
    remark = (code.name if isinstance(owner, GroupCode) else f"{owner.migration.name}·{owner.name}")[:30]
    base_id = code.room_base_id
    extra: list[str] = []
    if owner.config_id:
        try:
            current = client.join_way_get(owner.config_id)
        except WeComAPIError as exc:
            if exc.errcode != INVALID_CONFIG_ID:
                raise
            owner.config_id = ""  # deleted in WeCom's admin console: make a new one (the QR changes, say so)
            logger.warning("join way of %s %s vanished in WeCom; creating a new one", type(owner).__name__, owner.id)
        else:
            # Chats WeCom lists that siyu neither wants nor wrote there itself: WeCom opened them. (A chat siyu wrote
            # and an editor has since taken off the code is not one, and must not come back as an opened group.)
            written = set(owner.way_chat_ids or [])
            extra = [c for c in current.get("chat_id_list", []) if c not in window.chat_ids and c not in written]
            base_id = max(base_id, int(current.get("room_base_id") or 0))  # WeCom counts up as it opens groups
            same = (
                list(current.get("chat_id_list", [])) == window.chat_ids
                and bool(current.get("auto_create_room")) == code.auto_create
                and (current.get("room_base_name") or "") == (code.room_base_name if code.auto_create else "")
            )
            if not same:
                client.join_way_update(
                    owner.config_id,
                    chat_ids=window.chat_ids,
                    state=state,
                    remark=remark,
                    auto_create_room=code.auto_create,
                    room_base_name=code.room_base_name,
                    room_base_id=base_id,
                )
    if not owner.config_id:
        # Not idempotent, and WeCom has no list of join ways to find a lost one by its state: the id is saved in
        # its own transaction the moment WeCom answers, so no later failure can make siyu create it twice.
        config_id = client.join_way_add(
            chat_ids=window.chat_ids,
            state=state,
            remark=remark,
            auto_create_room=code.auto_create,
            room_base_name=code.room_base_name,
            room_base_id=base_id,
        )
        type(owner).objects.filter(id=owner.id).update(config_id=config_id)
        owner.config_id = config_id
        owner.qr_code = str(client.join_way_get(config_id).get("qr_code") or "")
    owner.way_chat_ids = window.chat_ids
    type(owner).objects.filter(id=owner.id).update(
        config_id=owner.config_id, qr_code=owner.qr_code, way_chat_ids=owner.way_chat_ids
    )
    if base_id != code.room_base_id:
        GroupCode.objects.filter(id=code.id, room_base_id__lt=base_id).update(room_base_id=base_id)
        code.room_base_id = base_id
    return extra


def group_code_sync(
    *, tenant_id: int, code_id: int, client_factory: ClientFactory = connection_client, now: dt.datetime | None = None
) -> GroupCode | None:
    """Write the code's current window to WeCom (its own way and its migration posters' ways).

    Safe to run any number of times and from any process: one run per code at a time (a cache lock; a run that
    finds it taken marks the code dirty and the holder goes round again), and WeCom is written only where it
    differs. Groups WeCom opened through a way are added to the code. None when the code does not exist."""
    lock, dirty = f"groups:code-sync:{code_id}", f"groups:code-sync-dirty:{code_id}"
    if not cache.add(lock, "1", timeout=SYNC_LOCK_SECONDS):
        cache.set(dirty, "1", timeout=SYNC_LOCK_SECONDS * 2)
        return GroupCode.objects.filter(tenant_id=tenant_id, id=code_id).first()
    try:
        for _ in range(3):
            cache.delete(dirty)
            code = _sync_once(tenant_id, code_id, client_factory, now)
            if code is None or not cache.get(dirty):
                return code
        return code
    finally:
        cache.delete(lock)


def _sync_once(
    tenant_id: int, code_id: int, client_factory: ClientFactory, now: dt.datetime | None
) -> GroupCode | None:
    code = GroupCode.objects.filter(tenant_id=tenant_id, id=code_id).first()
    if code is None:
        return None
    when = now or timezone.now()
    connection = connection_for_tenant(tenant_id=tenant_id)
    error = ""
    window = code_window(code, group_code_slots(code=code), when)
    if connection is None:
        error = "the brand is not connected to WeCom"
    elif not window.chat_ids:
        error = "the code has no active group left: add a group"
    else:
        try:
            with client_factory(connection) as client:
                for _ in range(2):  # a second pass when WeCom opened groups we had not heard of yet
                    extra: list[str] = []
                    for owner in _way_owners(code):
                        extra += _sync_way(client, code, owner, window, when)
                    added = _attach_chats(code, extra, when)
                    if not added:
                        break
                    window = code_window(code, group_code_slots(code=code), when)
        except WeComAPIError as exc:
            error = str(exc)[:500]
            logger.warning("group code %s: %s", code.id, exc)
    GroupCode.objects.filter(id=code.id).update(
        is_full=window.full, sync_error=error, synced_at=when if not error else code.synced_at
    )
    _schedule_next(code, window)
    return GroupCode.objects.select_related("store").get(id=code.id)


def _attach_chats(code: GroupCode, chat_ids: Collection[str], now: dt.datetime) -> int:
    if not chat_ids:
        return 0
    groups = CustomerGroup.objects.filter(tenant_id=code.tenant_id, chat_id__in=list(chat_ids))
    have = set(GroupCodeSlot.objects.filter(code=code).values_list("group_id", flat=True))
    added = 0
    for group in groups:
        if group.id not in have:
            _attach_group(code, group, now)
            added += 1
    return added


def _schedule_next(code: GroupCode, window: Window) -> None:
    """Schedule mode: run again when the schedule turns (backends that cannot defer a job get no schedule; the
    next group change or the console's sync button catches up)."""
    if window.next_change is None or not task_backends[DEFAULT_TASK_BACKEND_ALIAS].supports_defer:
        return
    from siyu.groups.tasks import group_code_sync_run  # tasks import this module: import late, no cycle

    enqueue_on_commit(group_code_sync_run.using(run_after=window.next_change), code.tenant_id, code.id)


def _codes_of_tenant(tenant_id: int) -> bool:
    return GroupCode.objects.filter(tenant_id=tenant_id).exists()


def _group_changed(actor: Actor, group: CustomerGroup) -> None:
    """After a group's members changed: let the codes react once this transaction commits (no WeCom call while
    the callback's transaction is open)."""
    if not _codes_of_tenant(actor.tenant_id):
        return
    from siyu.groups.tasks import group_codes_group_changed_run  # tasks import this module: no cycle

    enqueue_on_commit(group_codes_group_changed_run, actor.tenant_id, group.id)


def group_codes_group_changed(
    *, tenant_id: int, group_id: int, client_factory: ClientFactory = connection_client
) -> list[int]:
    """A group's members changed (or it was created or dismissed): attach it to the code it was opened for
    (members who came through a code's or a migration poster's state), mark invited customers now in a code's
    group as joined, and sync every code whose window is no longer what WeCom holds. Returns the synced codes."""
    group = CustomerGroup.objects.filter(tenant_id=tenant_id, id=group_id).first()
    if group is None:
        return []
    now = timezone.now()
    with transaction.atomic():
        slots = list(GroupCodeSlot.objects.filter(tenant_id=tenant_id, group=group).select_related("code"))
        if not slots:
            states = set(
                GroupMember.objects.filter(group=group, left_at__isnull=True)
                .exclude(state="")
                .values_list("state", flat=True)
            )
            code = GroupCode.objects.filter(tenant_id=tenant_id, state__in=states).first() if states else None
            if code is None and states:
                source = (
                    MigrationSource.objects.filter(tenant_id=tenant_id, state__in=states)
                    .select_related("migration__code")
                    .first()
                )
                code = source.migration.code if source else None
            if code is not None:
                slots = [_attach_group(code, group, now)]
                audit_record(
                    actor=Actor.system(tenant_id),
                    action="group_code.group_added",
                    target_type="group_code",
                    target_id=code.id,
                    detail={"chat_id": group.chat_id, "auto_created": True},
                )
        for slot in slots:
            if group.member_count >= slot.threshold and slot.full_at is None:
                GroupCodeSlot.objects.filter(id=slot.id).update(full_at=now)
        _invites_mark_joined(tenant_id, group, [s.code_id for s in slots], now)
    synced = []
    for slot in slots:
        code = GroupCode.objects.get(id=slot.code_id)
        window = code_window(code, group_code_slots(code=code), now)
        if window.chat_ids != list(code.way_chat_ids) or window.full != code.is_full or not code.config_id:
            group_code_sync(tenant_id=tenant_id, code_id=code.id, client_factory=client_factory, now=now)
            synced.append(code.id)
    return synced


# == tag → group invitations (按标签邀请入群) =========================================================================


def group_invite_rule_create(*, actor: Actor, tag_id: int, code_id: int) -> GroupInviteRule:
    """Customers who get `tag` from now on are invited to `code`. One rule per tag (HQ: tags are brand-wide)."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ sets up invitations by tag")
    tag = access_tag(actor=actor, tag_id=tag_id)
    code = access_group_code(actor=actor, code_id=code_id)
    with transaction.atomic():
        if GroupInviteRule.objects.filter(tenant_id=actor.tenant_id, tag=tag).exists():
            raise Conflict(f"customers tagged {tag.name} are already invited to a group code", field="tag_id")
        rule = GroupInviteRule.objects.create(tenant_id=actor.tenant_id, tag=tag, code=code, created_at=timezone.now())
        audit_record(
            actor=actor,
            action="group_invite_rule.create",
            target_type="group_invite_rule",
            target_id=rule.id,
            detail={"tag_id": tag.id, "code_id": code.id},
        )
    return rule


def group_invite_rule_delete(*, actor: Actor, rule_id: int) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ sets up invitations by tag")
    rule = GroupInviteRule.objects.filter(tenant_id=actor.tenant_id, id=rule_id).first()
    if rule is None:
        raise NotFound(f"rule {rule_id} not found", field="rule_id")
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="group_invite_rule.delete",
            target_type="group_invite_rule",
            target_id=rule.id,
            detail={"tag_id": rule.tag_id, "code_id": rule.code_id},
        )
        rule.delete()


def group_invites_on_tags(*, tenant_id: int, pairs: Collection[tuple[int, int]]) -> None:
    """The tag service's hook: customers just got tags ((customer id, tag id) pairs). After commit, customers whose
    new tag has an enabled rule are invited by a job. One query when the brand has no rule for these tags."""
    if not pairs:
        return
    items = sorted(set(pairs))

    def check() -> None:
        rules = dict(
            GroupInviteRule.objects.filter(
                tenant_id=tenant_id, enabled=True, tag_id__in={t for _, t in items}
            ).values_list("tag_id", "id")
        )
        wanted = [(customer_id, rules[tag_id]) for customer_id, tag_id in items if tag_id in rules]
        if wanted:
            from siyu.groups.tasks import group_invites_send_run  # tasks import this module: no cycle

            enqueue_on_commit(group_invites_send_run, tenant_id, [list(w) for w in wanted])

    transaction.on_commit(check)


def _invite_message(code: GroupCode) -> tuple[str, list[WelcomeAttachment]]:
    text = code.invite_text or gettext("Welcome! Scan the code to join our customer group.")
    link: WelcomeAttachment = {
        "msgtype": "link",
        "link": {"title": code.name[:40], "picurl": code.qr_code, "url": group_code_public_url(code)},
    }
    return text, [link]


def group_code_public_url(code: GroupCode) -> str:
    """The landing page customers open from an invitation: the code's QR to long-press (SIYU_PUBLIC_URL + /g/...)."""
    base = str(getattr(settings, "SIYU_PUBLIC_URL", "") or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}{group_code_public_url_path(code)}"


def group_invites_send(
    *, tenant_id: int, items: Sequence[tuple[int, int]], client_factory: ClientFactory = connection_client
) -> dict[str, int]:
    """Invite customers ((customer id, rule id) pairs) to their rule's code: a 1:1 message from the customer's
    guide (the one who added them most recently) carrying the code, through add_msg_template.

    One invitation per customer and code, ever: the row is claimed (status sending) before WeCom is called, so
    a re-run never sends twice; a customer already in one of the code's groups is recorded as joined and gets no
    message. Returns counts by outcome."""
    counts = {"invited": 0, "joined": 0, "failed": 0, "skipped": 0}
    rules = {
        r.id: r
        for r in GroupInviteRule.objects.filter(tenant_id=tenant_id, id__in={r for _, r in items}).select_related(
            "code", "tag"
        )
    }
    connection = connection_for_tenant(tenant_id=tenant_id)
    system = Actor.system(tenant_id)
    for customer_id, rule_id in items:
        rule = rules.get(rule_id)
        if rule is None or not rule.enabled or rule.code.status != GroupCode.Status.ACTIVE:
            counts["skipped"] += 1
            continue
        code = rule.code
        now = timezone.now()
        in_group = GroupMember.objects.filter(
            tenant_id=tenant_id, customer_id=customer_id, left_at__isnull=True, group__code_slots__code=code
        ).exists()
        relation = (
            FollowRelation.objects.filter(
                tenant_id=tenant_id, customer_id=customer_id, status=FollowRelation.Status.ACTIVE
            )
            .select_related("guide")
            .order_by("-added_at", "-id")
            .first()
        )
        try:
            with transaction.atomic():
                invite = GroupInvite.objects.create(
                    tenant_id=tenant_id,
                    code=code,
                    rule=rule,
                    customer_id=customer_id,
                    guide=relation.guide if relation else None,
                    status=GroupInvite.Status.JOINED if in_group else GroupInvite.Status.SENDING,
                    joined_at=now if in_group else None,
                    created_at=now,
                )
        except IntegrityError:
            counts["skipped"] += 1  # invited to this code before (or by a concurrent run)
            continue
        if in_group:
            counts["joined"] += 1
            continue
        error, msgid = "", ""
        if relation is None:
            error = "the customer follows no guide in WeCom"
        elif connection is None or not code.qr_code:
            error = "the code has no WeCom join way yet" if connection else "the brand is not connected to WeCom"
        else:
            text, attachments = _invite_message(code)
            try:
                with client_factory(connection) as client:
                    created = client.msg_template_add(
                        sender=relation.guide.wecom_userid,
                        external_userids=[relation.external_userid],
                        text=text,
                        attachments=attachments,
                    )
                msgid = created.msgid
                if relation.external_userid in created.fail_list:
                    error = "WeCom could not address the customer"
            except WeComAPIError as exc:
                error = str(exc)[:300]
        with transaction.atomic():
            invite.status = GroupInvite.Status.FAILED if error else GroupInvite.Status.INVITED
            invite.error, invite.msgid = error, msgid
            invite.invited_at = None if error else timezone.now()
            invite.save(update_fields=["status", "error", "msgid", "invited_at"])
            if not error:
                event_record(
                    tenant_id=tenant_id,
                    type="group.invited",
                    customer_id=customer_id,
                    guide_id=invite.guide_id,
                    properties={"group_code_id": code.id, "group_code": code.name, "tag_id": rule.tag_id},
                )
            audit_record(
                actor=system,
                action="group_invite.send",
                target_type="group_invite",
                target_id=invite.id,
                detail={"code_id": code.id, "status": invite.status, "error": error},
            )
        counts["failed" if error else "invited"] += 1
    return counts


def _invites_mark_joined(tenant_id: int, group: CustomerGroup, code_ids: Collection[int], now: dt.datetime) -> int:
    if not code_ids:
        return 0
    customers = GroupMember.objects.filter(group=group, left_at__isnull=True, customer__isnull=False).values(
        "customer_id"
    )
    return (
        GroupInvite.objects.filter(tenant_id=tenant_id, code_id__in=list(code_ids), customer_id__in=customers)
        .exclude(status=GroupInvite.Status.JOINED)
        .update(status=GroupInvite.Status.JOINED, joined_at=now)
    )


# == group migration (社群迁移) ======================================================================================


@dataclass(frozen=True)
class MigrationSourceInput:
    """A personal-WeChat group: its name and member count, or the list of its members' nicknames (one a line;
    the count is then the number of names)."""

    name: str
    member_count: int | None = None
    members: str = ""


def group_migration_create(
    *,
    actor: Actor,
    name: str,
    code_id: int,
    starts_on: dt.date,
    ends_on: dt.date,
    sources: Sequence[MigrationSourceInput],
    caption: str = "",
    client_factory: ClientFactory = connection_client,
) -> GroupMigration:
    """A migration of personal-WeChat groups to a code's WeCom groups, with one poster (join way with state
    "mg<migration>s<source>") per source group, so arrivals are counted per source."""
    require_code_manager(actor)
    code = access_group_code(actor=actor, code_id=code_id)
    _require_connection(actor.tenant_id)
    name = clean_text(name, field="name", max_length=100, required=True)
    caption = clean_text(caption, field="caption", max_length=200)
    for name, day in (("starts_on", starts_on), ("ends_on", ends_on)):
        if not EARLIEST <= day <= LATEST:
            raise Conflict(f"{name} must be between 2000 and 2099", field=name)
    if ends_on < starts_on:
        raise Conflict("the migration must end on or after its start", field="ends_on")
    if not 1 <= len(sources) <= 50:
        raise ValidationFailed("list 1 to 50 source groups", field="sources")
    cleaned: list[tuple[str, int, str]] = []
    for i, source in enumerate(sources):
        source_name = clean_text(source.name, field=f"sources.{i}.name", max_length=100, required=True)
        # The imported list, when given, is the count; names are stripped, blank lines skipped.
        members = [
            m.strip()
            for m in clean_text(source.members, field=f"sources.{i}.members", max_length=200_000).splitlines()
            if m.strip()
        ]
        count = len(members) if members else source.member_count
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            raise ValidationFailed(
                "give the member count (1 to 100000) or the member list", field=f"sources.{i}.member_count"
            )
        cleaned.append((source_name, count, "\n".join(members)))
    with transaction.atomic():
        migration = GroupMigration.objects.create(
            tenant_id=actor.tenant_id,
            name=name,
            code=code,
            caption=caption,
            starts_on=starts_on,
            ends_on=ends_on,
            created_at=timezone.now(),
        )
        for position, (source_name, count, members) in enumerate(cleaned):
            source = MigrationSource.objects.create(
                tenant_id=actor.tenant_id,
                migration=migration,
                name=source_name,
                member_count=count,
                members_enc=pii.encrypt(members, field="migration_members"),
                position=position,
            )
            source.state = f"{MIGRATION_STATE_PREFIX}{migration.id}s{source.id}"
            source.save(update_fields=["state"])
        audit_record(
            actor=actor,
            action="group_migration.create",
            target_type="group_migration",
            target_id=migration.id,
            detail={"code_id": code.id, "sources": len(cleaned)},
        )
    group_code_sync(tenant_id=actor.tenant_id, code_id=code.id, client_factory=client_factory)
    return migration
