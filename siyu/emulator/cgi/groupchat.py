"""Customer groups (wecom-api.md §4.5): groupchat/list and groupchat/get (join ways: cgi/join_way.py; group
inheritance: cgi/transfer.py)."""

from __future__ import annotations

import hashlib
from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import cursor_decode, cursor_encode, integer, query_digest, string_list, text
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import GroupChat

OWNERS_MAX = 100
LIMIT_MAX = 1000


def member_version(chat: GroupChat) -> str:
    """A hash of the member list, as WeCom's member_version / MemChangeList versions are."""
    ids = ",".join(sorted(m.userid for m in chat.member_list))
    return hashlib.md5(ids.encode(), usedforsecurity=False).hexdigest()


@route("externalcontact/groupchat/list")
def groupchat_list(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    status_filter = integer(body, "status_filter", 0)
    if status_filter not in (0, 1, 2, 3):
        raise ApiError(ErrCode.INVALID_PARAMETER, "status_filter must be 0..3")
    owner_filter = body.get("owner_filter") or {}
    if not isinstance(owner_filter, dict):
        raise ApiError(ErrCode.INVALID_PARAMETER, "owner_filter must be an object")
    owners = string_list(owner_filter, "userid_list")
    if len(owners) > OWNERS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"owner_filter.userid_list exceeds {OWNERS_MAX}")
    if not owners and len(corp.members) > call.config.groupchat_scan_limit:
        # Without an owner filter WeCom scans the whole visible range and refuses beyond 1000 people (§4.5).
        raise ApiError(ErrCode.TOO_MANY_REQUESTED, "filter by owner: the visible range exceeds 1000 people")
    limit = integer(body, "limit", missing=ErrCode.PARAMETER_EMPTY)
    if not 1 <= limit <= LIMIT_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"limit must be between 1 and {LIMIT_MAX}")
    digest = query_digest(status_filter, owners)
    position = cursor_decode(corp, "groupchat/list", text(body, "cursor"))
    if position is not None and position.get("q") != digest:
        raise ApiError(ErrCode.INVALID_CURSOR)
    wanted = set(owners)
    chats = [
        c
        for c in sorted(corp.group_chats.values(), key=lambda c: (c.create_time, c.chat_id))
        if (not wanted or c.owner in wanted) and (status_filter == 0 or c.status == status_filter)
    ]
    if position is not None:
        # Chats sort by (create_time, chat_id), so resuming after the last one served survives deletions.
        last = (int(position["k"][0]), str(position["k"][1]))
        chats = [c for c in chats if (c.create_time, c.chat_id) > last]
    page = chats[:limit]
    next_cursor = ""
    if len(chats) > limit:
        key = [page[-1].create_time, page[-1].chat_id]
        next_cursor = cursor_encode(corp, "groupchat/list", {"q": digest, "k": key})
    return {"group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in page], "next_cursor": next_cursor}


@route("externalcontact/groupchat/get")
def groupchat_get(call: Call) -> dict[str, Any]:
    chat_id = text(call.body, "chat_id", missing=ErrCode.PARAMETER_EMPTY)
    chat = call.corp.group_chats.get(chat_id)
    if chat is None:
        raise ApiError(ErrCode.INVALID_CHAT_ID, f"chat {chat_id!r} not found")
    need_name = integer(call.body, "need_name", 0) == 1
    members = []
    for m in chat.member_list:
        row: dict[str, Any] = {"userid": m.userid, "type": m.type, "join_time": m.join_time, "join_scene": m.join_scene}
        if m.type == 2 and m.unionid:
            row["unionid"] = m.unionid
        if m.invitor:
            row["invitor"] = {"userid": m.invitor}
        row["group_nickname"] = m.group_nickname
        if m.state:  # joined through a 「加入群聊」 way with a state (99547 appendix)
            row["state"] = m.state
        if need_name:
            row["name"] = m.name
        members.append(row)
    return {
        "group_chat": {
            "chat_id": chat.chat_id,
            "name": chat.name,
            "owner": chat.owner,
            "create_time": chat.create_time,
            "notice": chat.notice,
            "member_list": members,
            "admin_list": [{"userid": u} for u in chat.admin_list],
            "member_version": member_version(chat),
        }
    }
