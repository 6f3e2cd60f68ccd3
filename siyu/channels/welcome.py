"""Welcome message text and attachments (欢迎语): placeholder syntax, validation and rendering. Pure functions.

Placeholders are names in single braces, in Chinese or English: {客户昵称} / {nickname} (the customer's WeCom
name), {导购} / {guide} (the guide's name), {门店} / {store} (the guide's store). A literal brace is written
twice: {{ and }}. Any other name in braces, or a lone brace, is refused when the message is saved, so a typo
never reaches a customer as "{nickanme}".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.validation import clean_text

PLACEHOLDERS: dict[str, str] = {
    "客户昵称": "nickname",
    "nickname": "nickname",
    "导购": "guide",
    "guide": "guide",
    "门店": "store",
    "store": "store",
}
NICKNAME_FALLBACK = "朋友"  # for a customer WeCom gave no name: "{客户昵称}您好" → "朋友您好"
TEXT_MAX_BYTES = 4000  # WeCom's limit on text.content (wecom-api.md §4.4), checked after placeholders are filled
TEXT_MAX_CHARS = 1500  # leaves room for names filled in, within 4000 UTF-8 bytes of Chinese text
ATTACHMENTS_MAX = 9
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "file")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# The same rule as a pattern (for the API's schema): text without control characters, braces only doubled or
# around a known placeholder name.
TEXT_PATTERN = (
    r"^(?:[^{}\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\{\{|\}\}|\{(?:"
    + "|".join(re.escape(k) for k in PLACEHOLDERS)
    + r")\})*$"
)


@dataclass(frozen=True)
class Filling:
    """What the placeholders of one send stand for."""

    nickname: str
    guide: str
    store: str


def clean_text_template(text: str, *, field: str = "welcome_text") -> str:
    """The welcome text, checked: length, control characters and only known placeholders."""
    text = clean_text(text, field=field, max_length=TEXT_MAX_CHARS)
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValidationFailed(f"{field} has a lone brace: write {{{{ or }}}} for a literal one", field=field)
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + k + "}" for k in PLACEHOLDERS)
            raise ValidationFailed(f"{field} has an unknown placeholder {{{name}}}; known: {known}", field=field)
    return text


def render(text: str, filling: Filling) -> str:
    """The text with its placeholders filled (the text was checked by clean_text_template when saved)."""
    values = {"nickname": filling.nickname or NICKNAME_FALLBACK, "guide": filling.guide, "store": filling.store}

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found == "{{":
            return "{"
        if found == "}}":
            return "}"
        name = match.group(1)
        key = PLACEHOLDERS.get(name) if name is not None else None
        return values[key] if key else found

    rendered = _TOKEN.sub(replace, text)
    # Names are short, but a pathological one must not make WeCom refuse the whole message.
    while len(rendered.encode("utf-8")) > TEXT_MAX_BYTES:
        rendered = rendered[:-1]
    return rendered


def _url(value: Any, field: str) -> str:
    url = clean_text(value if isinstance(value, str) else "", field=field, max_length=2000, required=True)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what refuses "http://host:x"
    except ValueError:  # "http://]", a bad IPv6 literal or port: not a URL, whatever the pattern let through
        raise ValidationFailed(f"{field} must be an http(s) URL", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed(f"{field} must be an http(s) URL", field=field)
    return url


def _bytes_max(value: Any, field: str, limit: int, *, required: bool = False) -> str:
    """Text of at most `limit` characters, cut to `limit` UTF-8 bytes (WeCom counts bytes): a long Chinese title
    is shortened, not refused."""
    text = clean_text(value if isinstance(value, str) else "", field=field, max_length=limit, required=required)
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def clean_attachments(
    attachments: Sequence[Mapping[str, Any]], *, asset_ids: set[int], field: str = "welcome_attachments"
) -> list[dict[str, Any]]:
    """Up to nine attachments in siyu's stored form, each checked against WeCom's limits (wecom-api.md §4.4):

    - {"msgtype": "image", "asset_id": N} or {"msgtype": "image", "pic_url": "https://..."}
    - {"msgtype": "link", "title" (≤128 bytes), "url", "desc" (≤512 bytes, optional), "picurl" (optional)}
    - {"msgtype": "miniprogram", "title" (≤64 bytes), "appid", "page", "asset_id" (the cover image)}
    - {"msgtype": "file", "asset_id": N}

    `asset_ids` are the brand's uploaded images/files (WelcomeAsset); others are refused.
    """
    if not isinstance(attachments, Sequence) or isinstance(attachments, str):
        raise ValidationFailed(f"{field} must be a list", field=field)
    if len(attachments) > ATTACHMENTS_MAX:
        raise ValidationFailed(f"{field}: at most {ATTACHMENTS_MAX} attachments", field=field)
    cleaned: list[dict[str, Any]] = []
    for i, raw in enumerate(attachments):
        where = f"{field}.{i}"
        if not isinstance(raw, Mapping):
            raise ValidationFailed(f"{where} must be an object", field=where)
        msgtype = raw.get("msgtype")
        if msgtype not in ATTACHMENT_TYPES:
            raise ValidationFailed(f"{where}.msgtype must be one of {', '.join(ATTACHMENT_TYPES)}", field=where)

        def asset(raw: Mapping[str, Any] = raw, where: str = where) -> int:
            value = raw.get("asset_id")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationFailed(f"{where}.asset_id must be an id", field=f"{where}.asset_id")
            if value not in asset_ids:
                raise NotFound(f"{where}.asset_id is not an uploaded image or file", field=f"{where}.asset_id")
            return value

        match msgtype:
            case "image":
                if raw.get("asset_id") is not None:
                    cleaned.append({"msgtype": "image", "asset_id": asset()})
                else:
                    cleaned.append({"msgtype": "image", "pic_url": _url(raw.get("pic_url"), f"{where}.pic_url")})
            case "link":
                item = {
                    "msgtype": "link",
                    "title": _bytes_max(raw.get("title"), f"{where}.title", 128, required=True),
                    "url": _url(raw.get("url"), f"{where}.url"),
                    "desc": _bytes_max(raw.get("desc", ""), f"{where}.desc", 512),
                }
                if raw.get("picurl"):
                    item["picurl"] = _url(raw.get("picurl"), f"{where}.picurl")
                cleaned.append(item)
            case "miniprogram":
                appid = clean_text(
                    raw.get("appid") if isinstance(raw.get("appid"), str) else "",
                    field=f"{where}.appid",
                    max_length=64,
                    required=True,
                )
                cleaned.append(
                    {
                        "msgtype": "miniprogram",
                        "title": _bytes_max(raw.get("title"), f"{where}.title", 64, required=True),
                        "appid": appid,
                        "page": _bytes_max(raw.get("page"), f"{where}.page", 500, required=True),
                        "asset_id": asset(),
                    }
                )
            case "file":
                cleaned.append({"msgtype": "file", "asset_id": asset()})
    return cleaned


def asset_ids_of(attachments: Sequence[Mapping[str, Any]]) -> set[int]:
    return {a["asset_id"] for a in attachments if isinstance(a.get("asset_id"), int)}
