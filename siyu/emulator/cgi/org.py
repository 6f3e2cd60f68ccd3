"""Departments and members (通讯录 read APIs): department/list, user/get, user/simplelist, user/list, user/list_id.

Any app's token may read them; the emulator treats every app's visible range as the whole corp.
Since August 2022 new corps may only read member ids (user/list_id); the emulator serves all four so both
old and new clients can be exercised.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import cursor_decode, cursor_encode, integer
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, Member


def _department_ids(corp: Corp, root: int, *, recursive: bool) -> list[int]:
    if root not in corp.departments:
        raise ApiError(ErrCode.INVALID_DEPARTMENT, f"department {root} not found")
    found = [root]
    if recursive:
        frontier = [root]
        while frontier:
            children = [d.id for d in corp.departments.values() if d.parentid in frontier and d.id not in found]
            found.extend(children)
            frontier = children
    return found


def _members_in(corp: Corp, query: dict[str, str]) -> list[Member]:
    department_id = integer(query, "department_id", 1)
    wanted = set(_department_ids(corp, department_id, recursive=query.get("fetch_child") == "1"))
    return [m for m in corp.members.values() if wanted.intersection(m.department)]


def member_detail(m: Member) -> dict[str, Any]:
    return {
        "userid": m.userid,
        "name": m.name,
        "department": m.department,
        "order": [0] * len(m.department),
        "position": m.position,
        "mobile": m.mobile,
        "gender": m.gender,
        "email": m.email,
        "is_leader_in_dept": [0] * len(m.department),
        "avatar": "",
        "thumb_avatar": "",
        "telephone": "",
        "alias": m.alias,
        "status": m.status,
        "main_department": m.main_department,
        "open_userid": m.open_userid,
    }


@route("department/list", methods=("GET",), contact_api=False)
def department_list(call: Call) -> dict[str, Any]:
    corp = call.corp
    ids = _department_ids(corp, integer(call.query, "id"), recursive=True) if call.query.get("id") else None
    departments = [corp.departments[i] for i in ids] if ids is not None else list(corp.departments.values())
    return {
        "department": [
            {
                "id": d.id,
                "name": d.name,
                "name_en": d.name_en,
                "department_leader": d.department_leader,
                "parentid": d.parentid,
                "order": d.order,
            }
            for d in departments
        ]
    }


@route("user/get", methods=("GET",), contact_api=False)
def user_get(call: Call) -> dict[str, Any]:
    userid = call.query.get("userid", "")
    if not userid:
        raise ApiError(ErrCode.MISSING_USERID)
    found = call.corp.members.get(userid)
    if found is None:
        raise ApiError(ErrCode.USERID_NOT_FOUND, f"userid {userid!r} not found")
    return member_detail(found)


@route("user/simplelist", methods=("GET",), contact_api=False)
def user_simplelist(call: Call) -> dict[str, Any]:
    members = _members_in(call.corp, call.query)
    return {
        "userlist": [
            {"userid": m.userid, "name": m.name, "department": m.department, "open_userid": m.open_userid}
            for m in members
        ]
    }


@route("user/list", methods=("GET",), contact_api=False)
def user_list(call: Call) -> dict[str, Any]:
    return {"userlist": [member_detail(m) for m in _members_in(call.corp, call.query)]}


@route("user/list_id", contact_api=False)
def user_list_id(call: Call) -> dict[str, Any]:
    """One row per (member, department); limit 1..10000 (default 10000), cursor paging."""
    limit = integer(call.body, "limit", 10_000)
    if not 1 <= limit <= 10_000:
        raise ApiError(ErrCode.INVALID_PARAMETER, "limit must be between 1 and 10000")
    rows = [{"userid": m.userid, "department": d} for m in call.corp.members.values() for d in m.department]
    position = cursor_decode(call.corp, "user/list_id", str(call.body.get("cursor") or ""))
    offset = int(position["o"]) if position else 0
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    next_cursor = cursor_encode(call.corp, "user/list_id", {"o": offset + limit}) if more else ""
    return {"dept_user": page, "next_cursor": next_cursor}
