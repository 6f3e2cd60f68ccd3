"""Reads of the groups context. A group is in an actor's scope when its owner guide is (HQ sees every group)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.customers.selectors import access_customer, customer_scope
from siyu.groups.models import (
    CustomerGroup,
    GroupCode,
    GroupCodeSlot,
    GroupInvite,
    GroupInviteRule,
    GroupMember,
    GroupMigration,
    MigrationSource,
)


def group_list(
    *, actor: Actor, status: str = "", owner_guide_id: int | None = None, q: str = ""
) -> QuerySet[CustomerGroup]:
    """Groups in scope, newest first; optionally by status, owner and part of the name."""
    qs = CustomerGroup.objects.filter(tenant_id=actor.tenant_id).select_related("owner")
    if actor.guide_ids is not None:
        qs = qs.filter(owner_id__in=sorted(actor.guide_ids))
    if status:
        qs = qs.filter(status=status)
    if owner_guide_id:
        qs = qs.filter(owner_id=owner_guide_id)
    if q.strip():
        qs = qs.filter(name__icontains=q.strip())
    return qs.order_by("-created_at", "-id")


def access_group(*, actor: Actor, group_id: int) -> CustomerGroup:
    """Fetch and authorise in one call: another brand's or an out-of-scope group is not found."""
    group = group_list(actor=actor).filter(id=group_id).first()
    if group is None:
        raise NotFound(f"group {group_id} not found", field="group_id")
    return group


def group_member_list(*, actor: Actor, group_id: int, current: bool = True) -> QuerySet[GroupMember]:
    """The members of a group in scope, by join time; `current=False` includes those who left."""
    group = access_group(actor=actor, group_id=group_id)
    qs = GroupMember.objects.filter(tenant_id=actor.tenant_id, group=group).select_related("guide")
    if current:
        qs = qs.filter(left_at__isnull=True)
    return qs.order_by("join_time", "id")


