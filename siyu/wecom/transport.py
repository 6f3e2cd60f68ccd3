"""Mapping WeCom's JSON onto the inputs of siyu's services (and nothing else: no I/O, no writes).

Shared by callback processing and the sync, so a group or a contact means the same whichever way it arrived.
"""

from __future__ import annotations

import datetime as dt
import re

from siyu.customers.services import WeComContactInput
from siyu.groups.services import GroupInput, GroupMemberInput
from siyu.wecom.client import ContactDetail, ContactWithFollowInfo, GroupChat

# Control characters (PostgreSQL refuses NUL; siyu's services refuse them all) and lone surrogates.
_UNWANTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def wecom_text(value: object, *, max_length: int, multiline: bool = False) -> str:
    """Free text from WeCom (nicknames, remarks, group names) made storable rather than refused: one odd
    character in a nickname must not fail a whole page of a sync. Control characters are dropped (line breaks
    kept only where `multiline`), the rest stripped and cut to `max_length`."""
    text = _UNWANTED.sub("", str(value or ""))
    if not multiline:
        text = " ".join(text.split())
    return text.strip()[:max_length].strip()


def wecom_time(value: object) -> dt.datetime:
    """A WeCom unix timestamp (seconds) as an aware datetime; 0 or garbage is the epoch, never a crash."""
    try:
        seconds = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        seconds = 0
    return dt.datetime.fromtimestamp(max(seconds, 0), tz=dt.UTC)


def contact_input(item: ContactWithFollowInfo, guide_id: int) -> WeComContactInput:
    """One row of batch/get_by_user for the customers service; `guide_id` is the guide of follow_info.userid."""
    contact, follow = item["external_contact"], item["follow_info"]
    gender = contact.get("gender", 0)
    return WeComContactInput(
        external_userid=contact["external_userid"],
        guide_id=guide_id,
        added_at=wecom_time(follow.get("createtime")),
        name=wecom_text(contact.get("name"), max_length=64),
        gender=gender if gender in (0, 1, 2) else 0,
        unionid=str(contact.get("unionid") or ""),
        remark=wecom_text(follow.get("remark"), max_length=40),
        description=wecom_text(follow.get("description"), max_length=150, multiline=True),
        add_way=int(follow.get("add_way") or 0),
        state=wecom_text(follow.get("state"), max_length=30),
    )


def contact_detail_input(detail: ContactDetail, userid: str, guide_id: int) -> WeComContactInput | None:
    """externalcontact/get's customer as member `userid` follows them; None when that member is not listed (the
    relationship ended before we asked, or sits beyond the first page of a customer with 500+ followers)."""
    follow = next((f for f in detail.get("follow_user", []) if f.get("userid") == userid), None)
    if follow is None:
        return None
    info: dict[str, object] = {**follow, "tag_id": []}
    return contact_input(
        {"external_contact": detail["external_contact"], "follow_info": info},  # type: ignore[typeddict-item]
        guide_id,
    )


def contact_detail_tags(detail: ContactDetail) -> set[str]:
    """The corp tag ids every listed follower gave the customer (type 1: corp tags; personal tags have no id)."""
    return {
        str(t["tag_id"])
        for f in detail.get("follow_user", [])
        for t in f.get("tags", [])
        if t.get("type", 1) == 1 and t.get("tag_id")
    }


def group_input(chat: GroupChat, owner_guide_id: int) -> GroupInput:
    """groupchat/get's group_chat for the groups service; the owner is already resolved to a guide."""
    members = tuple(
        GroupMemberInput(
            userid=m["userid"],
            member_type=int(m.get("type") or 0),
            join_time=wecom_time(m.get("join_time")),
            join_scene=int(m.get("join_scene") or 0),
            invitor=str((m.get("invitor") or {}).get("userid") or ""),
            state=wecom_text(m.get("state"), max_length=30),
        )
        for m in chat.get("member_list", [])
    )
    return GroupInput(
        chat_id=chat["chat_id"],
        name=wecom_text(chat.get("name"), max_length=100),
        owner_guide_id=owner_guide_id,
        created_at=wecom_time(chat.get("create_time")),
        notice=wecom_text(chat.get("notice"), max_length=2000, multiline=True),
        member_version=str(chat.get("member_version") or ""),
        members=members,
    )
