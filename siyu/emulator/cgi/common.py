"""Argument checks and cursors shared by the endpoint modules."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, ExternalContact, Member


def text(body: dict[str, Any], key: str, *, missing: ErrCode | None = None, max_chars: int | None = None) -> str:
    """A string argument; `missing` is the errcode when it is absent or empty (None: optional)."""
    value = body.get(key)
    if value is None or value == "":
        if missing is not None:
            raise ApiError(missing, f"{key} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} must be a string")
    if max_chars is not None and len(value) > max_chars:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} exceeds {max_chars} characters")
    return value


def integer(body: dict[str, Any], key: str, default: int | None = None, *, missing: ErrCode | None = None) -> int:
    value = body.get(key)
    if value is None or value == "":
        if missing is not None:
            raise ApiError(missing, f"{key} is required")
        if default is None:
            raise ApiError(ErrCode.PARAMETER_EMPTY, f"{key} is required")
        return default
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} must be an integer") from None


def string_list(body: dict[str, Any], key: str, *, max_items: int | None = None) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} must be a list of strings")
    if max_items is not None and len(value) > max_items:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} exceeds {max_items} items")
    return value


def page_limit(body: dict[str, Any], *, default: int, maximum: int) -> int:
    """The `limit` of a cursor API: absent or 0 → default, above the maximum → the maximum (the documented clamp)."""
    limit = integer(body, "limit", 0)
    if limit < 0:
        raise ApiError(ErrCode.INVALID_PARAMETER, "limit must not be negative")
    return default if limit == 0 else min(limit, maximum)


def member(corp: Corp, userid: str) -> Member:
    found = corp.members.get(userid)
    if found is None:
        raise ApiError(ErrCode.INVALID_USERID, f"userid {userid!r} not found")
    return found


def contact_member(corp: Corp, userid: str) -> Member:
    """A member who may hold customers: exists and is in 「客户联系 → 配置使用范围」."""
    found = member(corp, userid)
    if not found.customer_contact:
        raise ApiError(ErrCode.NOT_IN_CONTACT_RANGE, f"userid {userid!r} has no customer-contact permission")
    return found


def contact(corp: Corp, external_userid: str) -> ExternalContact:
    if not external_userid:
        raise ApiError(ErrCode.MISSING_EXTERNAL_USERID)
    found = corp.contacts.get(external_userid)
    if found is None:
        raise ApiError(ErrCode.INVALID_EXTERNAL_USERID, f"external_userid {external_userid!r} not found")
    return found


def related(corp: Corp, userid: str, external_userid: str) -> ExternalContact:
    """The customer, checking the member still has them (one-way after the customer deleted the member counts)."""
    contact_member(corp, userid)
    found = contact(corp, external_userid)
    if userid not in found.follows:
        raise ApiError(ErrCode.NOT_EXTERNAL_CONTACT, external_userid=[])
    return found


# -- cursors -----------------------------------------------------------------------------------------------------
#
# A cursor is opaque to clients: base64url(JSON position) + "." + a short digest binding it to the corp and the
# endpoint. Positions are follow/insertion sequence numbers, not offsets, so a page boundary survives inserts and
# deletes between calls: nothing is returned twice and nothing that existed throughout is skipped.


def _digest(corp: Corp, kind: str, payload: str) -> str:
    return hashlib.sha256(f"{corp.corp_id}:{kind}:{payload}".encode()).hexdigest()[:12]


def cursor_encode(corp: Corp, kind: str, position: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{payload}.{_digest(corp, kind, payload)}"


def cursor_decode(corp: Corp, kind: str, cursor: str) -> dict[str, Any] | None:
    """None for the first page (no cursor); 50100 for a cursor this endpoint did not issue."""
    if not cursor:
        return None
    payload, _, digest = cursor.partition(".")
    if not payload or digest != _digest(corp, kind, payload):
        raise ApiError(ErrCode.INVALID_CURSOR)
    try:
        position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        raise ApiError(ErrCode.INVALID_CURSOR) from None
    if not isinstance(position, dict):
        raise ApiError(ErrCode.INVALID_CURSOR)
    return position


def query_digest(*parts: object) -> str:
    """Binds a cursor to the query that produced it: changing the filter mid-way is a client bug → 50100."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]
