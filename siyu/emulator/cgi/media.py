"""media/upload: temporary media (临时素材) for welcome and mass-message attachments, valid 3 days.

POST /cgi-bin/media/upload?access_token=...&type=image|voice|video|file, multipart/form-data with the file in the
part named "media" → {"type", "media_id", "created_at" (a string, as WeCom sends it)}. Limits (WeCom's upload
page): every file at least 5 bytes; images JPG/PNG ≤ 10 MB; voice AMR ≤ 2 MB; video MP4 ≤ 10 MB; files ≤ 20 MB.
Only the metadata is kept (send_welcome_msg does not check media ids: existing tests use made-up ones).
"""

from __future__ import annotations

import re
from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Media

MEDIA_TTL = 3 * 86_400
MIN_BYTES = 5
MAX_BYTES = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024, "video": 10 * 1024 * 1024, "file": 20 * 1024 * 1024}
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8")
_DISPOSITION = re.compile(rb'name="(?P<name>[^"]*)"(?:; *filename="(?P<filename>[^"]*)")?')


def _media_part(raw: bytes) -> tuple[str, bytes] | None:
    """(filename, content) of the part named "media" of a multipart body (its boundary is its first line)."""
    first, _, _ = raw.partition(b"\r\n")
    if not first.startswith(b"--") or len(first) < 3:
        return None
    for part in raw.split(first)[1:]:
        headers, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        match = _DISPOSITION.search(headers)
        if match and match.group("name") == b"media":
            filename = (match.group("filename") or b"").decode("utf-8", "replace")
            return filename, content.removesuffix(b"\r\n")
    return None


@route("media/upload", contact_api=False, writes=True, raw_body=True)
def upload(call: Call) -> dict[str, Any]:
    media_type = call.query.get("type", "")
    if media_type not in MAX_BYTES:
        raise ApiError(ErrCode.INVALID_MEDIA_TYPE)
    part = _media_part(call.raw)
    if part is None:
        raise ApiError(ErrCode.MISSING_MEDIA)
    filename, content = part
    if not MIN_BYTES <= len(content) <= MAX_BYTES[media_type]:
        raise ApiError(ErrCode.INVALID_FILE_SIZE)
    if media_type == "image" and not content.startswith(_IMAGE_MAGIC):
        raise ApiError(ErrCode.INVALID_FILE_TYPE, "images must be JPG or PNG")
    corp = call.corp
    media_id = ids.media_id(corp.corp_id, corp.next_seq())
    corp.media[media_id] = Media(media_id, media_type, filename, len(content), int(call.now))
    # Expired entries are dropped as new ones come, so the corp's state does not grow for ever.
    for old in [m for m, media in corp.media.items() if call.now - media.created_at > MEDIA_TTL]:
        del corp.media[old]
    return {"type": media_type, "media_id": media_id, "created_at": str(int(call.now))}
