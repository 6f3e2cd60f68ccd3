"""WeCom error codes the emulator returns, and the exception endpoint code raises to return one.

Codes and meanings come from wecom-api.md §1/§5 (the official global error-code table, doc path 90313). A few
situations the SCRM pages do not spell out use the closest code of that same table; they are marked "(table)"
below so a reader knows they were chosen, not observed:
40050 unknown chat_id, 40068 unknown tag id, 40071 duplicate tag name, 81017 too many members to scan.
"""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    SYSTEM_BUSY = -1
    OK = 0
    INVALID_SECRET = 40001
    INVALID_USERID = 40003
    INVALID_CORPID = 40013
    INVALID_ACCESS_TOKEN = 40014
    INVALID_CHAT_ID = 40050  # (table) "chatid不存在"
    INVALID_PARAMETER = 40058
    PARAMETER_EMPTY = 40063  # also: wrong HTTP method, body not JSON
    INVALID_TAG_ID = 40068  # (table) "标签ID未指定，或者指定的标签ID不存在"
    TAG_NAME_EXISTS = 40071  # (table) "不合法的标签名字: 标签名字已经存在"
    SECRET_OF_OTHER_CORP = 40091
    INVALID_EXTERNAL_USERID = 40096
    CORP_TAG_LIMIT = 40126
    MISSING_ACCESS_TOKEN = 41001
    MISSING_CORPID = 41002
    MISSING_SECRET = 41004
    MISSING_USERID = 41009
    MISSING_EXTERNAL_USERID = 41035
    MISSING_CONTACT_WAY_TYPE = 41037
    MISSING_CONTACT_WAY_SCENE = 41038
    INVALID_CONTACT_WAY_TYPE = 41039
    INVALID_CONTACT_WAY_SCENE = 41040
    CONTACT_WAY_USER_LIMIT = 41041
    INVALID_CONTACT_WAY_STYLE = 41042
    MISSING_CONFIG_ID = 41043
    INVALID_CONFIG_ID = 41044
    CONTACT_WAY_LIMIT = 41045
    MISSING_MSGID = 41046
    INVALID_MSGID = 41047
    NO_RECEIVER = 41048
    MISSING_WELCOME_CODE = 41049
    INVALID_WELCOME_CODE = 41050
    ALREADY_CHATTING = 41051
    STILL_DISPATCHING = 41063
    INVALID_ATTACHMENT_TYPE = 41065
    ACCESS_TOKEN_EXPIRED = 42001
    FREQUENCY_LIMIT = 45009
    API_NOT_PERMITTED = 48002
    INVALID_CURSOR = 50100
    INVALID_DEPARTMENT = 60003
    USERID_NOT_FOUND = 60111
    TOO_MANY_REQUESTED = 81017  # (table) "请求个数超过限制"
    NOT_EXTERNAL_CONTACT = 84061
    NOT_IN_CONTACT_RANGE = 610004


MESSAGES: dict[int, str] = {
    ErrCode.SYSTEM_BUSY: "system busy",
    ErrCode.INVALID_SECRET: "invalid credential",
    ErrCode.INVALID_USERID: "invalid userid",
    ErrCode.INVALID_CORPID: "invalid corpid",
    ErrCode.INVALID_ACCESS_TOKEN: "invalid access_token",
    ErrCode.INVALID_CHAT_ID: "invalid chatid",
    ErrCode.INVALID_PARAMETER: "invalid parameter",
    ErrCode.PARAMETER_EMPTY: "parameter is empty or the request is not well-formed",
    ErrCode.INVALID_TAG_ID: "invalid tagid",
    ErrCode.TAG_NAME_EXISTS: "invalid tag name, the name already exists",
    ErrCode.SECRET_OF_OTHER_CORP: "secret is invalid",
    ErrCode.INVALID_EXTERNAL_USERID: "invalid external userid",
    ErrCode.CORP_TAG_LIMIT: "corp tag count reaches the limit",
    ErrCode.MISSING_ACCESS_TOKEN: "access_token missing",
    ErrCode.MISSING_CORPID: "corpid missing",
    ErrCode.MISSING_SECRET: "corpsecret missing",
    ErrCode.MISSING_USERID: "userid missing",
    ErrCode.MISSING_EXTERNAL_USERID: "missing external userid",
    ErrCode.MISSING_CONTACT_WAY_TYPE: "missing contact way type",
    ErrCode.MISSING_CONTACT_WAY_SCENE: "missing contact way scene",
    ErrCode.INVALID_CONTACT_WAY_TYPE: "invalid contact way type",
    ErrCode.INVALID_CONTACT_WAY_SCENE: "invalid contact way scene",
    ErrCode.CONTACT_WAY_USER_LIMIT: "contact way user count exceeds the limit",
    ErrCode.INVALID_CONTACT_WAY_STYLE: "invalid contact way style",
    ErrCode.MISSING_CONFIG_ID: "missing config_id",
    ErrCode.INVALID_CONFIG_ID: "invalid config_id",
    ErrCode.CONTACT_WAY_LIMIT: "contact way count reaches the limit",
    ErrCode.MISSING_MSGID: "missing msgid",
    ErrCode.INVALID_MSGID: "invalid msgid",
    ErrCode.NO_RECEIVER: "no customer can receive the message",
    ErrCode.MISSING_WELCOME_CODE: "missing welcome_code",
    ErrCode.INVALID_WELCOME_CODE: "invalid welcome_code",
    ErrCode.ALREADY_CHATTING: "customer and member already chatted or the welcome_code was used",
    ErrCode.STILL_DISPATCHING: "the mass message is still being dispatched, retry later",
    ErrCode.INVALID_ATTACHMENT_TYPE: "invalid attachment type",
    ErrCode.ACCESS_TOKEN_EXPIRED: "access_token expired",
    ErrCode.FREQUENCY_LIMIT: "api freq out of limit",
    ErrCode.API_NOT_PERMITTED: "api forbidden",
    ErrCode.INVALID_CURSOR: "invalid cursor",
    ErrCode.INVALID_DEPARTMENT: "department not found",
    ErrCode.USERID_NOT_FOUND: "userid not found",
    ErrCode.TOO_MANY_REQUESTED: "request count exceeds the limit",
    ErrCode.NOT_EXTERNAL_CONTACT: "not external contact",
    ErrCode.NOT_IN_CONTACT_RANGE: "userid not in customer contact range",
}


class ApiError(Exception):
    """Raised by endpoint code; the server turns it into WeCom's `{"errcode": N, "errmsg": "..."}` with HTTP 200."""

    def __init__(self, code: ErrCode, detail: str = "", **extra: object) -> None:
        super().__init__(f"{int(code)} {detail}".strip())
        self.code = code
        self.detail = detail
        # Some errors carry data next to errcode (e.g. 84061 with "external_userid": [], §5).
        self.extra = extra
