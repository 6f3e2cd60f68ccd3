"""「联系我」 contact ways (wecom-api.md §4.3): add/get/list/update/del_contact_way."""

from __future__ import annotations

import dataclasses
from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import contact_member, cursor_decode, cursor_encode, integer, page_limit, text
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import ContactWay, Corp

REMARK_MAX = 30
STATE_MAX = 30
TEMP_EXPIRES_DEFAULT = 7 * 86_400
TEMP_EXPIRES_MAX = 14 * 86_400
CHAT_EXPIRES_DEFAULT = 86_400
LIST_DEFAULT_DAYS = 90
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000


def way_json(way: ContactWay) -> dict[str, Any]:
    data: dict[str, Any] = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "style": way.style,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "state": way.state,
        "user": way.user,
        "party": way.party,
        "is_temp": way.is_temp,
        "expires_in": way.expires_in,
        "chat_expires_in": way.chat_expires_in,
        "unionid": way.unionid,
        "conclusions": way.conclusions,
    }
    if way.qr_code:
        data["qr_code"] = way.qr_code
    return data


def _way(corp: Corp, body: dict[str, Any]) -> ContactWay:
    config_id = text(body, "config_id", missing=ErrCode.MISSING_CONFIG_ID)
    way = corp.contact_ways.get(config_id)
    if way is None:
        raise ApiError(ErrCode.INVALID_CONFIG_ID, f"config_id {config_id!r} not found")
    return way


def _expanded_users(corp: Corp, users: list[str], parties: list[int]) -> set[str]:
    for userid in users:
        contact_member(corp, userid)
    for party in parties:
        if party not in corp.departments:
            raise ApiError(ErrCode.INVALID_DEPARTMENT, f"department {party} not found")
    wanted = set(parties)
    return set(users) | {m.userid for m in corp.members.values() if m.customer_contact and wanted & set(m.department)}


def _members(call: Call, way_type: int, body: dict[str, Any]) -> tuple[list[str], list[int]]:
    users = body.get("user") or []
    parties = body.get("party") or []
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ApiError(ErrCode.INVALID_PARAMETER, "user must be a list of userids")
    if not isinstance(parties, list) or not all(isinstance(p, int) for p in parties):
        raise ApiError(ErrCode.INVALID_PARAMETER, "party must be a list of department ids")
    if way_type == 1 and (len(users) != 1 or parties):
        raise ApiError(ErrCode.INVALID_PARAMETER, "a single-member contact way takes exactly one user and no party")
    if way_type == 2 and not users and not parties:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "user and party cannot both be empty")
    if len(_expanded_users(call.corp, users, parties)) > call.config.max_contact_way_users:
        raise ApiError(ErrCode.CONTACT_WAY_USER_LIMIT)
    return users, parties


def _apply_options(way: ContactWay, body: dict[str, Any]) -> None:
    if "remark" in body:
        way.remark = text(body, "remark", max_chars=REMARK_MAX)
    if "state" in body:
        way.state = text(body, "state", max_chars=STATE_MAX)
    if "skip_verify" in body:
        way.skip_verify = bool(body["skip_verify"])
    if "style" in body:
        style = integer(body, "style", 1)
        if style < 1:
            raise ApiError(ErrCode.INVALID_CONTACT_WAY_STYLE)
        way.style = style
    if way.is_temp:
        if "expires_in" in body or not way.expires_in:
            way.expires_in = integer(body, "expires_in", TEMP_EXPIRES_DEFAULT)
            if not 0 < way.expires_in <= TEMP_EXPIRES_MAX:
                raise ApiError(ErrCode.INVALID_PARAMETER, "expires_in must be within 14 days")
        if "chat_expires_in" in body or not way.chat_expires_in:
            way.chat_expires_in = integer(body, "chat_expires_in", CHAT_EXPIRES_DEFAULT)
            if not 0 < way.chat_expires_in <= TEMP_EXPIRES_MAX:
                raise ApiError(ErrCode.INVALID_PARAMETER, "chat_expires_in must be within 14 days")
    if "unionid" in body:
        way.unionid = text(body, "unionid")
    if "conclusions" in body:
        if not isinstance(body["conclusions"], dict):
            raise ApiError(ErrCode.INVALID_PARAMETER, "conclusions must be an object")
        way.conclusions = body["conclusions"]


