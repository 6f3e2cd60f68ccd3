"""Mass messages (企业群发, wecom-api.md §4.6): add_msg_template, get_groupmsg_list_v2, get_groupmsg_task,
get_groupmsg_send_result, remind_groupmsg_send and cancel_groupmsg_send.

add_msg_template only creates tasks: nothing reaches a customer until the member confirms in the client
(POST /emulator/simulate/groupmsg/send), which is when the monthly receive quota is applied. Each customer goes
to one member: the given sender, else the follower who added them most recently (the doc's "the member who most
recently interacted with the customer"). Task and result queries answer 41063 for a short while after creation.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import (
    contact_member,
    cursor_decode,
    cursor_encode,
    integer,
    page_limit,
    query_digest,
    string_list,
    text,
)
from siyu.emulator.cgi.welcome import check_content
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, ExternalContact, GroupMsg, GroupMsgResult, GroupMsgTask

RECIPIENTS_MAX = 10_000
REMINDERS_PER_DAY = 3  # remind_groupmsg_send: at most 3 per mass message within 24 hours (§4.6)


def _tag_filter(body: dict[str, Any]) -> list[set[str]]:
    """tag_filter.group_list: a customer must carry a tag of every listed group (any tag within one group)."""
    raw = body.get("tag_filter") or {}
    groups = raw.get("group_list") if isinstance(raw, dict) else None
    if groups is None:
        return []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ApiError(ErrCode.INVALID_PARAMETER, "tag_filter.group_list must be a list of {tag_list}")
    return [set(string_list(g, "tag_list")) for g in groups if g.get("tag_list")]


def _assignee(customer: ExternalContact, sender: str) -> str:
    live = {u: f for u, f in customer.follows.items() if not f.customer_deleted}
    if sender:
        return sender if sender in live else ""
    return max(live.values(), key=lambda f: f.createtime).userid if live else ""


def _single_recipients(corp: Corp, body: dict[str, Any], sender: str) -> tuple[list[tuple[str, str]], list[str]]:
    wanted = string_list(body, "external_userid")
    if len(wanted) > RECIPIENTS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"external_userid exceeds {RECIPIENTS_MAX}")
    if not wanted and not sender:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "external_userid and sender cannot both be empty")
    tag_groups = _tag_filter(body)
    candidates = list(dict.fromkeys(wanted)) if wanted else list(corp.customers_of(sender))
    pairs, failed = [], []
    for external_userid in candidates:
        customer = corp.contacts.get(external_userid)
        userid = _assignee(customer, sender) if customer else ""
        if not userid or customer is None:
            failed.append(external_userid)
            continue
        tags = set(customer.follows[userid].tag_ids)
        if all(tags & group for group in tag_groups):
            pairs.append((userid, external_userid))
    return pairs, failed


@route("externalcontact/add_msg_template", writes=True)
def add_msg_template(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    chat_type = text(body, "chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise ApiError(ErrCode.INVALID_PARAMETER, "chat_type must be single or group")
    sender = text(body, "sender")
    if sender:
        contact_member(corp, sender)
    content, attachments = check_content(body)
    failed: list[str] = []
    if chat_type == "single":
        pairs, failed = _single_recipients(corp, body, sender)
        results = [GroupMsgResult(userid=u, external_userid=e) for u, e in pairs]
    else:
        if not sender:
            raise ApiError(ErrCode.PARAMETER_EMPTY, "sender is required for chat_type group")
        chat_ids = set(string_list(body, "chat_id_list"))
        results = [
            GroupMsgResult(userid=sender, chat_id=c.chat_id)
            for c in corp.group_chats.values()
            if c.owner == sender and (not chat_ids or c.chat_id in chat_ids)
        ]
    if not results:
        raise ApiError(ErrCode.NO_RECEIVER, fail_list=failed)
    seq = corp.next_seq()
    msg = GroupMsg(
        msgid=ids.msgid(corp.corp_id, seq),
        chat_type=chat_type,
        create_time=int(call.now),
        seq=seq,
        creator=sender,
        text={"content": content} if content else {},
        attachments=attachments,
        allow_select=bool(body.get("allow_select", False)),
        tasks=[GroupMsgTask(userid=u) for u in dict.fromkeys(r.userid for r in results)],
        results=results,
    )
    corp.group_msgs[msg.msgid] = msg
    return {"fail_list": failed, "msgid": msg.msgid}


@route("externalcontact/get_groupmsg_list_v2")
def get_groupmsg_list_v2(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    chat_type = text(body, "chat_type", missing=ErrCode.PARAMETER_EMPTY)
    start_time = integer(body, "start_time", missing=ErrCode.PARAMETER_EMPTY)
    end_time = integer(body, "end_time", missing=ErrCode.PARAMETER_EMPTY)
    if start_time > end_time:
        raise ApiError(ErrCode.INVALID_PARAMETER, "start_time is after end_time")
    creator = text(body, "creator")
    filter_type = integer(body, "filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise ApiError(ErrCode.INVALID_PARAMETER, "filter_type must be 0, 1 or 2")
    limit = page_limit(body, default=50, maximum=100)
    digest = query_digest(chat_type, start_time, end_time, creator, filter_type)
    position = cursor_decode(corp, "get_groupmsg_list_v2", text(body, "cursor"))
    if position is not None and position.get("q") != digest:
        raise ApiError(ErrCode.INVALID_CURSOR)
    after = int(position["s"]) if position else 0
    msgs = sorted(
        (
            m
            for m in corp.group_msgs.values()
            if m.chat_type == chat_type
            and start_time <= m.create_time <= end_time
            and (not creator or m.creator == creator)
            and (filter_type == 2 or m.create_type == filter_type)
            and m.seq > after
        ),
        key=lambda m: m.seq,
    )
    page = msgs[:limit]
    rows = []
    for m in page:
        row: dict[str, Any] = {"msgid": m.msgid, "creator": m.creator, "create_time": m.create_time}
        row["create_type"] = m.create_type
        if m.text:
            row["text"] = m.text
        row["attachments"] = m.attachments
        rows.append(row)
    next_cursor = ""
    if len(msgs) > limit:
        next_cursor = cursor_encode(corp, "get_groupmsg_list_v2", {"q": digest, "s": page[-1].seq})
    return {"group_msg_list": rows, "next_cursor": next_cursor}


def _msg(call: Call) -> GroupMsg:
    msgid = text(call.body, "msgid", missing=ErrCode.MISSING_MSGID)
    msg = call.corp.group_msgs.get(msgid)
    if msg is None:
        raise ApiError(ErrCode.INVALID_MSGID)
    if call.now - msg.create_time < call.config.groupmsg_dispatch_seconds:
        raise ApiError(ErrCode.STILL_DISPATCHING)
    return msg


def _page(call: Call, kind: str, msgid: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Offset pages over a message's fixed task/result list (it never changes order once created)."""
    limit = page_limit(call.body, default=500, maximum=1000)
    position = cursor_decode(call.corp, kind, text(call.body, "cursor"))
    if position is not None and position.get("m") != msgid:
        raise ApiError(ErrCode.INVALID_CURSOR)
    offset = int(position["o"]) if position else 0
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return page, cursor_encode(call.corp, kind, {"m": msgid, "o": offset + limit}) if more else ""


