"""send_welcome_msg (wecom-api.md §4.4): the welcome_code from an add event is valid 20 s and usable once."""

from __future__ import annotations

from typing import Any

from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import text
from siyu.emulator.errors import ApiError, ErrCode

TEXT_MAX_BYTES = 4000
ATTACHMENTS_MAX = 9
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")


def check_content(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text + attachments of a welcome or mass message: not both empty, ≤ 4000 bytes, ≤ 9 typed attachments."""
    content = ""
    raw_text = body.get("text")
    if raw_text is not None:
        if not isinstance(raw_text, dict):
            raise ApiError(ErrCode.INVALID_PARAMETER, "text must be an object")
        content = text(raw_text, "content")
    if len(content.encode("utf-8")) > TEXT_MAX_BYTES:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"text.content exceeds {TEXT_MAX_BYTES} bytes")
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list):
        raise ApiError(ErrCode.INVALID_PARAMETER, "attachments must be a list")
    if len(attachments) > ATTACHMENTS_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"at most {ATTACHMENTS_MAX} attachments")
    for attachment in attachments:
        msgtype = attachment.get("msgtype") if isinstance(attachment, dict) else None
        # The msgtype must be known and the object of that name filled in.
        if msgtype not in ATTACHMENT_TYPES or not isinstance(attachment.get(msgtype), dict):
            raise ApiError(ErrCode.INVALID_ATTACHMENT_TYPE)
    if not content and not attachments:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "text and attachments cannot both be empty")
    return content, attachments


@route("externalcontact/send_welcome_msg", writes=True)
def send_welcome_msg(call: Call) -> dict[str, Any]:
    corp = call.corp
    code = text(call.body, "welcome_code", missing=ErrCode.MISSING_WELCOME_CODE)
    content, attachments = check_content(call.body)
    welcome = corp.welcome_codes.get(code)
    if welcome is None or call.now - welcome.issued_at > call.config.welcome_code_ttl:
        raise ApiError(ErrCode.INVALID_WELCOME_CODE)
    if welcome.used:
        # The first caller wins; anyone after it (another app, a retry) gets 41051 (§4.4).
        raise ApiError(ErrCode.ALREADY_CHATTING)
    welcome.used = True
    corp.welcome_messages.append(
        {
            "welcome_code": code,
            "userid": welcome.userid,
            "external_userid": welcome.external_userid,
            "agentid": call.app.agentid,
            "sent_at": int(call.now),
            "text": content,
            "attachments": attachments,
        }
    )
    return {}
