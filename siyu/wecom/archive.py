"""The session archive (会话内容存档): a corp's chat messages, read in order of their `seq`.

Real WeCom hands chat content out only through the archive's C SDK (GetChatData from a seq, each message encrypted
with the brand's archive key): there is no HTTP endpoint and no callback for it. siyu reads the archive in its
decrypted JSON shape, a page at a time,

    GET <archive base>chat_messages?corp_id=&after=SEQ&limit=N
    → {"messages": [{"seq", "msgid", "action", "from", "tolist", "roomid", "msgtime", "msgtype", "text"}, ...],
       "last_seq": N}

from the offline emulator (its /emulator/ surface, next to its /cgi-bin/) or from a bridge that runs the SDK beside
siyu and serves the same shape (SIYU_WECOM_ARCHIVE_URL, when set, wins for every connection). A connection to the
real API without such a bridge has no archive siyu can read: `archive_client` answers None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from siyu.wecom.client import RetryPolicy, WeComClient, _errcode
from siyu.wecom.errors import WeComAPIError, WeComTransportError
from siyu.wecom.models import DEFAULT_API_BASE_URL, WeComConnection
from siyu.wecom.selectors import connection_secrets

MAX_PAGE = 1000  # messages per page, as GetChatData's limit

ENDPOINT = "chat_messages"


@dataclass(frozen=True)
class ArchiveMessage:
    """One archived message; `content` is the text of a text message and "" for any other kind."""

    seq: int
    msgid: str
    sender: str  # "from": a member's userid or a customer's external_userid
    tolist: tuple[str, ...]
    roomid: str  # the group chat's chat_id, "" for a one-to-one chat
    msgtime: int  # milliseconds
    msgtype: str
    action: str  # "send", "recall" or "switch"
    content: str

    @property
    def is_text(self) -> bool:
        return self.action == "send" and self.msgtype == "text" and bool(self.content)


@dataclass(frozen=True)
class ArchivePage:
    messages: list[ArchiveMessage]
    last_seq: int  # the archive's newest seq when the page was read


def _message(raw: Any) -> ArchiveMessage:
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        raise WeComTransportError("archive message without a seq", ENDPOINT)
    text = raw.get("text")
    msgtype = str(raw.get("msgtype") or "")
    content = text.get("content") if msgtype == "text" and isinstance(text, dict) else ""
    tolist = raw.get("tolist")
    msgtime = raw.get("msgtime")
    return ArchiveMessage(
        seq=raw["seq"],
        msgid=str(raw.get("msgid") or ""),
        sender=str(raw.get("from") or ""),
        tolist=tuple(str(t) for t in tolist) if isinstance(tolist, list) else (),
        roomid=str(raw.get("roomid") or ""),
        msgtime=msgtime if isinstance(msgtime, int) else 0,
        msgtype=msgtype,
        action=str(raw.get("action") or "send"),
        content=content if isinstance(content, str) else "",
    )


class ArchiveClient(WeComClient):
    """The archive of one corp, with the client's timeouts and retries (reading a page is idempotent)."""

    def chat_messages(self, *, after: int = 0, limit: int = MAX_PAGE) -> ArchivePage:
        """The messages with a seq above `after`, oldest first, at most `limit`."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        params = {"corp_id": self.corp_id, "after": after, "limit": limit}
        data = self._request("GET", ENDPOINT, params, None, idempotent=True)
        errcode = _errcode(data)
        if errcode != 0:
            raise WeComAPIError(errcode, str(data.get("errmsg", "")), ENDPOINT)
        raw = data.get("messages")
        if not isinstance(raw, list):
            raise WeComTransportError("archive page without messages", ENDPOINT)
        messages = sorted((_message(m) for m in raw), key=lambda m: m.seq)
        last_seq = data.get("last_seq")
        newest = messages[-1].seq if messages else after
        return ArchivePage(messages=messages, last_seq=last_seq if isinstance(last_seq, int) else newest)


def archive_base_url(connection: WeComConnection) -> str | None:
    """Where the connection's archive is read: SIYU_WECOM_ARCHIVE_URL, else the emulator's /emulator/ beside the
    /cgi-bin/ the connection talks to; None for the real API without a bridge."""
    configured = str(getattr(settings, "SIYU_WECOM_ARCHIVE_URL", "") or "")
    if configured:
        return configured if configured.endswith("/") else configured + "/"
    api = connection.api_base_url if connection.api_base_url.endswith("/") else connection.api_base_url + "/"
    if api == DEFAULT_API_BASE_URL or not api.endswith("/cgi-bin/"):
        return None
    return api.removesuffix("cgi-bin/") + "emulator/"


def archive_client(
    connection: WeComConnection, *, timeout: float | None = None, retry: RetryPolicy | None = None
) -> ArchiveClient | None:
    """A client for the connection's archive (close it when done), or None when it has none siyu can read."""
    base = archive_base_url(connection)
    if base is None:
        return None
    return ArchiveClient(
        base,
        connection.corp_id,
        connection_secrets(connection).contact_secret,
        timeout=float(settings.SIYU_WECOM_TIMEOUT) if timeout is None else timeout,
        retry=retry,
    )
