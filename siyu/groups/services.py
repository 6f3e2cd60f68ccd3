"""Writes of the groups context: mirror WeCom customer groups with their members, and dismiss them.

WeCom is the source of truth for groups, so the writes take a group as WeCom reports it now (groupchat/get) and
work out what changed: members who joined, left or re-joined. Each customer's join and leave is appended to their
timeline (group.joined / group.left); a change to the group writes one audit row. Mirroring the same state twice
changes nothing and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_bulk_record
from siyu.core.errors import PermissionDenied, ValidationFailed
from siyu.core.scopes import Actor
from siyu.core.selectors import access_guide, guide_list
from siyu.core.services import audit_record
from siyu.customers.models import Identity
from siyu.customers.selectors import access_customer, customer_ids_by_identity
from siyu.groups.models import CustomerGroup, GroupMember

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