@route("externalcontact/get_groupmsg_task")
def get_groupmsg_task(call: Call) -> dict[str, Any]:
    msg = _msg(call)
    rows = [{"userid": t.userid, "status": t.status, "send_time": t.send_time} for t in msg.tasks]
    page, next_cursor = _page(call, "get_groupmsg_task", msg.msgid, rows)
    return {"task_list": page, "next_cursor": next_cursor}


@route("externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result(call: Call) -> dict[str, Any]:
    msg = _msg(call)
    userid = text(call.body, "userid", missing=ErrCode.MISSING_USERID)
    rows = []
    for r in msg.results:
        if r.userid != userid:
            continue
        row: dict[str, Any] = {"userid": r.userid, "status": r.status, "send_time": r.send_time}
        if r.external_userid:
            row["external_userid"] = r.external_userid
        if r.chat_id:
            row["chat_id"] = r.chat_id
        rows.append(row)
    page, next_cursor = _page(call, "get_groupmsg_send_result", msg.msgid + ":" + userid, rows)
    return {"send_list": page, "next_cursor": next_cursor}


@route("externalcontact/remind_groupmsg_send", writes=True)
def remind_groupmsg_send(call: Call) -> dict[str, Any]:
    """Notify the members who have not sent it yet again (the notification itself is not emulated)."""
    msg = _msg(call)
    if msg.cancelled:
        raise ApiError(ErrCode.INVALID_PARAMETER, "the mass message was cancelled")
    recent = [at for at in msg.reminders if call.now - at < 86_400]
    if len(recent) >= REMINDERS_PER_DAY:
        # The doc states the limit but not its errcode; the frequency-limit code is the closest.
        raise ApiError(ErrCode.FREQUENCY_LIMIT, "at most 3 reminders per mass message within 24 hours")
    msg.reminders = [*recent, call.now]
    return {}


@route("externalcontact/cancel_groupmsg_send", writes=True)
def cancel_groupmsg_send(call: Call) -> dict[str, Any]:
    msgid = text(call.body, "msgid", missing=ErrCode.MISSING_MSGID)
    msg = call.corp.group_msgs.get(msgid)
    if msg is None:
        raise ApiError(ErrCode.INVALID_MSGID)
    msg.cancelled = True  # members who have not sent yet can no longer send it
    return {}