@route("externalcontact/add_contact_way", writes=True)
def add_contact_way(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    way_type = integer(body, "type", missing=ErrCode.MISSING_CONTACT_WAY_TYPE)
    scene = integer(body, "scene", missing=ErrCode.MISSING_CONTACT_WAY_SCENE)
    if way_type not in (1, 2):
        raise ApiError(ErrCode.INVALID_CONTACT_WAY_TYPE)
    if scene not in (1, 2):
        raise ApiError(ErrCode.INVALID_CONTACT_WAY_SCENE)
    is_temp = bool(body.get("is_temp", False))
    if is_temp and way_type != 1:
        raise ApiError(ErrCode.INVALID_PARAMETER, "a temporary contact way takes a single member")
    users, parties = _members(call, way_type, body)
    # One quota for 「联系我」 and 「加入群聊」 ways (§4.3, 99547).
    if sum(1 for w in corp.contact_ways.values() if w.from_api) + len(corp.join_ways) >= call.config.max_contact_ways:
        raise ApiError(ErrCode.CONTACT_WAY_LIMIT)
    seq = corp.next_seq()
    config_id = ids.config_id(corp.corp_id, seq)
    way = ContactWay(
        config_id=config_id,
        seq=seq,
        type=way_type,
        scene=scene,
        create_time=int(call.now),
        user=users,
        party=parties,
        is_temp=is_temp,
        # Only QR-code ways (scene 2) have a picture; it is served by the emulator so the console works offline.
        qr_code=f"{call.config.public_url}/emulator/qr/{config_id}.svg" if scene == 2 else "",
    )
    _apply_options(way, body)
    corp.contact_ways[config_id] = way
    data: dict[str, Any] = {"config_id": config_id}
    if way.qr_code:
        data["qr_code"] = way.qr_code
    return data


@route("externalcontact/get_contact_way")
def get_contact_way(call: Call) -> dict[str, Any]:
    return {"contact_way": way_json(_way(call.corp, call.body))}


@route("externalcontact/list_contact_way")
def list_contact_way(call: Call) -> dict[str, Any]:
    """API-created ways made in [start_time, end_time] (default: the last 90 days), in creation order."""
    corp, body = call.corp, call.body
    now = int(call.now)
    end_time = integer(body, "end_time", now)
    start_time = integer(body, "start_time", end_time - LIST_DEFAULT_DAYS * 86_400)
    if start_time > end_time:
        raise ApiError(ErrCode.INVALID_PARAMETER, "start_time is after end_time")
    limit = page_limit(body, default=LIST_LIMIT_DEFAULT, maximum=LIST_LIMIT_MAX)
    position = cursor_decode(corp, "list_contact_way", text(body, "cursor"))
    after = int(position["s"]) if position else 0
    ways = sorted(
        (
            w
            for w in corp.contact_ways.values()
            if w.from_api and start_time <= w.create_time <= end_time and w.seq > after
        ),
        key=lambda w: w.seq,
    )
    page = ways[:limit]
    next_cursor = ""
    if len(ways) > limit:
        next_cursor = cursor_encode(corp, "list_contact_way", {"s": page[-1].seq})
    return {"contact_way": [{"config_id": w.config_id} for w in page], "next_cursor": next_cursor}


@route("externalcontact/update_contact_way", writes=True)
def update_contact_way(call: Call) -> dict[str, Any]:
    # Changes are made on a copy and stored only when every field checked out: an error changes nothing.
    way = dataclasses.replace(_way(call.corp, call.body))
    if "user" in call.body or "party" in call.body:
        # user[] and party[] overwrite (§4.3); the single-member rule still applies.
        merged = {"user": way.user, "party": way.party, **call.body}
        way.user, way.party = _members(call, way.type, merged)
    _apply_options(way, call.body)
    call.corp.contact_ways[way.config_id] = way
    return {}


@route("externalcontact/del_contact_way", writes=True)
def del_contact_way(call: Call) -> dict[str, Any]:
    way = _way(call.corp, call.body)
    del call.corp.contact_ways[way.config_id]
    return {}
