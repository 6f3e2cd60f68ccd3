"""message/send: an application message (应用消息) from the app to corp members, e.g. siyu's loss alerts.

Only text messages to members by userid are modelled; unknown members come back in `invaliduser` as WeCom does.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import text
from siyu.emulator.errors import ApiError, ErrCode

TEXT_MAX_BYTES = 2048


@route("message/send", contact_api=False, writes=True)
def message_send(call: Call) -> dict[str, Any]:
    body = call.body
    if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
        raise ApiError(ErrCode.INVALID_PARAMETER, "only msgtype text is emulated")
    content = text(body["text"], "content")
    if not content or len(content.encode("utf-8")) > TEXT_MAX_BYTES:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"text.content must be 1 to {TEXT_MAX_BYTES} bytes")
    users = [u for u in str(body.get("touser") or "").split("|") if u]
    if not users:
        raise ApiError(ErrCode.INVALID_PARAMETER, "touser is empty")
    known = [u for u in users if u in call.corp.members]
    invalid = [u for u in users if u not in call.corp.members]
    call.corp.app_messages.append(
        {"agentid": call.app.agentid, "touser": known, "text": content, "sent_at": int(call.now)}
    )
    return {"invaliduser": "|".join(invalid), "msgid": f"msg{len(call.corp.app_messages)}"}