def groups_of_customer(*, actor: Actor, customer_id: int, current: bool = True) -> QuerySet[CustomerGroup]:
    """The groups in scope a customer (in scope) is in, or was in with `current=False`."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    rows = GroupMember.objects.filter(tenant_id=actor.tenant_id, customer=customer)
    if current:
        rows = rows.filter(left_at__isnull=True)
    return group_list(actor=actor).filter(id__in=rows.values("group_id"))


def group_by_chat_id(*, actor: Actor, chat_id: str) -> CustomerGroup | None:
    """The group mirroring WeCom chat `chat_id`, if it is in scope."""
    return group_list(actor=actor).filter(chat_id=chat_id).first()


def group_chat_ids(*, actor: Actor, status: str = CustomerGroup.Status.ACTIVE) -> set[str]:
    """The chat ids of the groups in scope with `status` (the sync compares them with WeCom's list)."""
    return set(group_list(actor=actor, status=status).values_list("chat_id", flat=True))


# -- group live codes (群活码), invitations and migrations ----------------------------------------------------------
# A code belongs to a store or to the whole brand. HQ sees every code; region and store managers and franchisees
# the codes of their stores; a guide the codes of its own store. Only HQ, region and store managers change them.

CODE_MANAGERS = frozenset({Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER})


def _code_store_ids(actor: Actor) -> frozenset[int] | None:
    if actor.role == Role.GUIDE:
        store_id = Guide.objects.filter(tenant_id=actor.tenant_id, id=actor.guide_id).values_list("store_id", flat=True)
        return frozenset(s for s in store_id if s is not None)
    return actor.store_ids


def can_manage_group_codes(actor: Actor) -> bool:
    return actor.role in CODE_MANAGERS


def require_code_manager(actor: Actor) -> None:
    if not can_manage_group_codes(actor):
        raise PermissionDenied("only HQ, region and store managers may change group codes")


def group_code_list(*, actor: Actor, status: str = "", q: str = "") -> QuerySet[GroupCode]:
    """Codes in scope, newest first; optionally by status and part of the name or state."""
    qs = GroupCode.objects.filter(tenant_id=actor.tenant_id).select_related("store")
    stores = _code_store_ids(actor)
    if stores is not None:
        qs = qs.filter(store_id__in=sorted(stores))
    if status:
        qs = qs.filter(status=status)
    if q.strip():
        qs = qs.filter(Q(name__icontains=q.strip()) | Q(state__icontains=q.strip()))
    return qs.order_by("-created_at", "-id")


def access_group_code(*, actor: Actor, code_id: int) -> GroupCode:
    """Fetch and authorise in one call: another brand's or an out-of-scope code is not found."""
    code = group_code_list(actor=actor).filter(id=code_id).first()
    if code is None:
        raise NotFound(f"group code {code_id} not found", field="code_id")
    return code


def group_code_slots(*, code: GroupCode) -> list[GroupCodeSlot]:
    """The code's groups in order, each with its group (and the group's owner). Unscoped: for the services and the
    public pages; what a person reads goes through `group_code_slots_in_scope`."""
    return list(
        GroupCodeSlot.objects.filter(tenant_id=code.tenant_id, code=code)
        .select_related("group", "group__owner")
        .order_by("position", "id")
    )


def _slots_in_scope(actor: Actor) -> QuerySet[GroupCodeSlot]:
    # A code belongs to a store, but HQ may put groups of other stores' guides on it: a store manager sees the
    # code and, on it, only the groups whose owner is in its scope (as the group list shows them).
    qs = GroupCodeSlot.objects.filter(tenant_id=actor.tenant_id)
    if actor.guide_ids is not None:
        qs = qs.filter(group__owner_id__in=sorted(actor.guide_ids))
    return qs


def group_code_slots_in_scope(*, actor: Actor, code: GroupCode) -> list[GroupCodeSlot]:
    """The code's groups the actor may see (their owner is in scope), in order."""
    return list(
        _slots_in_scope(actor).filter(code=code).select_related("group", "group__owner").order_by("position", "id")
    )


def group_code_slots_out_of_scope(*, actor: Actor, code: GroupCode) -> list[GroupCodeSlot]:
    """The code's groups the actor may not see (their owner is outside its scope), in order, without their groups.

    For the services (an edit by a store manager keeps HQ's groups of other stores as they are) and for saying how
    many there are ("N more groups outside your scope are kept"); never to show what they are. Empty for HQ."""
    if actor.guide_ids is None:
        return []
    return list(
        GroupCodeSlot.objects.filter(tenant_id=actor.tenant_id, code=code)
        .exclude(group__owner_id__in=sorted(actor.guide_ids))
        .order_by("position", "id")
    )


def group_code_slot_counts(*, actor: Actor, codes: Collection[GroupCode]) -> dict[int, int]:
    """How many groups in scope each code has (the list page), in one query."""
    rows = (
        _slots_in_scope(actor)
        .filter(code_id__in=[c.id for c in codes])
        .values("code_id")
        .annotate(n=Count("id"))
        .values_list("code_id", "n")
    )
    return {c.id: 0 for c in codes} | dict(rows)


def group_chats_in_scope(*, actor: Actor, chat_ids: Iterable[str]) -> set[str]:
    """Those of `chat_ids` whose group the actor sees (where a code sends joiners, without naming other stores')."""
    wanted = set(chat_ids)
    if not wanted or actor.guide_ids is None:
        return wanted  # HQ sees every group of the brand (a code's chats are always its own brand's)
    return set(group_list(actor=actor).filter(chat_id__in=sorted(wanted)).values_list("chat_id", flat=True))


def group_code_for_store(*, tenant_id: int, store_id: int) -> GroupCode | None:
    """The active group code of a store (the newest when there are several); for store codes and landing pages."""
    return (
        GroupCode.objects.filter(tenant_id=tenant_id, store_id=store_id, status=GroupCode.Status.ACTIVE)
        .order_by("-created_at", "-id")
        .first()
    )


def group_code_qr_url(code: GroupCode) -> str:
    """The QR picture of the code's WeCom join way ("" until WeCom has created it): stable for the code's life."""
    return code.qr_code


def group_code_public_url_path(code: GroupCode) -> str:
    """The path of the code's public landing page (prefix it with the site's public address)."""
    return f"/g/{code.public_token}/"


def group_code_by_token(*, token: str) -> GroupCode | None:
    """The code behind a public landing page (no actor: the page is for customers)."""
    if not token or len(token) > 32:
        return None
    return GroupCode.objects.filter(public_token=token).first()


def group_invite_for_tags(*, tenant_id: int, tag_ids: Collection[int]) -> GroupCode | None:
    """The active code a customer with these tags is invited to (the oldest matching rule wins), for the
    welcome message of a new customer; None when no enabled rule matches."""
    if not tag_ids:
        return None
    rule = (
        GroupInviteRule.objects.filter(
            tenant_id=tenant_id, tag_id__in=list(tag_ids), enabled=True, code__status=GroupCode.Status.ACTIVE
        )
        .select_related("code")
        .order_by("created_at", "id")
        .first()
    )
    return rule.code if rule is not None else None


def group_invite_rule_list(*, actor: Actor) -> QuerySet[GroupInviteRule]:
    """Tag → code rules whose code is in scope."""
    codes = group_code_list(actor=actor).values("id")
    return (
        GroupInviteRule.objects.filter(tenant_id=actor.tenant_id, code_id__in=codes)
        .select_related("tag", "code")
        .order_by("created_at", "id")
    )


def group_invite_list(*, actor: Actor, code_id: int | None = None, status: str = "") -> QuerySet[GroupInvite]:
    """Invitations of codes in scope to customers in scope, newest first (a brand-wide tag rule invites customers
    of every store to a store's code: its managers see only their own customers' invitations)."""
    qs = GroupInvite.objects.filter(tenant_id=actor.tenant_id, code_id__in=group_code_list(actor=actor).values("id"))
    if not actor.is_brand_wide:
        qs = qs.filter(customer_id__in=customer_scope(actor=actor).values("id"))
    if code_id is not None:
        qs = qs.filter(code_id=access_group_code(actor=actor, code_id=code_id).id)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("customer", "guide", "code").order_by("-created_at", "-id")


def group_migration_list(*, actor: Actor) -> QuerySet[GroupMigration]:
    """Migrations whose target code is in scope, newest first."""
    codes = group_code_list(actor=actor).values("id")
    return (
        GroupMigration.objects.filter(tenant_id=actor.tenant_id, code_id__in=codes)
        .select_related("code")
        .order_by("-created_at", "-id")
    )


def access_group_migration(*, actor: Actor, migration_id: int) -> GroupMigration:
    migration = group_migration_list(actor=actor).filter(id=migration_id).first()
    if migration is None:
        raise NotFound(f"migration {migration_id} not found", field="migration_id")
    return migration


# -- statistics ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStats:
    """Joins and leaves of one group of a code (external contacts, i.e. customers), and who is in it now."""

    slot: GroupCodeSlot
    joins: int
    leaves: int
    members: int  # current members, the owner and guides included (what WeCom's 200 counts)
    in_way: bool  # the join way sends newcomers here now
    full: bool

    @property
    def net(self) -> int:
        return self.joins - self.leaves


@dataclass(frozen=True)
class Daily:
    """Counts by local day, oldest first, for a chart."""

    days: list[str]
    joins: list[int]
    leaves: list[int]


@dataclass(frozen=True)
class CodeStats:
    groups: list[GroupStats]
    daily: Daily
    joins: int
    leaves: int
    members: int

    @property
    def net(self) -> int:
        return self.joins - self.leaves


def _daily(rows: Iterable[tuple[dt.datetime | None, dt.datetime | None]], days: int, today: dt.date) -> Daily:
    first = today - dt.timedelta(days=days - 1)
    labels = [first + dt.timedelta(days=i) for i in range(days)]
    joins = dict.fromkeys(labels, 0)
    leaves = dict.fromkeys(labels, 0)
    for joined, left in rows:
        for when, bucket in ((joined, joins), (left, leaves)):
            if when is not None:
                day = timezone.localdate(when)
                if day in bucket:
                    bucket[day] += 1
    return Daily([d.isoformat() for d in labels], list(joins.values()), list(leaves.values()))


def group_code_stats(*, actor: Actor, code_id: int, days: int = 30, now: dt.datetime | None = None) -> CodeStats:
    """Per group and per day: customers who joined and left the code's groups, and members now.

    Only the groups in the actor's scope are listed and counted (a store manager's totals are its own groups').
    Counted from the mirrored member rows (one per person and group: a re-join moves its join time)."""
    code = access_group_code(actor=actor, code_id=code_id)
    slots = group_code_slots_in_scope(actor=actor, code=code)
    rows = GroupMember.objects.filter(
        tenant_id=actor.tenant_id,
        group_id__in=[s.group_id for s in slots],
        member_type=GroupMember.Type.EXTERNAL,
    ).values_list("group_id", "join_time", "left_at")
    # WeCom times are whole seconds: a join in the second the group was added counts.
    since = {s.group_id: s.added_at.replace(microsecond=0) for s in slots}
    per_group: dict[int, list[tuple[dt.datetime | None, dt.datetime | None]]] = {s.group_id: [] for s in slots}
    for group_id, joined, left in rows:
        # Only what happened since the group became part of the code: its earlier members are not the code's doing.
        per_group[group_id].append(
            (joined if joined >= since[group_id] else None, left if left and left >= since[group_id] else None)
        )
    way = set(code.way_chat_ids)
    groups = [
        GroupStats(
            slot=s,
            joins=sum(1 for joined, _ in per_group[s.group_id] if joined is not None),
            leaves=sum(1 for _, left in per_group[s.group_id] if left is not None),
            members=s.group.member_count,
            in_way=s.group.chat_id in way,
            full=s.group.member_count >= s.threshold,
        )
        for s in slots
    ]
    today = timezone.localdate(now or timezone.now())
    daily = _daily((r for rs in per_group.values() for r in rs), days, today)
    return CodeStats(
        groups=groups,
        daily=daily,
        joins=sum(g.joins for g in groups),
        leaves=sum(g.leaves for g in groups),
        members=sum(g.members for g in groups),
    )


@dataclass(frozen=True)
class SourceStats:
    source: MigrationSource
    migrated: int  # distinct people who joined a WeCom group through this source's poster

    @property
    def rate(self) -> float:
        return self.migrated / self.source.member_count if self.source.member_count else 0.0


@dataclass(frozen=True)
class MigrationStats:
    migration: GroupMigration
    sources: list[SourceStats]
    daily: Daily
    migrated: int
    source_members: int

    @property
    def rate(self) -> float:
        return self.migrated / self.source_members if self.source_members else 0.0


def group_migration_stats(*, actor: Actor, migration_id: int) -> MigrationStats:
    """Migration rate = people who arrived in a WeCom group through a source's poster / that source's members,
    per source group and overall, and arrivals by day over the campaign's dates."""
    migration = access_group_migration(actor=actor, migration_id=migration_id)
    sources = list(MigrationSource.objects.filter(tenant_id=actor.tenant_id, migration=migration))
    by_state = {s.state: s for s in sources if s.state}
    arrivals: dict[str, dict[str, dt.datetime]] = {state: {} for state in by_state}
    rows = GroupMember.objects.filter(
        tenant_id=actor.tenant_id, member_type=GroupMember.Type.EXTERNAL, state__in=list(by_state)
    ).values_list("state", "userid", "join_time")
    for state, userid, joined in rows:
        # Someone who landed in two groups through the same poster migrated once, on their first join.
        seen = arrivals[state].get(userid)
        arrivals[state][userid] = joined if seen is None else min(seen, joined)
    stats = [SourceStats(source=s, migrated=len(arrivals.get(s.state, {}))) for s in sources]
    span = max((migration.ends_on - migration.starts_on).days + 1, 1)
    daily = _daily(
        ((joined, None) for people in arrivals.values() for joined in people.values()),
        min(span, 366),
        min(migration.ends_on, migration.starts_on + dt.timedelta(days=365)),
    )
    return MigrationStats(
        migration=migration,
        sources=stats,
        daily=daily,
        migrated=sum(s.migrated for s in stats),
        source_members=sum(s.member_count for s in sources),
    )
