"""Reading the decrypted callback XML: a flat dict of its fields, its event type and its dedupe key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from siyu.wecom.crypto import CallbackCryptoError, parse_xml

# Fields that identify one event; a retried delivery repeats all of them, two different events differ in one.
# Member-change lists and version hashes are included because one group can change several times in a second.
_IDENTITY_FIELDS = (
    "FromUserName",
    "UserID",
    "ExternalUserID",
    "ChatId",
    "Id",
    "TagType",
    "UpdateDetail",
    "MemChangeList",
    "CurMemVer",
    "MsgId",
)


@dataclass(frozen=True)
class ParsedCallback:
    """The fields of one callback, plus the values every consumer needs normalised."""

    fields: dict[str, Any]
    event_type: str  # Event (self-built apps) or InfoType (suites); MsgType for plain messages
    change_type: str
    created_at: dt.datetime | None  # CreateTime (self-built) or TimeStamp (suites)

    def dedupe_key(self, *, corp_id: str) -> str:
        """sha256 of corp + event + change type + ids + create time: equal for WeCom's retries of one event."""
        material = [corp_id, self.event_type, self.change_type]
        material += [self.fields.get(name, "") for name in _IDENTITY_FIELDS]
        material.append(int(self.created_at.timestamp()) if self.created_at else "")
        canonical = json.dumps(material, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_callback(xml: str) -> ParsedCallback:
    """Parse the inner XML of a callback; raises CallbackCryptoError(reason="malformed_event") if unreadable."""
    try:
        root = parse_xml(xml.encode("utf-8"))
    except CallbackCryptoError as exc:
        raise CallbackCryptoError("malformed_event", exc.detail) from exc
    fields: dict[str, Any] = {}
    for child in root:
        if len(child):
            # Repeated children (<MemChangeList><Item>a</Item><Item>b</Item></MemChangeList>) become a list.
            fields[child.tag] = [(item.text or "").strip() for item in child]
        else:
            fields[child.tag] = (child.text or "").strip()
    event_type = str(fields.get("Event") or fields.get("InfoType") or fields.get("MsgType") or "")
    if not event_type:
        raise CallbackCryptoError("malformed_event", "no Event, InfoType or MsgType")
    raw_time = str(fields.get("CreateTime") or fields.get("TimeStamp") or "")
    created_at: dt.datetime | None = None
    if raw_time:
        if not raw_time.isdigit():
            raise CallbackCryptoError("malformed_event", "CreateTime is not a unix timestamp")
        try:
            created_at = dt.datetime.fromtimestamp(int(raw_time), tz=dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise CallbackCryptoError("malformed_event", "CreateTime is out of range") from exc
    return ParsedCallback(
        fields=fields,
        event_type=event_type[:64],
        change_type=str(fields.get("ChangeType") or "")[:64],
        created_at=created_at,
    )
