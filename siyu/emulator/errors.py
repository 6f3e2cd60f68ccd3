"""WeCom error codes the emulator returns, and the exception endpoint code raises to return one.

Codes and meanings come from wecom-api.md §1/§5 (the official global error-code table, doc path 90313). A few
situations the SCRM pages do not spell out use the closest code of that same table; they are marked "(table)"
below so a reader knows they were chosen, not observed:
40050 unknown chat_id, 40068 unknown tag id, 40071 duplicate tag name, 81017 too many members to scan,
45009 for a fourth remind_groupmsg_send within 24 h (the doc gives the limit, not its code), 41043/41044 reused for
a missing/unknown join-way config_id, 90501 for a chat id that is not one of the corp's customer groups in the
group-transfer APIs.
"""

from __future__ import annotations

from enum import IntEnum


class ErrCode(IntEnum):
    SYSTEM_BUSY = -1
    OK = 0
    INVALID_SECRET = 40001
    INVALID_USERID = 40003
    INVALID_MEDIA_TYPE = 40004  # media/upload: type not image/voice/video/file
    INVALID_FILE_TYPE = 40005
    INVALID_FILE_SIZE = 40006
    INVALID_MEDIA_ID = 40007  # unknown or expired (temporary media lives 3 days)
    INVALID_CORPID = 40013
    INVALID_ACCESS_TOKEN = 40014
    INVALID_CHAT_ID = 40050  # (table) "chatid不存在"
    INVALID_PARAMETER = 40058
    PARAMETER_EMPTY = 40063  # also: wrong HTTP method, body not JSON
    INVALID_TAG_ID = 40068  # (table) "标签ID未指定，或者指定的标签ID不存在"
    TAG_NAME_EXISTS = 40071  # (table) "不合法的标签名字: 标签名字已经存在"
    SECRET_OF_OTHER_CORP = 40091
    INVALID_EXTERNAL_USERID = 40096
    NOT_RESIGNED = 40097
    EXTERNAL_CONTACT_LIMIT = 40099
    CORP_TAG_LIMIT = 40126
    TRANSFERRED_TOO_OFTEN = 40128
    IN_TRANSFER = 40129
    SAME_HANDOVER_TAKEOVER = 40130
    NOT_HANDOVER_FOLLOWER = 40131
    MISSING_ACCESS_TOKEN = 41001
    MISSING_CORPID = 41002
    MISSING_SECRET = 41004
    MISSING_MEDIA = 41005  # media/upload without a "media" file part
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
    MISSING_MOMENT_ID = 41059
    INVALID_MOMENT_ID = 41060
    MOMENT_NOT_BY_USER = 41061
    MOMENT_NOT_PUBLISHED = 41062
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
    OWNER_NOT_RESIGNED = 90500
    NOT_CUSTOMER_GROUP = 90501
    OWNER_RESIGNED = 90502
    OWNER_UNCHANGED = 90504
    GROUP_TRANSFER_IN_PROGRESS = 90507
    GROUP_ALREADY_INHERITED = 90508
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
    ErrCode.NOT_RESIGNED: "user is not resigned",
    ErrCode.EXTERNAL_CONTACT_LIMIT: "external contact count reaches the limit",
    ErrCode.CORP_TAG_LIMIT: "corp tag count reaches the limit",
    ErrCode.TRANSFERRED_TOO_OFTEN: "customer transferred too often",
    ErrCode.IN_TRANSFER: "customer is being transferred",
    ErrCode.SAME_HANDOVER_TAKEOVER: "handover_userid and takeover_userid are the same",
    ErrCode.NOT_HANDOVER_FOLLOWER: "handover_userid is not a follower of the external contact",
    ErrCode.MISSING_ACCESS_TOKEN: "access_token missing",
    ErrCode.MISSING_CORPID: "corpid missing",
    ErrCode.MISSING_SECRET: "corpsecret missing",
    ErrCode.MISSING_MEDIA: "media data missing",
    ErrCode.INVALID_MEDIA_TYPE: "invalid media type",
    ErrCode.INVALID_FILE_TYPE: "invalid file type",
    ErrCode.INVALID_FILE_SIZE: "invalid file size",
    ErrCode.INVALID_MEDIA_ID: "invalid media_id",
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
    ErrCode.MISSING_MOMENT_ID: "missing moment_id",
    ErrCode.INVALID_MOMENT_ID: "invalid moment_id",
    ErrCode.MOMENT_NOT_BY_USER: "the moment was not published by this userid",
    ErrCode.MOMENT_NOT_PUBLISHED: "the member has not published the corp moment yet",
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
    ErrCode.OWNER_NOT_RESIGNED: "the group owner has not resigned",
    ErrCode.NOT_CUSTOMER_GROUP: "not a customer group",
    ErrCode.OWNER_RESIGNED: "the group owner has resigned",
    ErrCode.OWNER_UNCHANGED: "the group owner is unchanged",
    ErrCode.GROUP_TRANSFER_IN_PROGRESS: "the group is being inherited",
    ErrCode.GROUP_ALREADY_INHERITED: "the group was already inherited",
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
