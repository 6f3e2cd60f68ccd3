"""Reads of the groups context. A group is in an actor's scope when its owner guide is (HQ sees every group)."""

from __future__ import annotations

from django.db.models import QuerySet

from siyu.core.errors import NotFound
from siyu.core.scopes import Actor
from siyu.customers.selectors import access_customer
from siyu.groups.models import CustomerGroup, GroupMember


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
