"""Service members and their customers (wecom-api.md §4.1).

get_follow_user_list, list, get, batch/get_by_user and remark.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import (
    contact,
    contact_member,
    cursor_decode,
    cursor_encode,
    page_limit,
    query_digest,
    related,
    string_list,
    text,
)
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, ExternalContact, Follow

GET_FOLLOWERS_PAGE = 500  # externalcontact/get returns next_cursor beyond 500 followers
BATCH_USERS_MAX = 100
BATCH_LIMIT_DEFAULT = 50
BATCH_LIMIT_MAX = 100


def contact_json(c: ExternalContact) -> dict[str, Any]:
    data: dict[str, Any] = {
        "external_userid": c.external_userid,
        "name": c.name,
        "type": c.type,
        "avatar": c.avatar,
        "gender": c.gender,
    }
    # unionid only for WeChat users of a corp bound to an open-platform account; company fields only for WeCom users.
    if c.unionid:
        data["unionid"] = c.unionid
    if c.type == 2:
        data.update(position=c.position, corp_name=c.corp_name, corp_full_name=c.corp_full_name)
    return data


def _follow_common(f: Follow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "remark_corp_name": f.remark_corp_name,
        "remark_mobiles": f.remark_mobiles,
        "oper_userid": f.oper_userid or f.userid,
        "add_way": f.add_way,
    }
    if f.state:
        data["state"] = f.state
    return data


def follow_user_json(corp: Corp, f: Follow, tags: dict[str, Any]) -> dict[str, Any]:
    data = _follow_common(f)
    data["tags"] = [
        {"group_name": tags[t][0].group_name, "tag_name": tags[t][1].name, "tag_id": t, "type": 1}
        for t in f.tag_ids
        if t in tags
    ]
    return data


def follow_info_json(f: Follow) -> dict[str, Any]:
    data = _follow_common(f)
    data["tag_id"] = list(f.tag_ids)
    return data


@route("externalcontact/get_follow_user_list", methods=("GET",))
def get_follow_user_list(call: Call) -> dict[str, Any]:
    return {"follow_user": [m.userid for m in call.corp.members.values() if m.customer_contact and m.status == 1]}


@route("externalcontact/list", methods=("GET",))
def list_customers(call: Call) -> dict[str, Any]:
    userid = call.query.get("userid", "")
    if not userid:
        raise ApiError(ErrCode.MISSING_USERID)
    contact_member(call.corp, userid)
    customers = list(call.corp.customers_of(userid))
    if not customers:
        # WeCom answers a member without any customer with 84061 rather than an empty list.
        raise ApiError(ErrCode.NOT_EXTERNAL_CONTACT, external_userid=[])
    return {"external_userid": customers}


@route("externalcontact/get", methods=("GET",))
def get_customer(call: Call) -> dict[str, Any]:
    corp = call.corp
    found = contact(corp, call.query.get("external_userid", ""))
    if not found.follows:
        raise ApiError(ErrCode.NOT_EXTERNAL_CONTACT, external_userid=[])
    position = cursor_decode(corp, "externalcontact/get", call.query.get("cursor", ""))
    if position is not None and position.get("e") != found.external_userid:
        raise ApiError(ErrCode.INVALID_CURSOR)
    after = int(position["s"]) if position else 0
    follows = [f for f in found.follows.values() if f.seq > after]
    page = follows[:GET_FOLLOWERS_PAGE]
    tags = corp.tag_index()
    data: dict[str, Any] = {
        "external_contact": contact_json(found),
        "follow_user": [follow_user_json(corp, f, tags) for f in page],
    }
    if len(follows) > GET_FOLLOWERS_PAGE:
        data["next_cursor"] = cursor_encode(
            corp, "externalcontact/get", {"e": found.external_userid, "s": page[-1].seq}
        )
    return data


@route("externalcontact/batch/get_by_user")
def batch_get_by_user(call: Call) -> dict[str, Any]:
    """Customers of up to 100 members, one row per (member, customer), in member order then follow order."""
    corp = call.corp
    userids = string_list(call.body, "userid_list")
    if not userids:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "userid_list is required")
    if len(userids) > BATCH_USERS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"userid_list exceeds {BATCH_USERS_MAX} members")
    for userid in userids:
        contact_member(corp, userid)
    limit = page_limit(call.body, default=BATCH_LIMIT_DEFAULT, maximum=BATCH_LIMIT_MAX)
    digest = query_digest(userids)
    position = cursor_decode(corp, "batch/get_by_user", text(call.body, "cursor"))
    if position is not None and position.get("q") != digest:
        raise ApiError(ErrCode.INVALID_CURSOR)
    start_user, after = (int(position["u"]), int(position["s"])) if position else (0, 0)

    rows: list[tuple[int, str, int]] = []  # (user index, external_userid, seq); one extra row tells "more"
    for index in range(start_user, len(userids)):
        for external_userid, seq in corp.customers_of(userids[index]).items():
            if index == start_user and seq <= after:
                continue
            rows.append((index, external_userid, seq))
            if len(rows) > limit:
                break
        if len(rows) > limit:
            break
    page, more = rows[:limit], len(rows) > limit
    items = []
    for index, external_userid, _seq in page:
        customer = corp.contacts[external_userid]
        follow = customer.follows[userids[index]]
        items.append({"external_contact": contact_json(customer), "follow_info": follow_info_json(follow)})
    next_cursor = ""
    if more:
        last_index, _, last_seq = page[-1]
        next_cursor = cursor_encode(corp, "batch/get_by_user", {"q": digest, "u": last_index, "s": last_seq})
    return {"external_contact_list": items, "next_cursor": next_cursor}


@route("externalcontact/remark", writes=True)
def remark(call: Call) -> dict[str, Any]:
    body = call.body
    userid = text(body, "userid", missing=ErrCode.MISSING_USERID)
    found = related(call.corp, userid, text(body, "external_userid", missing=ErrCode.MISSING_EXTERNAL_USERID))
    # Only the fields present change; limits from §4.1 (remark 20, description 150, company 20 characters).
    # Everything is checked before anything is written, so a rejected call changes nothing.
    changes: dict[str, Any] = {}
    if "remark" in body:
        changes["remark"] = text(body, "remark", max_chars=20)
    if "description" in body:
        changes["description"] = text(body, "description", max_chars=150)
    if "remark_company" in body:
        changes["remark_corp_name"] = text(body, "remark_company", max_chars=20)
    if "remark_mobiles" in body:
        changes["remark_mobiles"] = string_list(body, "remark_mobiles")
    follow = found.follows[userid]
    for name, value in changes.items():
        setattr(follow, name, value)
    return {}
