"""Inheritance endpoints (wecom-api.md §4.8): transfer_customer (在职继承), resigned/transfer_customer (离职继承),
transfer_result and resigned/transfer_result, get_unassigned_list, groupchat/transfer and groupchat/onjob_transfer.

The rules and the 24-hour completion live in `siyu.emulator.inheritance`; these functions check the request and
shape the answer. A whole request fails (errcode at the top) for missing or unknown members, the same member on
both sides, a handover member in the wrong state (40097 not resigned) or too many customers/chats; otherwise each
customer or chat gets its own errcode in the list.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import (
    contact_member,
    cursor_decode,
    cursor_encode,
    integer,
    member,
    query_digest,
    string_list,
    text,
)
from siyu.emulator.errors import MESSAGES, ApiError, ErrCode
from siyu.emulator.inheritance import RESIGNED, group_take_over, transfer_start
from siyu.emulator.model import Member

CUSTOMERS_MAX = 100
MESSAGE_MAX = 200
RESULT_PAGE = 1000  # "每个分页返回的数据不会超过1000条"
UNASSIGNED_PAGE_MAX = 1000
UNASSIGNED_OFFSET_MAX = 50_000  # the legacy page_id * page_size ceiling
CHATS_MAX = 100


def _takeover(call: Call) -> Member:
    userid = text(call.body, "takeover_userid", missing=ErrCode.PARAMETER_EMPTY)
    found = contact_member(call.corp, userid)
    if found.status != 1:
        raise ApiError(ErrCode.INVALID_USERID, f"takeover member {userid!r} is not active")
    return found


def _transfer(call: Call, kind: str) -> dict[str, Any]:
    body = call.body
    handover = member(call.corp, text(body, "handover_userid", missing=ErrCode.PARAMETER_EMPTY))
    takeover = _takeover(call)
    if handover.userid == takeover.userid:
        raise ApiError(ErrCode.SAME_HANDOVER_TAKEOVER)
    if kind == "resigned" and handover.status != RESIGNED:
        raise ApiError(ErrCode.NOT_RESIGNED)
    if kind == "onjob" and handover.status == RESIGNED:
        raise ApiError(ErrCode.INVALID_PARAMETER, "the handover member resigned: use resigned/transfer_customer")
    customers = string_list(body, "external_userid")
    if not customers:
        raise ApiError(ErrCode.MISSING_EXTERNAL_USERID)
    if len(customers) > CUSTOMERS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"at most {CUSTOMERS_MAX} customers per call")
    message = text(body, "transfer_success_msg", max_chars=MESSAGE_MAX) if kind == "onjob" else ""
    rows = transfer_start(
        call.corp,
        kind=kind,
        handover=handover.userid,
        takeover=takeover.userid,
        external_userids=customers,
        message=message,
        now=call.now,
        config=call.config,
    )
    return {"customer": rows}


@route("externalcontact/transfer_customer", writes=True)
def transfer_customer(call: Call) -> dict[str, Any]:
    """On-job transfer: errcode 0 per customer means the 24-hour takeover started, not that it succeeded."""
    return _transfer(call, "onjob")


@route("externalcontact/resigned/transfer_customer", writes=True)
def resigned_transfer_customer(call: Call) -> dict[str, Any]:
    return _transfer(call, "resigned")


def _result(call: Call, kind: str) -> dict[str, Any]:
    corp, body = call.corp, call.body
    handover = member(corp, text(body, "handover_userid", missing=ErrCode.PARAMETER_EMPTY)).userid
    takeover = member(corp, text(body, "takeover_userid", missing=ErrCode.PARAMETER_EMPTY)).userid
    latest = {}  # the most recent transfer of each customer between these two members
    for transfer in corp.transfers:
        if transfer.kind == kind and transfer.handover_userid == handover and transfer.takeover_userid == takeover:
            latest[transfer.external_userid] = transfer
    digest = query_digest(kind, handover, takeover)
    position = cursor_decode(corp, "transfer_result", text(body, "cursor"))
    if position is not None and position.get("q") != digest:
        raise ApiError(ErrCode.INVALID_CURSOR)
    after = int(position["s"]) if position else 0
    rows = sorted((t for t in latest.values() if t.seq > after), key=lambda t: t.seq)
    page = rows[:RESULT_PAGE]
    next_cursor = ""
    if len(rows) > RESULT_PAGE:
        next_cursor = cursor_encode(corp, "transfer_result", {"q": digest, "s": page[-1].seq})
    return {
        # takeover_time: when it was taken over, or for a waiting transfer when it will be (the doc's wording).
        "customer": [
            {"external_userid": t.external_userid, "status": t.status, "takeover_time": int(t.takeover_at)}
            for t in page
        ],
        "next_cursor": next_cursor,
    }


@route("externalcontact/transfer_result")
def transfer_result(call: Call) -> dict[str, Any]:
    return _result(call, "onjob")


@route("externalcontact/resigned/transfer_result")
def resigned_transfer_result(call: Call) -> dict[str, Any]:
    return _result(call, "resigned")


@route("externalcontact/get_unassigned_list")
def get_unassigned_list(call: Call) -> dict[str, Any]:
    """Customers of resigned members not (yet) handed to anyone: no transfer waiting or done for them."""
    corp, body = call.corp, call.body
    page_size = integer(body, "page_size", 0)
    if page_size < 0:
        raise ApiError(ErrCode.INVALID_PARAMETER, "page_size must not be negative")
    page_size = UNASSIGNED_PAGE_MAX if page_size == 0 else min(page_size, UNASSIGNED_PAGE_MAX)
    assigned = {(t.handover_userid, t.external_userid) for t in corp.transfers if t.status in (1, 2)}
    rows: list[tuple[int, str, int, str]] = []  # (dimission_time, handover, follow seq, external_userid)
    for m in corp.members.values():
        if m.status == RESIGNED:
            rows += [
                (m.dimission_time, m.userid, seq, ext)
                for ext, seq in corp.customers_of(m.userid).items()
                if (m.userid, ext) not in assigned
            ]
    rows.sort()
    cursor = text(body, "cursor")
    if cursor or "page_id" not in body:
        position = cursor_decode(corp, "get_unassigned_list", cursor)
        if position is not None:
            # Keyed on the last row served, so customers assigned meanwhile do not shift later pages.
            last = (int(position["k"][0]), str(position["k"][1]), int(position["k"][2]))
            rows = [r for r in rows if r[:3] > last]
        page, more = rows[:page_size], len(rows) > page_size
    else:  # the legacy page_id paging: offsets, capped at 50,000
        offset = integer(body, "page_id", 0) * page_size
        if offset < 0 or offset >= UNASSIGNED_OFFSET_MAX:
            raise ApiError(ErrCode.INVALID_PARAMETER, f"page_id * page_size must be below {UNASSIGNED_OFFSET_MAX}")
        page, more = rows[offset : offset + page_size], offset + page_size < len(rows)
    next_cursor = cursor_encode(corp, "get_unassigned_list", {"k": list(page[-1][:3])}) if more else ""
    return {
        "info": [{"handover_userid": h, "external_userid": e, "dimission_time": d} for d, h, _seq, e in page],
        "is_last": not more,
        "next_cursor": next_cursor,
    }


def _failure(chat_id: str, code: ErrCode) -> dict[str, Any]:
    return {"chat_id": chat_id, "errcode": int(code), "errmsg": MESSAGES.get(code, "error")}


def _group_transfer(call: Call, *, resigned: bool) -> dict[str, Any]:
    corp, body = call.corp, call.body
    chat_ids = string_list(body, "chat_id_list")
    if not chat_ids:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "chat_id_list is required")
    if len(chat_ids) > CHATS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"at most {CHATS_MAX} chats per call")
    new_owner = text(body, "new_owner", missing=ErrCode.PARAMETER_EMPTY)
    if contact_member(corp, new_owner).status != 1:
        raise ApiError(ErrCode.INVALID_USERID, f"new owner {new_owner!r} is not active")
    failed = []
    for chat_id in chat_ids:
        chat = corp.group_chats.get(chat_id)
        if chat is None:
            failed.append(_failure(chat_id, ErrCode.NOT_CUSTOMER_GROUP))
            continue
        owner = corp.members.get(chat.owner)
        owner_resigned = owner is not None and owner.status == RESIGNED
        if chat.status == 2:
            code = ErrCode.GROUP_TRANSFER_IN_PROGRESS
        elif resigned and chat.status == 3 and not owner_resigned:
            code = ErrCode.GROUP_ALREADY_INHERITED
        elif resigned and not owner_resigned:
            code = ErrCode.OWNER_NOT_RESIGNED
        elif not resigned and owner_resigned:
            code = ErrCode.OWNER_RESIGNED
        elif chat.owner == new_owner:
            code = ErrCode.OWNER_UNCHANGED
        else:
            code = ErrCode.OK
        if code != ErrCode.OK:
            failed.append(_failure(chat_id, code))
        elif resigned and call.config.groupchat_transfer_seconds > 0:
            chat.status, chat.transfer_to = 2, new_owner
            chat.transfer_due = call.now + call.config.groupchat_transfer_seconds
            corp.due_changed()
        else:
            group_take_over(corp, chat, new_owner, call.now, resigned=resigned)
    # API-made changes push no callbacks (§3); the caller learns the outcome from failed_chat_list.
    return {"failed_chat_list": failed}


@route("externalcontact/groupchat/transfer", writes=True)
def groupchat_transfer(call: Call) -> dict[str, Any]:
    """Resigned owners' groups (90500 if the owner has not resigned, 90508 already inherited)."""
    return _group_transfer(call, resigned=True)


@route("externalcontact/groupchat/onjob_transfer", writes=True)
def groupchat_onjob_transfer(call: Call) -> dict[str, Any]:
    """On-job owners' groups (90502 if the owner has resigned, 90504 if the new owner is the owner)."""
    return _group_transfer(call, resigned=False)
