"""「加入群聊」 join ways (wecom-api.md §4.5, doc 92229 / 99547): groupchat/add_join_way, get_join_way,
update_join_way and del_join_way.

A join way is a QR code (scene 2) or mini-program button (scene 1) that puts a customer into one of up to five
customer groups. Apps only see the join ways they created themselves; another app's config_id is unknown (41044).
The count is shared with 「联系我」 contact ways (500,000 per corp, 41045). Customers use them through
POST /emulator/simulate/join_way (and the behaviour simulator).
"""

from __future__ import annotations

from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import integer, string_list, text
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import JoinWay

REMARK_MAX = 30  # longer remarks are cut, not refused (§4.5)
ROOM_BASE_NAME_MAX = 40
STATE_MAX = 30
CHATS_MAX = 5


def join_way_json(way: JoinWay) -> dict[str, Any]:
    data: dict[str, Any] = {
        "config_id": way.config_id,
        "scene": way.scene,
        "remark": way.remark,
        "auto_create_room": way.auto_create_room,
        "room_base_name": way.room_base_name,
        "room_base_id": way.room_base_id,
        "chat_id_list": list(way.chat_id_list),
        "state": way.state,
    }
    if way.qr_code:
        data["qr_code"] = way.qr_code
    return data


def _configure(call: Call, config_id: str, *, create_time: int, seq: int) -> JoinWay:
    """A join way built from the request body; every field checked before anything is stored."""
    body = call.body
    scene = integer(body, "scene", missing=ErrCode.PARAMETER_EMPTY)
    if scene not in (1, 2):
        raise ApiError(ErrCode.INVALID_PARAMETER, "scene must be 1 (mini-program) or 2 (QR code)")
    auto_create_room = integer(body, "auto_create_room", 1)
    if auto_create_room not in (0, 1):
        raise ApiError(ErrCode.INVALID_PARAMETER, "auto_create_room must be 0 or 1")
    room_base_id = integer(body, "room_base_id", 0)
    if room_base_id < 0:
        raise ApiError(ErrCode.INVALID_PARAMETER, "room_base_id must not be negative")
    chat_ids = string_list(body, "chat_id_list")
    if not chat_ids:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "chat_id_list is required")
    if len(chat_ids) > CHATS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"chat_id_list takes at most {CHATS_MAX} chats")
    for chat_id in chat_ids:
        if chat_id not in call.corp.group_chats:
            raise ApiError(ErrCode.INVALID_CHAT_ID, f"chat {chat_id!r} not found")
    return JoinWay(
        config_id=config_id,
        scene=scene,
        create_time=create_time,
        seq=seq,
        agentid=call.app.agentid,
        chat_id_list=list(dict.fromkeys(chat_ids)),
        remark=text(body, "remark")[:REMARK_MAX],
        auto_create_room=auto_create_room,
        room_base_name=text(body, "room_base_name", max_chars=ROOM_BASE_NAME_MAX),
        room_base_id=room_base_id,
        state=text(body, "state", max_chars=STATE_MAX),
        mark_source=bool(body.get("mark_source", False)),
        qr_code=f"{call.config.public_url}/emulator/qr/{config_id}.svg" if scene == 2 else "",
    )


def _own_way(call: Call) -> JoinWay:
    config_id = text(call.body, "config_id", missing=ErrCode.MISSING_CONFIG_ID)
    way = call.corp.join_ways.get(config_id)
    if way is None or way.agentid != call.app.agentid:  # another app's join way is invisible to this one
        raise ApiError(ErrCode.INVALID_CONFIG_ID, f"join way {config_id!r} not found")
    return way


@route("externalcontact/groupchat/add_join_way", writes=True)
def add_join_way(call: Call) -> dict[str, Any]:
    corp = call.corp
    used = sum(1 for w in corp.contact_ways.values() if w.from_api) + len(corp.join_ways)
    if used >= call.config.max_contact_ways:  # one quota for 「联系我」 and 「加入群聊」 (§4.3)
        raise ApiError(ErrCode.CONTACT_WAY_LIMIT)
    seq = corp.next_seq()
    way = _configure(call, ids.join_way_id(corp.corp_id, seq), create_time=int(call.now), seq=seq)
    corp.join_ways[way.config_id] = way
    return {"config_id": way.config_id}


@route("externalcontact/groupchat/get_join_way")
def get_join_way(call: Call) -> dict[str, Any]:
    return {"join_way": join_way_json(_own_way(call))}


@route("externalcontact/groupchat/update_join_way", writes=True)
def update_join_way(call: Call) -> dict[str, Any]:
    # The body restates the whole way (scene and chat_id_list are required again); an error changes nothing.
    old = _own_way(call)
    way = _configure(call, old.config_id, create_time=old.create_time, seq=old.seq)
    call.corp.join_ways[way.config_id] = way
    return {}


@route("externalcontact/groupchat/del_join_way", writes=True)
def del_join_way(call: Call) -> dict[str, Any]:
    del call.corp.join_ways[_own_way(call).config_id]
    return {}
