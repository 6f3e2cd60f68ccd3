"""The groups context's part of a data subject's rights (PIPL): the customer groups a customer is or was in.

Erasure keeps the memberships (group sizes stay right) and replaces the WeCom external_userid on them with an
opaque marker. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.customers.privacy import erased_marker, wecom_external_userids
from siyu.groups.models import GroupInvite, GroupMember


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    members = (
        GroupMember.objects.filter(tenant_id=tenant_id, customer_id=customer_id)
        .select_related("group")
        .order_by("join_time", "id")
    )
    invites = GroupInvite.objects.filter(tenant_id=tenant_id, customer_id=customer_id).order_by("created_at", "id")
    return {
        "groups": [
            {
                "group": m.group.name or m.group.chat_id,
                "userid": m.userid,
                "join_time": m.join_time.isoformat(),
                "left_at": m.left_at.isoformat() if m.left_at else None,
            }
            for m in members
        ],
        "group_invites": [
            {"code_id": i.code_id, "status": i.status, "created_at": i.created_at.isoformat()} for i in invites
        ],
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    changed = 0
    for member_id in GroupMember.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list(
        "id", flat=True
    ):
        changed += GroupMember.objects.filter(id=member_id).update(userid=erased_marker(member_id), invitor="")
    # Rows of people the customer brought into a group name them as their inviter.
    invited = GroupMember.objects.filter(
        tenant_id=tenant_id, invitor__in=wecom_external_userids(tenant_id=tenant_id, customer_id=customer_id)
    ).update(invitor="")
    return {"group_members": changed, "invited_members": invited}
